package configure

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/kballard/go-shellquote"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// The test binary doubles as ot-configure, so that it can run on a real
// pseudo-terminal as its own process.
// TestMain puts ot-configure on PATH: the test binary plays it under that name.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"ot-configure": func() { os.Exit(Main(os.Args[1:])) }})
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command("ot-configure", args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}

// session is ot-configure running on a pseudo-terminal.
type session struct {
	t    *testing.T
	pty  *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // output consumed by expect
	done chan struct{}
}

func startPTY(t *testing.T, args ...string) *session {
	t.Helper()
	s := &session{t: t, cmd: command(args...), done: make(chan struct{})}
	f, err := pty.Start(s.cmd)
	if err != nil {
		t.Fatal(err)
	}
	s.pty = f
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				close(s.done)
				return
			}
		}
	}()
	t.Cleanup(func() { s.cmd.Process.Kill(); f.Close() })
	return s
}

// expect waits until the output after what was already consumed holds want.
func (s *session) expect(want string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		rest := s.out.String()[s.seen:]
		if i := strings.Index(rest, want); i >= 0 {
			s.seen += i + len(want)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q on the terminal after 30s; it shows:\n%s", want, rest)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *session) typeLine(text string) {
	s.t.Helper()
	if _, err := io.WriteString(s.pty, text+"\r"); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) wait() (int, string) {
	s.t.Helper()
	err := s.cmd.Wait()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return code, s.out.String()
}

const commented = `# ot-redundancy: the standby of our Odoo
SYNCMODE="off"   # flipped by ot-enable-sync
# Production, set by ot-configure
SYNCSRC="NOT-SET"
REMOTEODOO="nobody"
`

func writeConf(t *testing.T, path, text string, kv map[string]string) {
	t.Helper()
	for _, k := range []string{"SSH_PORT", "SSH_IDENTITY", "SSH_KNOWN_HOSTS", "SSH_CONNECT_TIMEOUT", "FILESTORE", "PG_CLUSTER"} {
		if v, ok := kv[k]; ok {
			text += k + "=" + config.Quote(v) + "\n"
		}
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lab starts production with a readable filestore.
func lab(t *testing.T) (*prodlab.Prod, map[string]string) {
	prodlab.Require(t, "rsync", "ssh-keyscan")
	fs := filepath.Join(t.TempDir(), "filestore")
	if err := os.MkdirAll(filepath.Join(fs, "db1"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := prodlab.Start(t, prodlab.Options{Binds: map[string]string{fs: fs}})
	kv := map[string]string{
		"SSH_PORT":            strconv.Itoa(p.Port),
		"SSH_IDENTITY":        p.KeyFile,
		"SSH_KNOWN_HOSTS":     filepath.Join(t.TempDir(), "known_hosts"),
		"SSH_CONNECT_TIMEOUT": "5",
		"FILESTORE":           fs,
		"PG_CLUSTER":          "0/none", // never the host's own cluster
	}
	return p, kv
}

// labFingerprint is production's host key fingerprint, by ssh-keygen -lf.
func labFingerprint(t *testing.T, p *prodlab.Prod) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-lf", p.KnownHosts).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("ssh-keygen -lf: %q", out)
	}
	return f[1]
}

func TestWizardOnATerminal(t *testing.T) {
	p, kv := lab(t)
	conf := filepath.Join(t.TempDir(), "ot.conf")
	writeConf(t, conf, commented, kv)
	fp := labFingerprint(t, p)

	s := startPTY(t, "--config", conf)
	s.expect("Production server (host name or IP address): ")
	s.typeLine("prod.example.com; touch /tmp/pwned")
	s.expect("not valid: ")
	s.expect("Production server (host name or IP address): ")
	s.typeLine("-oProxyCommand=sh")
	s.expect("starts with '-'; try again")
	s.typeLine(p.Addr)
	s.expect("User on production [nobody]: ")
	s.typeLine("odoo")
	s.expect("authorise it for odoo")
	s.expect(fp)
	s.expect("Trust this host key? [y/N]: ")
	s.typeLine("y")
	s.expect("ok    ssh")
	s.expect("Turn sync on now? [Y/n]: ")
	s.typeLine("")
	code, out := s.wait()
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	t.Logf("the terminal showed:\n%s", out)
	data, _ := os.ReadFile(conf)
	want := `# ot-redundancy: the standby of our Odoo
SYNCMODE="on"   # flipped by ot-enable-sync
# Production, set by ot-configure
SYNCSRC="` + p.Addr + `"
REMOTEODOO="odoo"
`
	if !strings.HasPrefix(string(data), want) {
		t.Fatalf("config file:\n%s\nwant it to start with:\n%s", data, want)
	}
	kh, _ := os.ReadFile(kv["SSH_KNOWN_HOSTS"])
	if !strings.HasPrefix(string(kh), "["+p.Addr+"]:"+kv["SSH_PORT"]+" ssh-ed25519 ") {
		t.Fatalf("known_hosts: %q", kh)
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Fatal("an answer ran a command")
	}

	// Again: Enter keeps every current value, the key is trusted already.
	s = startPTY(t, "--config", conf)
	s.expect("Production server (host name or IP address) [" + p.Addr + "]: ")
	s.typeLine("")
	s.expect("User on production [odoo]: ")
	s.typeLine("")
	s.expect("is trusted already")
	s.expect("Turn sync on now? [Y/n]: ")
	s.typeLine("n")
	if code, out := s.wait(); code != 0 || !strings.Contains(out, "sync is off") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	data2, _ := os.ReadFile(conf)
	if string(data2) != strings.Replace(string(data), `SYNCMODE="on"`, `SYNCMODE="off"`, 1) {
		t.Fatalf("second run changed more than SYNCMODE:\n%s", data2)
	}
}

func TestNonInteractive(t *testing.T) {
	p, kv := lab(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "ot.conf")
	writeConf(t, conf, commented, kv)
	fp := labFingerprint(t, p)
	run := func(args ...string) (int, string) {
		cmd := command(append([]string{"--config", conf}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}

	// A new host key is not trusted without its fingerprint; nothing reaches known_hosts.
	code, out := run("--yes", "--source", p.Addr, "--user", "odoo", "--enable")
	if code != 8 || !strings.Contains(out, "ot-configure: error: production's host key "+fp+" is not trusted yet; check it on production") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(kv["SSH_KNOWN_HOSTS"]); err == nil {
		t.Fatal("known_hosts written without a fingerprint")
	}
	// A wrong fingerprint is refused.
	code, out = run("--yes", "--enable", "--trust-host-key", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if code != 8 || !strings.Contains(out, "not SHA256:AAAA") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The right one: trusted, tested, on.
	code, out = run("--yes", "--enable", "--trust-host-key", fp)
	if code != 0 || !strings.Contains(out, "sync is on (source "+p.Addr+", user odoo)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	cfg, err := config.Load(conf)
	if err != nil || !cfg.SyncOn() || cfg.Get(config.SyncSrc) != p.Addr || cfg.Get(config.RemoteOdoo) != "odoo" {
		t.Fatalf("config %v: %v", cfg, err)
	}

	// A missing key is created; production does not know it, so the test
	// fails and sync stays off, with the commands to authorise it printed.
	key := filepath.Join(dir, "keys", "id_ed25519")
	data, _ := os.ReadFile(conf)
	os.WriteFile(conf, regexp.MustCompile(`SSH_IDENTITY=.*`).ReplaceAll(data, []byte(`SSH_IDENTITY="`+key+`"`)), 0o600)
	code, out = run("--yes", "--enable")
	if code != 1 || !strings.Contains(out, "created the ssh key "+key) || !strings.Contains(out, "sudo -u odoo -H sh -c") ||
		!strings.Contains(out, "connection test to "+p.Addr+" failed (ssh): sync stays off") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if cfg, _ := config.Load(conf); cfg.SyncOn() {
		t.Fatal("sync on after a failed test")
	}
	// Run the printed command on production, as the operator would: then it passes.
	var cmdline string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "sudo -u odoo") {
			cmdline = strings.TrimSpace(l)
		}
	}
	pub, _ := os.ReadFile(key + ".pub")
	line := authorizedLine(t, cmdline)
	// Restricted (no pty, forwarding or agent) and bound to the standby's
	// address: a stolen key opens no shell elsewhere. The lab's sshd reads
	// its own authorized_keys file: the line goes there as printed.
	if !strings.HasPrefix(line, `restrict,from="127.0.0.1" `) || !strings.HasSuffix(line, strings.TrimSpace(string(pub))) {
		t.Fatalf("printed authorized_keys line %q", line)
	}
	authorised := filepath.Join(p.Dir, "authorized_keys")
	f, _ := os.OpenFile(authorised, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(line + "\n")
	f.Close()
	code, out = run("-y", "--enable")
	if code != 0 || !strings.Contains(out, "sync is on") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestCreatesMissingConfigAndValidatesFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		prodlab.Missing(t, "needs root")
	}
	conf := filepath.Join(t.TempDir(), "etc", "ot.conf")
	out, err := command("--config", conf, "--yes", "--source", "bad host").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `--source: "bad host" is not a host name or IP address`) {
		t.Fatalf("%v:\n%s", err, out)
	}
	out, err = command("--config", conf, "--yes", "--no-enable").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "no production host: SYNCSRC is not set") {
		t.Fatalf("%v:\n%s", err, out)
	}
	data, err := os.ReadFile(conf)
	if err != nil || string(data) != config.Template() {
		t.Fatalf("created file differs from the template (%v)", err)
	}
}

// authorizedLine is the line the printed command appends to
// authorized_keys: the word after "echo" in the shell command it runs.
func authorizedLine(t *testing.T, cmdline string) string {
	t.Helper()
	argv, err := shellquote.Split(cmdline)
	if err != nil || len(argv) != 7 || argv[5] != "-c" {
		t.Fatalf("printed command %q: %v", cmdline, err)
	}
	words, err := shellquote.Split(argv[6])
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range words {
		if w == "echo" && i+1 < len(words) {
			return words[i+1]
		}
	}
	t.Fatalf("no echo in %q", argv[6])
	return ""
}
