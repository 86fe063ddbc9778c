package filestore

// Follow mode (ot-attachments-sync --follow): a long-running process that
// keeps one ssh master connection to production and, every
// FOLLOW_INTERVAL, copies the attachments production stored since the
// last cycle, without walking the filestore.
//
// Odoo stores an attachment as <db>/<xx>/<sha1>: creating one changes the
// mtime of its bucket directory <db>/<xx>. One remote command per cycle
// asks production for its clock and for the directories at depth 2 whose
// mtime is newer than the window's start (and for the databases, depth 1,
// a few names). The window is read by production's clock alone: it starts
// at the production time of the last completed cycle's listing, less a
// margin, so the skew between the two machines' clocks does not matter.
// Those buckets go in one rsync (--files-from, -r) over the same
// connection, with --ignore-existing: follow mode never overwrites and
// never deletes, the hourly run reconciles. Each arrived content-addressed
// file is hashed; one that fails is moved into the trash's .rejected
// folder, and its bucket listed again for two more cycles (production may
// still have been writing it).
//
// The suite's lock is taken without waiting and only for the transfer: a
// sync or a failover that holds it makes the cycle step aside (the next
// one catches up, the window having not moved); one that waits for it
// gets it as soon as the transfer ends. Between cycles nothing is held but
// the ssh master, and nothing runs: a timer.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/ssh"
)

const (
	// followMargin is subtracted from the window's start, in production's
	// seconds: its clock read truncated to the second, a coarse file-system
	// clock, a small step back of production's clock by NTP.
	followMargin = 5
	// maxBackoff bounds the wait between attempts while production is
	// unreachable (the interval doubles up to it).
	maxBackoff = 5 * time.Minute
	// rejectedRetries is how many more cycles list a bucket again after
	// one of its arrivals failed its hash.
	rejectedRetries = 2
	// listTimeout bounds the listing command.
	listTimeout = 2 * time.Minute
	// maxListing bounds the listing's output kept in memory (a hostile
	// production could send more).
	maxListing = 8 << 20
)

// listScript is production's side of a cycle: its clock, then the
// databases and the bucket directories changed after "@$2", NUL-separated,
// relative to FILESTORE ("$1"). find reads directories only: the cost
// grows with the number of buckets, never with the number of files.
const listScript = `date +%s || exit 1; cd "$1" || exit 97; ` +
	`exec find . -mindepth 1 -maxdepth 2 -type d \( -path './*/*' -newermt "@$2" -o ! -path './*/*' \) -print0`

// follower is ot-attachments-sync --follow in progress.
type follower struct {
	j        *job.Job
	now      func() time.Time // the standby's clock: the state file and the timer only
	root     string
	owner    string
	timeout  time.Duration
	stall    time.Duration // STALL_TIMEOUT, as in the hourly run
	interval time.Duration
	since    int64          // production's clock: the next listing's window starts after it; 0 lists everything
	retry    map[string]int // buckets listed again: an arrival failed its hash
	st       FollowState
	failures int // consecutive failed cycles
}

// errStop ends the follower without an error: sync turned off, the
// machine promoted.
type errStop struct{ why string }

func (e errStop) Error() string { return e.why }

// Follow is ot-attachments-sync --follow, inside job.Follow: it returns
// nil when stopped by a signal, by SYNCMODE turned off or by a promotion.
func Follow(j *job.Job) error {
	f := newFollower(j)
	s := &syncer{j: j, root: f.root}
	if err := s.checkLocal(); err != nil {
		return err
	}
	if j.G.DryRun {
		return f.preview()
	}
	return f.loop()
}

func newFollower(j *job.Job) *follower {
	f := &follower{j: j, now: time.Now, retry: map[string]int{}}
	f.configure()
	return f
}

// configure reads what the follower takes from the configuration (again
// at each cycle).
func (f *follower) configure() {
	c := f.j.Cfg
	f.root = filepath.Clean(c.Get(config.Filestore))
	f.owner = c.Get(config.OdooUser) + ":" + c.Get(config.OdooGroup)
	f.timeout = c.Duration(config.FilestoreTimeout)
	if f.timeout <= 0 {
		f.timeout = time.Hour
	}
	f.stall = c.Duration(config.StallTimeout)
	f.interval = c.Duration(config.FollowInterval)
	if f.interval <= 0 {
		f.interval = 15 * time.Second
	}
}

// resume starts the window where the previous follower's last completed
// cycle left it, by production's clock, when it followed the same
// production; otherwise the first cycle lists every bucket (the hourly run
// remains the safety net for anything a window misses).
func (f *follower) resume() {
	prev, ok, err := ReadFollowState(f.stateDir())
	if err != nil {
		f.j.Log.Warn().Err(err).Msg("cannot read the follower's previous state: listing everything once")
		return
	}
	if host, _ := f.j.Cfg.Source(); ok && prev.ProductionCovered > 0 && prev.Source == host {
		f.since = prev.ProductionCovered - followMargin
		f.st.Covered, f.st.LastCycle = prev.Covered, prev.LastCycle
		f.st.ProductionCovered, f.st.Source = prev.ProductionCovered, prev.Source
	}
}

func (f *follower) stateDir() string { return f.j.Cfg.Get(config.StateDir) }

// setState records a change of state (or a cycle's end) in the state file.
func (f *follower) setState(state string, lastErr string) {
	now := f.now()
	if state != f.st.State {
		f.st.Since = now
	}
	f.st.State, f.st.LastError, f.st.PID = state, lastErr, os.Getpid()
	if err := WriteFollowState(f.stateDir(), f.st); err != nil {
		f.j.Log.Warn().Err(err).Msg("cannot write the follower's state file")
	}
}

// loop runs cycles until told to stop.
func (f *follower) loop() error {
	f.resume()
	host, _ := f.j.Cfg.Source()
	f.j.Log.Info().Msgf("following %s:%s every %s", host, f.root, f.interval)
	f.setState(Following, "")
	ctx := f.j.Ctx
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return f.stop("stopped by a signal")
		case <-timer.C:
		}
		start := time.Now() // the timer's clock: monotonic
		err := f.cycle()
		if ctx.Err() != nil {
			return f.stop("stopped by a signal")
		}
		var stop errStop
		wait := f.interval
		switch {
		case errors.As(err, &stop):
			return f.stop(stop.why)
		case fatal(err):
			f.st.LastError = oneLine(err)
			f.setState(Stopped, f.st.LastError)
			return err
		case err != nil:
			f.failed(err)
			wait = min(f.interval<<min(f.failures, 16), maxBackoff)
			wait = max(wait, f.interval)
		}
		timer.Reset(max(time.Until(start.Add(wait)), 0))
	}
}

// fatal tells the errors that retrying cannot cure: SYNCSRC is this very
// machine, an invalid configuration, the standby's own filestore.
func fatal(err error) bool {
	var ce *cli.Error
	var cfg *config.Error
	return errors.As(err, &cfg) || errors.As(err, &ce) && (ce.Code == cli.ExitRefused || ce.Code == cli.ExitConfig)
}

func oneLine(err error) string { _, line := cli.Describe(err); return line }

// stop writes the state Stopped and ends the follower with exit 0.
func (f *follower) stop(why string) error {
	f.setState(Stopped, "")
	f.j.Log.Info().Msg(why)
	return nil
}

// failed records a failed cycle: one log line when the follower starts
// retrying, none for the cycles that fail after it.
func (f *follower) failed(err error) {
	f.failures++
	f.j.Hangup() // the next attempt dials again
	line := oneLine(err)
	if f.st.State != Retrying {
		f.j.Log.Warn().Msgf("retrying with back-off (up to every %s): %s", maxBackoff, line)
		f.setState(Retrying, line)
		return
	}
	if line != f.st.LastError {
		f.setState(Retrying, line)
	}
}

// cycle lists what changed on production and copies it. A cycle that
// finds the lock held ends without error and without moving the window.
func (f *follower) cycle() error {
	if err := f.reload(); err != nil {
		return err
	}
	if f.j.SSH == nil {
		if err := f.j.Redial(); err != nil {
			return err
		}
	}
	covered := f.now()
	prodTime, paths, err := f.list(f.since)
	if err != nil {
		return err
	}
	paths = f.withRetries(paths)
	if len(paths) > 0 {
		l, err := f.j.TryLock()
		if err != nil {
			return err
		}
		if l == nil {
			f.j.Log.Debug().Int("directories", len(paths)).Msg("another run holds the lock: this cycle steps aside")
			return nil
		}
		// A failover may have promoted this machine just before.
		if err := f.reload(); err != nil {
			l.Release()
			return err
		}
		copied, err := f.transfer(paths)
		l.Release()
		// What arrived whole counts even when the transfer then failed or
		// was stopped, as what failed its hash counts in Rejected.
		f.st.Copied += int64(copied)
		if err != nil {
			return err
		}
	}
	f.since = prodTime - followMargin
	if f.st.State == Retrying {
		f.j.Log.Info().Msgf("following again: caught up with production since %s", f.st.Covered.Format(time.DateTime))
	}
	f.failures = 0
	f.st.Cycles++
	f.st.LastCycle = f.now()
	f.st.Covered = covered
	f.st.ProductionCovered = prodTime
	f.st.Source = f.j.SSH.Host
	f.setState(Following, "")
	return nil
}

// reload re-reads the configuration: sync turned off or the machine
// promoted stops the follower.
func (f *follower) reload() error {
	err := f.j.Reload()
	var ce *cli.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case cli.ExitDisabled:
			return errStop{"stopped: sync was turned off (SYNCMODE)"}
		case cli.ExitPromoted:
			return errStop{"stopped: " + ce.Msg}
		}
	}
	if err != nil {
		return err
	}
	f.configure()
	return nil
}

// listArgv is the listing command for a window starting after since.
func (f *follower) listArgv(since int64) []string {
	return f.j.SSH.Command("sh", "-c", listScript, "sh", f.root, strconv.FormatInt(since, 10))
}

// list runs the listing on production: its clock, and what to transfer.
func (f *follower) list(since int64) (int64, []string, error) {
	out, err := f.j.Runner.Exec(f.j.Ctx, run.Step{Argv: f.listArgv(since), Timeout: listTimeout, MaxOutput: maxListing})
	if err != nil {
		if self := f.j.SelfError(err); self != nil {
			return 0, nil, self
		}
		if run.ExitCode(err) == 97 {
			return 0, nil, fmt.Errorf("production's filestore %s on %s cannot be entered: %s", f.root, f.j.SSH.Host, strings.TrimSpace(run.Stderr(err)))
		}
		if run.ExitCode(err) == 255 {
			msg, _ := ssh.Explain(f.j.SSH.Target, err)
			return 0, nil, errors.New(msg)
		}
		return 0, nil, fmt.Errorf("listing production's filestore on %s failed: %w", f.j.SSH.Host, err)
	}
	prodTime, dbs, buckets, err := parseListing(out)
	if err != nil {
		return 0, nil, fmt.Errorf("refused production's listing of %s on %s: %w", f.root, f.j.SSH.Host, err)
	}
	// A database the standby lacks altogether comes whole (moved in on
	// production, its buckets may keep old mtimes).
	var paths []string
	have := map[string]bool{}
	for _, db := range dbs {
		if _, err := os.Lstat(filepath.Join(f.root, db)); err != nil {
			paths = append(paths, db)
			have[db] = true
		}
	}
	for _, b := range buckets {
		if db, _, _ := strings.Cut(b, "/"); !have[db] {
			paths = append(paths, b)
		}
	}
	return prodTime, paths, nil
}

// parseListing reads production's answer: its clock on the first line,
// then NUL-separated "./<db>" and "./<db>/<dir>" names. Anything else is
// refused whole: production's output is untrusted.
func parseListing(out []byte) (prodTime int64, dbs, buckets []string, err error) {
	first, rest, ok := bytes.Cut(out, []byte("\n"))
	if !ok || len(first) == 0 || len(first) > 12 {
		return 0, nil, nil, fmt.Errorf("no clock reading in %q", cli.Printable(string(first)))
	}
	prodTime, err = strconv.ParseInt(string(first), 10, 64)
	if err != nil || prodTime <= followMargin {
		return 0, nil, nil, fmt.Errorf("bad clock reading %q", cli.Printable(string(first)))
	}
	if len(rest) > 0 && rest[len(rest)-1] != 0 {
		return 0, nil, nil, errors.New("the listing does not end with a NUL")
	}
	for _, name := range strings.Split(string(bytes.TrimSuffix(rest, []byte{0})), "\x00") {
		if len(rest) == 0 {
			break
		}
		rel, ok := strings.CutPrefix(name, "./")
		depth, valid := relDepth(rel)
		if !ok || !valid {
			return 0, nil, nil, fmt.Errorf("%q is not a directory inside the filestore", cli.Printable(name))
		}
		if depth == 1 {
			dbs = append(dbs, rel)
		} else {
			buckets = append(buckets, rel)
		}
	}
	return prodTime, dbs, buckets, nil
}

// relDepth checks a relative path of one or two plain names.
func relDepth(rel string) (int, bool) {
	if rel == "" || filepath.Clean(rel) != rel || strings.HasPrefix(rel, "/") {
		return 0, false
	}
	parts := strings.Split(rel, "/")
	if len(parts) > 2 {
		return 0, false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return 0, false
		}
	}
	return len(parts), true
}

// withRetries adds the buckets whose arrivals failed their hash lately.
func (f *follower) withRetries(paths []string) []string {
	for b, n := range f.retry {
		if !slices.Contains(paths, b) {
			paths = append(paths, b)
		}
		if n <= 1 {
			delete(f.retry, b)
		} else {
			f.retry[b] = n - 1
		}
	}
	slices.Sort(paths)
	return paths
}

// rsyncArgv is the transfer of the directories read from stdin.
func (f *follower) rsyncArgv() []string {
	a := []string{"rsync", "-a", "-r"}
	a = append(a, rsync.Safe(ioTimeout)...)
	a = append(a, "--chown="+f.owner)
	a = append(a, f.j.RsyncFrom("")...)
	a = append(a, "--ignore-existing", "--from0", "--files-from=-", "--out-format="+rsync.ItemFormat)
	return append(a, "--", f.j.SSH.Spec(f.root+"/"), f.root+"/")
}

// transfer copies the new files of paths and checks them; it returns how
// many arrived whole and matching.
func (f *follower) transfer(paths []string) (int, error) {
	list := strings.Join(paths, "\x00") + "\x00"
	out, err := f.j.Runner.Exec(f.j.Ctx, run.Step{Argv: f.rsyncArgv(), Stdin: strings.NewReader(list), Timeout: f.timeout, Stall: f.stall})
	// What arrived before a failure or a signal is checked too.
	copied, rejected := f.verify(out)
	if rejected > 0 {
		f.st.Rejected += int64(rejected)
	}
	if err == nil || rsync.Warning(run.ExitCode(err)) {
		if copied+rejected > 0 {
			f.j.Log.Debug().Int("copied", copied).Int("rejected", rejected).Int("directories", len(paths)).Msg("cycle")
		}
		return copied, nil
	}
	if self := f.j.SelfError(err); self != nil {
		return copied, self
	}
	if f.j.Ctx.Err() != nil {
		return copied, err
	}
	return copied, fmt.Errorf("transfer of %d directories from %s:%s failed: %s", len(paths), f.j.SSH.Host, f.root, rsync.Explain(err))
}

// verify hashes each content-addressed file rsync reports as arrived; one
// that does not match its name goes to the trash's .rejected folder and
// its bucket is listed again in the next cycles.
func (f *follower) verify(out []byte) (copied, rejected int) {
	var trash *Trash
	for _, line := range strings.Split(string(out), "\n") {
		it, ok := rsync.ParseItem(line)
		if !ok || it.Code[0] != '>' || it.Code[1] != 'f' {
			continue
		}
		sum, cas := ContentName(it.Name)
		if !cas {
			copied++
			continue
		}
		p := filepath.Join(f.root, it.Name)
		good, err := Matches(p, sum)
		if err != nil || good {
			if err == nil {
				copied++
			}
			continue
		}
		rejected++
		if trash == nil {
			trash = NewTrash(TrashRoot(f.j.Cfg.Get(config.FilestoreTrash), f.root), f.now())
			if err := trash.Prepare(f.root); err != nil {
				f.j.Log.Warn().Err(err).Msg("cannot prepare the trash: removing production's bad copies instead")
			}
		}
		msg := "an arrival does not match its name (production still writing it, or damaged there): moved to " + trash.RejectedDir()
		if err := trash.Reject(f.root, it.Name); err != nil {
			os.Remove(p)
			msg = "an arrival does not match its name (production still writing it, or damaged there): removed"
		}
		f.j.Log.Warn().Str("file", it.Name).Msg(msg)
		f.retry[filepath.Dir(it.Name)] = rejectedRetries + 1 // withRetries counts this cycle's listing
	}
	return copied, rejected
}

// preview is --follow --dry-run: one cycle's plan. The listing is run (it
// is read-only), the transfer is printed.
func (f *follower) preview() error {
	f.resume()
	if err := f.j.Redial(); err != nil {
		return err
	}
	what := "list production's databases and the bucket directories changed since "
	if f.since == 0 {
		what += "ever (no previous cycle: everything)"
	} else {
		what += time.Unix(f.since, 0).UTC().Format(time.DateTime) + " UTC by production's clock"
	}
	f.j.Runner.Print(run.Step{What: what + " (read-only)", Argv: f.listArgv(f.since)})
	_, paths, err := f.list(f.since)
	if err != nil {
		return err
	}
	show := paths
	if len(show) > 20 {
		show = append(slices.Clone(show[:20]), fmt.Sprintf("... and %d more", len(paths)-20))
	}
	f.j.Runner.Print(run.Step{
		What: fmt.Sprintf("copy the new files of these %d directories (NUL-separated on stdin), never overwriting or deleting, each checked against its name; under the lock, taken without waiting", len(paths)),
		Argv: f.rsyncArgv(), Show: show,
	})
	return nil
}
