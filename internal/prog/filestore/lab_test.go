package filestore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/ssh"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// binary is ot-attachments-sync built once for the package's tests: the
// tests run it as cron does, in a process of its own.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ot-filestore-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, Name)
	build := exec.Command("go", "build", "-o", binary, "../../../cmd/ot-attachments-sync")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		os.Stderr.WriteString("building ot-attachments-sync failed\n")
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lab is a production with a filestore, and a standby's copy at the same path.
type lab struct {
	p       *prodlab.Prod
	standby string // FILESTORE, on the host (the standby)
	prod    string // host dir that production sees at FILESTORE
	conf    string
	state   string // summary, run log and lock: they outlive a production restart
	extra   map[string]string
}

func newLab(t testing.TB, extra map[string]string) *lab {
	t.Helper()
	prodlab.Require(t, "ssh", "rsync")
	tmp := t.TempDir()
	os.Chmod(tmp, 0o755)
	l := &lab{standby: filepath.Join(tmp, "standby", "filestore"), prod: filepath.Join(tmp, "production"), state: filepath.Join(tmp, "state"), extra: extra}
	for _, d := range []string{l.standby, l.prod, l.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l.start(t)
	return l
}

// start (re)starts production and writes the configuration for it.
func (l *lab) start(t testing.TB) {
	t.Helper()
	l.p = prodlab.Start(t, prodlab.Options{Binds: map[string]string{l.standby: l.prod}})
	l.conf = filepath.Join(l.p.Dir, "ot.conf")
	l.p.WriteConfig(t, l.conf, l.config())
}

// config is the configuration's keys for this lab.
func (l *lab) config() map[string]string {
	kv := map[string]string{
		"FILESTORE":   l.standby,
		"ODOO_USER":   "daemon",
		"ODOO_GROUP":  "daemon",
		"LOCK_WAIT":   "0",
		"PG_CLUSTER":  "99/none", // whatever PostgreSQL this host runs is not ours
		"SUMMARYFILE": filepath.Join(l.state, "summary.log"),
		"RUN_LOG":     filepath.Join(l.state, "runs.log"),
		"LOCK_FILE":   filepath.Join(l.state, "lock"),
		"STATE_DIR":   filepath.Join(l.state, "lib"),
	}
	for k, v := range l.extra {
		kv[k] = v
	}
	return kv
}

type result struct {
	code           int
	stdout, stderr string
}

func (l *lab) run(t testing.TB, args ...string) result {
	t.Helper()
	cmd := l.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return result{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

func (l *lab) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"--config", l.conf}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}

// newJob is what job.Sync gives a program's body: configuration, runner and
// the run's one ssh connection, here dialled once for a whole test or benchmark.
func (l *lab) newJob(b testing.TB) *job.Job {
	j := l.offlineJob(b)
	target, err := job.Target(j.Cfg)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := ssh.Dial(context.Background(), &run.Runner{}, target)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	j.SSH = conn
	return j
}

// offlineJob is a job with this lab's configuration and a runner, not
// connected yet.
func (l *lab) offlineJob(b testing.TB) *job.Job {
	cfg, err := config.Load(l.conf)
	if err != nil {
		b.Fatal(err)
	}
	runner := &run.Runner{}
	env := &cli.Env{Prog: Name, Ctx: context.Background(), Stdout: io.Discard, Stderr: os.Stderr, Log: zerolog.Nop(), Runner: runner, G: &cli.Globals{}}
	return &job.Job{Env: env, Name: Name, Cfg: cfg, Runner: runner, Start: time.Now()}
}

func (l *lab) summaryLines(t testing.TB) int {
	data, err := os.ReadFile(filepath.Join(l.state, "summary.log"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), ":  "+Name+"\n")
}

// logins counts the ssh connections production accepted.
func (l *lab) logins(t testing.TB) int {
	data, err := os.ReadFile(filepath.Join(l.p.Dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "Accepted publickey for odoo")
}

func writeFile(t testing.TB, path string, size int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte(filepath.Base(path)+"\n"), size/(len(filepath.Base(path))+1)+1)[:size]
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// fill writes n Odoo attachments (db/xx/sha1, named by the SHA-1 of their
// content) of size bytes under dir; the same arguments give the same files.
func fill(t testing.TB, dir, db string, from, n, size int) []string {
	t.Helper()
	var names []string
	for i := from; i < from+n; i++ {
		data := content(db+strconv.Itoa(i), size)
		rel := casName(db, data)
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, rel)
	}
	return names
}

// content is size bytes made from seed.
func content(seed string, size int) []byte {
	return bytes.Repeat([]byte(seed+"\n"), size/(len(seed)+1)+1)[:size]
}

// casName is data's content-addressed name in db.
func casName(db string, data []byte) string {
	sum := fmt.Sprintf("%x", sha1.Sum(data))
	return filepath.Join(db, sum[:2], sum)
}

// snapshot describes a tree: path, type, mode, owner, size, mtime, content.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d %d %d", fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		m[strings.TrimPrefix(p, root)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// files keeps the regular files of a snapshot, without owner and mtime: a
// refused run has copied production's directory attributes, nothing else.
func files(snap map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range snap {
		if f := strings.Fields(v); strings.HasPrefix(v, "-") {
			m[k] = f[0] + " " + f[2] + " " + f[4]
		}
	}
	return m
}

func sameTree(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %q changed: %q -> %q", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %q appeared", what, k)
		}
	}
}

// The sync mirrors production, safely: owner forced, no setuid, no special
// files, no symlink leaving the tree, extra files deleted after the copy;
// silent for cron, one summary line, one ssh connection per run.
func TestMirror(t *testing.T) {
	l := newLab(t, nil)
	names := fill(t, l.prod, "db1", 0, 60, 3000)
	fill(t, l.standby, "db1", 0, 58, 3000) // the standby has most already
	writeFile(t, filepath.Join(l.prod, "db1", "checklist", "abc"), 10, 0o644)
	writeFile(t, filepath.Join(l.prod, "db1", "ab", "setuid"), 10, 0o755)
	syscall.Chmod(filepath.Join(l.prod, "db1", "ab", "setuid"), 0o6755)
	writeFile(t, filepath.Join(l.prod, "db1", "ab", "changed"), 50, 0o644)
	writeFile(t, filepath.Join(l.standby, "db1", "ab", "changed"), 20, 0o644)
	os.Symlink("/etc/shadow", filepath.Join(l.prod, "db1", "evil"))
	os.Symlink("ab/changed", filepath.Join(l.prod, "db1", "good"))
	syscall.Mkfifo(filepath.Join(l.prod, "db1", "fifo"), 0o644)
	writeFile(t, filepath.Join(l.standby, "db1", "ff", "gone"), 10, 0o644)     // production deleted it
	writeFile(t, filepath.Join(l.prod, "db1", "ab", "new\nline é"), 10, 0o644) // names arrive exactly
	writeFile(t, filepath.Join(l.standby, "db1", "ab", "new\nline é"), 10, 0o644)
	writeFile(t, filepath.Join(l.standby, "db1", "ab", "gone\tç"), 10, 0o644)
	writeFile(t, filepath.Join(l.standby, "olddb", "x", "gone"), 10, 0o644)

	logins := l.logins(t)
	r := l.run(t)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("sync: exit %d, stdout %q, stderr %q; want 0 and silence", r.code, r.stdout, r.stderr)
	}
	if got := l.logins(t) - logins; got != 1 {
		t.Errorf("the run opened %d ssh connections, want 1", got)
	}
	for _, n := range append(names, "db1/checklist/abc", "db1/ab/changed") {
		want, _ := os.ReadFile(filepath.Join(l.prod, n))
		got, err := os.ReadFile(filepath.Join(l.standby, n))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s not mirrored: %v", n, err)
		}
	}
	fi, err := os.Stat(filepath.Join(l.standby, "db1", "ab", "setuid"))
	if err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("setuid file: %v %v; want 0755 without setuid/setgid", fi.Mode(), err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1 || st.Gid != 1 {
		t.Errorf("owner %d:%d, want daemon (1:1)", st.Uid, st.Gid)
	}
	if prodlab.Exists(filepath.Join(l.standby, "db1", "evil")) || prodlab.Exists(filepath.Join(l.standby, "db1", "fifo")) {
		t.Errorf("an unsafe symlink or a fifo was copied")
	}
	if target, err := os.Readlink(filepath.Join(l.standby, "db1", "good")); err != nil || target != "ab/changed" {
		t.Errorf("safe symlink: %q %v", target, err)
	}
	if !prodlab.Exists(filepath.Join(l.standby, "db1", "ab", "new\nline é")) || prodlab.Exists(filepath.Join(l.standby, "db1", "ab", "gone\tç")) {
		t.Errorf("names with control or non-ASCII characters are not mirrored exactly")
	}
	if prodlab.Exists(filepath.Join(l.standby, "db1", "ff", "gone")) || prodlab.Exists(filepath.Join(l.standby, "olddb")) {
		t.Errorf("files gone from production are still on the standby")
	}
	if n := l.summaryLines(t); n != 1 {
		t.Errorf("%d summary lines, want 1", n)
	}

	// Nothing changed: no file is rewritten, one more summary line.
	before := files(snapshot(t, l.standby))
	if r := l.run(t); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("second sync: %+v", r)
	}
	sameTree(t, "unchanged sync", before, files(snapshot(t, l.standby)))
	if n := l.summaryLines(t); n != 2 {
		t.Errorf("%d summary lines, want 2", n)
	}

	// A dry run lists what would change, and changes nothing.
	fill(t, l.prod, "db1", 100, 2, 100)
	writeFile(t, filepath.Join(l.standby, "db1", "ff", "stale"), 10, 0o644)
	before = snapshot(t, l.standby)
	r = l.run(t, "-n")
	if r.code != 0 {
		t.Fatalf("dry run: %+v", r)
	}
	for _, want := range []string{"\nadd     db1/", "\ndelete  db1/ff/stale\n", "would add 2, change 0 and delete 1 of the standby's", "\nrsync -a "} {
		if !strings.Contains("\n"+r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.stdout)
		}
	}
	sameTree(t, "dry run", before, snapshot(t, l.standby))
	if n := l.summaryLines(t); n != 2 {
		t.Errorf("a dry run wrote a summary line")
	}
}

// Production's filestore empty, missing or unreadable: the standby is left
// byte-identical, the run fails and writes no summary line.
func TestEmptyProduction(t *testing.T) {
	l := newLab(t, nil)
	fill(t, l.standby, "db1", 0, 10, 100)
	before := snapshot(t, l.standby)
	check := func(what, want string) {
		t.Helper()
		r := l.run(t)
		if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.HasPrefix(r.stderr, Name+": error: ") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", what, r.code, r.stderr, want)
		}
		sameTree(t, what, before, snapshot(t, l.standby))
		if n := l.summaryLines(t); n != 0 {
			t.Errorf("%s: summary line written", what)
		}
	}
	check("empty", "holds no files (an unmounted disk?), nothing on the standby was changed")

	// Only empty database directories: no files at all.
	os.MkdirAll(filepath.Join(l.prod, "db1", "ab"), 0o755)
	check("no files", "holds no files")

	os.Chmod(l.prod, 0o700)
	check("unreadable", "is not readable by odoo, nothing on the standby was changed")
	os.Chmod(l.prod, 0o755)

	// Files only in a folder odoo cannot enter: find fails, nothing found.
	writeFile(t, filepath.Join(l.prod, "db1", "ab", "hidden"), 10, 0o644)
	os.Chmod(filepath.Join(l.prod, "db1"), 0o700)
	check("unreadable folder", "is not readable by odoo, nothing on the standby was changed")
	os.Chmod(filepath.Join(l.prod, "db1"), 0o755)
	os.Remove(filepath.Join(l.prod, "db1", "ab", "hidden"))

	// Missing: production's filestore is a path that does not exist.
	l.p.Exec(t, "mount", "-t", "tmpfs", "tmpfs", filepath.Dir(l.standby))
	check("missing", "does not exist, nothing on the standby was changed")
	l.p.Exec(t, "umount", filepath.Dir(l.standby))

	writeFile(t, filepath.Join(l.prod, "db1", "ab", "secret"), 10, 0o600) // odoo cannot read it
	writeFile(t, filepath.Join(l.prod, "db1", "ab", "ok"), 10, 0o644)
	writeFile(t, filepath.Join(l.prod, "db1", "00", "readable"), 10, 0o644)
	os.Chmod(filepath.Join(l.prod, "db1", "ab"), 0o700)
	r := l.run(t)
	if r.code != 1 || !strings.Contains(r.stderr, "failed, nothing was deleted: some files could not be transferred") {
		t.Errorf("unreadable subdirectory: %+v", r)
	}
	t.Logf("unreadable subdirectory: %s", r.stderr)
	for k := range before {
		if !prodlab.Exists(l.standby + k) {
			t.Errorf("%s deleted after a failed transfer", k)
		}
	}
}

// A deletion above MAX_DELETE_PERCENT is refused with the counts; --force
// applies it.
func TestRefuseMassDeletion(t *testing.T) {
	l := newLab(t, nil)
	fill(t, l.prod, "db1", 0, 10, 100)
	fill(t, l.standby, "db1", 0, 100, 100)
	before := files(snapshot(t, l.standby))
	r := l.run(t)
	want := "refused to delete 90 of the standby's 100 files in " + l.standby + " (90.0%, above MAX_DELETE_PERCENT=5%): nothing was deleted"
	if r.code != 8 || !strings.Contains(r.stderr, want) || !strings.HasSuffix(r.stderr, "run ot-attachments-sync --force\n") {
		t.Fatalf("exit %d, stderr %q; want 8 and %q", r.code, r.stderr, want)
	}
	sameTree(t, "refused", before, files(snapshot(t, l.standby)))
	if n := l.summaryLines(t); n != 0 {
		t.Errorf("refused run wrote a summary line")
	}
	if r := l.run(t, "--force"); r.code != 0 {
		t.Fatalf("--force: %+v", r)
	}
	if got := len(snapshot(t, l.standby)); got != len(snapshot(t, l.prod)) {
		t.Errorf("after --force the standby has %d entries, production %d", got, len(snapshot(t, l.prod)))
	}
}

// Beyond maxKept names to delete, the limit is checked on rsync's count,
// and rsync deletes in a second pass.
func TestDeletionsBeyondKept(t *testing.T) {
	defer func(n int) { maxKept = n }(maxKept)
	maxKept = 5
	l := newLab(t, nil)
	fill(t, l.prod, "db1", 0, 100, 100)
	fill(t, l.standby, "db1", 0, 100, 100)
	fill(t, l.standby, "db2", 0, 20, 100)
	j := l.newJob(t)
	var log bytes.Buffer
	j.Env.Log = zerolog.New(&log).Level(zerolog.DebugLevel)
	var ce *cli.Error
	if err := Sync(j, Options{}); !errors.As(err, &ce) || ce.Code != cli.ExitRefused || !strings.Contains(ce.Msg, "refused to delete 20 of the standby's 120 files") {
		t.Fatalf("want the refusal, got %v", err)
	}
	if n := len(files(snapshot(t, l.standby))); n != 120 {
		t.Fatalf("the refused run left %d files, want 120", n)
	}
	if err := Sync(j, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "rsync deletes") {
		t.Errorf("the second pass did not run:\n%s", log.String())
	}
	sameNames(t, l.prod, l.standby)
}

// Production dies mid-transfer: the run fails, no deletion happens, no
// summary line is written, no file is visible half-written; a second run
// started meanwhile names the holder of the lock; the next run resumes
// without re-sending what arrived.
func TestKilledMidTransfer(t *testing.T) {
	l := newLab(t, nil)
	const big = 24 << 20
	for i := range 40 {
		p := filepath.Join(l.prod, "db1", fmt.Sprintf("%02x", i), fmt.Sprintf("big%02d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		// Random-ish content, so nothing compresses or is sparse.
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), 1<<17)
		for n := 0; n < big; n += len(chunk) {
			f.Write(chunk)
		}
		f.Close()
	}
	// Enough small files that the pending deletion, and an rsync temporary
	// file a cut transfer may leave, stay under MAX_DELETE_PERCENT.
	fill(t, l.prod, "db1", 0, 60, 100)
	fill(t, l.standby, "db1", 0, 60, 100)
	writeFile(t, filepath.Join(l.standby, "db1", "ff", "gone"), 10, 0o644)

	// Wait until n big files have arrived under their real names.
	waitArrived := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for arrivedAll(t, l) < n {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d files arrived in 60s", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// The deadline: a transfer that takes too long is stopped, deleting nothing.
	l.extra = map[string]string{"FILESTORE_TIMEOUT": "1"}
	l.p.WriteConfig(t, l.conf, l.config())
	r := l.run(t)
	if r.code != 1 || !strings.Contains(r.stderr, "took longer than FILESTORE_TIMEOUT=1s and was stopped, nothing was deleted") {
		t.Fatalf("deadline: %+v", r)
	}
	if !prodlab.Exists(filepath.Join(l.standby, "db1", "ff", "gone")) || l.summaryLines(t) != 0 {
		t.Fatalf("deadline: a deletion was applied or a summary line written")
	}
	// The runs below are cut mid-way: a bandwidth limit (24 MiB files at
	// 20 MiB/s) keeps them from finishing first on a fast, idle machine.
	l.extra = map[string]string{"RSYNC_BWLIMIT": "20480"}
	l.p.WriteConfig(t, l.conf, l.config())

	// SIGTERM mid-transfer: interrupted, nothing deleted, no summary line,
	// no rsync left behind.
	base := arrivedAll(t, l)
	cmd := l.command()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitArrived(base + 2)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("SIGTERM: exit %d, stderr %q; want 130, interrupted", code, errb.String())
	}
	if !prodlab.Exists(filepath.Join(l.standby, "db1", "ff", "gone")) || l.summaryLines(t) != 0 {
		t.Fatalf("SIGTERM: a deletion was applied or a summary line written")
	}
	if out, _ := exec.Command("pgrep", "-f", "rsync .*"+l.standby).Output(); len(out) > 0 {
		t.Errorf("rsync still runs after SIGTERM: pids %s", out)
	}
	afterTerm := arrivedAll(t, l)
	if afterTerm >= 40 {
		t.Fatalf("SIGTERM came too late: all files arrived")
	}

	cmd = l.command()
	errb.Reset()
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitArrived(afterTerm + 2)

	// The lock: a second run gives up at once naming the first.
	r = l.run(t)
	if want := fmt.Sprintf("is held by pid %d", cmd.Process.Pid); r.code != 6 || !strings.Contains(r.stderr, want) {
		t.Errorf("second run: exit %d, stderr %q; want 6 and %q", r.code, r.stderr, want)
	}

	l.p.Stop()
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code != 1 || !strings.Contains(errb.String(), "nothing was deleted") {
		t.Fatalf("killed transfer: exit %d, stderr %q; want 1 and nothing deleted", code, errb.String())
	}
	t.Logf("killed run: %s", strings.TrimSpace(errb.String()))
	if !prodlab.Exists(filepath.Join(l.standby, "db1", "ff", "gone")) {
		t.Errorf("a deletion was applied after a failed transfer")
	}
	if n := l.summaryLines(t); n != 0 {
		t.Errorf("summary line written by a failed run")
	}
	// Every file under its real name is whole; remember which arrived.
	inodes := map[string]uint64{}
	filepath.WalkDir(l.standby, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			// rsync removes it unless it was stopped first (under load its
			// receiver sometimes is): a dot name, never the real one, and
			// the next run deletes it (checked below).
			t.Logf("rsync's temporary file %s left behind", p)
		}
		if !strings.HasPrefix(d.Name(), "big") {
			return nil
		}
		fi, _ := os.Stat(p)
		if fi.Size() != big {
			t.Errorf("%s visible half-written: %d bytes", p, fi.Size())
		}
		inodes[p] = fi.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if len(inodes) == 0 || len(inodes) == 40 {
		t.Fatalf("%d of 40 big files arrived: the transfer was not cut mid-way", len(inodes))
	}

	// Production is back: the next run completes, keeping what arrived.
	l.extra = nil
	l.start(t)
	if r := l.run(t); r.code != 0 {
		t.Fatalf("resumed run: %+v", r)
	}
	for p, ino := range inodes {
		fi, err := os.Stat(p)
		if err != nil || fi.Sys().(*syscall.Stat_t).Ino != ino {
			t.Errorf("%s was sent again", p)
		}
	}
	if got, want := arrivedAll(t, l), 40; got != want {
		t.Errorf("%d big files after the resumed run, want %d", got, want)
	}
	if prodlab.Exists(filepath.Join(l.standby, "db1", "ff", "gone")) {
		t.Errorf("the deletion was not applied by the successful run")
	}
	filepath.WalkDir(l.standby, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("%s is left after the resumed run", p)
		}
		return nil
	})
	if n := l.summaryLines(t); n != 1 {
		t.Errorf("%d summary lines after the resumed run, want 1", n)
	}
}

func arrivedAll(t testing.TB, l *lab) (n int) {
	filepath.WalkDir(l.standby, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "big") {
			n++
		}
		return nil
	})
	return n
}

// A terminal is told what happened; cron (above) hears nothing.
func TestTerminal(t *testing.T) {
	l := newLab(t, nil)
	fill(t, l.prod, "db1", 0, 2000, 100)
	out := l.runOnTerminal(t)
	for _, want := range []string{"100%", "filestore synced: 2000 files on production, 2000 copied, 0 deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output %q lacks %q", out, want)
		}
	}
	// Deletions among transfers: rsync's debug lines, which name them and
	// may follow a progress line on the same line (enough files that rsync
	// recurses incrementally, as it does with real filestores), are read,
	// never shown.
	for i := range 200 {
		writeFile(t, filepath.Join(l.prod, "db1", fmt.Sprintf("%02x", i), "new"), 200<<10, 0o644)
		writeFile(t, filepath.Join(l.standby, "db1", fmt.Sprintf("%02x", i), "stale"), 10, 0o644)
	}
	out = l.runOnTerminal(t, "--force", "-v")
	if want := "filestore synced: 2200 files on production, 200 copied, 200 deleted"; !strings.Contains(out, want) {
		t.Errorf("terminal output %q lacks %q", out, want)
	}
	if strings.Contains(out, "delete_") || strings.Contains(out, "rsync deletes") {
		t.Errorf("terminal output %q shows rsync's debug lines, or rsync had to delete", out)
	}
	sameNames(t, l.prod, l.standby)
}

// runOnTerminal runs ot-attachments-sync with a pseudo-terminal as its
// stdout and stderr, and returns what it showed.
func (l *lab) runOnTerminal(t *testing.T, args ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	cmd := l.command(args...)
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	out, _ := io.ReadAll(ptmx) // EIO once the program has exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}

// sameNames fails unless the two trees hold the same paths.
func sameNames(t testing.TB, want, got string) {
	t.Helper()
	w, g := snapshot(t, want), snapshot(t, got)
	for k := range w {
		if _, ok := g[k]; !ok {
			t.Errorf("%s lacks %s", got, k)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s has %s, %s has not", got, k, want)
		}
	}
}
