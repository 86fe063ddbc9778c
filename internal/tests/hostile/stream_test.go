// Package hostile tries, against the real programs, what a production under
// an attacker's control can send that no single program's tests cover: here,
// output without end. The routes each program closes (apt names, nginx
// directives, apt sources, pip builds) are tried in that program's package.
package hostile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/aptsync"
)

// TestMain puts ot-apt-sync on PATH: the test binary plays it under that name.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){aptsync.Name: func() { os.Exit(aptsync.Main(os.Args[1:])) }})
}

// A production whose apt-mark prints a gigabyte: the sync stops at the
// capture limit, says so in one line, and its memory stays bounded (the OOM
// killer must never be tempted to pick the standby's PostgreSQL).
func TestGigabyteOfOutputIsBounded(t *testing.T) {
	prodlab.Require(t)
	dir := t.TempDir()
	flood := filepath.Join(dir, "apt-mark")
	prodlab.WriteFileMode(t, flood, "#!/bin/sh\nyes a-package-name | head -c 1073741824\n", 0o755)
	p := prodlab.Start(t, prodlab.Options{Binds: map[string]string{"/usr/bin/apt-mark": flood}})
	conf := filepath.Join(dir, "ot.conf")
	p.WriteConfig(t, conf, map[string]string{"PG_CLUSTER": "99/none"})

	cmd := exec.Command(aptsync.Name, "--config", conf)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v:\n%s", err, out)
	}
	if !strings.Contains(string(out), "more than 16 MiB of output, stopped") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("want one line naming the limit:\n%s", out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss >> 10 // KiB to MiB
	t.Logf("peak RSS %d MiB: %s", rss, out)
	if rss >= 50 {
		t.Fatalf("peak RSS %d MiB, want < 50 MiB", rss)
	}
}
