package prodlab

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kballard/go-shellquote"
)

// sshArgs is how the standby logs in: our key, production's host key only.
func sshArgs(p *Prod) []string {
	return []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + p.KnownHosts,
		"-o", "ConnectTimeout=5", "-i", p.KeyFile, "-p", strconv.Itoa(p.Port)}
}

func ssh(t *testing.T, p *Prod, remote ...string) string {
	t.Helper()
	args := append(sshArgs(p), p.User+"@"+p.Addr, shellquote.Join(remote...))
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ssh", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh %s: %v\n%s", shellquote.Join(remote...), err, stderr.Bytes())
	}
	return strings.TrimSpace(stdout.String())
}

func mkdir(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir is 0700: odoo must reach what production serves.
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLab(t *testing.T) {
	Require(t, "ssh", "rsync")
	passwdBefore := ReadFile(t, "/etc/passwd")
	machineID := ReadFile(t, "/etc/machine-id")

	tmp := mkdir(t, t.TempDir())
	standby := mkdir(t, filepath.Join(tmp, "standby"))
	WriteFile(t, filepath.Join(standby, "data.txt"), "standby copy\n")
	prodDir := mkdir(t, filepath.Join(tmp, "production"))
	WriteFile(t, filepath.Join(prodDir, "data.txt"), "production copy\n")
	mkdir(t, filepath.Join(prodDir, "sub"))
	WriteFile(t, filepath.Join(prodDir, "sub", "deep.txt"), "deep\n")
	prodFile := filepath.Join(tmp, "odoo.conf.production")
	WriteFile(t, prodFile, "[options]\n")
	missing := filepath.Join(tmp, "missing", "etc", "odoo.conf") // production path absent on the host

	p := Start(t, Options{Binds: map[string]string{standby: prodDir, missing: prodFile}})

	if p.Addr == "127.0.0.1" || !strings.HasPrefix(p.Addr, "127.") {
		t.Errorf("Addr = %s, want a 127.x.y.z other than 127.0.0.1", p.Addr)
	}
	if fi, err := os.Stat(p.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("KeyFile %s: %v, %v; want mode 0600", p.KeyFile, fi.Mode(), err)
	}
	if want := fmt.Sprintf("[%s]:%d ssh-ed25519 ", p.Addr, p.Port); !strings.HasPrefix(ReadFile(t, p.KnownHosts), want) {
		t.Errorf("known_hosts = %q, want prefix %q", ReadFile(t, p.KnownHosts), want)
	}

	if got := ssh(t, p, "id", "-un"); got != "odoo" {
		t.Errorf("ssh id -un = %q, want odoo", got)
	}
	if got := ssh(t, p, "sh", "-c", "echo $HOME; pwd"); got != "/home/odoo\n/home/odoo" {
		t.Errorf("home on production = %q, want /home/odoo twice", got)
	}
	if got := ssh(t, p, "cat", filepath.Join(standby, "data.txt")); got != "production copy" {
		t.Errorf("bound file on production = %q, want production copy", got)
	}
	if got := ReadFile(t, filepath.Join(standby, "data.txt")); got != "standby copy\n" {
		t.Errorf("bound path on the host = %q, want standby copy", got)
	}
	if got := ssh(t, p, "cat", missing); got != "[options]" {
		t.Errorf("file bound at a missing path = %q, want [options]", got)
	}
	if got := ReadFile(t, "/etc/passwd"); got != passwdBefore {
		t.Errorf("host /etc/passwd changed while production runs")
	}
	if !strings.Contains(p.Exec(t, "cat", "/etc/passwd"), "\nodoo:x:") {
		t.Errorf("production's /etc/passwd has no odoo")
	}
	if got := p.Exec(t, "cat", "/etc/machine-id"); got == machineID {
		t.Errorf("production shares the host's machine-id %q", got)
	}
	// The suite's "SYNCSRC is this very machine" token lives in /run.
	p.Exec(t, "mkdir", "/run/ot-redundancy-testlab")
	if _, err := os.Stat("/run/ot-redundancy-testlab"); err == nil {
		t.Errorf("production's /run is the host's")
	}
	if got := strings.TrimSpace(p.Exec(t, "hostname")); got != "testlab-production" {
		t.Errorf("production hostname = %q", got)
	}

	// rsync over ssh pulls production's tree, as a sync does.
	dest := filepath.Join(t.TempDir(), "copy")
	rsync := exec.Command("rsync", "-a", "-e", "ssh "+shellquote.Join(sshArgs(p)...),
		p.User+"@"+p.Addr+":"+standby+"/", dest+"/")
	if out, err := rsync.CombinedOutput(); err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	if got := ReadFile(t, filepath.Join(dest, "sub", "deep.txt")); got != "deep\n" {
		t.Errorf("rsync copy = %q, want deep", got)
	}
	if got := ReadFile(t, filepath.Join(dest, "data.txt")); got != "production copy\n" {
		t.Errorf("rsync copy = %q, want production copy", got)
	}

	// A session process that left sshd's process tree must die with production.
	ssh(t, p, "sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 &")
	if got := p.Exec(t, "cat", "/proc/1/comm"); got != "sshd\n" {
		t.Errorf("production's pid 1 = %q, want sshd", got)
	}
	ns := p.ns
	sleep := 0
	for _, pid := range nsPIDs(ns) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) == "sleep\n" {
			sleep = pid
		}
	}
	if sleep == 0 {
		t.Fatal("the session's sleep is not in production's namespace")
	}
	config := filepath.Join(p.Dir, "sshd_config")

	p.Stop()
	p.Stop() // idempotent

	if c, err := net.DialTimeout("tcp", net.JoinHostPort(p.Addr, strconv.Itoa(p.Port)), time.Second); err == nil {
		c.Close()
		t.Errorf("production still accepts connections after Stop")
	}
	if left := nsPIDs(ns); len(left) > 0 {
		t.Errorf("processes %v left in production's namespace", left)
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sleep)); err == nil && !strings.Contains(string(stat), ") Z ") {
		t.Errorf("session process %d survived Stop: %s", sleep, stat)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cmdline, []byte(config)) {
			t.Errorf("sshd with our config still runs: pid %s: %q", e.Name(), cmdline)
		}
	}
	// The lab directory outlives Stop (a test may run syncs against the dead
	// production) and goes when the test ends.
	if _, err := os.Stat(p.Dir); err != nil {
		t.Errorf("lab dir %s gone at Stop: %v", p.Dir, err)
	}
	p.remove()
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s left behind: %v", p.Dir, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "missing")); !os.IsNotExist(err) {
		t.Errorf("created production path left on the host: %v", err)
	}
	if got := ReadFile(t, "/etc/passwd"); got != passwdBefore {
		t.Errorf("host /etc/passwd changed")
	}
}

// Labs started at once by concurrent tests never share address, port or dir.
func TestConcurrentLabs(t *testing.T) {
	Require(t, "ssh")
	labs := make([]*Prod, 3)
	t.Run("group", func(t *testing.T) { // returns once its parallel tests are done
		for i := range labs {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				labs[i] = Start(t, Options{})
				if got := ssh(t, labs[i], "id", "-un"); got != "odoo" {
					t.Errorf("ssh id -un = %q", got)
				}
			})
		}
	})
	seen := map[string]bool{}
	for _, p := range labs {
		for _, k := range []string{p.Addr + ":" + strconv.Itoa(p.Port), p.Dir} {
			if seen[k] {
				t.Errorf("two labs share %s", k)
			}
			seen[k] = true
		}
	}
}

func TestWriteConfig(t *testing.T) {
	p := &Prod{Addr: "127.1.2.3", Port: 2222, User: "odoo", Dir: t.TempDir(), KeyFile: "/k", KnownHosts: "/kh"}
	path := filepath.Join(t.TempDir(), "etc", "ot.conf")
	p.WriteConfig(t, path, map[string]string{"SYNCMODE": "off", "FILESTORE": "/srv/fs"})
	got := ReadFile(t, path)
	for _, want := range []string{`SYNCMODE="off"`, `SYNCSRC="127.1.2.3"`, `SSH_PORT="2222"`, `SSH_IDENTITY="/k"`,
		`SSH_KNOWN_HOSTS="/kh"`, `SSH_CONNECT_TIMEOUT="5"`, `FILESTORE="/srv/fs"`, `REMOTEODOO="odoo"`,
		`LOCK_FILE="` + p.Dir + `/`, `SUMMARYFILE="` + p.Dir + `/`, `RUN_LOG="` + p.Dir + `/`, `BACKUP_DIR="` + p.Dir + `/`} {
		if !strings.Contains(got, "\n"+want) {
			t.Errorf("config lacks %s:\n%s", want, got)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode())
	}
}

// fakeTB records what Require decided instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }
func (f *fakeTB) Skip(args ...any)  { f.skip = fmt.Sprint(args...) }

func TestRequire(t *testing.T) {
	t.Setenv("OT_REQUIRE_INTEGRATION", "")
	f := &fakeTB{TB: t}
	Require(f, "no-such-tool-testlab")
	if f.fatal != "" || !strings.Contains(f.skip, "no-such-tool-testlab") {
		t.Errorf("without OT_REQUIRE_INTEGRATION: fatal %q, skip %q; want a skip naming the tool", f.fatal, f.skip)
	}
	t.Setenv("OT_REQUIRE_INTEGRATION", "1")
	f = &fakeTB{TB: t}
	Require(f, "no-such-tool-testlab")
	if f.skip != "" || !strings.Contains(f.fatal, "no-such-tool-testlab") {
		t.Errorf("with OT_REQUIRE_INTEGRATION=1: fatal %q, skip %q; want a failure naming the tool", f.fatal, f.skip)
	}
}
