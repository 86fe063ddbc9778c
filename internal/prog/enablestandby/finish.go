package enablestandby

import (
	"fmt"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/follower"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/fullsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/status"
)

// enableSync clears PROMOTED and turns sync on, rereading the file under
// the lock (another command may have rewritten it meanwhile).
func (r *rejoin) enableSync() error {
	cfg, err := config.Load(r.cfg.Path)
	if err != nil {
		return err
	}
	if err := cfg.Set(config.Promoted, "no"); err != nil {
		return err
	}
	if err := cfg.Set(config.SyncMode, "on"); err != nil {
		return err
	}
	if err := cfg.Save(config.Promoted, config.SyncMode); err != nil {
		return err
	}
	r.synced = cfg
	// The filestore follower comes with sync, as with ot-enable-sync.
	return r.env.Runner.Apply(r.env.Ctx, follower.StartSteps(follower.Detect(r.env.Ctx, r.env.Runner), cfg, r.env.Printf)...)
}

// current is the configuration as the file says now.
func (r *rejoin) current() (*config.Config, error) {
	if r.synced != nil {
		return r.synced, nil
	}
	return config.Load(r.cfg.Path)
}

// syncJob is ot-sync-from-source's job inside this run: the same lock
// (held), the same ssh connection, the same start time.
func (r *rejoin) syncJob(cfg *config.Config) *job.Job {
	return &job.Job{Env: r.env, Name: fullsync.Name, Cfg: cfg, SSH: r.f.job.SSH, Runner: r.env.Runner, Start: r.f.job.Start}
}

// fullSync runs ot-sync-from-source in this process, now that this
// machine is a standby again, and stamps it as its own run would.
func (r *rejoin) fullSync() error {
	cfg, err := r.current()
	if err != nil {
		return err
	}
	j := r.syncJob(cfg)
	err = fullsync.Sync(j, fullsync.Options{})
	if err == nil {
		err = j.Stamp(j.Name)
	}
	r.rep.syncDone, r.rep.syncErr = true, err
	if err != nil {
		_, line := cli.Describe(err)
		return &cli.Error{Code: cli.ExitFailure, Err: err, Msg: "the standby streams, but the first full sync failed: " + line,
			Hint: "fix what the errors above say, then run " + prog + " again (or ot-sync-from-source)"}
	}
	return nil
}

// previewSync shows, in a dry run, what the first full sync would do.
// Its failure is shown, not fatal: the preview of the rest goes on.
func (r *rejoin) previewSync() error {
	if err := fullsync.Sync(r.syncJob(r.cfg), fullsync.Options{}); err != nil {
		_, line := cli.Describe(err)
		r.env.Log.Warn().Msg("the full sync's preview failed: " + line)
	}
	return nil
}

// checkStatus is the last proof: ot-status's checks, all green.
func (r *rejoin) checkStatus() error {
	cfg, err := r.current()
	if err != nil {
		return err
	}
	rep, err := status.Collect(r.env, cfg)
	if err != nil {
		return err
	}
	r.rep.status = rep
	if rep.Status == status.OK {
		return nil
	}
	return cli.Fail(cli.ExitFailure, fmt.Sprintf("the standby streams and synced, but ot-status says %s: %s", rep.Status, cli.Printable(rep.Summary)),
		"fix what it names (ot-status shows the details); PostgreSQL and the sync need nothing more")
}

// statusLines are ot-status's checks, for the report.
func statusLines(rep *status.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		out = append(out, fmt.Sprintf("%-8s %-14s %s", c.Level, c.Name, cli.Printable(c.Text)))
	}
	return out
}

func indent(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
