package confsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

type syncer struct {
	j      *job.Job
	opts   Options
	stage  string   // private staging folder
	backup string   // BACKUP_DIR/<timestamp>
	own    []string // the suite's own files
}

// set is one configuration set: its paths, a check of the staged copy
// before anything is installed, and a check after, whose failure restores.
type set struct {
	name   string
	trees  []tree
	before func(trees []*staged) error
	check  func() *run.Step      // nil: nothing to check
	after  func(trees []*staged) // warnings about the synced content
}

// tree is one path, the same on both machines, synced as a whole.
type tree struct {
	path  string
	dir   bool
	chown string   // user:group given to what is copied
	chmod string   // rsync --chmod applied to what is copied
	links []string // symlinks must point inside one of these
}

// staged is a tree fetched into the staging folder.
type staged struct {
	tree
	copy    string // staged copy of tree.path
	existed bool   // the standby had tree.path before the sync
	changes rsync.Changes
}

func (s *syncer) sync(set set) error {
	j := s.j
	var trees []*staged
	for i, t := range set.trees {
		st := &staged{tree: t, copy: filepath.Join(s.stage, set.name, strconv.Itoa(i), filepath.Base(t.path))}
		if err := s.fetch(st); err != nil {
			return err
		}
		_, err := os.Lstat(t.path)
		st.existed = err == nil
		if err := s.validate(st); err != nil {
			return err
		}
		out, err := j.Runner.Query(j.Ctx, s.install(st, true)...)
		if err != nil {
			return cli.Fail(cli.ExitFailure, "cannot compare "+t.path+" with production's: "+rsync.Explain(err), "nothing was changed")
		}
		st.changes = rsync.Itemize(out)
		trees = append(trees, st)
	}
	if set.after != nil {
		set.after(trees)
	}
	var changed []*staged
	for _, st := range trees {
		if !st.changes.Empty() {
			changed = append(changed, st)
		}
	}
	if len(changed) == 0 {
		s.printf("%s: unchanged\n", set.name)
		return nil
	}
	if set.before != nil {
		if err := set.before(trees); err != nil {
			return err
		}
	}
	var steps []run.Step
	for _, st := range changed {
		steps = append(steps, s.keep(st)...)
	}
	var installed []*staged // what the real run changed, to restore on failure
	for _, st := range changed {
		install := run.Step{What: "make " + st.path + " equal to production's", Argv: s.install(st, false)}
		install.Do = func(ctx context.Context) error {
			installed = append(installed, st)
			if _, err := j.Runner.Exec(ctx, install); err != nil {
				return errors.New("installing " + st.path + " failed: " + rsync.Explain(err))
			}
			return nil
		}
		install.Preview = func(context.Context) error {
			for _, l := range st.changes.Lines {
				s.printf("%s: %s\n", st.path, l)
			}
			s.printf("%s: would sync %s (%s); previous copy in %s\n", set.name, st.path, st.changes, s.backupOf(st.path))
			return nil
		}
		steps = append(steps, install)
	}
	if set.check != nil {
		if check := set.check(); check != nil {
			steps = append(steps, *check)
		}
	}
	steps = append(steps, run.Step{Do: func(context.Context) error {
		for _, st := range changed {
			s.printf("%s: synced %s (%s); previous copy in %s\n", set.name, st.path, st.changes, s.backupOf(st.path))
		}
		return nil
	}})
	if err := j.Runner.Apply(j.Ctx, steps...); err != nil {
		var ce *cli.Error
		if errors.As(err, &ce) || len(installed) == 0 {
			return err // keeping the backup failed: nothing was installed
		}
		return s.restore(installed, err.Error())
	}
	return nil
}

func (s *syncer) printf(format string, args ...any) {
	if !s.opts.Quiet {
		s.j.Printf(format, args...)
	}
}

// filters keep the suite's own files out of a directory tree's transfer
// (and, being excludes, protect the standby's copies from deletion).
func (s *syncer) filters(t tree) []string {
	var f []string
	for _, own := range s.own {
		if t.dir && strings.HasPrefix(own, t.path+"/") {
			f = append(f, "--filter=- /"+strings.TrimPrefix(own, t.path+"/"))
		}
	}
	return f
}

// fetch copies production's tree into the staging folder: a read-only
// step for this machine, so it runs in a dry run too. Symlinks are kept as
// they are (validate checks them); devices and specials are never copied.
func (s *syncer) fetch(st *staged) error {
	j := s.j
	if err := os.MkdirAll(filepath.Dir(st.copy), 0o700); err != nil {
		return err
	}
	argv := []string{"rsync", "-rlpt", "--no-devices", "--no-specials", "--timeout=300", "-e", j.SSH.RsyncShell(), "--rsync-path=" + j.SSH.RsyncPath("exec rsync")}
	argv = append(argv, s.filters(st.tree)...)
	src, dst := st.path, st.copy
	if st.dir {
		src, dst = src+"/", dst+"/"
	} else {
		argv = append(argv, "--copy-links") // odoo.conf may be a link on production
	}
	argv = append(argv, "--", j.SSH.Spec(src), dst)
	if _, err := j.Runner.Query(j.Ctx, argv...); err != nil {
		var ce *cli.Error
		if run.ExitCode(err) == 255 && errors.As(err, &ce) {
			return err
		}
		return &cli.Error{Code: cli.ExitFailure, Msg: fmt.Sprintf("cannot fetch %s from %s: %s", st.path, j.SSH.Host, rsync.Explain(err)), Hint: "check that it exists and that " + j.SSH.User + " can read it; nothing was changed", Err: err}
	}
	return nil
}

// validate checks the staged copy before it may replace anything.
func (s *syncer) validate(st *staged) error {
	where := st.path + " on " + s.j.SSH.Host
	refuse := func(what string) error {
		return cli.Fail(cli.ExitRefused, "production's "+where+" refused: "+what, "fix it on production; nothing was changed")
	}
	fi, err := os.Lstat(st.copy)
	if err != nil {
		return refuse("nothing arrived")
	}
	if !st.dir {
		if !fi.Mode().IsRegular() {
			return refuse("not a regular file")
		}
		return nil
	}
	if !fi.IsDir() {
		return refuse("not a directory")
	}
	entries, _ := os.ReadDir(st.copy)
	if local, _ := os.ReadDir(st.path); len(entries) == 0 && len(local) > 0 {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("production's %s is empty: the standby's %d entries are kept", where, len(local)), "check production; nothing was changed")
	}
	return filepath.WalkDir(st.copy, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(st.copy, p)
		if !linkInside(filepath.Join(st.path, rel), target, st.links) {
			return refuse(fmt.Sprintf("symlink %s points to %q, outside %s", rel, target, strings.Join(st.links, " and ")))
		}
		return nil
	})
}

// linkInside reports whether the symlink at path (where it will live on
// the standby) with target stays inside one of roots, judged on the names.
func linkInside(path, target string, roots []string) bool {
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(path), target)
	}
	target = filepath.Clean(target)
	for _, r := range roots {
		if strings.HasPrefix(target, r+"/") {
			return true
		}
	}
	return false
}

// install is the local rsync that makes the standby's tree equal to the
// staged copy (with -n: the comparison that says what would change).
func (s *syncer) install(st *staged, dryRun bool) []string {
	// --checksum: configuration files are small, and an edit that keeps the
	// size within the same second must not go unseen.
	argv := []string{"rsync", "-lpt", "--checksum", "--out-format=" + rsync.ItemFormat, "--chown=" + st.chown, "--chmod=" + st.chmod}
	if dryRun {
		argv = append(argv, "-n")
	}
	if st.dir {
		argv = append(argv, "-r", "--delete-delay")
		argv = append(argv, s.filters(st.tree)...)
		return append(argv, "--", st.copy+"/", st.path+"/")
	}
	return append(argv, "--", st.copy, st.path)
}

func (s *syncer) backupOf(path string) string { return filepath.Join(s.backup, path) }

// keep copies the standby's current tree to the backup folder (odoo.conf
// also to odoo.conf.previous, as the original did).
func (s *syncer) keep(st *staged) []run.Step {
	if !st.existed {
		return nil
	}
	bk := s.backupOf(st.path)
	steps := []run.Step{
		{What: "keep the current " + st.path + " in " + bk, Argv: []string{"mkdir", "-p", "--", filepath.Dir(bk)}},
		{Argv: []string{"cp", "-a", "-T", "--", st.path, bk}},
	}
	if !st.dir {
		steps = append(steps, run.Step{What: "keep the current " + st.path + " as .previous", Argv: []string{"cp", "-a", "-T", "--", st.path, st.path + ".previous"}})
	}
	for i := range steps {
		step := steps[i]
		steps[i].Do = func(ctx context.Context) error {
			if _, err := s.j.Runner.Exec(ctx, step); err != nil {
				return cli.Fail(cli.ExitFailure, "cannot keep a copy of "+st.path+": "+err.Error(), "check BACKUP_DIR's free space; nothing was changed")
			}
			return nil
		}
	}
	return steps
}

// restore puts the backed-up trees back after a failed install or check,
// and returns the error to report.
func (s *syncer) restore(trees []*staged, cause string) error {
	j := s.j
	var failed []string
	for _, st := range trees {
		bk := s.backupOf(st.path)
		var argv []string
		switch {
		case !st.existed && st.dir:
			argv = []string{"rm", "-rf", "--", st.path}
		case !st.existed:
			argv = []string{"rm", "-f", "--", st.path}
		case st.dir:
			argv = []string{"rsync", "-a", "--delete", "--", bk + "/", st.path + "/"}
		default:
			argv = []string{"cp", "-a", "-T", "--", bk, st.path}
		}
		if _, err := j.Runner.Exec(j.Ctx, run.Step{What: "restore " + st.path, Argv: argv}); err != nil {
			failed = append(failed, st.path)
		}
	}
	if len(failed) > 0 {
		return cli.Fail(cli.ExitFailure, cause+"; restoring "+strings.Join(failed, " ")+" failed too", "copy them back by hand from "+s.backup)
	}
	return cli.Fail(cli.ExitFailure, cause+"; the previous files were restored", "fix the configuration on production and run again (the rejected copy was not kept; "+s.backup+" holds the previous one)")
}

// owner returns the user and group names of a file (numbers when unnamed).
func owner(fi os.FileInfo) (string, string, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", "", false
	}
	u, g := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if uu, err := user.LookupId(u); err == nil {
		u = uu.Username
	}
	if gg, err := user.LookupGroupId(g); err == nil {
		g = gg.Name
	}
	return u, g, true
}
