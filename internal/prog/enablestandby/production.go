package enablestandby

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// production is what the new production's PostgreSQL told us. It is
// untrusted: every field was checked against the form it must have.
type production struct {
	host       string
	port       int
	user       string
	sysid      string // system identifier
	tli        int    // the timeline it writes
	lsn        pg.LSN // its WAL position when asked
	history    pg.History
	version    int // server_version_num (150018)
	inRecovery bool
	fpw        bool  // full_page_writes, which pg_rewind needs
	size       int64 // bytes of its databases: what a base backup copies
	slotType   string
	slotActive bool
	// The timeline of its last checkpoint: after a promotion it lags until
	// the first checkpoint ends, and pg_rewind, which reads it, would see
	// nothing to rewind.
	checkpointTLI int
}

// maxAnswer bounds what one of production's answers may hold.
const maxAnswer = 1 << 20

var (
	sysidRe   = regexp.MustCompile(`^[0-9]{1,20}$`)
	historyRe = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
)

// asker runs SQL or replication commands on production through psql, as
// this machine's PostgreSQL user, authenticated from the probe passfile.
type asker struct {
	r     *run.Runner
	cl    *pg.Cluster
	host  string
	port  int
	creds *credentials
}

func (a asker) conninfo(replication bool) string {
	kv := []string{"host", a.host, "port", strconv.Itoa(a.port), "user", a.creds.user, "dbname", "postgres",
		"passfile", a.creds.probe, "connect_timeout", "10"}
	if replication {
		kv = append(kv, "replication", "true")
	}
	return pg.Conninfo(kv...)
}

func (a asker) ask(ctx context.Context, replication bool, sql string) (string, error) {
	out, err := a.r.Exec(ctx, run.Step{Argv: a.cl.ConnArgv(a.conninfo(replication), "-c", sql), Dir: "/",
		Timeout: time.Minute, MaxOutput: maxAnswer})
	if err != nil {
		return "", &cli.Error{Code: cli.ExitFailure, Err: err,
			Msg: fmt.Sprintf("cannot query production's PostgreSQL at %s:%d as %s: %s", a.host, a.port, a.creds.user, cli.Printable(psqlCause(err))),
			Hint: "check that it runs and listens there, that its pg_hba.conf lets " + a.creds.user +
				" in from this machine (for replication and for database postgres), and the password in REPLICATION_PASSFILE"}
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// psqlCause says why psql failed: libpq's last line only names the
// password file it used, the line before says what went wrong.
func psqlCause(err error) string {
	if cause := run.Cause(err, "password retrieved from file"); cause != "" {
		return fmt.Sprintf("%s (exit status %d)", cause, run.ExitCode(err))
	}
	return run.Brief(err)
}

// probeProduction asks production who it is, where it stands and where it
// came from, in three questions.
func probeProduction(ctx context.Context, a asker, slot string) (*production, error) {
	p := &production{host: a.host, port: a.port, user: a.creds.user}
	out, err := a.ask(ctx, true, "IDENTIFY_SYSTEM")
	if err != nil {
		return nil, err
	}
	if err := p.identify(out); err != nil {
		return nil, refusedAnswer("IDENTIFY_SYSTEM", err)
	}
	p.history = pg.History{{TLI: p.tli, End: pg.MaxLSN}}
	if p.tli > 1 {
		out, err := a.ask(ctx, true, fmt.Sprintf("TIMELINE_HISTORY %d", p.tli))
		if err != nil {
			return nil, err
		}
		if p.history, err = parseTimelineHistory(p.tli, out); err != nil {
			return nil, refusedAnswer("TIMELINE_HISTORY", err)
		}
	}
	out, err = a.ask(ctx, false, stateSQL(slot))
	if err != nil {
		return nil, err
	}
	if err := p.state(out); err != nil {
		return nil, refusedAnswer("its state", err)
	}
	return p, nil
}

func refusedAnswer(what string, err error) error {
	return cli.Fail(cli.ExitRefused, "production's answer to "+what+" is not what PostgreSQL sends: "+cli.Printable(err.Error()),
		"check that SYNCSRC and PROD_PG_PORT name production's PostgreSQL; nothing was changed")
}

// identify reads IDENTIFY_SYSTEM: systemid|timeline|xlogpos|dbname.
func (p *production) identify(out string) error {
	f := strings.Split(out, "|")
	if len(f) != 4 || !sysidRe.MatchString(f[0]) {
		return fmt.Errorf("%q", truncate(out))
	}
	tli, err := strconv.Atoi(f[1])
	if err != nil || tli < 1 {
		return fmt.Errorf("timeline %q", truncate(f[1]))
	}
	lsn, err := pg.ParseLSN(f[2])
	if err != nil {
		return err
	}
	p.sysid, p.tli, p.lsn = f[0], tli, lsn
	return nil
}

// parseTimelineHistory reads TIMELINE_HISTORY's answer: the file's name,
// "|", then its content.
func parseTimelineHistory(tli int, out string) (pg.History, error) {
	name, content, ok := strings.Cut(out, "|")
	if !ok || !historyRe.MatchString(name) || name != fmt.Sprintf("%08X.history", tli) {
		return nil, fmt.Errorf("history file name %q", truncate(name))
	}
	return pg.ParseHistory(tli, []byte(content))
}

// stateSQL asks, in one row, whether production is a primary, its version,
// full_page_writes, its databases' size and the slot's state.
func stateSQL(slot string) string {
	slotExpr := "''"
	if slot != "" {
		slotExpr = "coalesce((SELECT slot_type || ',' || active FROM pg_replication_slots WHERE slot_name = " + pg.QuoteLiteral(slot) + "), '')"
	}
	return "SELECT pg_is_in_recovery(), current_setting('server_version_num'), current_setting('full_page_writes'), " +
		"(SELECT coalesce(sum(pg_database_size(oid)), 0) FROM pg_database WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')), " +
		slotExpr + ", (SELECT timeline_id FROM pg_control_checkpoint())"
}

func (p *production) state(out string) error {
	f := strings.Split(out, "|")
	if len(f) != 6 || (f[0] != "t" && f[0] != "f") || (f[2] != "on" && f[2] != "off") {
		return fmt.Errorf("%q", truncate(out))
	}
	var err error
	if p.checkpointTLI, err = strconv.Atoi(f[5]); err != nil || p.checkpointTLI < 1 {
		return fmt.Errorf("checkpoint timeline %q", truncate(f[5]))
	}
	p.inRecovery, p.fpw = f[0] == "t", f[2] == "on"
	if p.version, err = strconv.Atoi(f[1]); err != nil || p.version < 90000 {
		return fmt.Errorf("version %q", truncate(f[1]))
	}
	if p.size, err = strconv.ParseInt(f[3], 10, 64); err != nil || p.size < 0 {
		return fmt.Errorf("size %q", truncate(f[3]))
	}
	if f[4] != "" {
		typ, active, _ := strings.Cut(f[4], ",")
		if (typ != "physical" && typ != "logical") || (active != "true" && active != "false") {
			return fmt.Errorf("slot %q", truncate(f[4]))
		}
		p.slotType, p.slotActive = typ, active == "true"
	}
	return nil
}

// checkpointTimeline reads the timeline of production's last checkpoint.
func (a asker) checkpointTimeline(ctx context.Context) (int, error) {
	out, err := a.ask(ctx, false, "SELECT timeline_id FROM pg_control_checkpoint()")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		return 0, refusedAnswer("pg_control_checkpoint()", err)
	}
	return n, nil
}

// major is production's major version (15 for 150018).
func (p *production) major() int { return p.version / 10000 }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
