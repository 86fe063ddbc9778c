package enablestandby

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// rejoin holds one run's plan and what its steps learn on the way.
type rejoin struct {
	env     *cli.Env
	cfg     *config.Config // as loaded; synced is the file once sync is on
	synced  *config.Config
	f       *facts
	c       *CLI
	cl      *pg.Cluster
	journal *journal
	steps   []run.Step
	lock    *lock.Lock
	q       *pg.Session // the local server, once started as a standby
	wait    time.Duration
	rep     *report
}

// newRejoin plans every step for the state the preflight found; a re-run
// after an interruption gets only what is left.
func newRejoin(env *cli.Env, cfg *config.Config, f *facts, c *CLI, start time.Time) *rejoin {
	cl := f.local.cluster
	r := &rejoin{env: env, cfg: cfg, f: f, c: c, cl: cl, wait: cfg.Duration(config.StreamTimeout)}
	r.rep = &report{f: f, cfg: cfg, start: start, method: f.method, reason: f.reason, lost: f.lost}
	r.journal = f.journal
	if r.journal == nil || r.journal.Data != cl.Data {
		r.journal = &journal{Data: cl.Data, Kept: f.kept, Started: start, path: journalPath(cfg)}
	}
	if r.rep.lost == nil {
		r.rep.lost = f.journalLost()
	}

	r.add(run.Step{What: fmt.Sprintf("take the sync lock %s (wait up to %ss for a running sync)", cfg.Get(config.LockFile), cfg.Get(config.LockWait)),
		Do: func(context.Context) error { return r.takeLock() }})
	r.fence()
	r.add(r.passfileStep())
	if f.slot != "" && f.prod.slotType == "" {
		r.add(r.slotStep())
	}
	r.postgres()
	if cfg.Promoted() || !cfg.SyncOn() {
		r.add(run.Step{What: fmt.Sprintf("set PROMOTED=\"no\" and SYNCMODE=\"on\" in %s: this machine syncs from %s again", cfg.Path, f.source),
			Show: []string{`PROMOTED="no"`, `SYNCMODE="on"`}, Do: func(context.Context) error { return r.enableSync() }})
	}
	r.add(run.Step{What: "run a first full sync from production (ot-sync-from-source, in this run)",
		Do: func(context.Context) error { return r.fullSync() }, Preview: func(context.Context) error { return r.previewSync() }})
	r.add(run.Step{What: "check that ot-status is green", Do: func(context.Context) error { return r.checkStatus() }})
	r.add(run.Step{What: "write the report to " + cfg.Get(config.ReportDir), Do: func(context.Context) error { return r.finish() }})
	return r
}

func (r *rejoin) add(s ...run.Step) { r.steps = append(r.steps, s...) }

// fence stops Odoo and disables it at boot, then proves it no longer
// answers.
func (r *rejoin) fence() {
	o := r.f.odoo
	r.add(fenceSteps(o.services, o.systemd)...)
	if len(o.services) > 0 {
		r.add(run.Step{What: "check that Odoo no longer answers at " + o.url, Do: func(ctx context.Context) error {
			if err := waitDown(ctx, o.url, 30*time.Second); err != nil {
				return err
			}
			r.rep.fenced = o.services
			return nil
		}})
	}
}

// postgres plans PostgreSQL's rebuild by the chosen method.
func (r *rejoin) postgres() {
	f, cl := r.f, r.cl
	switch f.method {
	case methodNone, methodReconfigure:
		if f.method == methodReconfigure && !cl.Online {
			r.add(r.settingsStep(), r.startStep())
		}
		r.add(r.pointStep(), r.waitStep())
		if r.journal.Old != "" {
			r.add(r.oldDataStep())
		}
		return
	}
	if cl.Online {
		r.add(r.stopStep())
	}
	if f.lost.diverged() {
		r.add(r.keepStep())
	}
	if r.copyReady() {
		r.add(r.swapStep())
	} else {
		r.add(r.saveConfStep())
		if f.method == methodRewind {
			if f.prod.checkpointTLI < f.prod.tli {
				r.add(r.checkpointStep())
			}
			r.add(r.rewindStep(), r.restoreConfStep(cl.Data, phaseStarted))
		} else {
			if exists(f.newData) {
				r.add(r.removeStep("remove the copy an interrupted base backup left", f.newData))
			}
			r.add(r.baseBackupStep(), r.restoreConfStep(f.newData, phaseBackingUp), r.swapStep())
		}
	}
	r.add(r.settingsStep(), r.startStep(), r.pointStep(), r.waitStep())
	if f.method == methodBaseBackup {
		r.add(r.oldDataStep())
	}
}

// copyReady: an earlier run's base backup is complete and waits to be put
// in place (it was cut short between the journal's "swapping" and the
// swap).
func (r *rejoin) copyReady() bool {
	return r.journal.Phase == phaseSwapping && exists(r.f.newData)
}

// print shows the plan, each command shell-quoted so it can be pasted.
func (r *rejoin) print() {
	env := r.env
	env.Printf("\nPlan:\n")
	for i, s := range r.steps {
		env.Printf("  %d. %s\n", i+1, s.What)
		if s.Argv != nil {
			env.Printf("       %s\n", shellquote.Join(r.shown(s.Argv)...))
		}
	}
}

// execute applies the plan: a dry run prints it; a real run shows it,
// asks (unless --yes), then runs each step with its progress. Once the
// lock is held the report is written whatever happens.
func (r *rejoin) execute() (err error) {
	env := r.env
	defer func() {
		r.q.Close()
		r.lock.Release()
	}()
	steps := []run.Step{{Do: func(context.Context) error {
		r.print()
		return r.c.confirm(env, r.f)
	}}}
	n := len(r.steps)
	for i, s := range r.steps {
		one := s
		one.Do = func(ctx context.Context) error {
			env.Printf("[%d/%d] %s\n", i+1, n, s.What)
			start := time.Now()
			var err error
			if s.Do != nil {
				err = s.Do(ctx)
			} else {
				_, err = env.Runner.Exec(ctx, s)
			}
			env.Log.Debug().Dur("took", time.Since(start)).Msg(s.What)
			if err != nil {
				r.rep.failed = s.What
			}
			return err
		}
		steps = append(steps, one)
	}
	err = env.Runner.Apply(env.Ctx, steps...)
	if err != nil && r.lock != nil && !r.rep.written {
		r.rep.err = err
		if werr := r.writeReport(); werr != nil {
			env.Log.Error().Err(werr).Msg("cannot write the report")
		}
	}
	return err
}

func (r *rejoin) takeLock() error {
	cfg := r.cfg
	l, err := lock.Acquire(r.env.Ctx, cfg.Get(config.LockFile), cfg.Duration(config.LockWait))
	if err != nil {
		return err
	}
	r.lock = l
	return nil
}

// finish writes the report, ends the rebuild's journal and stamps the
// summary file: the command succeeded.
func (r *rejoin) finish() error {
	if err := r.writeReport(); err != nil {
		return err
	}
	if err := r.journal.done(); err != nil {
		return err
	}
	return r.f.job.Stamp(prog)
}

func (r *rejoin) writeReport() error {
	path, err := r.rep.write(r.env)
	if path != "" {
		r.env.Printf("\n%s\nReport written to %s\n", r.rep.text(), path)
	}
	return err
}

// asUser writes content to path as PostgreSQL's user, with mode: install
// creates the file (replacing whatever was there, a link included), dd
// fills it from standard input, so the content is never on a command line.
func (r *rejoin) asUser(ctx context.Context, path string, mode os.FileMode, content []byte) error {
	cl := r.cl
	if _, err := r.env.Runner.Exec(ctx, run.Step{Argv: cl.As(installArgv(path, mode)...), Dir: "/"}); err != nil {
		return err
	}
	_, err := r.env.Runner.Exec(ctx, run.Step{Argv: cl.As(ddArgv(path)...), Dir: "/", Stdin: bytes.NewReader(content)})
	return err
}

// shown is argv as an operator can paste it (plain ssh).
func (r *rejoin) shown(argv []string) []string {
	if r.env.Runner.Shown == nil {
		return argv
	}
	return r.env.Runner.Shown(argv)
}

func installArgv(path string, mode os.FileMode) []string {
	return []string{"install", "-m", fmt.Sprintf("%04o", mode), "/dev/null", path}
}

func ddArgv(path string) []string { return []string{"dd", "of=" + path, "conv=fsync", "status=none"} }
