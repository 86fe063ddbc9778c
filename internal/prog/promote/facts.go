package promote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/odooconf"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
)

// facts is what the preflight learnt; nothing has changed yet.
type facts struct {
	cluster  *pg.Cluster
	q        *pg.Session // one psql for every query of the run
	status   *pg.Status
	promoted bool // PROMOTED=yes already (an earlier run got that far)
	syncOff  bool
	source   string   // production's address; "" when SYNCSRC is not set
	probes   []probe  // production's ports
	alive    []string // evidence that production still runs
	syncs    map[string]time.Time
	syncErr  error // the summary file could not be read
	odooUp   bool  // ODOO_URL already answers
	now      time.Time
}

type probe struct {
	what string
	addr string
	ok   bool
}

// resumeOnly is a re-run after PostgreSQL was promoted: what is left
// (starting Odoo, checks, report) cannot make things worse.
func (f *facts) resumeOnly() bool { return !f.status.InRecovery && f.promoted }

// probeTimeout bounds each check that production is gone: a live host
// answers a TCP connection within milliseconds, a dead one never.
const probeTimeout = time.Second

// inspect finds the local cluster and reads everything the decision and the
// report need. It changes nothing.
func inspect(env *cli.Env, cfg *config.Config) (*facts, error) {
	ctx := env.Ctx
	c, err := pg.Find(ctx, env.Runner, job.PG(cfg))
	if errors.Is(err, pg.ErrNotFound) {
		return nil, &cli.Error{Code: cli.ExitFailure, Msg: err.Error(), Err: err,
			Hint: "set PG_CLUSTER (a Debian cluster, VERSION/NAME) or PG_DATA, PG_BINDIR, PG_PORT and PG_HOST in " + cfg.Path}
	}
	if err != nil {
		return nil, err
	}
	if err := c.CheckVersion(); err != nil {
		return nil, &cli.Error{Code: cli.ExitRefused, Msg: err.Error(), Err: err}
	}
	if !c.Online {
		hint := "start it (pg_ctl start -D " + c.Data + ") and run again"
		if c.Debian {
			hint = "start it (pg_ctlcluster " + c.Version + " " + c.Name + " start) and run again"
		}
		return nil, cli.Fail(cli.ExitFailure, "PostgreSQL "+c.String()+" is not running", hint)
	}
	q, err := c.Open(ctx, env.Runner)
	if err != nil {
		return nil, err
	}
	st, err := pg.ReadStatus(ctx, q)
	if err != nil {
		q.Close()
		return nil, err
	}
	f := &facts{cluster: c, q: q, status: st, promoted: cfg.Promoted(), syncOff: !cfg.SyncOn(), now: time.Now()}
	f.syncs, f.syncErr = summary.Last(cfg.Get(config.SummaryFile))
	if src, err := cfg.Source(); err == nil {
		f.source = src
	}
	if st.InRecovery {
		f.checkProduction(ctx, cfg)
	}
	f.odooUp = httpOK(ctx, odooconf.URL(cfg), 2*time.Second) == nil
	return f, nil
}

// checkProduction collects the evidence that production still runs: the WAL
// receiver streaming from it, its PostgreSQL port, its ssh port.
func (f *facts) checkProduction(ctx context.Context, cfg *config.Config) {
	st := f.status
	if st.ReceiverStatus == "streaming" {
		f.alive = append(f.alive, fmt.Sprintf("the WAL receiver streams from %s", net.JoinHostPort(st.SenderHost, strconv.Itoa(st.SenderPort))))
	}
	if f.source == "" {
		return
	}
	f.probes = []probe{
		{what: "PostgreSQL", addr: net.JoinHostPort(f.source, cfg.Get(config.ProdPGPort))},
		{what: "ssh", addr: net.JoinHostPort(f.source, cfg.Get(config.SSHPort))},
	}
	var wg sync.WaitGroup
	for i := range f.probes {
		wg.Go(func() {
			d := net.Dialer{Timeout: probeTimeout}
			if conn, err := d.DialContext(ctx, "tcp", f.probes[i].addr); err == nil {
				conn.Close()
				f.probes[i].ok = true
			}
		})
	}
	wg.Wait()
	for _, p := range f.probes {
		if p.ok {
			f.alive = append(f.alive, fmt.Sprintf("production's %s answers on %s", p.what, p.addr))
		}
	}
}

// httpOK gets url once and wants a 2xx or 3xx answer.
func httpOK(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// print shows the preflight's findings.
func (f *facts) print(env *cli.Env) {
	c, st := f.cluster, f.status
	if c.Debian {
		env.Printf("PostgreSQL %s (version %s, port %d, data %s)\n", c, c.Version, c.Port, c.Data)
	} else {
		env.Printf("PostgreSQL %s (version %s, port %d)\n", c, c.Version, c.Port)
	}
	state := "primary: not in recovery (already promoted)"
	if st.InRecovery {
		state = "standby: in recovery"
	}
	row(env, "state", fmt.Sprintf("%s, timeline %d", state, st.Timeline))
	if st.InRecovery {
		recv := "not running (production unreachable?)"
		if st.ReceiverStatus != "" {
			recv = fmt.Sprintf("%s from %s", st.ReceiverStatus, net.JoinHostPort(st.SenderHost, strconv.Itoa(st.SenderPort)))
		}
		row(env, "WAL receiver", recv)
		replay := "running"
		if st.ReplayPaused {
			replay = "PAUSED"
		}
		row(env, "WAL replay", fmt.Sprintf("%s (received %s, replayed %s)", replay, st.ReceiveLSN, st.ReplayLSN))
	}
	if st.LastReplay.IsZero() {
		row(env, "last replayed commit", "unknown")
	} else {
		row(env, "last replayed commit", since(st.Now, st.LastReplay)+": production's commits after it are lost")
	}
	if st.InRecovery {
		if f.source == "" {
			env.Printf("Production: SYNCSRC is not set; only the WAL receiver tells whether it runs\n")
		} else {
			env.Printf("Production %s:\n", f.source)
			for _, p := range f.probes {
				ans := "no answer"
				if p.ok {
					ans = "ANSWERS"
				}
				row(env, p.what+" "+p.addr, ans)
			}
		}
	}
	env.Printf("Last successful syncs:\n")
	for _, line := range syncLines(f.syncs, f.syncErr, f.now) {
		env.Printf("  %s\n", line)
	}
}

func row(env *cli.Env, k, v string) { env.Printf("  %-24s %s\n", k+":", v) }

// syncLines lists each command's last success from the summary file.
func syncLines(syncs map[string]time.Time, err error, now time.Time) []string {
	if err != nil {
		return []string{"cannot read the summary file: " + err.Error()}
	}
	if len(syncs) == 0 {
		return []string{"none recorded in the summary file"}
	}
	names := make([]string, 0, len(syncs))
	for n := range syncs {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%-24s %s", n, since(now, syncs[n]))
	}
	return out
}
