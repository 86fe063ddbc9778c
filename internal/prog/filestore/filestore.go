// Package filestore is ot-attachments-sync: it mirrors production's Odoo
// filestore into the standby's with one rsync pass over the run's ssh
// connection, then removes what production no longer has.
//
// Safe by construction (docs/filestore.md explains the choices):
//   - production's filestore missing, unreadable or empty stops the run
//     before rsync starts (a guard runs on production in rsync's place);
//     a transfer that fails deletes nothing;
//   - the transfer never deletes: rsync writes each file to a temporary
//     name and renames it whole, so the standby only ever gains complete
//     files, and a cut run keeps every file that arrived;
//   - rsync's --delete --max-delete=0 --debug=del2 deletes nothing but
//     names every entry --delete would remove, as rsync's generator decides
//     it against the file list it just transferred (pending.go): no second
//     listing of production, no walk of the standby. Deletions above
//     MAX_DELETE_PERCENT of the standby's files are refused unless --force,
//     and applied last;
//   - files are owned by ODOO_USER:ODOO_GROUP, lose setuid/setgid bits, and
//     device files, special files and symlinks leaving the tree are skipped.
//
// A run is one rsync pass, as bare `rsync -a --delete` is; our process
// keeps rsync's statistics and the names to delete (at most 65,536 of them;
// beyond, rsync deletes in a second pass).
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Name is the command's name, as stamped in the summary file.
const Name = "ot-attachments-sync"

// ioTimeout is rsync's --timeout: a transfer with no data for this long (a
// frozen remote rsync, a dead link) stops with exit 30.
const ioTimeout = 120

// Options changes what Sync does. The zero value is the default.
type Options struct {
	Force bool // apply deletions even above MAX_DELETE_PERCENT
}

// CLI is ot-attachments-sync's command line.
type CLI struct {
	cli.Globals
	job.Flags
	Force     bool   `help:"Delete even when more than MAX_DELETE_PERCENT of the standby's files would go (production really lost them); they go to the trash all the same."`
	Follow    bool   `help:"Keep running: every FOLLOW_INTERVAL copy the attachments production added since the last cycle (never overwrites, never deletes; the hourly run reconciles). Exits 0, state stopped, on SIGTERM/SIGINT, when SYNCMODE is turned off or the machine is promoted; refuses to start when sync is off (4) or on a promoted machine (5). With -n, prints one cycle's plan." xor:"mode"`
	Restore   string `help:"Put back the files a sync moved into the trash folder STAMP (or latest) of FILESTORE_TRASH, where nothing is at their place; needs no production. With --dry-run, print the plan." placeholder:"STAMP" xor:"mode"`
	ListTrash bool   `help:"List the trash's folders (run stamps) with their file counts." xor:"mode"`
}

// Main is ot-attachments-sync.
func Main(args []string) int {
	return cli.MainWith(Name, "Mirror production's Odoo filestore (FILESTORE) into the standby's: new and changed files are copied, then files gone from production are deleted.", exitText(), args, &CLI{})
}

// exitText is the common EXIT STATUS with what 8 means here: deletions are
// decided after the copy, so new files may have arrived, but none went.
func exitText() string {
	return strings.Replace(cli.ExitStatusText(), "a safety check refused; nothing was changed",
		"refused: more deletions than MAX_DELETE_PERCENT allows; nothing was deleted", 1)
}

// Run runs the sync as a job: lock, one ssh connection, summary line.
func (c *CLI) Run(env *cli.Env) error {
	switch {
	case c.ListTrash:
		return ListTrash(env)
	case c.Restore != "":
		return Restore(env, c.Restore)
	case c.Follow:
		return job.Follow(env, Name, c.Flags, Follow)
	}
	return job.Sync(env, Name, c.Flags, func(j *job.Job) error {
		return Sync(j, Options{Force: c.Force})
	})
}

// syncer is one filestore sync in progress.
type syncer struct {
	j       *job.Job
	opts    Options
	root    string // FILESTORE, the same path on both machines
	owner   string // ODOO_USER:ODOO_GROUP
	maxPct  int
	timeout time.Duration
	trash   *Trash        // this run's folders in FILESTORE_TRASH
	stall   time.Duration // STALL_TIMEOUT: a transfer this long without progress is stopped
}

// Sync mirrors production's filestore into the standby's, inside a job
// (ot-sync-from-source calls it inside its own). Its preview (a dry run)
// is rsync's own -n pass: what would be added, changed and deleted.
func Sync(j *job.Job, opts Options) error {
	s := &syncer{
		j:       j,
		opts:    opts,
		root:    filepath.Clean(j.Cfg.Get(config.Filestore)),
		owner:   j.Cfg.Get(config.OdooUser) + ":" + j.Cfg.Get(config.OdooGroup),
		maxPct:  j.Cfg.Int(config.MaxDeletePercent),
		timeout: j.Cfg.Duration(config.FilestoreTimeout),
		stall:   j.Cfg.Duration(config.StallTimeout),
	}
	if s.timeout <= 0 {
		s.timeout = time.Hour
	}
	s.trash = freshTrash(trashRoot(j.Cfg.Get(config.FilestoreTrash), s.root), j.Start)
	if err := s.checkLocal(); err != nil {
		return err
	}
	return j.Runner.Apply(j.Ctx, run.Step{
		What:    "copy new and changed files (no deletion); then delete what production no longer has",
		Argv:    s.argv(append(realPass(), s.trashPass()...)...),
		Do:      func(context.Context) error { return s.sync() },
		Preview: func(context.Context) error { return s.preview() },
	})
}

// checkLocal refuses to start when the standby cannot receive the files.
func (s *syncer) checkLocal() error {
	for _, k := range []config.Key{config.OdooUser, config.OdooGroup} {
		v := s.j.Cfg.Get(k)
		var err error
		if k == config.OdooUser {
			_, err = user.Lookup(v)
		} else {
			_, err = user.LookupGroup(v)
		}
		if err != nil {
			return cli.Fail(cli.ExitConfig, fmt.Sprintf("%s %q does not exist on this machine (%s)", k, v, s.j.Cfg.Path), "install Odoo first, or set "+k.Name()+" to the user Odoo runs as")
		}
	}
	parent := filepath.Dir(s.root)
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("the standby's %s does not exist, so FILESTORE %s cannot be created", parent, s.root), "install Odoo on the standby, or fix FILESTORE in "+s.j.Cfg.Path)
	}
	if fi, err := os.Stat(s.root); err == nil && !fi.IsDir() {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("the standby's FILESTORE %s is not a directory", s.root), "move it away or fix FILESTORE in "+s.j.Cfg.Path)
	}
	return nil
}

// guardMark starts the line production's guard prints before refusing.
const guardMark = "ot-redundancy-guard: "

// guard is the check in rsync's --rsync-path (job.RsyncFrom): a POSIX
// shell line that production runs before rsync. rsync starts only when
// FILESTORE is a readable directory holding at least one file: an
// unmounted disk shows as an empty directory, and mirroring that
// would empty the standby. Otherwise it prints why and exits before rsync
// starts, so the standby is not touched at all (not even a directory's
// mtime). It costs no round trip of its own: the check rides on the
// connection rsync opens anyway, and find stops at the first file.
func guard(root string) string {
	return "d=" + shellquote.Join(root+"/") + "; m=" +
		`; if ! test -d "$d"; then m=missing` +
		`; elif ! test -r "$d" || ! test -x "$d"; then m=unreadable` +
		`; else f=$(find "$d" -type f -print -quit 2>/dev/null); s=$?` +
		`; if test -z "$f"; then if test $s = 0; then m=empty; else m=unreadable; fi; fi; fi` +
		`; if test -n "$m"; then echo "` + guardMark + `$m" >&2; exit 97; fi; `
}

// refused is the one-line error for what the guard found, or nil when the
// guard let rsync start.
func (s *syncer) refused(err error) error {
	var re *run.Error
	if !errors.As(err, &re) {
		return nil
	}
	i := strings.Index(re.Stderr, guardMark)
	if i < 0 {
		return nil
	}
	what, _, _ := strings.Cut(re.Stderr[i+len(guardMark):], "\n")
	where := fmt.Sprintf("production's filestore %s on %s", s.root, s.j.SSH.Host)
	switch strings.TrimSpace(what) {
	case "missing":
		return cli.Fail(cli.ExitFailure, where+" does not exist, nothing on the standby was changed", "check FILESTORE and that production's disks are mounted")
	case "unreadable":
		return cli.Fail(cli.ExitFailure, where+" is not readable by "+s.j.SSH.User+", nothing on the standby was changed", "give "+s.j.SSH.User+" read access to all of it on production")
	}
	return cli.Fail(cli.ExitFailure, where+" holds no files (an unmounted disk?), nothing on the standby was changed", "check production's filestore; an empty filestore is never mirrored")
}

// argv is the rsync command; extra options go before the operands.
func (s *syncer) argv(extra ...string) []string {
	a := []string{"rsync", "-a"}
	a = append(a, rsync.Safe(ioTimeout)...)
	a = append(a, "--chown="+s.owner)
	a = append(a, s.j.RsyncFrom(guard(s.root))...)
	a = append(a, extra...)
	return append(a, "--", s.j.SSH.Spec(s.root+"/"), s.root+"/")
}

// realPass is the transfer's own options. --delete with --max-delete=0
// deletes nothing (rsync >= 3.0) but exits 25 instead of 0 when the
// standby holds what production has not, and --debug=del2 names each such
// entry as rsync decides it (pending.go reads them); --info=stats2 prints
// rsync's counts (a few lines).
func realPass() []string {
	return []string{"--delete", "--max-delete=0", "--debug=del2", "--info=stats2"}
}

// trashPass is what the transfer adds for the trash and the checks: every
// file rsync overwrites, or removes to make room for an entry of another
// type, is renamed into the run's trash folder (--backup-dir, on the
// filestore's file system); and each item created or changed is named
// (arrivals.go).
func (s *syncer) trashPass() []string {
	return []string{"--backup", "--backup-dir=" + s.trash.Dir(), arrivalFormat()}
}

// freshTrash is the trash of a run that started at start, in folders no
// earlier run used: a run that starts within the second of another (both
// named by their start, to the second) takes the next free second, so
// nothing one run moved to the trash is ever replaced by another's.
func freshTrash(root string, start time.Time) *Trash {
	t := NewTrash(root, start)
	for i := 0; i < 3600; i++ {
		_, err1 := os.Lstat(t.Dir())
		_, err2 := os.Lstat(t.RejectedDir())
		if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
			break
		}
		start = start.Add(time.Second)
		t = NewTrash(root, start)
	}
	return t
}

// trashRoot is TrashRoot for FILESTORE: when FILESTORE is a link to
// another disk (a common move), the default trash is beside the disk's
// directory, on its file system.
func trashRoot(configured, filestore string) string {
	if configured == "" {
		if real, err := filepath.EvalSymlinks(filestore); err == nil {
			filestore = real
		}
	}
	return TrashRoot(configured, filestore)
}

// fail turns a failed rsync into the one-line error.
func (s *syncer) fail(err error) error {
	if s.j.Ctx.Err() != nil {
		return err
	}
	if r := s.refused(err); r != nil {
		return r
	}
	msg := fmt.Sprintf("filestore transfer from %s:%s failed, nothing was deleted: %s", s.j.SSH.Host, s.root, rsync.Explain(err))
	hint := "the next run resumes where this one stopped"
	var re *run.Error
	switch {
	case errors.As(err, &re) && re.TimedOut:
		msg = fmt.Sprintf("filestore transfer from %s:%s took longer than FILESTORE_TIMEOUT=%ds and was stopped, nothing was deleted", s.j.SSH.Host, s.root, int(s.timeout.Seconds()))
		hint = "the next run resumes it; raise FILESTORE_TIMEOUT for a first copy of a large filestore"
	case errors.As(err, &re) && re.Stalled:
		msg = fmt.Sprintf("filestore transfer from %s:%s made no progress for %ds (STALL_TIMEOUT) and was stopped, nothing was deleted", s.j.SSH.Host, s.root, int(re.Stall.Seconds()))
		hint = "check production (a frozen rsync, a full or hung disk) and the link to it (ot-connection-test); the next run resumes"
	case run.ExitCode(err) == 255 || run.ExitCode(err) == 12 || run.ExitCode(err) == 30:
		hint = "check the link to production (ot-connection-test); " + hint
	case run.ExitCode(err) == 23 || run.ExitCode(err) == 11:
		hint = "check that " + s.j.SSH.User + " can read all of production's filestore and the standby's free space; " + hint
	}
	return &cli.Error{Code: cli.ExitFailure, Msg: msg, Hint: hint, Err: err}
}

// sync is the real run: transfer (what it replaces goes to the trash),
// verification of the content-addressed arrivals, then deletions (into the
// trash), then the trash's pruning.
func (s *syncer) sync() error {
	if err := s.trash.Prepare(s.root); err != nil {
		return cli.Fail(cli.ExitFailure, "the filestore's trash "+s.trash.Root+" cannot be used, nothing was changed: "+err.Error(),
			"set FILESTORE_TRASH in "+s.j.Cfg.Path+" to a directory on the file system of "+s.root)
	}
	var term io.Writer
	opts := append(realPass(), s.trashPass()...)
	if s.j.TTY && !s.j.G.Quiet {
		term = s.j.Stdout
		opts = append(opts, "--info=progress2")
	}
	p := newPending(term)
	_, err := s.j.Runner.Exec(s.j.Ctx, run.Step{
		What:       "copy new and changed files of production's filestore (no deletion)",
		Argv:       s.argv(opts...),
		Timeout:    s.timeout,
		Stall:      s.stall,
		Stdout:     p,
		StreamOnly: true, // one line per deletion and per arrival: read as it passes, not kept
	})
	p.Close()
	// Whatever arrived is checked, even when the transfer failed: no
	// content-addressed file stays under its name with other content.
	v, verr := verify(s.root, s.trash, p.casArrivals())
	if len(v.Rejected) > 0 {
		s.mismatches(v)
	}
	held := 0 // the deletions rsync held back, by its own count
	named := p.files + p.dirs
	switch code := run.ExitCode(err); {
	case err == nil:
	case code == 25 || rsync.Warning(code):
		if rsync.Warning(code) {
			// Odoo deletes attachments while we copy: normal, not a failure.
			s.j.Warn("some files vanished on production during the copy (rsync exit 24); the next run catches up")
		}
		var re *run.Error
		errors.As(err, &re)
		n, told := skipped(re.Stderr)
		if code == 25 && !told && named == 0 {
			return cli.Fail(cli.ExitFailure, "rsync reported deletions pending on the standby but neither named nor counted them, nothing was deleted", "check that this machine's rsync is version 3.1 or later (rsync --version)")
		}
		held = n
	default:
		return s.fail(err)
	}
	if verr != nil {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("the standby's %s: %v, nothing was deleted", s.root, verr), "check the standby's disk; the next run checks again what arrives")
	}
	if err := s.writeState(v); err != nil {
		return err
	}
	st := rsync.ParseStats(p.rest.String())
	if st.Counted && st.Regs == 0 {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("production's filestore %s on %s holds no files (an unmounted disk?), nothing on the standby was deleted", s.root, s.j.SSH.Host), "check production's filestore; an empty filestore is never mirrored")
	}
	copied := st.Transferred - len(v.Rejected)
	replaced, replacedNames := p.replaced(s.trash)
	if p.madeMore {
		replaced = max(replaced, maxKept) // at least: the guard errs on the safe side
	}
	for _, n := range replacedNames {
		s.j.Log.Debug().Str("file", n).Msg("replaced on production by another type: moved to the trash")
	}
	if held == 0 && named == 0 && replaced == 0 {
		s.info(fmt.Sprintf("filestore synced: %d files on production, %d copied, 0 deleted", st.Regs, copied))
		return s.prune()
	}

	// rsync's list is used when it accounts exactly for what rsync held
	// back; otherwise rsync's own count decides, and rsync deletes.
	exact := p.consistent(held)
	del := p.files
	if p.bad > 0 || named == 0 {
		del = max(del, held) // rsync's count, which counts directories too
	}
	if err := s.checkShare(del+replaced, standbyFiles(st, del+replaced), s.done(copied, v, replaced)); err != nil {
		return err
	}
	if !exact {
		s.j.Log.Debug().Int("named", named).Int("held", held).Bool("overflow", p.overflow).Int("unread", p.bad).Msg("rsync deletes: its list was not kept whole")
		if err := s.rsyncDeletes(max(held, named)); err != nil {
			return err
		}
	} else if err := removeEntries(s.root, s.trash, p.entries); err != nil {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("moving files gone from production from the standby's %s into the trash %s: %v", s.root, s.trash.Dir(), err), "fix the cause; the next run moves the rest")
	}
	msg := fmt.Sprintf("filestore synced: %d files on production, %d copied, %d deleted", st.Regs, copied, del+replaced)
	if del+replaced > 0 {
		msg += " (moved to the trash " + s.trash.Dir() + ")"
	}
	s.info(msg)
	return s.prune()
}

// done says what a refused run changed all the same: the deletions are
// decided after the copy, so what arrived stays, and what it replaced is
// in the trash.
func (s *syncer) done(copied int, v verified, replaced int) string {
	d := fmt.Sprintf("%d new or changed files were copied", copied)
	if n := len(v.Rejected); n > 0 {
		d += fmt.Sprintf(", %d that did not match their name were moved to %s", n, s.trash.RejectedDir())
	}
	if replaced > 0 {
		d += fmt.Sprintf(", %d replaced on production by another type were moved to the trash %s", replaced, s.trash.Dir())
	}
	return d
}

// mismatches reports production's files that failed their hash: one line,
// also under --cron (someone must look at production), with the first
// names; every name at debug level (-v).
func (s *syncer) mismatches(v verified) {
	for _, n := range v.Rejected {
		s.j.Log.Debug().Str("file", n).Msg("content does not match its name: not kept")
	}
	first := v.Rejected[:min(len(v.Rejected), firstNames)]
	more := ""
	if len(v.Rejected) > len(first) {
		more = ", ..."
	}
	s.j.Alert(fmt.Sprintf("production has %d attachments whose content does not match their name (%s%s): not kept, the standby keeps its own copies (%d); production's are in %s; check production's filestore (ransomware, a failing disk?)",
		len(v.Rejected), strings.Join(first, ", "), more, v.Restored, s.trash.RejectedDir()))
}

// writeState records what this full run found for ot-status: the
// mismatches, zero when production is clean.
func (s *syncer) writeState(v verified) error {
	st := State{Time: time.Now().UTC(), Mismatches: len(v.Rejected), First: v.Rejected[:min(len(v.Rejected), firstNames)]}
	if st.First == nil {
		st.First = []string{}
	}
	dir := s.j.Cfg.Get(config.StateDir)
	if err := WriteState(dir, st); err != nil {
		return cli.Fail(cli.ExitFailure, "cannot write the filestore's state file in "+dir+": "+err.Error(), "check STATE_DIR in "+s.j.Cfg.Path)
	}
	return nil
}

// prune removes the trash's folders older than TRASH_DAYS.
func (s *syncer) prune() error {
	gone, err := Prune(s.trash.Root, s.j.Cfg.Int(config.TrashDays), s.j.Start)
	for _, g := range gone {
		s.j.Log.Debug().Str("folder", g).Msg("trash: pruned after TRASH_DAYS")
	}
	if err != nil {
		return cli.Fail(cli.ExitFailure, "pruning the filestore's trash "+s.trash.Root+": "+err.Error(), "fix the cause; the next run prunes again")
	}
	return nil
}

// rsyncDeletes has rsync apply the deletions when their list was too long
// to keep or did not add up: a second pass with --delete-after (deleting
// after it copied what changed meanwhile), at most limit deletions, the
// count the limit was checked against. Exit 25 means production lost more
// files meanwhile: the next run deletes those.
func (s *syncer) rsyncDeletes(limit int) error {
	_, err := s.j.Runner.Exec(s.j.Ctx, run.Step{
		What:    "delete what production no longer has (rsync, after copying what changed meanwhile)",
		Argv:    s.argv(append([]string{"--delete-after", fmt.Sprintf("--max-delete=%d", limit)}, s.trashPass()[:2]...)...),
		Timeout: s.timeout,
		Stall:   s.stall,
	})
	if code := run.ExitCode(err); err == nil || code == 25 || rsync.Warning(code) {
		return nil
	}
	if s.j.Ctx.Err() != nil {
		return err
	}
	if r := s.refused(err); r != nil {
		return r
	}
	return &cli.Error{Code: cli.ExitFailure, Err: err,
		Msg:  fmt.Sprintf("deleting files gone from production in the standby's %s failed: %s", s.root, rsync.Explain(err)),
		Hint: "the next run deletes the rest"}
}

// standbyFiles is how many regular files the standby held before the pass:
// production's, less those the pass created, plus those to delete (its own
// files that production lacks or replaced by another type). What the
// standby never keeps (unsafe symlinks, devices, fifos) is not counted.
func standbyFiles(st rsync.Stats, del int) int { return st.Regs - st.CreatedRegs + del }

// checkShare refuses deletions above MAX_DELETE_PERCENT of the standby's
// files, unless --force.
func (s *syncer) checkShare(del, total int, done string) error {
	if del == 0 || s.opts.Force || del*100 <= s.maxPct*total {
		return nil
	}
	pct := 100.0
	if total > 0 {
		pct = float64(del) * 100 / float64(total)
	}
	return cli.Fail(cli.ExitRefused,
		fmt.Sprintf("refused to delete %d of the standby's %d files in %s (%.1f%%, above MAX_DELETE_PERCENT=%d%%): nothing was deleted (%s)", del, total, s.root, pct, s.maxPct, done),
		"check production's filestore on "+s.j.SSH.Host+"; if it really lost those files, run "+Name+" --force")
}

// info tells a person at a terminal; cron hears nothing on success.
func (s *syncer) info(msg string) {
	if s.j.TTY && !s.j.G.Quiet {
		fmt.Fprintln(s.j.Stdout, msg)
		return
	}
	s.j.Log.Debug().Msg(msg)
}

// preview is the dry run: rsync with -n and --delete lists what the sync
// would add, change and delete (rsync's own answer, read-only), then the
// command the real run would use and the counts.
func (s *syncer) preview() error {
	out, err := s.j.Runner.Exec(s.j.Ctx, run.Step{
		What:    "list what the sync would change (read-only)",
		Argv:    s.argv("-n", "-i", "--delete", "--out-format="+rsync.ItemFormat, "--info=stats2"),
		Timeout: s.timeout,
		Stall:   s.stall,
	})
	if err != nil && !rsync.Warning(run.ExitCode(err)) {
		return s.fail(err)
	}
	var added, changed, deleted int
	for _, line := range strings.Split(string(out), "\n") {
		it, ok := rsync.ParseItem(line)
		switch {
		case !ok || it.Dir() || it.Unchanged():
		case it.Deleting():
			deleted++
			s.j.Printf("delete  %s\n", it.Name)
		case it.New():
			added++
			s.j.Printf("add     %s\n", it.Name)
		default:
			changed++
			s.j.Printf("change  %s\n", it.Name)
		}
	}
	st := rsync.ParseStats(string(out))
	before := standbyFiles(st, deleted)
	s.j.Printf("would add %d, change %d and delete %d of the standby's %d files (%d on production)\n", added, changed, deleted, before, st.Regs)
	s.j.Printf("what it replaces or deletes would go to the trash %s; content-addressed arrivals are checked against their names\n", s.trash.Dir())
	if err := s.checkShare(deleted, before, "dry run"); err != nil {
		s.j.Printf("the real run would refuse: %s\n", err.(*cli.Error).Msg)
	}
	return nil
}
