package enablestandby

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/aptlab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/pglab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/piplab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/fullsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/promote"
)

// TestMain lets the test binary play ot-enable-standby-mode and
// ot-disable-standby-mode, so that the tests run the real commands in a
// subprocess, inside a private mount namespace.
func TestMain(m *testing.M) {
	switch os.Getenv("OT_REJOIN_MAIN") {
	case prog:
		os.Exit(Main(os.Args[1:]))
	case "ot-disable-standby-mode":
		os.Exit(promote.Main(os.Args[1:]))
	case fullsync.Name:
		os.Exit(fullsync.Main(os.Args[1:]))
	}
	code := m.Run()
	piplab.Cleanup()
	os.Exit(code)
}

// password is the replication role's password in every lab: the tests
// check that it shows up nowhere.
const password = "Rejoin-s3cret-9f27"

// server is one of the lab's two Odoo servers: its PostgreSQL (a pglab
// cluster, listening on its prodlab address too), its ssh as production
// (a prodlab sshd whose binds show its own files at the other machine's
// paths), its fake Odoo, its files, and its ot-redundancy configuration as
// a standby of the other machine.
type server struct {
	name      string
	dir       string
	pg        *pglab.Cluster
	prod      *prodlab.Prod
	service   string
	url       string
	conf      string
	filestore string
	share     string
	odooConf  string
	pip       string
	other     *server
}

// lab is two machines, A (production first) and B (its streaming
// standby), and the init directories their commands see.
type lab struct {
	dir  string
	a, b *server
	bin  string // the command's binary; "" means this test binary
}

// labOptions say how A's cluster is made (B is its copy).
type labOptions struct {
	checksums   bool
	walLogHints bool
	extra       map[string]string // keys for both configurations
}

func newLab(t testing.TB, o labOptions) *lab {
	t.Helper()
	pglab.Require(t)
	prodlab.Require(t, "rsync", "update-rc.d", "service", "start-stop-daemon", "python3")
	dir := t.TempDir()
	// prodlab's odoo user walks into the machines' files.
	for d := dir; strings.HasPrefix(d, filepath.Clean(os.TempDir())+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	l := &lab{dir: dir}
	for _, d := range []string{"init.d", "systemd", "cron.d", "rc0.d", "rc1.d", "rc2.d", "rc3.d", "rc4.d", "rc5.d", "rc6.d", "rcS.d"} {
		prodlab.Mkdir(t, filepath.Join(dir, d))
	}
	prodlab.WriteFile(t, filepath.Join(dir, "cron.d", "ot-redundancy"), "# the package's cron file\n")
	wheels := prodlab.Mkdir(t, filepath.Join(dir, "wheels"))
	l.a, l.b = l.newMachine(t, "a", wheels), l.newMachine(t, "b", wheels)
	l.a.other, l.b.other = l.b, l.a
	l.a.prod = startProd(t, l.a, l.b)
	l.b.prod = startProd(t, l.b, l.a)

	// A is production, with an Odoo database; B streams from it.
	l.a.pg = pglab.StartPrimaryWith(t, pglab.Options{Name: "a", Checksums: o.checksums, WalLogHints: o.walLogHints, Listen: l.a.prod.Addr})
	l.a.pg.AddReplicationRole(t, "replicator", password)
	l.a.pg.Exec(t, "CREATE DATABASE erp")
	l.sql(t, l.a, `CREATE TABLE sale_order (id int PRIMARY KEY, name text);
INSERT INTO sale_order SELECT n, 'SO' || n FROM generate_series(1, 100) n;
CREATE TABLE ir_attachment (id serial PRIMARY KEY, name text, store_fname text)`)
	for i := range 30 {
		l.attach(t, l.a, fmt.Sprintf("common attachment %d", i), l.a, l.b)
	}
	l.b.pg = pglab.StartStandbyWith(t, l.a.pg, pglab.Options{Name: "b", Listen: l.b.prod.Addr})
	for _, m := range []*server{l.a, l.b} {
		l.writeConfig(t, m, o.extra)
		t.Cleanup(func() {
			// Where the command's pg_ctl start logs, when the test failed.
			if b, err := os.ReadFile(m.pg.Data + ".log"); err == nil && t.Failed() {
				t.Logf("%s's %s.log:\n%s", m.name, m.pg.Data, b)
			}
		})
	}
	// A's Odoo is enabled at boot, as on production; it is not running.
	if res := l.ns(t, "update-rc.d", l.a.service, "defaults"); res.code != 0 {
		t.Fatalf("update-rc.d: %s", res)
	}
	return l
}

func (l *lab) newMachine(t testing.TB, name, wheels string) *server {
	t.Helper()
	dir := prodlab.Mkdir(t, filepath.Join(l.dir, name))
	m := &server{name: name, dir: dir,
		filestore: prodlab.Mkdir(t, filepath.Join(dir, "filestore")),
		share:     prodlab.Mkdir(t, filepath.Join(dir, "share")),
		odooConf:  filepath.Join(dir, "etc", "odoo.conf"),
		service:   fmt.Sprintf("ot-test-odoo-%s-%d", name, os.Getpid()%100000),
	}
	prodlab.WriteFile(t, m.odooConf, "[options]\n; machine "+name+"\n")
	prodlab.WriteFile(t, filepath.Join(m.share, "odoo-addons-"+name, "mod", "__init__.py"), "# "+name+"'s addons\n")
	port := freePort(t)
	m.url = fmt.Sprintf("http://127.0.0.1:%d/web/health", port)
	prodlab.WriteFile(t, filepath.Join(dir, "www", "web", "health"), `{"status": "pass"}`)
	prodlab.WriteFileMode(t, filepath.Join(l.dir, "init.d", m.service), prodlab.OdooInitScript(m.service, dir, port), 0o755)
	t.Cleanup(func() { m.stopOdoo() })
	m.pip = piplab.Venv(t, filepath.Join(dir, "venv"), wheels)
	return m
}

// startProd starts m's sshd, showing m's files at other's paths, and a
// dpkg database of its own whose manual packages the host has (other
// sessions' tests install and remove packages on the host meanwhile).
func startProd(t testing.TB, m, other *server) *prodlab.Prod {
	t.Helper()
	var pkgs []aptlab.Pkg
	for _, name := range []string{"coreutils", "git"} {
		pkgs = append(pkgs, aptlab.Pkg{Name: name, Version: aptlab.Installed(t, name)})
	}
	binds := aptlab.ProductionBinds(t, filepath.Join(m.dir, "apt"), pkgs, nil)
	binds[other.filestore] = m.filestore
	binds[other.share] = m.share
	binds[filepath.Dir(other.odooConf)] = filepath.Dir(m.odooConf)
	binds[filepath.Join(other.dir, "venv")] = filepath.Join(m.dir, "venv")
	return prodlab.Start(t, prodlab.Options{Binds: binds})
}

// writeConfig writes m's configuration as a standby of the other machine:
// everything it writes stays in m's directory.
func (l *lab) writeConfig(t testing.TB, m *server, extra map[string]string) {
	t.Helper()
	o := m.other
	pass := filepath.Join(m.dir, "replication.pgpass")
	prodlab.WriteFileMode(t, pass, fmt.Sprintf("# the replication role\n%s:%d:*:replicator:%s\n", o.prod.Addr, o.pg.Port, password), 0o600)
	kv := map[string]string{
		"SYNCMODE": "off", "REMOTEODOO": "odoo",
		"SUMMARYFILE": filepath.Join(m.dir, "log", "summary.log"), "RUN_LOG": filepath.Join(m.dir, "log", "runs.log"),
		"LOCK_FILE": filepath.Join(m.dir, "ot-redundancy.lock"), "LOCK_WAIT": "5",
		"BACKUP_DIR": filepath.Join(m.dir, "backups"), "REPORT_DIR": filepath.Join(m.dir, "reports"),
		"FILESTORE": m.filestore, "PROJECTS_DIR": m.share, "ODOO_CONF": m.odooConf, "CONF_SYNC": "odoo",
		// Production shows its own venv at m's path.
		"PIP": m.pip, "REMOTE_PIP": m.pip, "ODOO_USER": "daemon", "ODOO_GROUP": "daemon",
		"ODOO_SERVICE": m.service, "ODOO_URL": m.url, "ODOO_TIMEOUT": "15",
		"PG_DATA": m.pg.Data, "PG_BINDIR": m.pg.BinDir, "PG_HOST": m.pg.Socket, "PG_PORT": strconv.Itoa(m.pg.Port), "PG_OSUSER": m.pg.OSUser,
		"PROD_PG_PORT": strconv.Itoa(o.pg.Port), "PROMOTE_TIMEOUT": "30", "STREAM_TIMEOUT": "60",
		"REPLICATION_PASSFILE": pass, "REPLICATION_USER": "replicator",
	}
	for k, v := range extra {
		kv[k] = v
	}
	m.conf = filepath.Join(m.dir, "ot-redundancy-sync.conf")
	o.prod.WriteConfig(t, m.conf, kv)
}

// setKeys rewrites keys of m's configuration.
func (m *server) setKeys(t testing.TB, kv map[string]string) {
	t.Helper()
	c, err := config.Load(m.conf)
	if err != nil {
		t.Fatal(err)
	}
	var keys []config.Key
	for _, d := range config.Defs {
		if v, ok := kv[d.Name]; ok {
			if err := c.Set(d.Key, v); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, d.Key)
		}
	}
	if err := c.Save(keys...); err != nil {
		t.Fatal(err)
	}
}

func (m *server) config(t testing.TB) *config.Config {
	t.Helper()
	c, err := config.Load(m.conf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attach stores a content-addressed file in the filestore of each of
// machines and records it in m's ir_attachment.
func (l *lab) attach(t testing.TB, m *server, content string, machines ...*server) string {
	t.Helper()
	sum := sha1.Sum([]byte(content))
	h := hex.EncodeToString(sum[:])
	name := h[:2] + "/" + h
	for _, on := range machines {
		prodlab.WriteFile(t, filepath.Join(on.filestore, "erp", name), content)
	}
	l.sql(t, m, fmt.Sprintf("INSERT INTO ir_attachment (name, store_fname) VALUES ('%s', '%s')", content, name))
	return name
}

// sql runs statements in m's database erp.
func (l *lab) sql(t testing.TB, m *server, sql string) string {
	t.Helper()
	out, err := m.pg.Command(context.Background(), filepath.Join(m.pg.BinDir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", m.pg.Socket, "-p", strconv.Itoa(m.pg.Port), "-d", "erp", "-c", sql)
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	return strings.TrimSpace(out)
}

// splitBrain is the failover gone wrong: B is promoted while A keeps
// running and takes three more orders, which B never sees; B takes its
// own, and a new attachment.
func (l *lab) splitBrain(t testing.TB) {
	t.Helper()
	l.b.pg.Promote(t)
	for i := 1; i <= 3; i++ {
		l.sql(t, l.a, fmt.Sprintf("INSERT INTO sale_order VALUES (%d, 'lost on A %d')", 200+i, i))
	}
	l.sql(t, l.b, "INSERT INTO sale_order VALUES (301, 'taken on B after the failover')")
	l.attach(t, l.b, "attachment made on B after the failover", l.b)
}

// nsScript runs a command with the lab's init and cron directories over
// the host's, so that the real update-rc.d and service manage the fake
// Odoo services without touching the host.
const nsScript = `set -e
lab=$1; shift
mount --bind "$lab/init.d" /etc/init.d
mount --bind "$lab/systemd" /etc/systemd/system
mount --bind "$lab/cron.d" /etc/cron.d
for d in 0 1 2 3 4 5 6 S; do mount --bind "$lab/rc$d.d" /etc/rc$d.d; done
date +%s.%N >"$lab/exec-time"
exec "$@"`

type result struct {
	stdout, stderr string
	code           int
	killed         bool
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (killed %v)\n--- stdout\n%s--- stderr\n%s", r.code, r.killed, r.stdout, r.stderr)
}

// ns runs argv in the lab's namespace.
func (l *lab) ns(t testing.TB, argv ...string) result {
	t.Helper()
	return l.exec(t, exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", nsScript, "sh", l.dir}, argv...)...))
}

// command is program (ot-enable-standby-mode or ot-disable-standby-mode)
// run by this test binary for machine m, in the lab's namespace.
func (l *lab) command(t testing.TB, m *server, program string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if l.bin != "" && program == prog {
		self = l.bin
	}
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c", nsScript, "sh", l.dir, self, "--config", m.conf}, args...)
	cmd := exec.Command("unshare", argv...)
	cmd.Env = append(os.Environ(), "OT_REJOIN_MAIN="+program, "NO_COLOR=1")
	return cmd
}

// run runs program for m to its end.
func (l *lab) run(t testing.TB, m *server, program string, args ...string) result {
	t.Helper()
	res := l.exec(t, l.command(t, m, program, args...))
	t.Logf("%s on %s %s\n%s", program, m.name, strings.Join(args, " "), res)
	return res
}

func (l *lab) exec(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	return res
}

// killAt runs ot-enable-standby-mode for m and kills it (SIGKILL: no
// chance to clean up, as a crash or a power cut) as soon as it starts the
// step whose description holds marker and, when set, once until says the
// step is under way. killed is false when no such step began and the run
// went to its end.
func (l *lab) killAt(t testing.TB, m *server, marker string, until func() bool, args ...string) result {
	t.Helper()
	cmd := l.command(t, m, prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		stdout.WriteString(line + "\n")
		if !killed && strings.HasPrefix(line, "[") && strings.Contains(line, "] ") && strings.Contains(line, marker) {
			for deadline := time.Now().Add(10 * time.Second); until != nil && !until() && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			// unshare and sh exec'd: the pid is the command's.
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	res := result{stdout: stdout.String(), stderr: stderr.String(), killed: killed}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	}
	t.Logf("%s on %s, killed at %q\n%s", prog, m.name, marker, res)
	return res
}

// startOdoo starts m's fake Odoo, as it runs on a production.
func (m *server) startOdoo(t testing.TB, l *lab) {
	t.Helper()
	if res := l.ns(t, "service", m.service, "start"); res.code != 0 {
		t.Fatalf("starting Odoo: %s", res)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !m.odooUp() {
		if time.Now().After(deadline) {
			t.Fatal("the fake Odoo does not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *server) odooUp() bool { return httpOK(context.Background(), m.url, time.Second) == nil }

// stopOdoo kills m's fake Odoo if it runs: it outlives the commands.
func (m *server) stopOdoo() {
	if b, err := os.ReadFile(filepath.Join(m.dir, "odoo.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// enabledAtBoot tells whether m's Odoo starts in runlevel 2.
func (l *lab) enabledAtBoot(m *server) bool {
	return prodlab.Exists(filepath.Join(l.dir, "rc2.d", "S01"+m.service))
}

// streamsFrom checks that m's PostgreSQL is a standby streaming from its
// other machine.
func (m *server) streamsFrom(t testing.TB) bool {
	t.Helper()
	want := fmt.Sprintf("t|streaming|%s|%d", m.other.prod.Addr, m.other.pg.Port)
	got := m.pg.Query(t, "SELECT pg_is_in_recovery(), coalesce((SELECT status || '|' || sender_host || '|' || sender_port FROM pg_stat_wal_receiver), '')")
	return got == want
}

// waitCaughtUp waits until m replayed what its production wrote.
func (m *server) waitCaughtUp(t testing.TB) { m.pg.WaitReplay(t, m.other.pg) }

func (m *server) reports(t testing.TB) []string {
	t.Helper()
	r, _ := filepath.Glob(filepath.Join(m.dir, "reports", prog+"-*.txt"))
	return r
}

// report returns m's only report of ot-enable-standby-mode.
func (m *server) report(t testing.TB) string {
	t.Helper()
	r := m.reports(t)
	if len(r) == 0 {
		t.Fatal("no report written")
	}
	return prodlab.ReadFile(t, r[len(r)-1])
}

// kept returns the directory a rebuild kept things in.
func (m *server) kept(t testing.TB) string {
	t.Helper()
	d, _ := filepath.Glob(filepath.Join(m.dir, "backups", "*-enable-standby"))
	if len(d) != 1 {
		t.Fatalf("kept directories: %v, want one", d)
	}
	return d[0]
}

func (m *server) journal() string { return filepath.Join(m.dir, "backups", prog+".journal") }

// inPhase tells whether m's journal records phase.
func (m *server) inPhase(phase string) func() bool {
	return func() bool {
		b, err := os.ReadFile(m.journal())
		return err == nil && strings.Contains(string(b), `"phase": "`+phase+`"`)
	}
}

// orders lists m's sale orders, "id name" lines.
func (l *lab) orders(t testing.TB, m *server) string {
	t.Helper()
	return l.sql(t, m, "SELECT string_agg(id || ' ' || name, E'\\n' ORDER BY id) FROM sale_order")
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
