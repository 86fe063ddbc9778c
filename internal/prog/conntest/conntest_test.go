package conntest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/rs/zerolog"
)

// lab starts production with a small filestore and returns a loaded config.
func lab(t *testing.T) (*prodlab.Prod, *config.Config) {
	prodlab.Require(t, "rsync", "ping")
	dir := t.TempDir()
	prodFS := filepath.Join(dir, "prod-filestore")
	os.MkdirAll(filepath.Join(prodFS, "db1", "ab"), 0o755)
	standbyFS := filepath.Join(dir, "filestore")
	os.MkdirAll(standbyFS, 0o755)
	p := prodlab.Start(t, prodlab.Options{Binds: map[string]string{standbyFS: prodFS}})
	conf := filepath.Join(dir, "ot.conf")
	p.WriteConfig(t, conf, map[string]string{"FILESTORE": standbyFS})
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

func statuses(checks []Check) map[string]Status {
	m := map[string]Status{}
	for _, c := range checks {
		m[c.Name] = c.Status
	}
	return m
}

func TestAllChecksPassAgainstLab(t *testing.T) {
	_, cfg := lab(t)
	checks := Checks(context.Background(), cfg, nil)
	for _, c := range checks {
		if c.Status != Pass {
			t.Errorf("%s: %s %s", c.Name, c.Status, c.Detail)
		}
	}
	if got := statuses(checks); len(got) != 7 {
		t.Fatalf("checks %v", got)
	}
}

func TestSshdStoppedFailsFastNamingSSH(t *testing.T) {
	p, cfg := lab(t)
	p.Stop()
	start := time.Now()
	checks := Checks(context.Background(), cfg, nil)
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("took %v", took)
	}
	st := statuses(checks)
	if st["tcp"] != Fail || st["ssh"] != Fail || st["rsync"] != Skip || st["filestore"] != Skip {
		t.Fatalf("statuses %v", st)
	}
	for _, c := range checks {
		if c.Name == "ssh" && !strings.Contains(c.Detail, "refused") {
			t.Errorf("ssh detail %q", c.Detail)
		}
	}
}

func TestWrongHostKeyNamesVerification(t *testing.T) {
	p, cfg := lab(t)
	// Replace production's key in our known_hosts with another key.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	pub, _ := os.ReadFile(other + ".pub")
	f := strings.Fields(string(pub))
	line := "[" + p.Addr + "]:" + strconv.Itoa(p.Port) + " " + f[0] + " " + f[1] + "\n"
	os.WriteFile(p.KnownHosts, []byte(line), 0o644)
	checks := Checks(context.Background(), cfg, nil)
	for _, c := range checks {
		if c.Name == "ssh" {
			if c.Status != Fail || !strings.Contains(c.Detail, "host-key verification failed") || !strings.Contains(c.Detail, "CHANGED") {
				t.Fatalf("ssh check %s %q", c.Status, c.Detail)
			}
			return
		}
	}
	t.Fatal("no ssh check")
}

func TestUnknownHostKeyNamesVerification(t *testing.T) {
	p, cfg := lab(t)
	os.WriteFile(p.KnownHosts, nil, 0o644)
	for _, c := range Checks(context.Background(), cfg, nil) {
		if c.Name == "ssh" {
			if c.Status != Fail || !strings.Contains(c.Detail, "host-key verification failed") || !strings.Contains(c.Detail, "ot-configure") {
				t.Fatalf("ssh check %s %q", c.Status, c.Detail)
			}
			return
		}
	}
	t.Fatal("no ssh check")
}

func TestMissingFilestoreFails(t *testing.T) {
	p, cfg := lab(t)
	p.Exec(t, "chmod", "000", cfg.Get(config.Filestore))
	st := statuses(Checks(context.Background(), cfg, nil))
	if st["ssh"] != Pass || st["filestore"] != Fail {
		t.Fatalf("statuses %v", st)
	}
}

func TestKeyRefusedNamesLogin(t *testing.T) {
	_, cfg := lab(t)
	other := filepath.Join(t.TempDir(), "id_other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	if err := cfg.Set(config.SSHIdentity, other); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, c := range Checks(context.Background(), cfg, nil) {
		if c.Name == "ssh" {
			if c.Status != Fail || !strings.Contains(c.Detail, "login refused by odoo@") || !strings.Contains(c.Detail, "authorized_keys") {
				t.Fatalf("ssh check %s %q", c.Status, c.Detail)
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
			return
		}
	}
	t.Fatal("no ssh check")
}

// A passed test is stamped in the summary file, as the original's was; a
// summary file root cannot write makes it fail, naming the file. A failed
// test stamps nothing.
func TestPassStampsSummary(t *testing.T) {
	p, cfg := lab(t)
	run := func() clilab.Result {
		c := &CLI{Globals: cli.Globals{Config: cfg.Path}}
		return clilab.Run(t, "ot-connection-test", c.Globals, zerolog.InfoLevel, nil, c.Run)
	}
	if r := run(); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	last, _ := summary.Last(p.SummaryFile())
	if _, ok := last["ot-connection-test"]; !ok {
		t.Fatal("no summary line")
	}
	os.Remove(p.SummaryFile())
	os.Symlink("/etc/hostname", p.SummaryFile()) // not root's own file
	if r := run(); r.Code != cli.ExitFailure || !strings.Contains(r.Stderr, "cannot write the summary file "+p.SummaryFile()) {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	os.Remove(p.SummaryFile())
	p.Stop()
	if r := run(); r.Code != cli.ExitFailure || prodlab.Exists(p.SummaryFile()) {
		t.Fatalf("a failed test: exit %d, summary file %v", r.Code, prodlab.Exists(p.SummaryFile()))
	}
}
