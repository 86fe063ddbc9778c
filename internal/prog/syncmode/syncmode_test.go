package syncmode

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// conf writes a configuration file: a comment, then the given lines.
func conf(t *testing.T, lines ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		prodlab.Missing(t, "ot-enable-sync and ot-disable-sync need root")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ot.conf")
	text := "# the standby\n" + strings.Join(append(lines, `PG_CLUSTER="99/none"`, `LOCK_FILE="`+filepath.Join(dir, "lock")+`"`), "\n") + "\n"
	prodlab.WriteFileMode(t, path, text, 0o600)
	return path
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --clear-promoted turns sync on and clears PROMOTED in one rewrite; its
// dry run shows both lines and writes neither.
func TestClearPromoted(t *testing.T) {
	path := conf(t, `SYNCMODE="off"`, `SYNCSRC="prod.example.com"`, `PROMOTED="yes"`)
	before := read(t, path)
	e := &Enable{ClearPromoted: true}
	r := clilab.Run(t, "ot-enable-sync", cli.Globals{Config: path, DryRun: true}, zerolog.InfoLevel, nil, e.Run)
	if r.Code != 0 || !strings.Contains(r.Stdout, "#   SYNCMODE=\"on\"\n#   PROMOTED=\"no\"\n") || read(t, path) != before {
		t.Fatalf("dry run: exit %d, printed %q, file changed %v", r.Code, r.Stdout, read(t, path) != before)
	}
	r = clilab.Run(t, "ot-enable-sync", cli.Globals{Config: path}, zerolog.InfoLevel, nil, e.Run)
	after := read(t, path)
	if r.Code != 0 || !strings.Contains(after, "SYNCMODE=\"on\"\n") || !strings.Contains(after, "PROMOTED=\"no\"\n") || !strings.HasPrefix(after, "# the standby\n") {
		t.Fatalf("exit %d:\n%s", r.Code, after)
	}
}

// Without --clear-promoted a promoted machine stays off: exit 5, file unchanged.
func TestPromotedRefused(t *testing.T) {
	path := conf(t, `SYNCMODE="off"`, `SYNCSRC="prod.example.com"`, `PROMOTED="yes"`)
	before := read(t, path)
	r := clilab.Run(t, "ot-enable-sync", cli.Globals{Config: path}, zerolog.InfoLevel, nil, (&Enable{}).Run)
	if r.Code != cli.ExitPromoted || !strings.Contains(r.Stderr, "--clear-promoted") || read(t, path) != before {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
}

// Turning sync off while a sync runs says so: that run finishes, no new one starts.
func TestDisableNamesRunningSync(t *testing.T) {
	path := conf(t, `SYNCMODE="on"`, `SYNCSRC="prod.example.com"`)
	l, err := lock.Acquire(context.Background(), filepath.Join(filepath.Dir(path), "lock"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	r := clilab.Run(t, "ot-disable-sync", cli.Globals{Config: path}, zerolog.InfoLevel, nil, (&Disable{}).Run)
	if r.Code != 0 || !strings.Contains(r.Stdout, "sync is now off\n") || !strings.Contains(r.Stdout, "a run is in progress") {
		t.Fatalf("exit %d: %q", r.Code, r.Stdout)
	}
	if !strings.Contains(read(t, path), "SYNCMODE=\"off\"\n") {
		t.Fatal("SYNCMODE not off")
	}
}

// ot-enable-sync's plan ends with the follower: started where systemd runs
// its unit, otherwise a note that says why not (this host has no systemd,
// or the file is not the unit's).
func TestEnableShowsFollower(t *testing.T) {
	path := conf(t, `SYNCMODE="off"`, `SYNCSRC="prod.example.com"`, `STATE_DIR="`+t.TempDir()+`"`)
	r := clilab.Run(t, "ot-enable-sync", cli.Globals{Config: path, DryRun: true}, zerolog.InfoLevel, nil, (&Enable{}).Run)
	if r.Code != 0 || !strings.Contains(r.Stdout, "# the filestore follower is not started: ") {
		t.Fatalf("dry run: exit %d: %q", r.Code, r.Stdout)
	}
	r = clilab.Run(t, "ot-enable-sync", cli.Globals{Config: path}, zerolog.InfoLevel, nil, (&Enable{}).Run)
	if r.Code != 0 || !strings.Contains(r.Stdout, "sync is now on") || !strings.Contains(r.Stdout, "note: the filestore follower is not started: ") {
		t.Fatalf("exit %d: %q", r.Code, r.Stdout)
	}
}
