package promote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/odooconf"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/follower"
)

// step is one thing the command does: shown as the plan, then done.
type step struct {
	run.Step
	odoo bool // a failure here leaves PostgreSQL promoted and Odoo down
}

// promotion holds one run's plan and what its steps learn on the way.
type promotion struct {
	env      *cli.Env
	cfg      *config.Config
	f        *facts
	force    bool
	steps    []step
	lock     *lock.Lock
	rep      report
	reported bool
	systemd  bool
}

// do makes an in-process step that runs argv itself, or does not run a
// command at all (argv nil).
func do(what string, argv []string, f func() error) step {
	return step{Step: run.Step{What: what, Argv: argv, Do: func(context.Context) error { return f() }}}
}

// plan lists every step for the state the preflight found; a re-run after a
// partial failure gets only what is left.
func plan(env *cli.Env, cfg *config.Config, f *facts, c *CLI, start time.Time) *promotion {
	r := &promotion{env: env, cfg: cfg, f: f, force: c.Force, systemd: isDir("/run/systemd/system")}
	r.rep = report{facts: f, cfg: cfg, start: start, timelineBefore: f.status.Timeline}
	cl := f.cluster
	timeout := cfg.Duration(config.PromoteTimeout)
	inRecovery := f.status.InRecovery

	if fence := cfg.Command(config.FenceCommand); inRecovery && len(fence) > 0 {
		what := "fence production: run FENCE_COMMAND (its failure aborts)"
		if c.Force {
			what = "fence production: run FENCE_COMMAND (--force: its failure only warns)"
		}
		r.add(do(what, fence, func() error { return r.fence(fence) }))
		r.add(do("check that production no longer answers", nil, r.recheckProduction))
	} else if inRecovery && !c.Yes && !c.Force {
		r.add(do("check again that production does not answer (time passed while the plan was read)", nil, r.recheckProduction))
	}
	// The filestore follower first: stopped, and disabled so that it never
	// starts on the new production (it also refuses once PROMOTED=yes).
	// Best effort: a failure to stop it must not hold up the failover.
	for _, s := range follower.StopSteps(follower.Detect(env.Ctx, env.Runner), cfg) {
		s1 := s
		s1.Do = func(ctx context.Context) error {
			var err error
			if s.Do != nil {
				err = s.Do(ctx)
			} else {
				_, err = env.Runner.Exec(ctx, s)
			}
			if err != nil {
				env.Log.Warn().Err(err).Msg("the filestore follower: going on (it exits by itself once PROMOTED=yes)")
			}
			return nil
		}
		r.add(step{Step: s1})
	}
	r.add(do(fmt.Sprintf("take the sync lock %s (wait up to %s for a running sync, then stop it)", cfg.Get(config.LockFile), cfg.Duration(config.LockWait)), nil,
		r.takeLock))
	if !f.promoted || !f.syncOff {
		r.add(do(fmt.Sprintf("set SYNCMODE=\"off\" and PROMOTED=\"yes\" in %s: no sync ever pulls from the old production again", cfg.Path), nil,
			r.markPromoted))
	}
	if inRecovery {
		if f.status.ReplayPaused {
			r.add(do("resume the paused WAL replay (--resume-replay)", cl.PsqlArgv("SELECT pg_wal_replay_resume()"),
				func() error { _, err := f.q.Query(env.Ctx, "SELECT pg_wal_replay_resume()"); return err }))
		}
		r.add(do(fmt.Sprintf("promote PostgreSQL %s to primary (pg_promote; %s promote if that fails)", cl, cl.CtlTool()),
			cl.PsqlArgv(pg.PromoteSQL(0)), func() error { return r.promote(timeout) }))
		r.add(do(fmt.Sprintf("wait until PostgreSQL leaves recovery, on a timeline after %d (up to %s)", f.status.Timeline, timeout), nil,
			func() error { return r.waitPromoted(timeout) }))
	}
	r.add(do("check that the database accepts a write (a temporary table, dropped at commit)", cl.PsqlArgv(writeCheckSQL), r.checkWrite))
	for _, s := range odooSteps(cfg.Words(config.OdooService), r.systemd, f.odooUp) {
		r.add(step{Step: s, odoo: true})
	}
	r.add(step{Step: run.Step{What: fmt.Sprintf("check that Odoo answers at %s (up to %s)", odooconf.URL(cfg), cfg.Duration(config.OdooTimeout)),
		Do: func(context.Context) error { return r.checkOdoo() }}, odoo: true})
	r.add(do("write the recovery report to "+cfg.Get(config.ReportDir), nil, r.writeReport))
	r.add(step{Step: job.StampStep(cfg, prog)})
	return r
}

func (r *promotion) add(s step) { r.steps = append(r.steps, s) }

// print shows the plan, each command shell-quoted so it can be pasted.
func (r *promotion) print(env *cli.Env) {
	if r.f.resumeOnly() {
		env.Printf("\nPostgreSQL %s is already promoted (timeline %d): continuing with what is left.\n", r.f.cluster, r.f.status.Timeline)
	} else if !r.f.status.InRecovery {
		env.Printf("\nPostgreSQL %s is not in recovery: it is already a primary.\n", r.f.cluster)
	}
	env.Printf("\nPlan:\n")
	for i, s := range r.steps {
		env.Printf("  %d. %s\n", i+1, s.What)
		if s.Argv != nil {
			env.Printf("       %s\n", shellquote.Join(s.Argv...))
		}
	}
}

// execute applies the plan: a dry run prints it; a real run shows it, asks
// (unless --yes), then runs each step with its progress. The report is
// written whatever happens once the lock is held, so a failed run still
// leaves its evidence.
func (r *promotion) execute(env *cli.Env, c *CLI) (err error) {
	defer func() { r.lock.Release() }()
	steps := []run.Step{{Do: func(context.Context) error {
		r.print(env)
		return c.confirm(env, r.f)
	}}}
	n := len(r.steps)
	for i, s := range r.steps {
		run1 := s.Step
		run1.Do = func(ctx context.Context) error {
			env.Printf("[%d/%d] %s\n", i+1, n, s.What)
			start := time.Now()
			var err error
			if s.Do != nil {
				err = s.Do(ctx)
			} else {
				_, err = env.Runner.Exec(ctx, s.Step)
			}
			if err != nil && s.odoo {
				r.rep.odooErr = err
				err = &cli.Error{Code: cli.ExitFailure, Err: err,
					Msg:  "PostgreSQL promoted, Odoo failed: " + err.Error(),
					Hint: "fix Odoo (its service and log), then run " + prog + " again to retry it"}
			}
			env.Log.Debug().Dur("took", time.Since(start)).Msg(s.What)
			return err
		}
		steps = append(steps, run1)
	}
	if err = env.Runner.Apply(env.Ctx, steps...); err != nil && r.lock != nil && !r.reported {
		if werr := r.writeReport(); werr != nil {
			env.Log.Error().Err(werr).Msg("cannot write the recovery report")
		}
	}
	return err
}

// writeReport writes the recovery report and shows it.
func (r *promotion) writeReport() error {
	r.reported = true
	path, err := r.rep.write(r.env)
	if path != "" {
		r.env.Printf("\n%s\nReport written to %s\n", r.rep.text(), path)
	}
	return err
}

func (r *promotion) fence(argv []string) error {
	_, err := r.env.Runner.Exec(r.env.Ctx, run.Step{What: "fence production", Argv: argv,
		Timeout: 5 * time.Minute, Env: []string{"OT_PRODUCTION=" + r.f.source}})
	if err != nil && r.force {
		r.env.Log.Warn().Err(err).Msg("fencing failed; going on (--force)")
		return nil
	}
	if err != nil {
		return &cli.Error{Code: cli.ExitFailure, Err: err, Msg: "fencing production failed: " + err.Error(),
			Hint: "power production off by other means and run again, or run with --force; nothing was changed here"}
	}
	return nil
}

func (r *promotion) recheckProduction() error {
	st, err := pg.ReadStatus(r.env.Ctx, r.f.q)
	if err != nil {
		return err
	}
	f := &facts{status: st, source: r.f.source}
	f.checkProduction(r.env.Ctx, r.cfg)
	if len(f.alive) == 0 {
		return nil
	}
	if r.force {
		r.env.Log.Warn().Msg("production still answers after fencing; going on (--force): " + strings.Join(f.alive, "; "))
		return nil
	}
	return cli.Fail(cli.ExitRefused, "production answers again: "+strings.Join(f.alive, "; "),
		"power production off and run again, or run with --force; nothing was changed here")
}

// takeLock waits for a running sync, then stops it: promotion wins.
func (r *promotion) takeLock() error {
	ctx, path := r.env.Ctx, r.cfg.Get(config.LockFile)
	l, err := lock.Acquire(ctx, path, 0)
	var held *lock.HeldError
	if errors.As(err, &held) {
		wait := r.cfg.Duration(config.LockWait)
		r.env.Printf("      %s; waiting up to %s\n", held, wait)
		l, err = lock.Acquire(ctx, path, wait)
		// Only one of our own programs is stopped, never an unknown process.
		if errors.As(err, &held) && held.PID > 0 && isOurs(held.Cmd) {
			r.env.Printf("      stopping pid %d (%s)\n", held.PID, held.Cmd)
			if kerr := syscall.Kill(held.PID, syscall.SIGTERM); kerr == nil {
				l, err = lock.Acquire(ctx, path, 30*time.Second)
			}
		}
	}
	if err != nil {
		return err
	}
	r.lock = l
	return nil
}

// isOurs reports whether a command line is one of the ot-* programs.
func isOurs(cmdline string) bool {
	f := strings.Fields(cmdline)
	return len(f) > 0 && strings.HasPrefix(filepath.Base(f[0]), "ot-")
}

func (r *promotion) markPromoted() error {
	// Reload under the lock: a sync may have rewritten the file meanwhile.
	cfg, err := config.Load(r.cfg.Path)
	if err != nil {
		return err
	}
	if err := cfg.Set(config.SyncMode, "off"); err != nil {
		return err
	}
	if err := cfg.Set(config.Promoted, "yes"); err != nil {
		return err
	}
	return cfg.Save(config.SyncMode, config.Promoted)
}

// promote asks PostgreSQL to promote itself; pg_ctl (or pg_ctlcluster) is
// the fallback when SQL fails. standby.signal is never touched by hand:
// deleting it and restarting stays on the old timeline.
func (r *promotion) promote(timeout time.Duration) error {
	env := r.env
	r.rep.promoteStart = time.Now()
	out, err := r.f.q.Query(env.Ctx, pg.PromoteSQL(0))
	if err == nil && out != "t" {
		err = fmt.Errorf("pg_promote() returned %q", out)
	}
	if err != nil {
		if env.Ctx.Err() != nil {
			return err
		}
		env.Log.Warn().Err(err).Msg("pg_promote failed; trying pg_ctl")
		_, err = env.Runner.Exec(env.Ctx, r.f.cluster.PromoteCtlStep(timeout))
	}
	return err
}

// waitPromoted watches recovery end; it polls every 10 ms over the open
// session, finer than pg_promote(true)'s and pg_ctl's 100 ms.
func (r *promotion) waitPromoted(timeout time.Duration) error {
	env, cl := r.env, r.f.cluster
	ctx, cancel := context.WithDeadline(env.Ctx, r.rep.promoteStart.Add(timeout))
	defer cancel()
	var err error
	for {
		var out string
		out, err = r.f.q.Query(ctx, "SELECT pg_is_in_recovery()")
		if err == nil && out == "f" {
			break
		}
		if err == nil {
			err = errors.New("still in recovery")
		}
		if ctx.Err() != nil {
			if env.Ctx.Err() != nil {
				return env.Ctx.Err()
			}
			return &cli.Error{Code: cli.ExitFailure, Err: err,
				Msg:  fmt.Sprintf("PostgreSQL %s did not leave recovery within %s: %v", cl, timeout, err),
				Hint: "read its log, raise PROMOTE_TIMEOUT if it is busy replaying, then run again: it continues"}
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.rep.promoted = time.Now()
	st, err := pg.ReadStatus(env.Ctx, r.f.q)
	if err != nil {
		return err
	}
	r.rep.timelineAfter = st.Timeline
	if st.Timeline <= r.f.status.Timeline {
		return fmt.Errorf("PostgreSQL %s left recovery but stayed on timeline %d; check its log", cl, st.Timeline)
	}
	return nil
}

// writeCheckSQL writes to a temporary table dropped at commit: a standby
// refuses it (read-only transaction), a primary leaves no trace. One
// statement, so that its failure is the query's failure.
const writeCheckSQL = "DO $$BEGIN CREATE TEMPORARY TABLE ot_redundancy_write_check (n int) ON COMMIT DROP; " +
	"INSERT INTO ot_redundancy_write_check VALUES (1); END$$"

func (r *promotion) checkWrite() error {
	if _, err := r.f.q.Query(r.env.Ctx, writeCheckSQL); err != nil {
		return fmt.Errorf("the promoted database refuses a write: %w", err)
	}
	r.rep.writable = time.Now()
	return nil
}

func (r *promotion) checkOdoo() error {
	url := odooconf.URL(r.cfg)
	timeout := r.cfg.Duration(config.OdooTimeout)
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := httpOK(r.env.Ctx, url, 5*time.Second)
		if err == nil {
			r.rep.odooAnswered = time.Since(start)
			r.rep.odooOK = true
			return nil
		}
		if time.Now().After(deadline) || r.env.Ctx.Err() != nil {
			return fmt.Errorf("%s did not answer within %s: %v", url, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
