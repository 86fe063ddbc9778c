package writesummary

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
)

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"ot-conf-sync":                 true,
		"ot-sync-from-source --only x": true,
		"":                             false,
		"a\nb":                         false,
		"a\x1b[2J":                     false,
		strings.Repeat("x", 201):       false,
	} {
		if err := validName(name); (err == nil) != ok {
			t.Errorf("validName(%q) = %v", name, err)
		}
	}
}

// Several names are one write of several lines, in the original format; a
// bad name among them writes nothing.
func TestAppendsLinesInOneRun(t *testing.T) {
	dir := t.TempDir()
	summary := filepath.Join(dir, "log", "ts.log")
	conf := filepath.Join(dir, "ot.conf")
	if err := os.WriteFile(conf, []byte("SUMMARYFILE=\""+summary+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(names ...string) clilab.Result {
		c := &CLI{Globals: cli.Globals{Config: conf}, Names: names}
		return clilab.Run(t, "ot-write-summary", c.Globals, zerolog.InfoLevel, nil, c.Run)
	}
	if r := run("ot-apt-sync", "bad\tname"); r.Code != cli.ExitUsage {
		t.Fatalf("exit %d", r.Code)
	}
	if _, err := os.Stat(summary); !os.IsNotExist(err) {
		t.Fatal("a refused run wrote the summary file")
	}
	if r := run("ot-apt-sync", "ot-pip-sync"); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " :  ot-apt-sync") || !strings.HasSuffix(lines[1], " :  ot-pip-sync") || lines[0][:19] != lines[1][:19] {
		t.Fatalf("summary file:\n%s", b)
	}
}
