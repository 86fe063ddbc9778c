// Package syncmode is ot-enable-sync and ot-disable-sync: they flip
// SYNCMODE in the configuration file, in place, comments kept.
package syncmode

import (
	"context"
	"fmt"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
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
		return nil
	}
	return flip(env, cfg, "on", keys)
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
	if cfg.Get(config.SyncMode) == "off" {
		env.Printf("sync is already off\n")
		return nil
	}
	if err := flip(env, cfg, "off", []config.Key{config.SyncMode}); err != nil {
		return err
	}
	if h := lock.Holder(cfg.Get(config.LockFile)); h != nil {
		env.Printf("note: a run is in progress (%s); it finishes, no new one starts\n", h.Error())
	}
	return nil
}

func flip(env *cli.Env, cfg *config.Config, mode string, keys []config.Key) error {
	if err := cfg.Set(config.SyncMode, mode); err != nil {
		return err
	}
	msg := fmt.Sprintf("sync is now %s", mode)
	if mode == "on" {
		msg += " (source " + cfg.Get(config.SyncSrc) + ")"
	}
	return env.Runner.Apply(env.Ctx, cfg.SaveStep(keys...), run.Step{Do: func(context.Context) error {
		env.Printf("%s\n", msg)
		return nil
	}})
}
