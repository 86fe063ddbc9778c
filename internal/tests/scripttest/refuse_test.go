package scripttest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/programs"
)

// Every program refuses an option-like SYNCSRC or REMOTEODOO when it reads
// the configuration, before it starts any process: the marker never appears.
func TestOptionLikeValuesRefusedByEveryProgram(t *testing.T) {
	var progs []string
	for _, p := range programs.All() {
		progs = append(progs, p.Name)
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "x")
	for _, bad := range []string{
		"SYNCSRC=" + config.Quote("-oProxyCommand=touch "+marker),
		"SYNCSRC=" + config.Quote("$(touch "+marker+")"),
		"SYNCSRC=" + config.Quote("prod;touch "+marker),
		"REMOTEODOO=" + config.Quote("-oProxyCommand=touch "+marker),
	} {
		conf := filepath.Join(dir, "ot.conf")
		os.WriteFile(conf, []byte("SYNCMODE=\"on\"\n"+bad+"\n"), 0o600)
		for _, prog := range progs {
			name := filepath.Base(prog)
			if name == "ot-redundancy" {
				continue // the multi-call binary: each program above is one of its
			}
			for _, extra := range [][]string{nil, {"--dry-run"}} {
				if name == "ot-status" && extra != nil {
					continue // a read-only check: no --dry-run
				}
				args := append([]string{"--config", conf}, extra...)
				if name == "ot-write-summary" {
					args = append(args, "x")
				}
				cmd := exec.Command(prog, args...)
				// ot-status reports on stdout, as monitoring checks do.
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				cmd.Stdin = nil
				err := cmd.Run()
				if err == nil {
					t.Errorf("%s %v accepted %s", name, extra, bad)
				}
				key, _, _ := strings.Cut(bad, "=")
				if !strings.Contains(out.String(), key) {
					t.Errorf("%s %v: output does not name %s: %q", name, extra, key, out.String())
				}
				if _, err := os.Stat(marker); err == nil {
					t.Fatalf("%s %v ran the injected command (%s)", name, extra, bad)
				}
			}
		}
	}
}
