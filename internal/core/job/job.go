// Package job runs a sync the way every sync must run: as root, with a valid
// configuration, sync on, this machine not promoted, under the one lock, over
// one ssh connection to a production that is not this very machine; and it
// stamps the summary file only when the sync succeeded.
package job

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/ssh"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
)

// Flags are the flags every sync program adds to cli.Globals.
type Flags struct {
	Cron bool `help:"Run from cron: print nothing on success, and exit 0 silently when sync is off or the machine was promoted."`
}

// Job is one sync run in progress.
type Job struct {
	*cli.Env
	Name   string // the command's name, as stamped in the summary file
	Cfg    *config.Config
	SSH    *ssh.Conn
	Runner *run.Runner
	Start  time.Time

	skipped string // why a --cron run stepped aside, for the run log
}

// Sync runs body as the sync called name.
func Sync(env *cli.Env, name string, flags Flags, body func(j *Job) error) error {
	j := &Job{Env: env, Name: name, Runner: env.Runner, Start: time.Now()}
	err := j.run(flags, body)
	j.Record(err)
	return err
}

func (j *Job) run(flags Flags, body func(*Job) error) error {
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
	if !cfg.SyncOn() && j.G.DryRun {
		j.Log.Warn().Msg("sync is off (SYNCMODE): this preview shows what a sync would do once enabled")
	}
	target, err := Target(cfg)
	if err != nil {
		return err
	}
	if !j.G.DryRun {
		l, err := lock.Acquire(j.Ctx, cfg.Get(config.LockFile), time.Duration(cfg.Int(config.LockWait))*time.Second)
		var held *lock.HeldError
		if flags.Cron && errors.As(err, &held) {
			// The hourly job behind a long monthly one: that run syncs too,
			// so step aside quietly; ot-status shows a sync that falls late.
			j.skipped = held.Error()
			return cli.Silent{Code: cli.ExitOK}
		}
		if err != nil {
			return err
		}
		defer l.Release()
		// A promotion (it takes the same lock) may have happened while we
		// waited. Without a wait the checks above stand, and the second
		// look at PostgreSQL (pg_lsclusters is a Perl start, ~0.1 s) is saved.
		if l.Waited() {
			if err := reloadGuard(j, flags.Cron); err != nil {
				return err
			}
		}
	}
	conn, err := Dial(j.Ctx, j.Runner, target)
	if err != nil {
		return err
	}
	defer conn.Close()
	j.SSH = conn
	// The plan shows commands an operator can paste: plain ssh, not the
	// run's private master socket.
	j.Runner.Shown = conn.Plain
	defer func() { j.Runner.Shown = nil }()
	if err := j.RefuseSelf(); err != nil {
		return err
	}
	if err := body(j); err != nil {
		return err
	}
	return j.Stamp(j.Name)
}

// reloadGuard re-reads the configuration after the lock is ours.
func reloadGuard(j *Job, cron bool) error {
	c, err := config.Load(j.Cfg.Path)
	if err != nil {
		return err
	}
	j.Cfg = c
	return Guard(j.Ctx, c, cron, false)
}

// Guard refuses a sync on a promoted machine or while sync is off. Under
// --cron those are normal states and end the run silently with exit 0.
// A dry run may preview while sync is off, never on a promoted machine.
func Guard(ctx context.Context, cfg *config.Config, cron, dryRun bool) error {
	if err := Promoted(ctx, cfg); err != nil {
		if cron {
			return cli.Silent{Code: cli.ExitOK}
		}
		return err
	}
	if !cfg.SyncOn() && !dryRun {
		if cron {
			return cli.Silent{Code: cli.ExitOK}
		}
		return cli.Fail(cli.ExitDisabled, fmt.Sprintf("sync is off (SYNCMODE=%q in %s)", cfg.Get(config.SyncMode), cfg.Path), "run ot-enable-sync to turn it on")
	}
	return nil
}

// Promoted returns an ExitPromoted error when this machine is production
// now: the configuration says so, or the local PostgreSQL left recovery.
// It is the one such check: the syncs, ot-enable-sync and ot-configure
// all ask it.
func Promoted(ctx context.Context, cfg *config.Config) error {
	if cfg.Promoted() {
		return cli.Fail(cli.ExitPromoted, "this machine was promoted to production (PROMOTED=yes in "+cfg.Path+"): syncing from the old production would overwrite it", "nothing to do; a new standby needs a fresh setup")
	}
	return LocalPrimary(ctx, cfg)
}

// LocalPrimary returns an ExitPromoted error when the local PostgreSQL
// runs out of recovery: this machine acts as production.
func LocalPrimary(ctx context.Context, cfg *config.Config) error {
	primary, cluster, err := pg.LocalIsPrimary(ctx, &run.Runner{}, PG(cfg))
	if err == nil && primary {
		return cli.Fail(cli.ExitPromoted, "the local PostgreSQL cluster "+cluster+" is not in recovery: this machine acts as production, so nothing is synced", "if this is a standby, restore its replication first")
	}
	return nil
}

// Target is where production is and how to log in, from the configuration.
func Target(c *config.Config) (ssh.Target, error) {
	host, err := c.Source()
	if err != nil {
		return ssh.Target{}, err
	}
	t := ssh.Target{
		Host:           host,
		User:           c.Get(config.RemoteOdoo),
		Port:           c.Int(config.SSHPort),
		KnownHosts:     c.Get(config.SSHKnownHosts),
		ConnectTimeout: c.Int(config.SSHConnectTimeout),
	}
	// A missing default key is not an error: ssh then tries its defaults
	// (an agent is never consulted: root's cron has none).
	if id := c.Get(config.SSHIdentity); c.IsSet(config.SSHIdentity) || exists(id) {
		t.Identity = id
	}
	return t, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Dial opens the run's ssh connection to production; its failure is one
// operator line (what failed, what to do).
func Dial(ctx context.Context, r *run.Runner, t ssh.Target) (*ssh.Conn, error) {
	conn, err := ssh.Dial(ctx, r, t)
	if err != nil && ctx.Err() == nil {
		msg, hint := ssh.Explain(t, err)
		return nil, &cli.Error{Code: cli.ExitFailure, Msg: msg, Hint: hint, Err: err}
	}
	return conn, err
}

// PG says where the local PostgreSQL cluster is, from the configuration.
func PG(c *config.Config) pg.Options {
	return pg.Options{
		Cluster: c.Get(config.PGCluster),
		Data:    c.Get(config.PGData),
		BinDir:  c.Get(config.PGBinDir),
		Host:    c.Get(config.PGHost),
		Port:    c.Int(config.PGPort),
		OSUser:  c.Get(config.PGOSUser),
	}
}

// Stamp appends the summary line for a command that succeeded. Nothing is
// stamped in a dry run.
func (j *Job) Stamp(name string) error {
	if j.G.DryRun {
		return nil
	}
	if err := summary.Append(j.Cfg.Get(config.SummaryFile), time.Now(), name); err != nil {
		return cli.Fail(cli.ExitFailure, "cannot write the summary file: "+err.Error(), "check SUMMARYFILE and its directory")
	}
	return nil
}

// Record writes the run to the run log (not for dry runs or silent exits).
func (j *Job) Record(err error) {
	if j.Cfg == nil || j.G.DryRun {
		return
	}
	r := summary.Record{Time: j.Start, Command: j.Name, Status: "ok", Duration: time.Since(j.Start).Seconds(), PID: os.Getpid()}
	var silent cli.Silent
	switch {
	case errors.As(err, &silent) && j.skipped != "":
		r.Status, r.Error = "skipped", j.skipped
	case errors.As(err, &silent):
		return
	case err != nil:
		r.Exit, r.Error = cli.Describe(err)
		r.Status = "failed"
		if r.Exit == cli.ExitRefused || r.Exit == cli.ExitDisabled || r.Exit == cli.ExitPromoted || r.Exit == cli.ExitLocked {
			r.Status = "refused"
		}
	}
	if err := summary.Log(j.Cfg.Get(config.RunLog), r); err != nil {
		j.Log.Warn().Err(err).Msg("cannot write the run log")
	}
}

// stampFormat names a run's backup folder: BACKUP_DIR/<stampFormat>/.
const stampFormat = "20060102-150405"

// Backup is this run's backup folder, BACKUP_DIR/<start time>: where what
// a sync overwrites or removes outside the filestore is kept first. Every
// sync of one run (ot-sync-from-source runs several) shares it.
func (j *Job) Backup() string {
	return filepath.Join(j.Cfg.Get(config.BackupDir), j.Start.Format(stampFormat))
}

// Remote runs a read-only command on production and returns its stdout.
func (j *Job) Remote(ctx context.Context, argv ...string) ([]byte, error) {
	out, err := j.Runner.Query(ctx, j.SSH.Command(argv...)...)
	if err != nil && run.ExitCode(err) == 255 {
		msg, hint := ssh.Explain(j.SSH.Target, err)
		return out, &cli.Error{Code: cli.ExitFailure, Msg: msg, Hint: hint, Err: err}
	}
	return out, err
}

// tokenPath holds a random token that names this boot of this machine. If
// production shows the same token, SYNCSRC points at ourselves.
const tokenPath = "/run/ot-redundancy/machine-token"

func localToken() (string, error) {
	if data, err := os.ReadFile(tokenPath); err == nil && len(strings.TrimSpace(string(data))) == 32 {
		return strings.TrimSpace(string(data)), nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(tokenPath), 0o755); err != nil {
		return "", err
	}
	return tok, atomicfile.Write(tokenPath, []byte(tok+"\n"), 0o644)
}

// RefuseSelf refuses (exit 8) when SYNCSRC is this very machine: production
// shows this boot's token.
func (j *Job) RefuseSelf() error {
	tok, err := localToken()
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", tokenPath, err)
	}
	out, err := j.Remote(j.Ctx, "cat", tokenPath)
	if err != nil && run.ExitCode(err) != 1 {
		var ce *cli.Error
		if errors.As(err, &ce) {
			return err
		}
	}
	if strings.TrimSpace(string(out)) == tok {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("SYNCSRC %s is this very machine", j.SSH.Host), "set SYNCSRC to the production server with ot-configure")
	}
	return nil
}
