package enablestandby

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/status"
)

// report is the rejoin report: on screen and in REPORT_DIR, like the
// failover's.
type report struct {
	f      *facts
	cfg    *config.Config
	start  time.Time
	method method
	reason string
	lost   *lost
	fenced []string

	stopped, rebuildStart, rebuildEnd, started time.Time
	streaming, caughtUp                        time.Time
	replayed                                   pg.LSN
	oldData                                    string
	oldKept                                    bool

	syncDone bool
	syncErr  error
	status   *status.Report

	failed  string // the step that failed
	err     error
	written bool
	host    string
}

// write writes the report's file and returns its path.
func (r *report) write(env *cli.Env) (string, error) {
	r.written = true
	r.host, _ = os.Hostname()
	return atomicfile.CreateNew(r.cfg.Get(config.ReportDir), prog+"-"+r.start.Format("20060102-150405")+".txt", []byte(r.text()))
}

func stampMS(t time.Time) string {
	if t.IsZero() {
		return "not reached"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

// after says when t came, counted from the command's start.
func (r *report) after(t time.Time) string {
	if t.IsZero() {
		return "not reached"
	}
	return fmt.Sprintf("%s (%s after the command started)", stampMS(t), t.Sub(r.start).Round(10*time.Millisecond))
}

// text renders the report.
func (r *report) text() string {
	f := r.f
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "  %-26s %s\n", k+":", v) }
	fmt.Fprintf(&b, "%s report: %s, %s\n", prog, r.host, stamp(r.start))
	switch {
	case r.err != nil:
		fmt.Fprintf(&b, "RESULT: FAILED at %q: %s\n\n", r.failed, cli.Printable(r.err.Error()))
	default:
		fmt.Fprintf(&b, "RESULT: this machine is a streaming standby of %s\n\n", f.source)
	}

	p := f.prod
	fmt.Fprintf(&b, "Production %s\n", f.source)
	line("PostgreSQL", fmt.Sprintf("%d.%d at %s:%d, timeline %d, system %s", p.version/10000, p.version%100, p.host, p.port, p.tli, p.sysid))
	if f.slot != "" {
		line("replication slot", f.slot)
	}

	m := f.local
	fmt.Fprintf(&b, "\nThis machine's PostgreSQL %s (data %s)\n", m.cluster, m.cluster.Data)
	line("before", m.stateText())
	line("method", r.method.String()+": "+r.reason)
	if f.forkTLI > 0 && f.forkAt != pg.MaxLSN {
		line("parted from production", f.forkName())
	}
	line("lost (not in production)", r.lostText())
	if r.lost != nil && r.lost.Kept != "" {
		line("its WAL kept in", r.lost.Kept)
		line("its transactions listed in", filepath.Join(filepath.Dir(r.lost.Kept), "diverged-commits.txt"))
	}
	if !r.stopped.IsZero() {
		line("stopped", stampMS(r.stopped))
	}
	if !r.rebuildStart.IsZero() {
		line("rebuilt", fmt.Sprintf("%s, in %s", stampMS(r.rebuildStart), durationOrNot(r.rebuildStart, r.rebuildEnd)))
	}
	if !r.started.IsZero() {
		line("started as a standby", r.after(r.started))
	}
	line("streaming", r.after(r.streaming))
	if !r.caughtUp.IsZero() {
		line("caught up", fmt.Sprintf("%s, replayed up to %s", r.after(r.caughtUp), r.replayed))
	}
	if r.oldData != "" {
		state := "removed once the new one streamed"
		if r.oldKept {
			state = "KEPT (--keep-old-data): remove it once you no longer need it"
		} else if exists(r.oldData) {
			state = "still there"
		}
		line("old data directory", r.oldData+": "+state)
	}

	fmt.Fprintf(&b, "\nOdoo on this machine\n")
	if len(r.fenced) > 0 {
		line("fenced", strings.Join(r.fenced, ", ")+": stopped and disabled at boot; "+f.odoo.url+" no longer answers")
	} else {
		line("fenced", "no (see above)")
	}

	fmt.Fprintf(&b, "\nSync\n")
	line("configuration", r.cfg.Path)
	switch {
	case !r.syncDone:
		line("first full sync", "not run")
	case r.syncErr != nil:
		_, l := cli.Describe(r.syncErr)
		line("first full sync", "FAILED: "+l)
	default:
		line("first full sync", "ok (ot-sync-from-source)")
	}
	if r.status != nil {
		fmt.Fprintf(&b, "\not-status: %s: %s\n%s", r.status.Status, cli.Printable(r.status.Summary), indent(statusLines(r.status)))
	}

	fmt.Fprintf(&b, "\nWhat is left to do\n")
	for _, s := range r.checklist() {
		fmt.Fprintf(&b, "  [ ] %s\n", s)
	}
	return b.String()
}

func durationOrNot(a, b time.Time) string {
	if b.IsZero() {
		return "not finished"
	}
	return b.Sub(a).Round(10 * time.Millisecond).String()
}

func (r *report) lostText() string {
	switch {
	case r.lost != nil:
		return r.lost.summary()
	case r.method == methodNone:
		return "not counted: PostgreSQL already streamed from production when this run began (the run that rebuilt it reported it)"
	}
	return "nothing: this machine wrote nothing after it parted from production"
}

func (r *report) checklist() []string {
	out := []string{
		"on production, check that this standby appears in pg_stat_replication",
		"keep this report with the failover's; the monitoring should show ot-status on this machine again",
	}
	if r.lost.diverged() {
		out = append(out, "look at the transactions listed as lost: re-enter in production what must not be lost")
	}
	if r.f.slot != "" {
		out = append(out, "the slot "+r.f.slot+" makes production keep WAL while this standby is away: watch production's disk (max_slot_wal_keep_size bounds it)")
	}
	if r.oldKept {
		out = append(out, "remove "+r.oldData+" once you no longer need it")
	}
	return out
}
