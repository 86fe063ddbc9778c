package filestore

// Follow mode against the hard cases of a real production: a clock minutes
// away from the standby's, an outage, the hourly run's lock, a hostile
// listing. Production's tools are changed for production alone by bind
// mounts in its own mount namespace; its outage is its sshd moved to
// another port (connections refused) with its sessions killed, then moved
// back, so that production returns at the same address with the same host
// key.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// patience bounds every wait of these tests: generous, for a loaded
// machine; no test asserts how fast anything went.
const patience = 60 * time.Second

// followProc is a running ot-attachments-sync --follow whose log (JSON,
// debug level: every command it starts) the test reads.
type followProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	dir  string // STATE_DIR
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startFollow starts the follower and waits for its first completed cycle.
func startFollow(t *testing.T, l *lab) *followProc {
	t.Helper()
	f := &followProc{cmd: l.command("--follow", "-v", "--log-format", "json"), log: &lockedBuffer{}, done: make(chan struct{}), dir: l.config()["STATE_DIR"]}
	f.cmd.Stdout, f.cmd.Stderr = f.log, f.log
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.done
		if t.Failed() {
			t.Logf("the follower's log:\n%s", f.log.String())
		}
	})
	f.waitState(t, "the first cycle", func(st FollowState) bool { return st.Cycles >= 1 })
	return f
}

func (f *followProc) exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds; the follower exiting fails the test.
func (f *followProc) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(20 * time.Millisecond) {
		if f.exited() {
			t.Fatalf("waiting for %s: the follower exited (%s)", what, f.cmd.ProcessState)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, patience)
		}
	}
}

func (f *followProc) state(t *testing.T) FollowState {
	t.Helper()
	st, _, err := ReadFollowState(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *followProc) waitState(t *testing.T, what string, cond func(FollowState) bool) FollowState {
	t.Helper()
	var st FollowState
	f.waitFor(t, what, func() bool {
		s, ok, err := ReadFollowState(f.dir)
		st = s
		return ok && err == nil && cond(s)
	})
	return st
}

// arrive waits for each of names (relative to FILESTORE) on the standby.
func (f *followProc) arrive(t *testing.T, l *lab, names ...string) {
	t.Helper()
	for _, n := range names {
		f.waitFor(t, n+" on the standby", func() bool { return prodlab.Exists(filepath.Join(l.standby, n)) })
	}
}

// stop sends SIGTERM: exit 0, state stopped.
func (f *followProc) stop(t *testing.T) FollowState {
	t.Helper()
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(patience):
		t.Fatal("the follower did not stop on SIGTERM")
	}
	st := f.state(t)
	if code := f.cmd.ProcessState.ExitCode(); code != 0 || st.State != Stopped {
		t.Fatalf("after SIGTERM: exit %d, state %q; want 0, stopped", code, st.State)
	}
	return st
}

// logLine is one line of the follower's JSON log.
type logLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	Cmd     string `json:"cmd"`
}

// mark is where the log is now: lines(mark) reads what came after.
func (f *followProc) mark() int { return len(f.log.String()) }

func (f *followProc) lines(t *testing.T, from int) []logLine {
	t.Helper()
	text := f.log.String()[from:]
	var out []logLine
	for _, s := range strings.Split(text, "\n") {
		if s == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(s), &ll); err != nil {
			continue // a line still being written
		}
		out = append(out, ll)
	}
	return out
}

// notices are the lines an operator sees without -v.
func (f *followProc) notices(t *testing.T, from int) []string {
	t.Helper()
	var out []string
	for _, ll := range f.lines(t, from) {
		if ll.Level != "debug" && ll.Level != "trace" {
			out = append(out, ll.Level+": "+ll.Message)
		}
	}
	return out
}

// count counts the lines since from that match.
func (f *followProc) count(t *testing.T, from int, match func(logLine) bool) int {
	t.Helper()
	n := 0
	for _, ll := range f.lines(t, from) {
		if match(ll) {
			n++
		}
	}
	return n
}

// attempt is a command that reaches for production: an ssh (the master,
// or a command that falls back to its own connection when the master is
// gone) or an rsync; "ssh -O exit" only talks to the local master.
func attempt(ll logLine) bool {
	if ll.Level != "debug" || ll.Message != "start" && ll.Message != "run" {
		return false
	}
	return strings.HasPrefix(ll.Cmd, "ssh ") && !strings.Contains(ll.Cmd, " -O exit ") || strings.HasPrefix(ll.Cmd, "rsync ")
}

// listing is the start of a cycle's listing on production.
func listing(ll logLine) bool {
	return ll.Level == "debug" && ll.Message == "run" && strings.Contains(ll.Cmd, "find . -mindepth 1 -maxdepth 2")
}

// transferRun is the start of a follower's transfer.
func transferRun(ll logLine) bool {
	return ll.Level == "debug" && ll.Message == "run" && strings.HasPrefix(ll.Cmd, "rsync ") && strings.Contains(ll.Cmd, "--files-from=-")
}

// wantNotices checks the operator's lines, in order, by their beginnings.
func wantNotices(t *testing.T, got []string, want ...string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}
	if !ok {
		t.Errorf("the follower's notices:\n\t%s\nwant lines beginning with:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// prodFile stores attachment number i of db on production at production's
// time at: the file, and the directories production's kernel would have
// stamped (its bucket; the database and the filestore when they were new).
func prodFile(t *testing.T, l *lab, db string, i int, at time.Time) string {
	t.Helper()
	data := []byte(fmt.Sprintf("%s attachment %d\n", db, i))
	rel := casName(db, data)
	stamp := []string{rel}
	for d := filepath.Dir(rel); ; d = filepath.Dir(d) {
		stamp = append(stamp, d)
		if d == "." || prodlab.Exists(filepath.Join(l.prod, d)) {
			break
		}
	}
	prodlab.WriteFile(t, filepath.Join(l.prod, rel), string(data))
	for _, p := range stamp {
		if err := os.Chtimes(filepath.Join(l.prod, p), at, at); err != nil {
			t.Fatal(err)
		}
	}
	return rel
}

// regularFiles lists the files under root, relative to it.
func regularFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// shim puts script in place of tool (an absolute path) for production
// alone, bound over it in production's mount namespace, until the
// returned function removes it.
func shim(t *testing.T, l *lab, tool, name, script string) func() {
	t.Helper()
	p := filepath.Join(prodlab.Mkdir(t, filepath.Join(l.p.Dir, "shims")), name)
	prodlab.WriteFileMode(t, p, script, 0o755)
	l.p.Exec(t, "mount", "--bind", p, tool)
	return func() { l.p.Exec(t, "umount", tool) }
}

// prodClock makes production's "date +%s" read skew away from the
// standby's clock; any other use of date is passed on.
func prodClock(t *testing.T, l *lab, skew time.Duration) func() {
	t.Helper()
	orig := filepath.Join(prodlab.Mkdir(t, filepath.Join(l.p.Dir, "shims")), "date.real")
	data, err := os.ReadFile("/usr/bin/date")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orig, data, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n# production's clock: %d s from the standby's\n"+
		"if [ $# = 1 ] && [ \"$1\" = +%%s ]; then echo $(( $(%s +%%s) + %d )); else exec %s \"$@\"; fi\n",
		int(skew.Seconds()), orig, int(skew.Seconds()), orig)
	undo := shim(t, l, "/usr/bin/date", "date-skewed", script)
	got, err := strconv.ParseInt(strings.TrimSpace(l.p.Exec(t, "date", "+%s")), 10, 64)
	if want := time.Now().Add(skew).Unix(); err != nil || math.Abs(float64(got-want)) > 30 {
		t.Fatalf("production's clock reads %d (%v), want about %d", got, err, want)
	}
	return undo
}

// Production's clock minutes behind, then ahead of, the standby's: the
// window is read by production's clock alone, so every file production
// stores after the follower started arrives, in cycle after cycle, none
// missed and none copied twice.
func TestFollowClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		t.Run(fmt.Sprintf("production%+dmin", int(skew.Minutes())), func(t *testing.T) {
			l := newLab(t, map[string]string{"FOLLOW_INTERVAL": "1"})
			l.p.WriteConfig(t, l.conf, l.config())
			prodClock(t, l, skew)
			prodNow := func() time.Time { return time.Now().Add(skew) }
			var names []string
			for i := range 3 {
				names = append(names, prodFile(t, l, "db1", i, prodNow().Add(-time.Hour)))
			}
			f := startFollow(t, l)
			f.arrive(t, l, names...)
			// One file per window, each stored at a different point of
			// the cycle: a new bucket, a known one, a new database.
			for i := range 6 {
				db := []string{"db1", "db1", "db2"}[i%3]
				names = append(names, prodFile(t, l, db, 100+i, prodNow()))
				c := f.state(t).Cycles
				f.waitState(t, "the next cycle", func(st FollowState) bool { return st.Cycles > c })
				time.Sleep(time.Duration(i) * 150 * time.Millisecond)
			}
			f.arrive(t, l, names...)
			f.waitState(t, "every arrival counted", func(st FollowState) bool { return st.Copied >= int64(len(names)) })
			st := f.stop(t)
			if got, want := regularFiles(t, l.standby), regularFiles(t, l.prod); !slices.Equal(got, want) {
				t.Errorf("the standby has %q, production %q", got, want)
			}
			if st.Copied != int64(len(names)) || st.Rejected != 0 {
				t.Errorf("copied %d, rejected %d; want %d files copied once each", st.Copied, st.Rejected, len(names))
			}
			// The window was production's: its clock, not the standby's.
			if want := prodNow().Unix(); math.Abs(float64(st.ProductionCovered-want)) > 60 {
				t.Errorf("production_covered %d, want about %d (production's clock)", st.ProductionCovered, want)
			}
			if n := len(f.notices(t, 0)); n != 2 {
				t.Errorf("%d notices, want 2 (following, stopped): %q", n, f.notices(t, 0))
			}
		})
	}
}

// sshdPort makes production's sshd listen on port instead (SIGHUP: it
// execs itself again with its edited configuration), and waits until it
// does.
func sshdPort(t *testing.T, l *lab, port int) {
	t.Helper()
	cfg := filepath.Join(l.p.Dir, "sshd_config")
	text := prodlab.ReadFile(t, cfg)
	re := regexp.MustCompile(`(?m)^ListenAddress .*$`)
	if !re.MatchString(text) {
		t.Fatalf("no ListenAddress in %s", cfg)
	}
	text = re.ReplaceAllString(text, "ListenAddress "+net.JoinHostPort(l.p.Addr, strconv.Itoa(port)))
	prodlab.WriteFileMode(t, cfg, text, 0o600)
	if err := syscall.Kill(l.p.PID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(l.p.Addr, strconv.Itoa(port))
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("production's sshd does not listen on %s: %v", addr, err)
		}
	}
}

// killSessions kills every process of production but its sshd: the
// sessions of the follower's connection die as with a crash.
func killSessions(t *testing.T, l *lab) {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", l.p.PID))
	if err != nil {
		t.Fatal(err)
	}
	for range 250 {
		var left []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == l.p.PID || pid == os.Getpid() {
				continue
			}
			if link, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && link == ns {
				left = append(left, pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("production's sessions survive SIGKILL")
}

// Production unreachable for several intervals (connections refused, its
// sessions gone), then back at the same address: the state becomes
// retrying with last_error, the follower dials again on a doubling
// back-off (no busy loop), says so once when retrying begins and once when
// following resumes, and what production stored meanwhile arrives.
func TestFollowOutage(t *testing.T) {
	l := newLab(t, map[string]string{"FOLLOW_INTERVAL": "1"})
	l.p.WriteConfig(t, l.conf, l.config())
	f := startFollow(t, l)
	f.arrive(t, l, casFill(t, l.prod, "db1", 0, 1)...)

	ln, err := net.Listen("tcp", net.JoinHostPort(l.p.Addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	mark := f.mark()
	down := time.Now()
	sshdPort(t, l, elsewhere)
	killSessions(t, l)
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(l.p.Addr, strconv.Itoa(l.p.Port)), time.Second); err == nil {
		c.Close()
		t.Fatal("production still accepts connections at its address")
	}
	during := casFill(t, l.prod, "db1", 10, 2)
	during = append(during, casFill(t, l.prod, "db3", 0, 1)...)

	// The first failure may be the connection cut under a listing; the
	// attempts after it are refused.
	f.waitState(t, "state retrying, the connection refused", func(st FollowState) bool {
		return st.State == Retrying && strings.Contains(st.LastError, "ssh connection to odoo@"+l.p.Addr+" port "+strconv.Itoa(l.p.Port)+" refused")
	})
	// Several intervals of outage.
	time.Sleep(time.Until(down.Add(9 * time.Second)))
	outage := time.Since(down)
	tries := f.count(t, mark, attempt)
	sshdPort(t, l, l.p.Port)
	f.arrive(t, l, during...)
	st := f.waitState(t, "state following", func(st FollowState) bool { return st.State == Following })
	if st.LastError != "" {
		t.Errorf("following again: last_error %q", st.LastError)
	}

	// With the interval doubling after each failure (1 s, then 2, 4, 8 s
	// ...), attempts come at 0, 2, 6, 14 s...: within the outage at most
	// log2(outage/interval + 2) of them, and one more that may have begun
	// just before production went away.
	limit := int(math.Log2(outage.Seconds()+2)) + 1
	t.Logf("%d attempts to reach production in %s of outage (at most %d allowed)", tries, outage.Round(time.Millisecond), limit)
	if tries > limit || tries < 2 {
		t.Errorf("%d attempts to reach production in %s of outage; want 2 to %d (back-off doubling from 1s)", tries, outage, limit)
	}
	f.stop(t)
	wantNotices(t, f.notices(t, 0),
		"info: following ",
		"warn: retrying with back-off (up to every 5m0s): ssh ",
		"info: following again: caught up with production since ",
		"info: stopped by a signal")
	if got, want := regularFiles(t, l.standby), regularFiles(t, l.prod); !slices.Equal(got, want) {
		t.Errorf("the standby has %q, production %q", got, want)
	}
}

// lockOwner is the pid the lock file names: its holder writes it once it
// holds the lock and empties the file on release. Reading it takes no
// lock, so the follower's cycles are not disturbed.
func lockOwner(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// While another run holds the suite's lock the follower steps aside at
// each cycle: it neither waits for the lock nor fails (state following,
// no notice), copies nothing, and what production stored arrives once the
// lock is free. An hourly ot-attachments-sync started during a follower's
// transfer waits for that transfer alone, then completes.
func TestFollowLockContention(t *testing.T) {
	l := newLab(t, map[string]string{"FOLLOW_INTERVAL": "1", "LOCK_WAIT": "120", "RSYNC_BWLIMIT": "2048"})
	l.p.WriteConfig(t, l.conf, l.config())
	lockFile := l.config()["LOCK_FILE"]
	f := startFollow(t, l)

	held, err := lock.Acquire(context.Background(), lockFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	mark := f.mark()
	names := casFill(t, l.prod, "db1", 0, 3)
	stepsAside := func(ll logLine) bool {
		return strings.Contains(ll.Message, "another run holds the lock: this cycle steps aside")
	}
	f.waitFor(t, "three cycles stepping aside", func() bool {
		for _, n := range names {
			if prodlab.Exists(filepath.Join(l.standby, n)) {
				t.Fatalf("%s copied while another run held the lock", n)
			}
		}
		return f.count(t, mark, stepsAside) >= 3
	})
	if st := f.state(t); st.State != Following || st.LastError != "" {
		t.Errorf("while the lock is held: state %q, last_error %q; want following", st.State, st.LastError)
	}
	if n := f.count(t, mark, transferRun); n != 0 {
		t.Errorf("%d transfers while another run held the lock", n)
	}
	held.Release()
	f.arrive(t, l, names...)

	// A transfer of a few seconds (6 MiB at 2 MiB/s), into a new
	// database: the hourly run starts when it is under way, not near its end.
	big := fill(t, l.prod, "db2", 0, 6, 1<<20)
	arrived := func() (n int) {
		for _, b := range big {
			if prodlab.Exists(filepath.Join(l.standby, b)) {
				n++
			}
		}
		return n
	}
	f.waitFor(t, "the follower's transfer of db2 under way", func() bool {
		return lockOwner(lockFile) == f.cmd.Process.Pid && prodlab.Exists(filepath.Join(l.standby, "db2")) && arrived() <= 2
	})
	mark = f.mark()
	hourly := l.command("-v", "--log-format", "json")
	var hourlyLog lockedBuffer
	hourly.Stdout, hourly.Stderr = &hourlyLog, &hourlyLog
	if err := hourly.Start(); err != nil {
		t.Fatal(err)
	}
	hourlyDone := make(chan struct{})
	go func() { hourly.Wait(); close(hourlyDone) }()
	defer func() { hourly.Process.Kill(); <-hourlyDone }()
	if owner := lockOwner(lockFile); owner != f.cmd.Process.Pid {
		t.Fatalf("the follower's transfer ended before the hourly run started (lock names %d)", owner)
	}
	transfers := -1
	for deadline := time.Now().Add(patience); transfers < 0; time.Sleep(5 * time.Millisecond) {
		select {
		case <-hourlyDone:
			t.Fatalf("the hourly run ended (%s) before holding the lock:\n%s", hourly.ProcessState, hourlyLog.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hourly run did not get the lock within %s", patience)
		}
		if lockOwner(lockFile) == hourly.Process.Pid {
			transfers = f.count(t, mark, transferRun)
		}
	}
	select {
	case <-hourlyDone:
	case <-time.After(patience):
		t.Fatalf("the hourly run did not end within %s of getting the lock", patience)
	}
	if code := hourly.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the hourly run: exit %d:\n%s", code, hourlyLog.String())
	}
	// The transfer under way when it started, and at most one more begun
	// before it reached the lock (a slow start).
	if transfers > 1 {
		t.Errorf("the follower started %d transfers while the hourly run waited for the lock; want at most 1", transfers)
	}
	if n := l.summaryLines(t); n != 1 {
		t.Errorf("%d summary lines after the hourly run, want 1", n)
	}
	f.arrive(t, l, big...)
	if st := f.state(t); st.State != Following || f.exited() {
		t.Errorf("after the hourly run: state %q, exited %v", st.State, f.exited())
	}
	f.stop(t)
	if got, want := regularFiles(t, l.standby), regularFiles(t, l.prod); !slices.Equal(got, want) {
		t.Errorf("the standby has %q, production %q", got, want)
	}
	wantNotices(t, f.notices(t, 0), "info: following ", "info: stopped by a signal")
}

// Production's listing is untrusted, end to end: a find on production that
// names a directory above FILESTORE, or an absolute one, next to a real new
// bucket, or a clock reading that is no number, makes the cycle refuse the
// whole listing (one notice, state retrying), copy nothing, and the
// follower goes on: once production answers properly again, what it stored
// meanwhile arrives.
func TestFollowHostileListing(t *testing.T) {
	l := newLab(t, map[string]string{"FOLLOW_INTERVAL": "1"})
	l.p.WriteConfig(t, l.conf, l.config())
	// On production, FILESTORE's parent holds what it alone has, so that
	// a copy from "FILESTORE/../secret" would show on the standby.
	parent := filepath.Dir(l.standby)
	prodParent := prodlab.Mkdir(t, filepath.Join(filepath.Dir(l.prod), "production-parent"))
	prodlab.Mkdir(t, filepath.Join(prodParent, "filestore"))
	prodlab.WriteFile(t, filepath.Join(prodParent, "secret", "ab", "x"), "production's own\n")
	l.p.Exec(t, "mount", "--bind", prodParent, parent)
	l.p.Exec(t, "mount", "--bind", l.prod, l.standby)
	if got := l.p.Exec(t, "cat", filepath.Join(parent, "secret", "ab", "x")); got != "production's own\n" {
		t.Fatalf("production's %s/secret: %q", parent, got)
	}
	f := startFollow(t, l)

	phases := []struct {
		name, tool, want string
		script           func(bucket string) string
		refusals         int // failed listings before production answers properly again
	}{
		{"above FILESTORE", "/usr/bin/find", `"./../secret" is not a directory inside the filestore`, func(b string) string {
			return `#!/bin/sh` + "\n" + `printf './db1\000./` + b + `\000./../secret\000'` + "\n"
		}, 2},
		{"absolute", "/usr/bin/find", `"/etc" is not a directory inside the filestore`, func(b string) string {
			return `#!/bin/sh` + "\n" + `printf './db1\000./` + b + `\000/etc\000'` + "\n"
		}, 1},
		{"clock", "/usr/bin/date", `bad clock reading "$(reboot)"`, func(string) string {
			return "#!/bin/sh\necho '$(reboot)'\n"
		}, 1},
	}
	want := []string{"info: following "}
	for i, ph := range phases {
		// Stored once production answers with the shim: no cycle could
		// have copied it from a proper listing.
		name := casName("db1", []byte(fmt.Sprintf("db1 attachment %d\n", 10+i)))
		restore := shim(t, l, ph.tool, fmt.Sprintf("hostile%d", i), ph.script(filepath.Dir(name)))
		mark := f.mark()
		if got := casFill(t, l.prod, "db1", 10+i, 1)[0]; got != name {
			t.Fatalf("casFill wrote %s, want %s", got, name)
		}
		st := f.waitState(t, ph.name+": state retrying", func(st FollowState) bool {
			if prodlab.Exists(filepath.Join(l.standby, name)) {
				t.Fatalf("%s: %s copied from a hostile listing", ph.name, name)
			}
			return st.State == Retrying
		})
		if !strings.Contains(st.LastError, ph.want) {
			t.Errorf("%s: last_error %q, want %q", ph.name, st.LastError, ph.want)
		}
		f.waitFor(t, ph.name+": refused listings", func() bool { return f.count(t, mark, listing) >= ph.refusals })
		if prodlab.Exists(filepath.Join(l.standby, name)) {
			t.Errorf("%s: %s copied from a refused listing", ph.name, name)
		}
		if n := f.count(t, mark, transferRun); n != 0 {
			t.Errorf("%s: %d transfers from a refused listing", ph.name, n)
		}
		restore()
		f.arrive(t, l, name)
		f.waitState(t, ph.name+": state following", func(st FollowState) bool { return st.State == Following })
		want = append(want, "warn: retrying with back-off (up to every 5m0s): refused production's listing of "+l.standby, "info: following again: ")
	}
	f.stop(t)
	wantNotices(t, f.notices(t, 0), append(want, "info: stopped by a signal")...)
	for _, p := range []string{filepath.Join(parent, "secret"), filepath.Join(l.standby, "secret"), filepath.Join(l.standby, "etc")} {
		if prodlab.Exists(p) {
			t.Errorf("%s exists on the standby", p)
		}
	}
	if got, want := regularFiles(t, l.standby), regularFiles(t, l.prod); !slices.Equal(got, want) {
		t.Errorf("the standby has %q, production %q", got, want)
	}
}

// A transfer cut short by SIGTERM: the files that arrived whole stay, each
// matching its name, and count in the state file's copied.
func TestFollowStoppedMidTransfer(t *testing.T) {
	l := newLab(t, map[string]string{"FOLLOW_INTERVAL": "1", "RSYNC_BWLIMIT": "2048"})
	l.p.WriteConfig(t, l.conf, l.config())
	f := startFollow(t, l)
	big := fill(t, l.prod, "db2", 0, 6, 1<<20) // 3 s at 2 MiB/s
	arrived := func() (n int) {
		for _, b := range big {
			if prodlab.Exists(filepath.Join(l.standby, b)) {
				n++
			}
		}
		return n
	}
	f.waitFor(t, "part of the transfer", func() bool { n := arrived(); return n >= 1 && n <= 4 })
	st := f.stop(t)
	n := arrived()
	t.Logf("%d of %d files arrived before SIGTERM", n, len(big))
	for _, b := range big {
		if p := filepath.Join(l.standby, b); prodlab.Exists(p) {
			if ok, err := Matches(p, filepath.Base(b)); !ok || err != nil {
				t.Errorf("%s arrived damaged (%v)", b, err)
			}
		}
	}
	if st.Copied != int64(n) || st.Rejected != 0 {
		t.Errorf("state: copied %d, rejected %d; but %d files arrived whole", st.Copied, st.Rejected, n)
	}
}
