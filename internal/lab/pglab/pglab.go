// Package pglab starts real PostgreSQL servers for tests: a primary and
// streaming standbys made with pg_basebackup -R, each in its own temporary
// directory, on a free loopback port, with its unix socket in that
// directory. It never touches the host's own clusters or their config.
package pglab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// BinDir is where the tests look for PostgreSQL 15's programs.
const BinDir = "/usr/lib/postgresql/15/bin"

// OSUser runs the servers: initdb refuses to run as root.
const OSUser = "postgres"

// Cluster is one running (or stopped) server of the lab.
type Cluster struct {
	Name   string // "primary", "standby", ...
	Dir    string // temporary root, owned by OSUser
	Data   string // data directory
	Socket string // unix socket directory
	Log    string // server log file
	Port   int
	BinDir string
	OSUser string

	uid, gid uint32
	listen   string // a further listen address
}

// Require skips the test unless it runs as root with PostgreSQL 15 and the
// postgres user present; with OT_REQUIRE_INTEGRATION=1 it fails instead.
func Require(t testing.TB) {
	t.Helper()
	miss := ""
	if os.Geteuid() != 0 {
		miss = "not root"
	} else if _, err := os.Stat(filepath.Join(BinDir, "pg_ctl")); err != nil {
		miss = "no PostgreSQL 15 in " + BinDir
	} else if _, err := user.Lookup(OSUser); err != nil {
		miss = "no " + OSUser + " user"
	}
	if miss == "" {
		return
	}
	prodlab.Missing(t, "integration test cannot run: "+miss)
}

// Options say how a cluster is made.
type Options struct {
	Name        string // "primary", "standby" when empty
	Checksums   bool   // initdb --data-checksums: pg_rewind can rewind it
	WalLogHints bool   // wal_log_hints = on: pg_rewind can rewind it too
	// Listen is a further loopback address the server listens on, besides
	// 127.0.0.1: the address of the prodlab host that plays this machine.
	Listen string
}

// StartPrimary initialises and starts a primary that accepts replication
// connections from loopback without a password, with neither data
// checksums nor wal_log_hints (as initdb makes it by default).
func StartPrimary(t testing.TB) *Cluster {
	t.Helper()
	return StartPrimaryWith(t, Options{})
}

// StartPrimaryWith is StartPrimary made as o says.
func StartPrimaryWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	Require(t)
	c := newCluster(t, or(o.Name, "primary"))
	c.listen = o.Listen
	argv := []string{filepath.Join(c.BinDir, "initdb"), "-D", c.Data, "-U", "postgres",
		"--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"}
	if o.Checksums {
		argv = append(argv, "--data-checksums")
	}
	c.run(t, argv...)
	c.appendConf(t, "wal_level = replica\nmax_wal_senders = 10\nwal_keep_size = '64MB'\n")
	if o.WalLogHints {
		c.appendConf(t, "wal_log_hints = on\n")
	}
	c.startOnFreePort(t)
	return c
}

// StartStandby copies primary with pg_basebackup -R and starts the copy as
// a streaming standby, waiting until its WAL receiver streams.
func StartStandby(t testing.TB, primary *Cluster) *Cluster {
	t.Helper()
	return StartStandbyWith(t, primary, Options{})
}

// StartStandbyWith is StartStandby made as o says: the copy keeps the
// primary's data checksums and settings; o.Listen is its own, and
// o.WalLogHints turns wal_log_hints on for it.
func StartStandbyWith(t testing.TB, primary *Cluster, o Options) *Cluster {
	t.Helper()
	c := newCluster(t, or(o.Name, "standby"))
	c.listen = o.Listen
	c.run(t, filepath.Join(c.BinDir, "pg_basebackup"), "-D", c.Data, "-R", "-X", "stream",
		"-c", "fast", "--no-sync", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres")
	if o.WalLogHints {
		c.appendConf(t, "wal_log_hints = on\n")
	}
	c.startOnFreePort(t)
	c.WaitStreaming(t)
	return c
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newCluster(t testing.TB, name string) *Cluster {
	t.Helper()
	u, err := user.Lookup(OSUser)
	if err != nil {
		t.Fatalf("pglab: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Not t.TempDir: its parents are private to root and the server runs as postgres.
	dir, err := os.MkdirTemp("", "pglab-"+name+"-")
	if err != nil {
		t.Fatalf("pglab: %v", err)
	}
	c := &Cluster{Name: name, Dir: dir, Data: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "sock"),
		Log: filepath.Join(dir, "server.log"), BinDir: BinDir, OSUser: OSUser, uid: uint32(uid), gid: uint32(gid)}
	t.Cleanup(func() {
		// Whoever started it (the test, or a command under test), a
		// server still running is stopped.
		if c.Running() {
			_ = c.pgctl(context.Background(), "stop", "-m", "immediate", "-t", "30")
		}
		if t.Failed() {
			if b, err := os.ReadFile(c.Log); err == nil {
				t.Logf("pglab %s server log:\n%s", c.Name, lastLines(string(b), 40))
			}
		}
		os.RemoveAll(dir)
	})
	if err := os.Mkdir(c.Socket, 0o700); err != nil {
		t.Fatalf("pglab: %v", err)
	}
	for _, p := range []string{dir, c.Socket} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatalf("pglab: %v", err)
		}
	}
	return c
}

// startOnFreePort picks a free loopback port and starts the server there;
// another test may take the port between picking and binding, so it retries.
func (c *Cluster) startOnFreePort(t testing.TB) {
	t.Helper()
	var err error
	for range 5 {
		c.Port = freePort(t)
		listen := "127.0.0.1"
		if c.listen != "" {
			listen += "," + c.listen
		}
		c.appendConf(t, fmt.Sprintf("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n",
			listen, c.Port, c.Socket))
		if err = c.Start(); err == nil {
			return
		}
	}
	t.Fatalf("pglab: starting %s: %v", c.Name, err)
}

// Start starts a stopped server and waits until it accepts connections.
func (c *Cluster) Start() error {
	return c.pgctl(context.Background(), "start", "-w", "-t", "60", "-l", c.Log)
}

// Running tells whether the server runs, the way pg_ctl status does: its
// postmaster.pid names a live process.
func (c *Cluster) Running() bool {
	b, err := os.ReadFile(filepath.Join(c.Data, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}

// Stop shuts the server down cleanly (a fast shutdown), as an operator
// would shut production down before promoting the standby.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.pgctl(context.Background(), "stop", "-m", "fast", "-w", "-t", "60"); err != nil {
		t.Fatalf("pglab: stopping %s: %v", c.Name, err)
	}
}

// Kill stops the server abruptly, like a crashed production.
func (c *Cluster) Kill(t testing.TB) {
	t.Helper()
	if err := c.pgctl(context.Background(), "stop", "-m", "immediate", "-w", "-t", "60"); err != nil {
		t.Fatalf("pglab: killing %s: %v", c.Name, err)
	}
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) error {
	argv := append([]string{filepath.Join(c.BinDir, "pg_ctl"), "-D", c.Data}, args...)
	_, err := c.Command(ctx, argv...)
	return err
}

// Exec runs SQL statements on database postgres, failing the test on error.
func (c *Cluster) Exec(t testing.TB, sql string) {
	t.Helper()
	if _, err := c.Psql(context.Background(), sql); err != nil {
		t.Fatalf("pglab: %s: %v", c.Name, err)
	}
}

// Query runs one query and returns its output, unaligned, without headers
// and with the final newline trimmed ("|" between columns).
func (c *Cluster) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := c.Psql(context.Background(), sql)
	if err != nil {
		t.Fatalf("pglab: %s: %v", c.Name, err)
	}
	return out
}

// Psql runs sql through psql as the server's user and returns its output.
func (c *Cluster) Psql(ctx context.Context, sql string) (string, error) {
	out, err := c.Command(ctx, filepath.Join(c.BinDir, "psql"), "-X", "-q", "-A", "-t",
		"-v", "ON_ERROR_STOP=1", "-h", c.Socket, "-p", strconv.Itoa(c.Port), "-d", "postgres", "-c", sql)
	return strings.TrimRight(out, "\n"), err
}

// Command runs argv as the server's user in the lab directory and returns
// its standard output; the error carries its standard error.
func (c *Cluster) Command(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.Dir // the postgres user cannot read the test's own working directory
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *Cluster) run(t testing.TB, argv ...string) {
	t.Helper()
	if _, err := c.Command(context.Background(), argv...); err != nil {
		t.Fatalf("pglab: %s: %v", c.Name, err)
	}
}

func (c *Cluster) appendConf(t testing.TB, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("\n# pglab\n" + text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("pglab: %v", err)
	}
}

// WaitStreaming waits until the standby's WAL receiver is streaming.
func (c *Cluster) WaitStreaming(t testing.TB) {
	t.Helper()
	c.waitFor(t, "WAL receiver streaming", "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'", "1")
}

// WaitReplay waits until the standby has replayed everything primary has
// written so far.
func (c *Cluster) WaitReplay(t testing.TB, primary *Cluster) {
	t.Helper()
	lsn := primary.Query(t, "SELECT pg_current_wal_lsn()")
	c.waitFor(t, "replay of "+lsn, "SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn", "t")
}

func (c *Cluster) waitFor(t testing.TB, what, sql, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.Psql(context.Background(), sql)
		if err == nil && out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pglab: %s: timed out waiting for %s (last: %q, %v)", c.Name, what, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pglab: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Promote promotes a standby (pg_ctl promote) and waits until it accepts
// writes, as a failover does.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	if err := c.pgctl(context.Background(), "promote", "-w", "-t", "60"); err != nil {
		t.Fatalf("pglab: promoting %s: %v", c.Name, err)
	}
	c.waitFor(t, "the end of recovery", "SELECT pg_is_in_recovery()", "f")
}

// Timeline is the timeline the server writes (a primary) or replays (a
// standby) on.
func (c *Cluster) Timeline(t testing.TB) int {
	t.Helper()
	out := c.Query(t, `SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)
 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`)
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("pglab: %s: timeline %q", c.Name, out)
	}
	return n
}

// AddReplicationRole creates, on a primary, the role a standby replicates
// and rewinds with: LOGIN REPLICATION with a password, allowed to run the
// functions pg_rewind calls (as PostgreSQL's pg_rewind page lists them)
// and to run CHECKPOINT (pg_checkpoint), and makes pg_hba.conf demand its password (scram-sha-256) from loopback,
// for replication and for every database. Standbys copied afterwards get
// the role and the pg_hba.conf lines too.
func (c *Cluster) AddReplicationRole(t testing.TB, user, password string) {
	t.Helper()
	c.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s';
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO %[1]s;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO %[1]s;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO %[1]s;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO %[1]s;
GRANT pg_checkpoint TO %[1]s;`, user, password))
	hba := filepath.Join(c.Data, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatalf("pglab: %v", err)
	}
	// The first matching line decides: these come before initdb's trust lines.
	lines := fmt.Sprintf("# pglab: the replication role logs in with its password only\n"+
		"host replication %[1]s 127.0.0.0/8 scram-sha-256\nhost all %[1]s 127.0.0.0/8 scram-sha-256\n", user)
	if err := os.WriteFile(hba, append([]byte(lines), old...), 0o600); err != nil {
		t.Fatalf("pglab: %v", err)
	}
	c.Exec(t, "SELECT pg_reload_conf()")
}

// Copy copies a stopped cluster's data directory into a new cluster of
// the lab, on a port of its own, and leaves the copy stopped: two
// identical servers to compare one way of handling them with another.
func (c *Cluster) Copy(t testing.TB, name string) *Cluster {
	t.Helper()
	if c.Running() {
		t.Fatalf("pglab: copying %s: stop it first", c.Name)
	}
	cp := newCluster(t, name)
	cp.listen = c.listen
	if out, err := exec.Command("cp", "-a", c.Data, cp.Data).CombinedOutput(); err != nil {
		t.Fatalf("pglab: copying %s: %v\n%s", c.Name, err, out)
	}
	cp.Port = freePort(t)
	cp.appendConf(t, fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n", cp.Port, cp.Socket))
	return cp
}
