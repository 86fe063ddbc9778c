package confsync

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	stage  string   // private staging folder (0700, root's)
	backup string   // BACKUP_DIR/<timestamp>
	own    []string // the suite's own files
}

// set is one configuration set: its paths, a check of the staged copy
// before anything is compared or installed (which may also rewrite it), and
// a check after, whose failure restores.
type set struct {
	name    string
	trees   []tree
	prepare func(trees []*staged) error
	check   func() *run.Step      // nil: nothing to check
	after   func(trees []*staged) // warnings about the synced content
}

// tree is one path, the same on both machines, synced as a whole (or, with
// filter, the part of a directory that the rules select).
type tree struct {
	path   string
	dir    bool
	chown  string   // user:group given to what is copied
	chmod  string   // rsync --chmod applied to what is copied
	links  []string // symlinks must point inside one of these
	follow bool     // fetch what production's symlinks point to, as files
	filter []string // rsync filter rules: what of a directory is synced
}

// staged is a tree fetched into the staging folder.
type staged struct {
	tree
	copy    string // staged copy of tree.path
	existed bool   // the standby had tree.path before the sync
	changes rsync.Changes
}

// maxFile bounds each file fetched from production: configuration files
// are small, and a hostile production must not fill the standby's disk.
const maxFile = "1m"

// inventory fetches a set from production, checks it, and compares it with
// the standby's copy: every step only reads this machine's configuration.
func (s *syncer) inventory(set set) ([]*staged, error) {
	var trees []*staged
	for i, t := range set.trees {
		st := &staged{tree: t, copy: filepath.Join(s.stage, set.name, strconv.Itoa(i), filepath.Base(t.path))}
		if err := s.fetch(st); err != nil {
			return nil, err
		}
		_, err := os.Lstat(t.path)
		st.existed = err == nil
		if err := s.validate(st); err != nil {
			return nil, err
		}
		trees = append(trees, st)
	}
	if set.prepare != nil {
		if err := set.prepare(trees); err != nil {
			return nil, err
		}
	}
	for _, st := range trees {
		out, err := s.j.Runner.Query(s.j.Ctx, s.install(st, true)...)
		if err != nil {
			return nil, cli.Fail(cli.ExitFailure, "cannot compare "+st.path+" with production's: "+rsync.Explain(err), "nothing was changed")
		}
		st.changes = rsync.Itemize(out)
	}
	return trees, nil
}

func (s *syncer) sync(set set) error {
	j := s.j
	trees, err := s.inventory(set)
	if err != nil {
		return err
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

// filters are a tree's own rules, then rules that keep the suite's own
// files out of a directory tree's transfer (being excludes, they also
// protect the standby's copies from deletion).
func (s *syncer) filters(t tree) []string {
	var f []string
	for _, own := range s.own {
		if t.dir && strings.HasPrefix(own, t.path+"/") {
			f = append(f, "--filter=- /"+strings.TrimPrefix(own, t.path+"/"))
		}
	}
	for _, rule := range t.filter {
		f = append(f, "--filter="+rule)
	}
	return f
}

// fetch copies production's tree into the staging folder: a read-only
// step for this machine, so it runs in a dry run too. Symlinks are kept as
// they are (validate checks them), except where a tree takes only files;
// devices and specials are never copied; a file over maxFile fails the
// fetch.
func (s *syncer) fetch(st *staged) error {
	j := s.j
	if err := os.MkdirAll(filepath.Dir(st.copy), 0o700); err != nil {
		return err
	}
	argv := []string{"rsync", "-rlpt", "--no-devices", "--no-specials", "--timeout=300", "--max-size=" + maxFile, "--info=skip1"}
	argv = append(argv, j.RsyncFrom("")...)
	argv = append(argv, s.filters(st.tree)...)
	src, dst := st.path, st.copy
	if st.dir {
		src, dst = src+"/", dst+"/"
	}
	if st.follow {
		argv = append(argv, "--copy-links")
	}
	argv = append(argv, "--", j.SSH.Spec(src), dst)
	out, err := j.Runner.Query(j.Ctx, argv...)
	if err != nil {
		var ce *cli.Error
		if run.ExitCode(err) == 255 && errors.As(err, &ce) {
			return err
		}
		return &cli.Error{Code: cli.ExitFailure, Msg: fmt.Sprintf("cannot fetch %s from %s: %s", st.path, j.SSH.Host, rsync.Explain(err)), Hint: "check that it exists and that " + j.SSH.User + " can read it; nothing was changed", Err: err}
	}
	for _, l := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutSuffix(l, " is over max-size"); ok {
			return cli.Fail(cli.ExitRefused, fmt.Sprintf("production's %s on %s refused: %s is larger than %siB", st.path, j.SSH.Host, cli.Printable(name), strings.ToUpper(maxFile)), "configuration files are small: check it on production; nothing was changed")
		}
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
			return refuse(fmt.Sprintf("symlink %s points to %q, outside %s", cli.Printable(rel), cli.Printable(target), strings.Join(st.links, " and ")))
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

// noIncRecursive makes rsync set directory times once every file is in
// place: with incremental recursion it may set a directory's time before
// its receiver has renamed the last file into it, and the copy (or the
// restored tree) would keep the time of that rename.
const noIncRecursive = "--no-inc-recursive"

func (s *syncer) backupOf(path string) string { return filepath.Join(s.backup, path) }

// keep copies the standby's current tree (the part the set syncs) to the
// backup folder, and odoo.conf also to odoo.conf.previous, as the original
// did.
func (s *syncer) keep(st *staged) []run.Step {
	if !st.existed {
		return nil
	}
	bk := s.backupOf(st.path)
	copyArgv := []string{"rsync", "-a", "--", st.path, bk}
	if st.dir {
		copyArgv = append(append([]string{"rsync", "-a", noIncRecursive}, s.filters(st.tree)...), "--", st.path+"/", bk+"/")
	}
	steps := []run.Step{
		{What: "keep the current " + st.path + " in " + bk, Argv: []string{"mkdir", "-p", "--", filepath.Dir(bk)}},
		{Argv: copyArgv},
	}
	for i := range steps {
		step := steps[i]
		steps[i].Do = func(ctx context.Context) error {
			if _, err := s.j.Runner.Exec(ctx, step); err != nil {
				return s.keepFailed(st, err)
			}
			return nil
		}
	}
	if !st.dir {
		prev := st.path + ".previous"
		steps = append(steps, run.Step{
			What: "keep the current " + st.path + " as " + prev,
			Show: []string{"copied to a temporary file beside it, renamed over " + prev + " once complete"},
			Do: func(context.Context) error {
				if err := keepPrevious(st.path, prev); err != nil {
					return s.keepFailed(st, err)
				}
				return nil
			}})
	}
	return steps
}

func (s *syncer) keepFailed(st *staged, err error) error {
	return cli.Fail(cli.ExitFailure, "cannot keep a copy of "+st.path+": "+err.Error(), "check the free space of BACKUP_DIR and of "+filepath.Dir(st.path)+"; nothing was changed")
}

// restore puts the backed-up trees back after a failed install or check,
// and returns the error to report. --checksum: the rejected copy may have
// the size and modification time of the file it replaced, and rsync's
// quick check would then leave it in place.
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
			argv = append(append([]string{"rsync", "-a", noIncRecursive, "--checksum", "--delete"}, s.filters(st.tree)...), "--", bk+"/", st.path+"/")
		default:
			argv = []string{"rsync", "-a", "--checksum", "--", bk, st.path}
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

// keepPrevious copies path to prev through a temporary file in the same
// directory, renamed over prev only once complete: a full disk or a crash
// leaves the previous prev whole, and a symlink planted at prev is
// replaced, never followed. Owner, mode and times are kept, as cp -a does.
func keepPrevious(path, prev string) error {
	if err := writePrevious(path, prev); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			err = errno // "no space left on device", not the system calls
		}
		return fmt.Errorf("writing %s: %w", prev, err)
	}
	return nil
}

func writePrevious(path, prev string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(prev)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(prev)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if fi.Mode()&fs.ModeSymlink != 0 {
		tmp.Close()
		target, err := os.Readlink(path)
		if err == nil {
			os.Remove(tmp.Name())
			err = os.Symlink(target, tmp.Name())
		}
		if err != nil {
			return err
		}
	} else if err := copyInto(tmp, path, fi); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), prev); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // the rename itself, on disk
		d.Sync()
		d.Close()
	}
	return nil
}

// copyInto fills tmp with path's content, owner, mode and times, and
// closes it.
func copyInto(tmp *os.File, path string, fi os.FileInfo) error {
	err := func() error {
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		if _, err := io.Copy(tmp, src); err != nil {
			return err
		}
		if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		tv := []syscall.Timeval{syscall.NsecToTimeval(st.Atim.Nano()), syscall.NsecToTimeval(st.Mtim.Nano())}
		if err := syscall.Futimes(int(tmp.Fd()), tv); err != nil {
			return err
		}
		return tmp.Sync()
	}()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	return err
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
