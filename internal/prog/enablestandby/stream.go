package enablestandby

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// session is one psql to this machine's server, opened once it runs as
// a standby. A standby just started may refuse connections until its
// replay reaches a consistent state ("the database system is starting
// up"): it is tried again until STREAM_TIMEOUT.
func (r *rejoin) session(ctx context.Context) (*pg.Session, error) {
	if r.q != nil {
		return r.q, nil
	}
	deadline := time.Now().Add(r.wait)
	for {
		q, err := r.cl.Open(ctx, r.env.Runner)
		if err == nil {
			r.q = q
			return q, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// wantConninfo is the primary_conninfo this standby follows production
// with: no password in it, only the file that holds it.
func (r *rejoin) wantConninfo() string {
	f := r.f
	return pg.Conninfo("host", f.source, "port", strconv.Itoa(f.port), "user", f.creds.user, "passfile", f.creds.target, "connect_timeout", "10")
}

// follows reports whether a primary_conninfo already leads to production
// as the replication role, with our password file and no password.
func (r *rejoin) follows(conninfo string) bool {
	m := pg.ParseConninfo(conninfo)
	f := r.f
	return m != nil && m["host"] == f.source && m["port"] == strconv.Itoa(f.port) && m["user"] == f.creds.user &&
		m["passfile"] == f.creds.target && m["password"] == ""
}

// settingsStep appends primary_conninfo and primary_slot_name to the
// stopped server's postgresql.auto.conf, the way pg_basebackup -R does
// (and PostgreSQL's documentation allows tools to: the last line wins), so
// that it streams from production from its first start. Set only once it
// runs, a slot of production's own past that a rewind brought along would
// keep it from streaming, and so from ever accepting the connection that
// would change it.
func (r *rejoin) settingsStep() run.Step {
	path := filepath.Join(r.cl.Data, "postgresql.auto.conf")
	lines := "\n# " + prog + ": follow production\n" +
		"primary_conninfo = " + pg.QuoteLiteral(r.wantConninfo()) + "\n" +
		"primary_slot_name = " + pg.QuoteLiteral(r.f.slot) + "\n"
	return run.Step{What: "append primary_conninfo and primary_slot_name to " + path + " (as pg_basebackup -R does)",
		Argv: r.cl.As(appendArgv(path)...), Show: strings.Split(strings.TrimSpace(lines), "\n"),
		Do: func(ctx context.Context) error {
			_, err := r.env.Runner.Exec(ctx, run.Step{Argv: r.cl.As(appendArgv(path)...), Dir: "/", Stdin: strings.NewReader(lines)})
			return err
		}}
}

func appendArgv(path string) []string {
	return []string{"dd", "of=" + path, "oflag=append", "conv=notrunc,fsync", "status=none"}
}

// pointStep makes sure the standby follows production through the
// settings PostgreSQL keeps in postgresql.auto.conf: primary_conninfo (-R
// wrote it already after a rewind or a base backup) and primary_slot_name
// (a copy of production's settings may name a slot of its own past).
func (r *rejoin) pointStep() run.Step {
	f := r.f
	slot := "none"
	if f.slot != "" {
		slot = f.slot
	}
	return run.Step{What: fmt.Sprintf("point it at production: primary_conninfo to %s:%d as %s, primary_slot_name %s (ALTER SYSTEM and reload, where they differ)",
		f.source, f.port, f.creds.user, slot),
		Do: r.point}
}

func (r *rejoin) point(ctx context.Context) error {
	q, err := r.session(ctx)
	if err != nil {
		return err
	}
	out, err := q.Query(ctx, "SELECT current_setting('primary_conninfo'), current_setting('primary_slot_name')")
	if err != nil {
		return err
	}
	conninfo, slot, _ := strings.Cut(out, "|")
	var sqls []string
	if !r.follows(conninfo) {
		sqls = append(sqls, "ALTER SYSTEM SET primary_conninfo = "+pg.QuoteLiteral(r.wantConninfo()))
	}
	switch {
	case slot == r.f.slot:
	case r.f.slot == "":
		sqls = append(sqls, "ALTER SYSTEM RESET primary_slot_name")
	default:
		sqls = append(sqls, "ALTER SYSTEM SET primary_slot_name = "+pg.QuoteLiteral(r.f.slot))
	}
	if len(sqls) == 0 {
		return nil
	}
	// The WAL receiver restarts with the new settings on reload.
	for _, sql := range append(sqls, "SELECT pg_reload_conf()") {
		if _, err := q.Query(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// waitStep waits until the standby streams from production, then until
// it has replayed what production had written by then.
func (r *rejoin) waitStep() run.Step {
	return run.Step{What: fmt.Sprintf("wait until it streams from %s:%d and has replayed production's WAL (up to %s)", r.f.source, r.f.port, r.wait),
		Do: r.waitStreaming}
}

// receiverSQL reads the WAL receiver and the replay position in one go.
const receiverSQL = `SELECT coalesce((SELECT status || '|' || coalesce(sender_host, '') || '|' || coalesce(sender_port::text, '') FROM pg_stat_wal_receiver), '||'),
 coalesce(pg_last_wal_replay_lsn()::text, '')`

func (r *rejoin) waitStreaming(ctx context.Context) error {
	q, err := r.session(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(r.wait)
	state := ""
	for {
		out, err := q.Query(ctx, receiverSQL)
		if err != nil {
			return err
		}
		f := strings.Split(out, "|")
		if len(f) == 4 && f[0] == "streaming" && f[1] == r.f.source && f[2] == strconv.Itoa(r.f.port) {
			break
		}
		state = f[0]
		if err := r.tick(ctx, deadline, "stream from", state); err != nil {
			return err
		}
	}
	r.rep.streaming = time.Now()
	target, err := r.productionLSN(ctx)
	if err != nil {
		return err
	}
	for {
		out, err := q.Query(ctx, "SELECT coalesce(pg_last_wal_replay_lsn()::text, '')")
		if err != nil {
			return err
		}
		if lsn, err := pg.ParseLSN(out); err == nil && lsn >= target {
			r.rep.caughtUp, r.rep.replayed = time.Now(), lsn
			return nil
		}
		if err := r.tick(ctx, deadline, "catch up with", "streaming, replayed "+out+" of "+target.String()); err != nil {
			return err
		}
	}
}

// tick sleeps a little, or fails once the deadline passed.
func (r *rejoin) tick(ctx context.Context, deadline time.Time, what, state string) error {
	if time.Now().After(deadline) {
		msg := fmt.Sprintf("PostgreSQL %s runs as a standby but did not %s %s:%d within %s (WAL receiver: %s)",
			r.cl, what, r.f.source, r.f.port, r.wait, orNone(state))
		if tail := logTail(r.f.local.logFile); tail != "" {
			msg += "; its log says: " + cli.Printable(tail)
		}
		return &cli.Error{Code: cli.ExitFailure, Msg: msg,
			Hint: fmt.Sprintf("read its log (%s); check that production's pg_hba.conf lets %s replicate from this machine, or raise STREAM_TIMEOUT; then run %s again: it continues",
				r.f.local.logFile, r.f.creds.user, prog)}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// productionLSN is how far production's WAL is flushed now: what its
// walsender can send. Its write position may stay ahead (hint-bit records
// in a page not yet flushed on an idle server) and no standby reaches it.
func (r *rejoin) productionLSN(ctx context.Context) (pg.LSN, error) {
	out, err := r.f.ask.ask(ctx, false, "SELECT pg_current_wal_flush_lsn()")
	if err != nil {
		return 0, err
	}
	lsn, err := pg.ParseLSN(out)
	if err != nil {
		return 0, refusedAnswer("pg_current_wal_flush_lsn()", err)
	}
	return lsn, nil
}
