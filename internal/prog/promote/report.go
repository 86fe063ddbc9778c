package promote

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/odooconf"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/follower"
)

// report is the recovery report: on screen and in REPORT_DIR.
type report struct {
	facts          *facts
	cfg            *config.Config
	start          time.Time
	promoteStart   time.Time
	promoted       time.Time // when PostgreSQL left recovery in this run
	earlier        time.Time // when an earlier run promoted it (from the timeline history file)
	timelineBefore int
	timelineAfter  int
	writable       time.Time // when the write check passed
	odooOK         bool
	odooErr        error
	odooAnswered   time.Duration
	host           string
	addrs          []string
}

// write fills in what the report still needs and writes the file; it
// returns the file's path.
func (r *report) write(env *cli.Env) (string, error) {
	f := r.facts
	if r.promoted.IsZero() && !f.status.InRecovery {
		// Promoted by an earlier run: the new timeline's history file was
		// written at promotion.
		sql := fmt.Sprintf("SELECT extract(epoch FROM modification) FROM pg_stat_file('pg_wal/%08X.history', true)", f.status.Timeline)
		if out, err := f.q.Query(env.Ctx, sql); err == nil && out != "" {
			r.earlier = parseEpoch(out)
		}
	}
	r.host, _ = os.Hostname()
	r.addrs = addresses()
	// The report names the data lost: a new file, never through a symlink,
	// in a directory only root writes.
	return atomicfile.CreateNew(r.cfg.Get(config.ReportDir), prog+"-"+r.start.Format("20060102-150405")+".txt", []byte(r.text()))
}

func parseEpoch(s string) time.Time {
	var sec float64
	if _, err := fmt.Sscan(s, &sec); err != nil {
		return time.Time{}
	}
	return time.UnixMicro(int64(sec * 1e6))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

// text renders the report.
func (r *report) text() string {
	f, st := r.facts, r.facts.status
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "  %-26s %s\n", k+":", v) }
	fmt.Fprintf(&b, "%s recovery report: %s, %s\n\n", prog, r.host, stamp(r.start))

	fmt.Fprintf(&b, "PostgreSQL %s\n", f.cluster)
	switch {
	case !r.promoted.IsZero():
		line("promoted", fmt.Sprintf("%s (timeline %d -> %d, %s after the request)", stamp(r.promoted), r.timelineBefore, r.timelineAfter,
			round(r.promoted.Sub(r.promoteStart))))
	case !st.InRecovery:
		line("promoted", fmt.Sprintf("before this run, %s (timeline %d)", stamp(r.earlier), st.Timeline))
	default:
		line("promoted", "NO: still in recovery")
	}
	line("last replayed commit", stamp(st.LastReplay))
	switch {
	case !st.InRecovery:
		line("lag", "unknown: PostgreSQL was already promoted when this run started (see the first run's report)")
	case st.LastReplay.IsZero():
		line("lag", "unknown: no transaction was replayed since PostgreSQL started")
	default:
		line("lag", fmt.Sprintf("%s at the preflight: production's commits after the last replayed one are lost (fewer if production was idle)", round(st.Lag)))
	}
	if st.ReceiveLSN != "" {
		line("WAL received / replayed", st.ReceiveLSN+" / "+st.ReplayLSN)
	}
	if r.writable.IsZero() {
		line("writable", "not checked, or FAILED")
	} else {
		line("writable", fmt.Sprintf("%s (%s after the command started)", stamp(r.writable), round(r.writable.Sub(r.start))))
	}

	fmt.Fprintf(&b, "\nOdoo\n")
	line("service", r.cfg.Get(config.OdooService))
	switch {
	case r.odooOK:
		line(odooconf.URL(r.cfg), fmt.Sprintf("answers (after %s)", round(r.odooAnswered)))
	case r.odooErr != nil:
		line(odooconf.URL(r.cfg), "FAILED: "+r.odooErr.Error())
	default:
		line(odooconf.URL(r.cfg), "not checked")
	}

	fmt.Fprintf(&b, "\nLast successful syncs (%s): files changed on production after these times may be missing\n", r.cfg.Get(config.SummaryFile))
	for _, l := range syncLines(f.syncs, f.syncErr, r.start) {
		fmt.Fprintf(&b, "  %s\n", l)
	}

	var lastFS time.Time
	for _, n := range []string{"ot-attachments-sync", "ot-attachment-sync", "ot-sync-from-source"} {
		if f.syncs[n].After(lastFS) {
			lastFS = f.syncs[n]
		}
	}
	fmt.Fprintf(&b, "  %s\n", "filestore window: "+follower.LossWindow(r.cfg.Get(config.StateDir), lastFS).Text(stamp))

	fmt.Fprintf(&b, "\nThis machine\n")
	line("host name", r.host)
	line("addresses", strings.Join(r.addrs, ", "))
	if f.source != "" {
		line("old production", f.source+" (must stay off; ot-enable-standby-mode, run there, makes it a standby of this machine)")
	}

	fmt.Fprintf(&b, "\nRemaining checklist (manual, section 3.1)\n")
	for _, s := range []string{
		"note production's shutdown time and keep this report with your recovery notes",
		"log in to Odoo and smoke test: the latest sale orders, inventory operations, invoices, and above all files (attachments) created since the last filestore sync (ot-attachment-sync)",
		"repoint reverse proxies, web servers or DNS records to this machine (addresses above) and check it is reachable as intended",
		"(re)start any other services this installation needs",
		"inform the people concerned of what happened and what may have been lost",
	} {
		fmt.Fprintf(&b, "  [ ] %s\n", s)
	}
	return b.String()
}

// addresses lists this machine's global unicast addresses.
func addresses() []string {
	var out []string
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
				out = append(out, n.IP.String())
			}
		}
	}
	if len(out) == 0 {
		out = []string{"none found besides loopback"}
	}
	return out
}
