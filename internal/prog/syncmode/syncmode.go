// Package syncmode is ot-enable-sync and ot-disable-sync: they flip
// SYNCMODE in the configuration file, in place, comments kept, and start or
// stop the filestore follower (ot-attachments-follow.service) with it.
package syncmode

import (
	"context"
	"fmt"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/follower"
)

// Enable is ot-enable-sync's command line.
type Enable struct {
	cli.Globals
	ClearPromoted bool `help:"This machine was promoted and has since been made a standby again (its PostgreSQL replicates from SYNCSRC): clear PROMOTED and sync again."`
}

// Disable is ot-disable-sync's command line.
type Disable struct {
	cli.Globals
}

// EnableMain is ot-enable-sync.
func EnableMain(args []string) int {
	return cli.Main("ot-enable-sync", "Turn syncing from production on (SYNCMODE=\"on\"), for cron and manual runs.", args, &Enable{})
}

// DisableMain is ot-disable-sync.
func DisableMain(args []string) int {
	return cli.Main("ot-disable-sync", "Turn syncing from production off (SYNCMODE=\"off\"); scheduled syncs then do nothing.", args, &Disable{})
}

// Run turns sync on after checking that it is safe to.
func (e *Enable) Run(env *cli.Env) error {
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	if _, err := cfg.Source(); err != nil {
		return err
	}
	if cfg.Promoted() && !e.ClearPromoted {
		return cli.Fail(cli.ExitPromoted, "this machine was promoted to production (PROMOTED=yes in "+cfg.Path+"): syncing would pull the old production over it", "if it is a standby again, run ot-enable-sync --clear-promoted")
	}
	if err := job.LocalPrimary(env.Ctx, cfg); err != nil {
		return err
	}
	keys := []config.Key{config.SyncMode}
	if cfg.Promoted() {
		if err := cfg.Set(config.Promoted, "no"); err != nil {
			return err
		}
		keys = append(keys, config.Promoted)
	} else if cfg.SyncOn() {
		env.Printf("sync is already on (source %s)\n", cfg.Get(config.SyncSrc))
		// Started again if it stopped (a reboot without the unit enabled,
		// a follower that gave up).
		return env.Runner.Apply(env.Ctx, follower.StartSteps(follower.Detect(env.Ctx, env.Runner), cfg, env.Printf)...)
	}
	return flip(env, cfg, "on", keys, follower.StartSteps(follower.Detect(env.Ctx, env.Runner), cfg, env.Printf))
}

// Run turns sync off.
func (d *Disable) Run(env *cli.Env) error {
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	// The follower exits by itself once sync is off, at its next cycle;
	// stopped here at once, and disabled so that a reboot does not start it.
	stop := follower.StopSteps(follower.Detect(env.Ctx, env.Runner), cfg)
	if cfg.Get(config.SyncMode) == "off" {
		env.Printf("sync is already off\n")
		return env.Runner.Apply(env.Ctx, stop...)
	}
	if err := flip(env, cfg, "off", []config.Key{config.SyncMode}, stop); err != nil {
		return err
	}
	if h := lock.Holder(cfg.Get(config.LockFile)); h != nil {
		env.Printf("note: a run is in progress (%s); it finishes, no new one starts\n", h.Error())
	}
	return nil
}

// flip sets SYNCMODE, says so, then takes the follower's steps.
func flip(env *cli.Env, cfg *config.Config, mode string, keys []config.Key, follow []run.Step) error {
	if err := cfg.Set(config.SyncMode, mode); err != nil {
		return err
	}
	msg := fmt.Sprintf("sync is now %s", mode)
	if mode == "on" {
		msg += " (source " + cfg.Get(config.SyncSrc) + ")"
	}
	steps := []run.Step{cfg.SaveStep(keys...), {Do: func(context.Context) error {
		env.Printf("%s\n", msg)
		return nil
	}}}
	return env.Runner.Apply(env.Ctx, append(steps, follow...)...)
}
