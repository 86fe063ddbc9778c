// Package projects is ot-project-sync: it makes the addon projects under
// PROJECTS_DIR equal to production's, over the run's one ssh connection.
//
// One fixed remote command lists production's project directories; the
// names are validated and filtered by PROJECTS_PATTERN minus
// PROJECTS_EXCLUDE. One rsync then copies every listed project (new and
// changed ones; files gone inside a project are deleted, *.pyc and
// __pycache__ are never copied and never keep a directory from being
// removed). Only after that rsync succeeded are the standby's projects that
// production no longer has moved to BACKUP_DIR/<timestamp>/<PROJECTS_DIR>/,
// never deleted. Files rsync overwrites or deletes land in the same folder.
package projects

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Name is the command's name, as stamped in the summary file.
const Name = "ot-project-sync"

// Options tune a sync; the zero value is the default.
type Options struct {
	Quiet   bool          // print no summary line (cron)
	Timeout time.Duration // deadline of the rsync step; 0 means 2 hours
}

// CLI is ot-project-sync's command line.
type CLI struct {
	cli.Globals
	job.Flags
}

// Main is the program.
func Main(args []string) int {
	return cli.Main(Name, "Make the addon projects under PROJECTS_DIR equal to production's: new and changed projects are copied over one ssh connection, projects gone from production are moved to BACKUP_DIR, never deleted.", args, &CLI{})
}

// Run runs the sync as a job (root, lock, ssh master, summary line).
func (c *CLI) Run(env *cli.Env) error {
	return job.Sync(env, Name, c.Flags, func(j *job.Job) error {
		return Sync(j, Options{Quiet: c.Cron})
	})
}

// Owner is who owns synced project files on the standby: root, with
// ODOO_GROUP as group and group write, as the original left them.
const Owner = "root"

// Chmod is applied to everything copied: group may write (like the
// original), others may not; rsync.Safe already drops setuid/setgid.
const Chmod = "Dg+w,Fg+w,o-w"

// Inventory is what production and this standby have, and what a sync
// would change: read-only, for the sync and for ot-status --drift alike.
type Inventory struct {
	Dir        string   // PROJECTS_DIR
	Production []string // production's projects (PROJECTS_PATTERN, not PROJECTS_EXCLUDE)
	Standby    []string // the standby's
	Stale      []string // the standby's that production no longer has (none a package owns)
	// Packaged are the standby's project directories a Debian package owns
	// (name -> packages): apt's to change, so never synced, moved or deleted.
	Packaged map[string]string
}

// Sources are production's projects the sync copies: all but those whose
// standby directory a Debian package owns.
func (inv *Inventory) Sources() []string {
	return slices.DeleteFunc(slices.Clone(inv.Production), func(n string) bool { return inv.Packaged[n] != "" })
}

// Take lists the projects on both sides; production's listing runs a fixed
// command, and what comes back is only parsed and validated.
func Take(j *job.Job) (*Inventory, error) {
	dir := filepath.Clean(j.Cfg.Get(config.ProjectsDir))
	m := Matcher{Include: j.Cfg.Words(config.ProjectsPattern), Exclude: j.Cfg.Words(config.ProjectsExclude)}
	where := fmt.Sprintf("%s on %s", dir, j.SSH.Host)
	out, err := j.Remote(j.Ctx, "find", dir, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", `%f\0`)
	if err != nil {
		var ce *cli.Error
		if errors.As(err, &ce) {
			ce.Msg = "cannot list the projects in " + dir + ": " + ce.Msg + "; nothing was changed"
			return nil, ce
		}
		return nil, &cli.Error{Code: cli.ExitFailure, Msg: "cannot list the projects in " + where + ": " + err.Error(), Hint: "check PROJECTS_DIR on production; nothing was changed", Err: err}
	}
	remote, err := ParseListing(out, m)
	if err != nil {
		return nil, &cli.Error{Code: cli.ExitRefused, Msg: "production's project listing of " + where + " refused: " + err.Error(), Hint: "rename or remove that directory on production; nothing was changed", Err: err}
	}
	local, err := Local(dir, m)
	if err != nil {
		return nil, cli.Fail(cli.ExitFailure, "cannot list the standby's projects: "+err.Error(), "check PROJECTS_DIR")
	}
	packaged, err := Packaged(j.Ctx, j.Runner, dir, local)
	if err != nil {
		return nil, err
	}
	mine := slices.DeleteFunc(slices.Clone(local), func(n string) bool { return packaged[n] != "" })
	if len(remote) == 0 && len(mine) > 0 {
		return nil, cli.Fail(cli.ExitRefused, fmt.Sprintf("production lists no projects matching %q in %s (empty or unmounted?): the standby's %d projects are kept", strings.Join(m.Include, " "), where, len(mine)), "check PROJECTS_DIR on production; nothing was changed")
	}
	return &Inventory{Dir: dir, Production: remote, Standby: local, Stale: Stale(mine, remote), Packaged: packaged}, nil
}

// Sync makes the standby's projects equal to production's.
func Sync(j *job.Job, opts Options) error {
	inv, err := Take(j)
	if err != nil {
		return err
	}
	dir := inv.Dir
	for _, name := range slices.Sorted(maps.Keys(inv.Packaged)) {
		if !opts.Quiet {
			j.Printf("left alone: %s belongs to Debian package(s) %s (dpkg-query -S): apt, not %s, changes it\n", filepath.Join(dir, name), cli.Printable(inv.Packaged[name]), Name)
		}
	}
	sources := inv.Sources()
	if len(sources) == 0 && len(inv.Stale) == 0 {
		if !opts.Quiet {
			j.Printf("no projects in %s to sync from production: nothing to do\n", dir)
		}
		return nil
	}
	backup := filepath.Join(j.Backup(), dir)
	var changes rsync.Changes
	report := func(verb string, c rsync.Changes) {
		if opts.Quiet {
			return
		}
		line := fmt.Sprintf("%s %d projects from %s (%s); %d stale moved to %s", verb, len(sources), j.SSH.Host, c, len(inv.Stale), backup)
		if n := len(inv.Packaged); n > 0 {
			line += fmt.Sprintf("; %d left alone (Debian packages own them)", n)
		}
		j.Printf("%s\n", line)
	}
	var steps []run.Step
	if len(sources) > 0 {
		argv := rsyncArgv(j, dir, sources, backup, j.Cfg.Get(config.OdooGroup))
		steps = append(steps, transfer(j, argv, opts, &changes, report))
	}
	// The new set arrived: only now may stale projects leave.
	if len(inv.Stale) > 0 {
		steps = append(steps, run.Step{What: "keep the projects gone from production in " + backup, Argv: []string{"mkdir", "-p", "--", backup}})
	}
	for _, name := range inv.Stale {
		steps = append(steps, run.Step{Argv: []string{"mv", "-T", "--", filepath.Join(dir, name), filepath.Join(backup, name)}})
	}
	err = j.Runner.Apply(j.Ctx, append(steps, run.Step{Do: func(context.Context) error {
		report("synced", changes)
		return nil
	}})...)
	var re *run.Error
	if errors.As(err, &re) && re.Argv[0] != "rsync" {
		return cli.Fail(cli.ExitFailure, "cannot keep the stale projects in "+backup+": "+err.Error(), "check BACKUP_DIR's free space and permissions")
	}
	return err
}

// rsyncArgv is the one rsync that pulls every project. The projects are
// its sources (not PROJECTS_DIR/), so PROJECTS_DIR itself and everything
// else in it is never touched.
func rsyncArgv(j *job.Job, dir string, names []string, backup, group string) []string {
	argv := append([]string{"rsync", "-rlpt", "--out-format=" + rsync.ItemFormat, "--delete-delay"}, rsync.Safe(300)...)
	argv = append(argv, j.RsyncFrom("")...)
	argv = append(argv, "--chown="+Owner+":"+group, "--chmod="+Chmod,
		"--backup", "--backup-dir="+backup,
		// Hide caches from production's side; let the standby's go (R) so
		// they never keep a deleted directory alive.
		"--filter=H *.pyc", "--filter=H __pycache__/", "--filter=R *.pyc", "--filter=R __pycache__/",
		"--")
	for _, n := range names {
		argv = append(argv, j.SSH.Spec(dir+"/"+n))
	}
	return append(argv, dir+"/")
}

// transfer is the rsync step; its preview is rsync's own -n pass
// (read-only, so the preview is exact).
func transfer(j *job.Job, argv []string, opts Options, changes *rsync.Changes, report func(string, rsync.Changes)) run.Step {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Hour
	}
	s := run.Step{What: "copy new and changed projects from production", Argv: argv, Timeout: timeout}
	s.Do = func(ctx context.Context) error {
		out, err := j.Runner.Exec(ctx, s)
		*changes = rsync.Itemize(out)
		return transferError(j, err)
	}
	s.Preview = func(ctx context.Context) error {
		dry := s
		dry.Argv = append([]string{argv[0], "-n"}, argv[1:]...)
		out, err := j.Runner.Exec(ctx, dry)
		c := rsync.Itemize(out)
		if err = transferError(j, err); err == nil && !opts.Quiet {
			for _, l := range c.Lines {
				j.Printf("%s\n", l)
			}
			report("would sync", c)
		}
		return err
	}
	return s
}

func transferError(j *job.Job, err error) error {
	switch {
	case err == nil:
		return nil
	case rsync.Warning(run.ExitCode(err)):
		j.Log.Warn().Msg("some project files vanished on production while copying; the next run copies them")
		return nil
	case j.Ctx.Err() != nil:
		return err
	}
	return &cli.Error{Code: cli.ExitFailure, Msg: fmt.Sprintf("copying projects from %s failed: %s", j.SSH.Host, rsync.Explain(err)), Hint: "no stale project was moved; run again once fixed", Err: err}
}
