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
	"log/syslog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kballard/go-shellquote"
	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
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

	skipped  string    // why a --cron run stepped aside, for the run log
	cron     bool      // run from cron: silent on success
	warnings []string  // for the run log
	mark     time.Time // when the last phase ended
}

// Sync runs body as the sync called name.
func Sync(env *cli.Env, name string, flags Flags, body func(j *Job) error) error {
	j := &Job{Env: env, Name: name, Runner: env.Runner, Start: time.Now(), cron: flags.Cron}
	err := j.run(flags, body)
	j.Record(err)
	if flags.Cron {
		j.toSyslog(err)
	}
	return err
}

// toSyslog sends a failed cron run's error line to syslog (the journal on
// systemd machines) under the program's name, where admins look first; cron
// mails it too when MAILTO is set. A systemd service's stderr reaches the
// journal already (INVOCATION_ID is set), so it is not sent twice.
func (j *Job) toSyslog(err error) {
	var silent cli.Silent
	if err == nil || errors.As(err, &silent) || os.Getenv("INVOCATION_ID") != "" {
		return
	}
	w, serr := syslog.New(syslog.LOG_ERR|syslog.LOG_DAEMON, j.Prog)
	if serr != nil {
		return // no syslog here: cron's mail and the run log still have it
	}
	defer w.Close()
	_, line := cli.Describe(err)
	w.Err("error: " + line)
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
	j.phase("config")
	if err := Guard(j.Ctx, cfg, flags.Cron, j.G.DryRun); err != nil {
		return err
	}
	j.phase("guard")
	if !cfg.SyncOn() && j.G.DryRun {
		j.Log.Warn().Msg("sync is off (SYNCMODE): this preview shows what a sync would do once enabled")
	}
	target, err := Target(cfg)
	if err != nil {
		return err
	}
	token, err := localToken()
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", tokenPath, err)
	}
	// The ssh master's key exchange is the longest fixed cost of a run: it
	// goes on while the local checks and the lock are done.
	dial := j.dial(target)
	defer dial.close()
	if err := rsync.CheckLocal(j.Ctx, j.Runner); err != nil {
		return &cli.Error{Code: cli.ExitRefused, Msg: err.Error(), Err: err}
	}
	j.phase("rsync version")
	if !j.G.DryRun {
		l, err := lock.Acquire(j.Ctx, cfg.Get(config.LockFile), cfg.Duration(config.LockWait))
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
	j.phase("lock")
	conn, err := dial.wait()
	if err != nil {
		return err
	}
	j.phase("ssh (waited for)")
	j.SSH = conn
	// Is SYNCSRC this very machine? Production answers inside the first
	// command the run makes anyway: no round trip of its own.
	conn.Prelude = selfCheck(token)
	conn.Nice = shellquote.Join(cfg.Command(config.RemoteNice)...)
	// The plan shows commands an operator can paste: plain ssh, not the
	// run's private master socket.
	j.Runner.Shown = conn.Plain
	defer func() { j.Runner.Shown = nil }()
	if err := body(j); err != nil {
		if isSelf(err) {
			return j.selfError()
		}
		return err
	}
	j.phase("sync")
	defer j.phase("summary")
	return j.Stamp(j.Name)
}

// Warn tells of something that did not fail the run (files that vanished
// on production during a copy): one warning line on stderr, none under
// --cron (success is silent there), and in the run log's record.
func (j *Job) Warn(msg string) {
	j.warnings = append(j.warnings, msg)
	if !j.cron {
		j.Log.Warn().Msg(msg)
	}
}

// Alert is Warn for what someone must look at even under --cron (cron
// mails it): production sent content that cannot be right.
func (j *Job) Alert(msg string) {
	j.warnings = append(j.warnings, msg)
	j.Log.Warn().Msg(msg)
}

// phase logs (at debug level, -v) how long the part of the run that just
// ended took: the fixed cost around the sync, step by step.
func (j *Job) phase(name string) {
	now := time.Now()
	if j.mark.IsZero() {
		j.mark = j.Start
	}
	j.Log.Debug().Str("phase", name).Dur("took", now.Sub(j.mark)).Msg("run")
	j.mark = now
}

// dialing is the ssh master connection being opened aside.
type dialing struct {
	cancel context.CancelFunc
	done   chan struct{}
	conn   *ssh.Conn
	err    error
}

// dial opens the connection to production in the background.
func (j *Job) dial(t ssh.Target) *dialing {
	ctx, cancel := context.WithCancel(j.Ctx)
	d := &dialing{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.conn, d.err = Dial(ctx, j.Runner, t)
	}()
	return d
}

// wait returns the connection once it is open.
func (d *dialing) wait() (*ssh.Conn, error) {
	<-d.done
	return d.conn, d.err
}

// close ends the connection, opened or still opening.
func (d *dialing) close() {
	d.cancel()
	<-d.done
	if d.conn != nil {
		d.conn.Close()
	}
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
		return cli.Fail(cli.ExitPromoted, "this machine was promoted to production (PROMOTED=yes in "+cfg.Path+"): syncing from the old production would overwrite it", "nothing to do; to make this machine a standby again, run ot-enable-standby-mode on it")
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
		ConnectTimeout: max(int(c.Duration(config.SSHConnectTimeout).Seconds()), 1),
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
		Cache:   "/run/ot-redundancy/pg-cluster.json",
	}
}

// Stamp appends the summary line for a command that succeeded. Nothing is
// stamped in a dry run.
func (j *Job) Stamp(name string) error {
	if j.G.DryRun {
		return nil
	}
	return StampStep(j.Cfg, name).Do(j.Ctx)
}

// StampStep appends name's line to the summary file, as the original's
// `ot-write-summary $0` did after each command that succeeded; an
// unwritable summary file fails the command, naming the file.
func StampStep(cfg *config.Config, name string) run.Step {
	path := cfg.Get(config.SummaryFile)
	return run.Step{What: "record the success in the summary file " + path, Show: []string{"YYYY-MM-DD HH:MM:SS :  " + name},
		Do: func(context.Context) error {
			if err := summary.Append(path, time.Now(), name); err != nil {
				return cli.Fail(cli.ExitFailure, "cannot write the summary file "+path+": "+err.Error(), "check SUMMARYFILE and its directory")
			}
			return nil
		}}
}

// Record writes the run to the run log (not for dry runs or silent exits).
func (j *Job) Record(err error) {
	if j.Cfg == nil || j.G.DryRun {
		return
	}
	r := summary.Record{Time: j.Start, Command: j.Name, Status: "ok", Duration: time.Since(j.Start).Seconds(), PID: os.Getpid(),
		Warning: strings.Join(j.warnings, "; ")}
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

// RsyncFrom are the rsync options of every transfer from production: the
// run's ssh connection, production's rsync after check (a shell line ending
// in "; ", or "") under REMOTE_NICE, and the bandwidth limit.
func (j *Job) RsyncFrom(check string) []string {
	o := []string{"-e", j.SSH.RsyncShell(), "--rsync-path=" + j.SSH.RsyncPath(check)}
	if n := j.Cfg.Int(config.RsyncBwlimit); n > 0 {
		o = append(o, "--bwlimit="+strconv.Itoa(n))
	}
	return o
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
	if isSelf(err) {
		return out, j.selfError()
	}
	if err != nil && run.ExitCode(err) == 255 {
		msg, hint := ssh.Explain(j.SSH.Target, err)
		return out, &cli.Error{Code: cli.ExitFailure, Msg: msg, Hint: hint, Err: err}
	}
	return out, err
}

// tokenPath holds a random token that names this boot of this machine. If
// production shows the same token, SYNCSRC points at ourselves. Comparing
// names or addresses would not do: clones share both, and loopback hosts
// are local.
const tokenPath = "/run/ot-redundancy/machine-token"

func localToken() (string, error) {
	if data, err := os.ReadFile(tokenPath); err == nil {
		if tok := strings.TrimSpace(string(data)); len(tok) == 32 && strings.Trim(tok, "0123456789abcdef") == "" {
			return tok, nil
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(tokenPath), 0o755); err != nil {
		return "", err
	}
	return tok, atomicfile.Write(tokenPath, []byte(tok+"\n"), 0o644)
}

// selfMark is what production prints when it shows our own token.
const selfMark = "ot-redundancy: SYNCSRC is this machine"

// selfCheck is the shell line production runs before each command: exit 98
// when its token is ours. A shell builtin reads the token: no process.
func selfCheck(token string) string {
	return "read t 2>/dev/null <" + tokenPath + "; test \"$t\" != " + token + " || { echo '" + selfMark + "' >&2; exit 98; }; "
}

// isSelf reports whether a failure is production refusing to be ourselves
// (rsync passes the remote's stderr on, with its own exit status).
func isSelf(err error) bool {
	return strings.Contains(run.Stderr(err), selfMark)
}

func (j *Job) selfError() error {
	return cli.Fail(cli.ExitRefused, fmt.Sprintf("SYNCSRC %s is this very machine", j.SSH.Host), "set SYNCSRC to the production server with ot-configure")
}

// RefuseSelf refuses (exit 8) when SYNCSRC is this very machine, in a round
// trip of its own, for a program that does not run through Sync (whose runs
// carry the check in their first command): from now on every command of
// the connection carries it too.
func (j *Job) RefuseSelf() error {
	tok, err := localToken()
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", tokenPath, err)
	}
	j.SSH.Prelude = selfCheck(tok)
	_, err = j.Remote(j.Ctx, "true")
	return err
}
