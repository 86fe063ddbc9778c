package promote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/pglab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// TestMain puts ot-disable-standby-mode on PATH (testscript.Main: the test
// binary plays it under that name), so the tests run the real command in a
// subprocess (inside a private mount namespace). With OT_PROMOTE_HOLD_LOCK
// it plays a sync holding the lock until killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("OT_PROMOTE_HOLD_LOCK"); path != "" {
		held, err := lock.Acquire(context.Background(), path, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("locked")
		// Sleep, not select{}: with nothing left to run, the runtime would
		// end the process as deadlocked and so drop the lock. KeepAlive keeps
		// the lock's file from being closed by the garbage collector.
		for {
			time.Sleep(time.Hour)
			runtime.KeepAlive(held)
		}
	}
	testscript.Main(m, map[string]func(){prog: func() { os.Exit(Main(os.Args[1:])) }})
}

// self is the command under test, as testscript.Main put it on PATH.
func self(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath(prog)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// holdLock starts a process that holds the lab's lock, named argv0.
func (l *lab) holdLock(t testing.TB, argv0 string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Args[0] = argv0
	cmd.Env = append(os.Environ(), "OT_PROMOTE_HOLD_LOCK="+l.config(t).Get(config.LockFile))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 7)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "locked\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	return cmd
}

// lab is a standby machine: a real PostgreSQL primary ("production") and its
// streaming standby, an ot-redundancy configuration pointing at them, and a
// fake Odoo: an LSB init script whose daemon is a tiny HTTP server. The
// command runs in a private mount namespace where /etc/init.d and /etc/rc?.d
// are the lab's, so the real update-rc.d and service manage the fake Odoo
// without touching the host.
type lab struct {
	dir       string
	bin       string   // the command's binary; "" means this test binary
	env       []string // extra environment of the command
	primary   *pglab.Cluster
	standby   *pglab.Cluster
	conf      string
	service   string
	odooURL   string
	reportDir string
	syncTimes map[string]time.Time // what the summary file says
}

func newLab(t testing.TB, extra map[string]string) *lab {
	t.Helper()
	return newLabWith(t, extra, false)
}

// newDebianLab registers the standby as Debian cluster 15/lab in a private
// postgresql-common configuration root (PG_CLUSTER_CONF_ROOT) and leaves the
// PG_* keys unset, so the command finds it with pg_lsclusters, as on a
// Debian standby.
func newDebianLab(t testing.TB) *lab {
	t.Helper()
	return newLabWith(t, nil, true)
}

func newLabWith(t testing.TB, extra map[string]string, debian bool) *lab {
	t.Helper()
	pglab.Require(t)
	for _, tool := range []string{"unshare", "mount", "update-rc.d", "service", "start-stop-daemon", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			prodlab.Missing(t, "integration test needs "+tool)
		}
	}
	l := &lab{dir: t.TempDir()}
	l.primary = pglab.StartPrimary(t)
	l.primary.Exec(t, "CREATE TABLE sale_order (id int PRIMARY KEY, name text); INSERT INTO sale_order SELECT n, 'SO' || n FROM generate_series(1, 100) n")
	l.standby = pglab.StartStandby(t, l.primary)
	l.primary.Exec(t, "INSERT INTO sale_order VALUES (101, 'SO101')")
	l.standby.WaitReplay(t, l.primary)

	l.service = fmt.Sprintf("ot-test-odoo-%d", os.Getpid()%100000)
	port := freePort(t)
	l.odooURL = fmt.Sprintf("http://127.0.0.1:%d/web/health", port)
	l.reportDir = filepath.Join(l.dir, "reports")
	for _, d := range []string{"init.d", "www/web", "systemd", "rc0.d", "rc1.d", "rc2.d", "rc3.d", "rc4.d", "rc5.d", "rc6.d", "rcS.d"} {
		prodlab.Mkdir(t, filepath.Join(l.dir, d))
	}
	prodlab.WriteFile(t, filepath.Join(l.dir, "www/web/health"), `{"status": "pass"}`)
	prodlab.WriteFileMode(t, filepath.Join(l.dir, "init.d", l.service), prodlab.OdooInitScript(l.service, l.dir, port), 0o755)
	t.Cleanup(func() {
		// The fake Odoo outlives the command; it keeps the namespace alive.
		if b, err := os.ReadFile(filepath.Join(l.dir, "odoo.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	sum := filepath.Join(l.dir, "log", "ot-redundancy-sync-timestamps.log")
	l.syncTimes = map[string]time.Time{
		"ot-attachment-sync":  time.Now().Add(-40 * time.Minute),
		"ot-sync-from-source": time.Now().Add(-72 * time.Hour),
	}
	for name, at := range l.syncTimes {
		if err := summary.Append(sum, at, name); err != nil {
			t.Fatal(err)
		}
	}
	kv := map[string]string{
		"SYNCMODE":        "on",
		"SYNCSRC":         "127.0.0.1",
		"PROD_PG_PORT":    strconv.Itoa(l.primary.Port),
		"SSH_PORT":        strconv.Itoa(freePort(t)), // nothing listens: production's ssh is down
		"SUMMARYFILE":     sum,
		"RUN_LOG":         filepath.Join(l.dir, "log", "runs.log"),
		"LOCK_FILE":       filepath.Join(l.dir, "ot-redundancy.lock"),
		"LOCK_WAIT":       "5",
		"REPORT_DIR":      l.reportDir,
		"PG_DATA":         l.standby.Data,
		"PG_BINDIR":       l.standby.BinDir,
		"PG_HOST":         l.standby.Socket,
		"PG_PORT":         strconv.Itoa(l.standby.Port),
		"PG_OSUSER":       l.standby.OSUser,
		"PROMOTE_TIMEOUT": "30",
		"ODOO_SERVICE":    l.service,
		"ODOO_URL":        l.odooURL,
		"ODOO_TIMEOUT":    "15",
	}
	if debian {
		root := filepath.Join(l.dir, "postgresql-common")
		prodlab.Mkdir(t, filepath.Join(root, "15", "lab"))
		prodlab.WriteFileMode(t, filepath.Join(root, "15", "lab", "postgresql.conf"), fmt.Sprintf("data_directory = '%s'\nport = %d\nunix_socket_directories = '%s'\n",
			l.standby.Data, l.standby.Port, l.standby.Socket), 0o644)
		l.env = append(l.env, "PG_CLUSTER_CONF_ROOT="+root)
		for _, k := range []string{"PG_DATA", "PG_BINDIR", "PG_HOST", "PG_PORT", "PG_OSUSER"} {
			delete(kv, k)
		}
	}
	for k, v := range extra {
		kv[k] = v
	}
	var b strings.Builder
	b.WriteString("# ot-disable-standby-mode test\n")
	for _, k := range config.Defs {
		if v, ok := kv[k.Name]; ok {
			fmt.Fprintf(&b, "%s=%s\n", k.Name, config.Quote(v))
		}
	}
	l.conf = filepath.Join(l.dir, "ot-redundancy-sync.conf")
	prodlab.WriteFileMode(t, l.conf, b.String(), 0o600)
	return l
}

// nsScript runs the command with the lab's init directories over the host's.
const nsScript = `set -e
lab=$1; shift
mount --bind "$lab/init.d" /etc/init.d
mount --bind "$lab/systemd" /etc/systemd/system
for d in 0 1 2 3 4 5 6 S; do mount --bind "$lab/rc$d.d" /etc/rc$d.d; done
date +%s.%N >"$lab/exec-time" # for the benchmark: the command starts now
exec "$@"`

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// input says what the command's standard input is.
type input struct {
	tty    bool   // a terminal (a pty) rather than a pipe
	answer string // what the operator types
}

// run runs ot-disable-standby-mode with args against the lab.
func (l *lab) run(t testing.TB, in input, args ...string) result {
	t.Helper()
	bin := self(t)
	if l.bin != "" {
		bin = l.bin
	}
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c", nsScript, "sh", l.dir, bin, "--config", l.conf}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", argv...)
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), l.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if in.tty {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		defer tty.Close()
		cmd.Stdin = tty
		// The line discipline keeps the answer until the prompt reads it.
		if _, err := ptmx.Write([]byte(in.answer)); err != nil {
			t.Fatal(err)
		}
		go func() { // drain the echo so the pty never blocks
			buf := make([]byte, 1024)
			for {
				if _, err := ptmx.Read(buf); err != nil {
					return
				}
			}
		}()
	} else {
		cmd.Stdin = strings.NewReader(in.answer)
	}
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the command: %v\n%s", err, res)
	}
	t.Logf("ot-disable-standby-mode %s\n%s", strings.Join(args, " "), res)
	return res
}

// interruptAtPrompt starts the command on a terminal, waits for its
// question and sends SIGINT, as Ctrl-C would; it returns the result.
func (l *lab) interruptAtPrompt(t testing.TB) result {
	t.Helper()
	bin := self(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", nsScript, "sh", l.dir, bin, "--config", l.conf)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = tty, &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for !bytes.Contains(out.Bytes(), []byte("[y/N]")) {
		n, err := stdout.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("no question asked: %v\n%s", err, out.String())
		}
	}
	// unshare and sh exec'd: the pid is the command's.
	cmd.Process.Signal(syscall.SIGINT)
	rest, _ := io.ReadAll(stdout)
	out.Write(rest)
	err = cmd.Wait()
	res := result{stdout: out.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	}
	t.Logf("ot-disable-standby-mode, interrupted at the question\n%s", res)
	return res
}

// inRecovery reports whether the standby is still a standby.
func (l *lab) inRecovery(t testing.TB) bool {
	return l.standby.Query(t, "SELECT pg_is_in_recovery()") == "t"
}

func (l *lab) timeline(t testing.TB) int {
	n, _ := strconv.ParseInt(l.standby.Query(t, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16, 64)
	return int(n)
}

func (l *lab) config(t testing.TB) *config.Config {
	t.Helper()
	c, err := config.Load(l.conf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (l *lab) confText(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(l.conf)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (l *lab) reports(t testing.TB) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(l.reportDir, "*.txt"))
	return m
}

// assertUnchanged checks that a refused run changed nothing.
func (l *lab) assertUnchanged(t testing.TB, confBefore string) {
	t.Helper()
	if !l.inRecovery(t) {
		t.Error("the standby left recovery")
	}
	if l.confText(t) != confBefore {
		t.Errorf("the configuration changed:\n%s", l.confText(t))
	}
	if r := l.reports(t); len(r) != 0 {
		t.Errorf("a report was written: %v", r)
	}
	if _, err := os.Stat(filepath.Join(l.dir, "odoo.pid")); err == nil {
		t.Error("Odoo was started")
	}
	if _, err := os.Stat(filepath.Join(l.dir, "rc2.d", "S01"+l.service)); err == nil {
		t.Error("Odoo was enabled at boot")
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
