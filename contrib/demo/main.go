// Command demo is the rehearsal behind `sudo make demo`: on this one machine
// it plays a production Odoo server (the test lab's sshd in private
// namespaces, with a filestore, addon projects, configuration files and a
// PostgreSQL primary) and a standby (a streaming PostgreSQL replica and
// empty directories), then runs the suite's programs from -bin against them
// the way an operator would, step by step, and removes everything again.
//
// Run it through contrib/demo/demo.sh, which builds the programs first.
package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"
	"golang.org/x/term"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/pglab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the built ot-* programs")
	keep := flag.Bool("keep", false, "wait for Enter before cleaning up, to look around")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: error: must be run as root (sudo make demo)")
		os.Exit(1)
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: error:", err)
		os.Exit(1)
	}
	t := &tb{}
	d := &demo{t: t, bin: abs, ran: map[string]bool{}}
	// An interrupt still leaves the host as found: the program running is
	// stopped first, so that it writes nothing after the cleanup.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\ndemo: interrupted; cleaning up")
		d.stop()
		t.cleanup()
		os.Exit(130)
	}()
	code := func() (code int) {
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(fatal)
				if !ok {
					panic(r)
				}
				fmt.Fprintf(os.Stderr, "demo: error: %s\n", f.msg)
				code = 1
			}
		}()
		return d.run(*keep)
	}()
	banner("cleaning up: production, PostgreSQL, the fake Odoo and every temporary file")
	t.cleanup()
	if code == 0 {
		fmt.Println("\ndemo: all steps behaved as expected; the host is as it was")
	} else {
		fmt.Println("\ndemo: FAILED (see above); the host is as it was")
	}
	os.Exit(code)
}

type demo struct {
	t        *tb
	bin      string
	dir      string
	conf     string
	prod     *prodlab.Prod
	primary  *pglab.Cluster
	standby  *pglab.Cluster
	odoo     string // fake Odoo's directory (init script, pid file, web root)
	service  string
	odooPort int
	failed   []string
	ran      map[string]bool // programs that ran (not skipped)

	mu       sync.Mutex
	stopping bool
	cur      *exec.Cmd     // the program running now
	curDone  chan struct{} // closed when it has exited
}

// stop ends the program running now (SIGINT, then SIGKILL after 30s) and
// keeps another from starting.
func (d *demo) stop() {
	d.mu.Lock()
	d.stopping = true
	cur, done := d.cur, d.curDone
	d.mu.Unlock()
	if cur == nil {
		return
	}
	cur.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cur.Process.Kill()
		<-done
	}
}

// bold is set when stdout is a terminal and NO_COLOR is not.
var bold = term.IsTerminal(int(os.Stdout.Fd())) && os.Getenv("NO_COLOR") == ""

func banner(s string) {
	if bold {
		fmt.Printf("\n\033[1m==> %s\033[0m\n", s)
		return
	}
	fmt.Printf("\n==> %s\n", s)
}

func (d *demo) run(keep bool) int {
	d.setup()

	d.step("ot-configure: the wizard, non-interactive here: production's address, its host key (checked against the fingerprint), the connection test, sync on",
		[]int{0}, "", "ot-configure", "--yes", "--source", d.prod.Addr, "--user", d.prod.User, "--port", strconv.Itoa(d.prod.Port),
		"--trust-host-key", d.fingerprint(), "--enable")
	d.step("ot-connection-test: can the standby reach and read production?", []int{0}, "", "ot-connection-test")
	d.step("ot-status --drift: is the standby ready? Not yet: nothing synced, attachments missing, production's projects and configuration differ (exit 2, CRITICAL)",
		[]int{2}, "", "ot-status", "--skip", "cron", "--drift")
	d.step("ot-sync-from-source --dry-run: what a full sync would do; nothing changes", []int{0}, "", "ot-sync-from-source", "--dry-run")
	d.step("ot-sync-from-source: the full sync (apt, pip, projects, configuration, filestore)", []int{0}, "", "ot-sync-from-source")
	d.step("ot-status --verify-filestore: ready now: every attachment the replicated database references is here, with the right content (exit 0, OK)",
		[]int{0}, "ot-sync-from-source", "ot-status", "--skip", "cron", "--verify-filestore")

	d.follow()
	d.ransomware()

	banner("production dies: its PostgreSQL and its sshd stop (manual 3.1, step 3: shut production down)")
	d.primary.Stop(d.t)
	d.prod.Stop()
	fmt.Println("production is gone")

	d.step("ot-disable-standby-mode --yes: promote this standby (PostgreSQL out of recovery, Odoo started, report written)",
		[]int{0}, "", "ot-disable-standby-mode", "--yes")
	d.step("ot-status: this machine is production now; no standby follows it (exit 1, WARNING)",
		[]int{1}, "ot-disable-standby-mode", "ot-status", "--skip", "cron")

	if keep {
		fmt.Printf("\nThe lab is in %s (config %s). Press Enter to clean up.", d.dir, d.conf)
		fmt.Scanln()
	}
	if len(d.failed) > 0 {
		fmt.Printf("\nsteps that did not behave as expected: %s\n", strings.Join(d.failed, ", "))
		return 1
	}
	return 0
}

// follow runs the filestore follower (the ot-attachments-follow.service's
// command, with FOLLOW_INTERVAL=2 here) while Odoo on production stores a
// new attachment, shows when it arrives, then stops the follower as
// systemd would (SIGTERM).
func (d *demo) follow() {
	banner("ot-attachments-sync --follow: the filestore follower; production stores a new invoice, which arrives within seconds, not at the next hourly run")
	path := filepath.Join(d.bin, "ot-attachments-sync")
	fmt.Println("# ot-attachments-sync --follow --cron   (what ot-attachments-follow.service runs)")
	cmd := exec.Command(path, "--follow", "--cron")
	cmd.Env = append(os.Environ(), "OT_CONFIG="+d.conf, "PATH="+d.bin+":"+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	must(d.t, cmd.Start())
	d.t.Cleanup(func() { cmd.Process.Kill() })
	time.Sleep(3 * time.Second) // its first cycle
	name := store(d.t, filepath.Join(d.dir, "production", "filestore", "odoo_demo"), "%PDF-1.4 invoice INV/2026/0003")
	stored := time.Now()
	fmt.Printf("production: Odoo stored odoo_demo/%s\n", name)
	arrived := false
	for time.Since(stored) < 30*time.Second && !arrived {
		time.Sleep(100 * time.Millisecond)
		_, err := os.Stat(filepath.Join(d.dir, "standby", "filestore", "odoo_demo", name))
		arrived = err == nil
	}
	if arrived {
		fmt.Printf("standby: it arrived %s later\n", time.Since(stored).Round(100*time.Millisecond))
	} else {
		fmt.Println("standby: it did not arrive within 30 s: UNEXPECTED")
		d.failed = append(d.failed, "ot-attachments-sync --follow")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if err != nil {
		fmt.Printf("--- the follower ended with %v after SIGTERM: UNEXPECTED\n", err)
		d.failed = append(d.failed, "ot-attachments-sync --follow")
		return
	}
	fmt.Println("--- the follower stopped on SIGTERM (exit 0), as expected")
}

// ransomware encrypts production's attachments in place, under their
// names: the next sync copies none of them, and ot-status says so.
func (d *demo) ransomware() {
	banner("ransomware on production: every attachment is rewritten, encrypted, under its old name")
	root := filepath.Join(d.dir, "production", "filestore", "odoo_demo")
	n := 0
	must(d.t, filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i := range data {
			data[i] ^= 0x5a
		}
		n++
		return os.WriteFile(p, append([]byte("ENCRYPTED "), data...), 0o644)
	}))
	fmt.Printf("production: %d attachments encrypted in place\n", n)
	d.step("ot-attachments-sync: production's attachments no longer match their names (Odoo names each by its SHA-1): none is kept, the standby keeps every original",
		[]int{0}, "", "ot-attachments-sync")
	d.step("ot-status: CRITICAL, production's filestore is damaged (exit 2); the standby's copy is still good",
		[]int{2}, "", "ot-status", "--skip", "cron")
	d.step("ot-attachments-sync --list-trash: production's bad copies are kept aside for inspection, never in the filestore",
		[]int{0}, "", "ot-attachments-sync", "--list-trash")
}

// step runs one program as the operator would, and judges its exit code;
// a program that is not built yet is skipped, visibly. When after names a
// program that was skipped, the exit code is shown but not judged.
func (d *demo) step(what string, want []int, after, prog string, args ...string) {
	d.mu.Lock()
	stopping := d.stopping
	d.mu.Unlock()
	if stopping {
		select {} // the signal handler cleans up and exits
	}
	banner(what)
	path := filepath.Join(d.bin, prog)
	if _, err := os.Stat(path); err != nil {
		fmt.Printf("--- skipped: %s is not built yet (no %s)\n", prog, path)
		return
	}
	fmt.Printf("# %s\n", shellquote.Join(append([]string{prog}, args...)...))
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "OT_CONFIG="+d.conf, "PATH="+d.bin+":"+os.Getenv("PATH"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stdout
	cmd.Dir = d.dir
	if prog == "ot-disable-standby-mode" {
		cmd = d.inOdooNamespace(cmd)
	}
	start := time.Now()
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		select {} // the signal handler cleans up and exits
	}
	err := cmd.Start()
	done := make(chan struct{})
	if err == nil {
		d.cur, d.curDone = cmd, done
	}
	d.mu.Unlock()
	if err == nil {
		err = cmd.Wait()
		close(done)
	}
	d.mu.Lock()
	d.cur = nil
	d.mu.Unlock()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("running %s: %v", prog, err)
	}
	d.ran[prog] = true
	took := time.Since(start).Round(10 * time.Millisecond)
	if after != "" && !d.ran[after] {
		fmt.Printf("--- exit %d in %s (not judged: %s did not run)\n", code, took, after)
		return
	}
	for _, w := range want {
		if code == w {
			fmt.Printf("--- exit %d in %s, as expected\n", code, took)
			return
		}
	}
	fmt.Printf("--- exit %d in %s: UNEXPECTED (wanted %v)\n", code, took, want)
	d.failed = append(d.failed, prog)
}

// nsScript runs a command with the fake Odoo's init directories over the
// host's /etc/init.d and /etc/rc?.d, in a private mount namespace: the real
// update-rc.d and service then manage the fake Odoo without touching the
// host. systemd's marker is hidden so that sysvinit tools are used.
const nsScript = `set -e
lab=$1; shift
mount --bind "$lab/init.d" /etc/init.d
for d in 0 1 2 3 4 5 6 S; do
	if [ -d /etc/rc$d.d ]; then mount --bind "$lab/rc$d.d" /etc/rc$d.d; fi
done
if [ -d /etc/systemd/system ]; then mount --bind "$lab/systemd" /etc/systemd/system; fi
if [ -d /run/systemd/system ]; then mount -t tmpfs ot-demo-systemd /run/systemd; fi
exec "$@"`

func (d *demo) inOdooNamespace(cmd *exec.Cmd) *exec.Cmd {
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c", nsScript, "sh", d.odoo}, cmd.Args...)
	ns := exec.Command("unshare", argv...)
	ns.Env, ns.Stdin, ns.Stdout, ns.Stderr, ns.Dir = cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Dir
	return ns
}

// setup builds production and the standby.
func (d *demo) setup() {
	t := d.t
	banner("setting up: a simulated production server and this standby, on this one machine")
	prodlab.Require(t, "rsync", "ssh-keyscan", "python3", "start-stop-daemon", "update-rc.d", "service")
	pglab.Require(t)
	d.dir = t.TempDir()
	must(t, os.Chmod(d.dir, 0o755)) // production's odoo user traverses it
	prod := filepath.Join(d.dir, "production")
	standby := filepath.Join(d.dir, "standby")

	// Production's content; the standby has an older odoo.conf and nothing else.
	var names []string
	for _, content := range []string{"%PDF-1.4 invoice INV/2026/0001", "%PDF-1.4 invoice INV/2026/0002", "PNG company logo", "quotation SO042", "delivery slip WH/OUT/0007"} {
		names = append(names, store(t, filepath.Join(prod, "filestore", "odoo_demo"), content))
	}
	write(t, filepath.Join(prod, "projects", "odoo-addons-acme", "acme_sale", "__manifest__.py"), "{'name': 'ACME sale customisations', 'version': '16.0.1.0.0'}\n")
	write(t, filepath.Join(prod, "projects", "odoo-addons-acme", "acme_sale", "__init__.py"), "")
	write(t, filepath.Join(prod, "projects", "core-odoo", "README"), "Odoo itself: never synced (PROJECTS_EXCLUDE)\n")
	write(t, filepath.Join(prod, "odoo.conf"), "[options]\ndb_host = False\nworkers = 4\nlimit_time_real = 600\n")
	write(t, filepath.Join(prod, "nginx", "sites-available", "odoo"), "server {\n\tlisten 80;\n\tserver_name erp.example.com;\n\tlocation / { proxy_pass http://127.0.0.1:8069; }\n}\n")
	must(t, os.MkdirAll(filepath.Join(prod, "nginx", "sites-enabled"), 0o755))
	must(t, os.Symlink("../sites-available/odoo", filepath.Join(prod, "nginx", "sites-enabled", "odoo")))
	for _, dir := range []string{"filestore", "projects", "nginx/sites-available", "nginx/sites-enabled", "etc/odoo"} {
		must(t, os.MkdirAll(filepath.Join(standby, dir), 0o755))
	}
	write(t, filepath.Join(standby, "etc", "odoo", "odoo.conf"), "[options]\ndb_host = False\nworkers = 2\n")
	fmt.Printf("production's files: %s (filestore with 5 attachments, project odoo-addons-acme, odoo.conf, nginx site)\n", prod)

	d.prod = prodlab.Start(t, prodlab.Options{Binds: map[string]string{
		filepath.Join(standby, "filestore"):                filepath.Join(prod, "filestore"),
		filepath.Join(standby, "projects"):                 filepath.Join(prod, "projects"),
		filepath.Join(standby, "etc", "odoo", "odoo.conf"): filepath.Join(prod, "odoo.conf"),
		filepath.Join(standby, "nginx"):                    filepath.Join(prod, "nginx"),
	}})
	fmt.Printf("production's sshd: %s port %d (user %s), in private namespaces: it sees its files at the standby's paths\n", d.prod.Addr, d.prod.Port, d.prod.User)

	d.primary = pglab.StartPrimary(t)
	d.primary.Exec(t, "CREATE DATABASE odoo_demo")
	var rows []string
	for i, n := range names {
		rows = append(rows, fmt.Sprintf("('document %d', '%s')", i+1, n))
	}
	_, err := d.primary.Command(context.Background(), filepath.Join(d.primary.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", d.primary.Socket, "-p", strconv.Itoa(d.primary.Port), "-d", "odoo_demo", "-c",
		"CREATE TABLE ir_attachment (id serial PRIMARY KEY, name varchar, store_fname varchar, url varchar);"+
			"INSERT INTO ir_attachment (name, store_fname) VALUES "+strings.Join(rows, ", ")+";"+
			"INSERT INTO ir_attachment (name, url) VALUES ('odoo.com', 'https://www.odoo.com')")
	must(t, err)
	fmt.Printf("production's PostgreSQL: primary on 127.0.0.1:%d, database odoo_demo with an ir_attachment table\n", d.primary.Port)
	d.standby = pglab.StartStandby(t, d.primary)
	d.standby.WaitReplay(t, d.primary)
	fmt.Printf("standby's PostgreSQL: streaming replica on 127.0.0.1:%d (%s)\n", d.standby.Port, d.standby.Data)

	d.fakeOdoo()

	// The configuration: the packaged template, with the demo's paths set
	// through the suite's own writer. ot-configure sets production's address.
	d.conf = filepath.Join(d.dir, "etc", "ot-redundancy-sync.conf")
	write(t, d.conf, config.Template())
	must(t, os.Chmod(d.conf, 0o600))
	cfg, err := config.Load(d.conf)
	must(t, err)
	kv := []struct {
		k config.Key
		v string
	}{
		{config.SummaryFile, filepath.Join(d.dir, "log", "ot-redundancy-sync-timestamps.log")},
		{config.RunLog, filepath.Join(d.dir, "log", "ot-redundancy-runs.log")},
		{config.LockFile, filepath.Join(d.dir, "ot-redundancy.lock")},
		{config.SSHIdentity, d.prod.KeyFile},
		{config.SSHKnownHosts, filepath.Join(d.dir, "etc", "ot-redundancy-known_hosts")},
		{config.SSHConnectTimeout, "5"},
		{config.OdooUser, "daemon"},
		{config.OdooGroup, "daemon"},
		{config.Filestore, filepath.Join(standby, "filestore")},
		{config.ProjectsDir, filepath.Join(standby, "projects")},
		{config.BackupDir, filepath.Join(d.dir, "backups")},
		{config.ConfSync, "odoo nginx"},
		{config.OdooConf, filepath.Join(standby, "etc", "odoo", "odoo.conf")},
		{config.NginxDir, filepath.Join(standby, "nginx")},
		// The system's pip on both sides, without anyone's user site.
		{config.Pip, "/usr/bin/python3 -s -m pip"},
		{config.RemotePip, "/usr/bin/python3 -s -m pip"},
		{config.OdooService, d.service},
		{config.OdooURL, d.odooURL()},
		{config.OdooTimeout, "30"},
		// PG_DATA names the standby's cluster; PG_CLUSTER names none of the
		// host's own Debian clusters, so that a running one is never taken
		// for this standby's.
		{config.PGCluster, "15/ot-demo"},
		{config.PGData, d.standby.Data},
		{config.PGBinDir, d.standby.BinDir},
		{config.PGHost, d.standby.Socket},
		{config.PGPort, strconv.Itoa(d.standby.Port)},
		{config.PGOSUser, d.standby.OSUser},
		{config.ProdPGPort, strconv.Itoa(d.primary.Port)},
		{config.ReportDir, filepath.Join(d.dir, "log")},
		{config.StateDir, filepath.Join(d.dir, "state")},
		{config.FollowInterval, "2"},
	}
	var keys []config.Key
	for _, p := range kv {
		must(t, cfg.Set(p.k, p.v))
		keys = append(keys, p.k)
	}
	must(t, cfg.Save(keys...))
	fmt.Printf("configuration: %s (the programs find it through OT_CONFIG)\n", d.conf)
}

// fingerprint is production's host key fingerprint, as the operator would
// read it on production with ssh-keygen -lf.
func (d *demo) fingerprint() string {
	out, err := exec.Command("ssh-keygen", "-lf", d.prod.KnownHosts).Output()
	must(d.t, err)
	f := strings.Fields(string(out))
	if len(f) < 2 {
		d.t.Fatalf("ssh-keygen -lf %s: %q", d.prod.KnownHosts, out)
	}
	return f[1]
}

// fakeOdoo is an LSB init script whose daemon is a tiny HTTP server
// answering /web/health, as Odoo would.
func (d *demo) fakeOdoo() {
	t := d.t
	d.odoo = filepath.Join(d.dir, "odoo")
	d.service = fmt.Sprintf("ot-demo-odoo-%d", os.Getpid())
	for _, sub := range []string{"init.d", "systemd", "www/web", "rc0.d", "rc1.d", "rc2.d", "rc3.d", "rc4.d", "rc5.d", "rc6.d", "rcS.d"} {
		must(t, os.MkdirAll(filepath.Join(d.odoo, sub), 0o755))
	}
	write(t, filepath.Join(d.odoo, "www", "web", "health"), `{"status": "pass"}`+"\n")
	port := freePort(t)
	write(t, filepath.Join(d.odoo, "init.d", d.service), prodlab.OdooInitScript(d.service, d.odoo, port))
	must(t, os.Chmod(filepath.Join(d.odoo, "init.d", d.service), 0o755))
	d.odooPort = port
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(d.odoo, "odoo.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

func (d *demo) odooURL() string { return fmt.Sprintf("http://127.0.0.1:%d/web/health", d.odooPort) }

// store writes content into a filestore the way Odoo does, at
// <sha1[:2]>/<sha1>, and returns that name (ir_attachment.store_fname).
func store(t *tb, dir, content string) string {
	sum := sha1.Sum([]byte(content))
	h := hex.EncodeToString(sum[:])
	write(t, filepath.Join(dir, h[:2], h), content)
	return h[:2] + "/" + h
}

func write(t *tb, path, content string) {
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

func must(t *tb, err error) {
	if err != nil {
		t.Fatal(err)
	}
}

func freePort(t *tb) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
