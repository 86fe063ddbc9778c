package job

import (
	"errors"
	"fmt"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
)

// Follow runs body as a long-running job (ot-attachments-sync --follow):
// as root, with a valid configuration, sync on and this machine not
// promoted (refused with exit 4 or 5 otherwise, or exit 0 in silence
// under --cron, so that a service manager leaves it down; a dry run may
// preview while sync is off), with a usable local rsync. Unlike Sync it holds
// neither the lock nor a connection for the whole run, and stamps no
// summary line: body dials (Redial) and re-dials when production goes
// away, re-reads the configuration (Reload) and takes the lock only around
// each transfer (TryLock). Every connection carries the check that
// SYNCSRC is not this very machine.
func Follow(env *cli.Env, name string, flags Flags, body func(j *Job) error) error {
	j := &Job{Env: env, Name: name, Runner: env.Runner, Start: time.Now(), cron: flags.Cron}
	if err := j.RequireRoot(); err != nil {
		return err
	}
	cfg, err := j.Config()
	if err != nil {
		return err
	}
	j.Cfg = cfg
	if err := Guard(j.Ctx, cfg, flags.Cron, j.G.DryRun); err != nil {
		return err
	}
	if _, err := Target(cfg); err != nil {
		return err
	}
	if err := rsync.CheckLocal(j.Ctx, j.Runner); err != nil {
		return &cli.Error{Code: cli.ExitRefused, Msg: err.Error(), Err: err}
	}
	defer j.Hangup()
	return body(j)
}

// Redial (re)opens the connection to production, as the current
// configuration says, and closes the previous one.
func (j *Job) Redial() error {
	j.Hangup()
	target, err := Target(j.Cfg)
	if err != nil {
		return err
	}
	token, err := localToken()
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", tokenPath, err)
	}
	conn, err := Dial(j.Ctx, j.Runner, target)
	if err != nil {
		return err
	}
	conn.Prelude = selfCheck(token)
	conn.Nice = shellquote.Join(j.Cfg.Command(config.RemoteNice)...)
	j.SSH = conn
	j.Runner.Shown = conn.Plain
	return nil
}

// Hangup closes the connection to production, if open.
func (j *Job) Hangup() {
	if j.SSH == nil {
		return
	}
	j.SSH.Close()
	j.SSH = nil
	j.Runner.Shown = nil
}

// Reload re-reads the configuration file and applies the guards again:
// an ExitDisabled or ExitPromoted error when sync was turned off or the
// machine promoted meanwhile.
func (j *Job) Reload() error {
	c, err := config.Load(j.Cfg.Path)
	if err != nil {
		return err
	}
	j.Cfg = c
	return Guard(j.Ctx, c, false, false)
}

// TryLock takes the suite's lock without waiting. It returns nil and no
// error when another process holds it: a sync or a failover goes first.
func (j *Job) TryLock() (*lock.Lock, error) {
	l, err := lock.Acquire(j.Ctx, j.Cfg.Get(config.LockFile), 0)
	var held *lock.HeldError
	if errors.As(err, &held) {
		return nil, nil
	}
	return l, err
}

// SelfError is the refusal (exit 8) when err is production refusing to be
// this very machine, else nil.
func (j *Job) SelfError(err error) error {
	if err != nil && isSelf(err) {
		return j.selfError()
	}
	return nil
}
