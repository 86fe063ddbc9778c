package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func fixture(t *testing.T) *Help {
	t.Helper()
	data, err := os.ReadFile("testdata/help.txt")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHelp(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseHelp(t *testing.T) {
	h := fixture(t)
	if h.Usage != "ot-probe [<args> ...] [flags]" {
		t.Errorf("usage %q", h.Usage)
	}
	if got := h.Summary(); got != "copy production's filestore to the standby" {
		t.Errorf("summary %q", got)
	}
	var titles []string
	for _, s := range h.Sections {
		titles = append(titles, s.Title)
	}
	if !slices.Equal(titles, []string{"Arguments", "Flags", "EXIT STATUS"}) {
		t.Errorf("sections %q", titles)
	}
	flags := h.Sections[1].Items
	force := flags[len(flags)-2]
	if force.Term != "--force" || !strings.HasSuffix(force.Desc, "wrapped by kong because it is really long and goes on.") {
		t.Errorf("wrapped flag parsed as %+v", force)
	}
	if exit := h.Sections[2].Items; len(exit) != 10 || exit[9].Term != "130" {
		t.Errorf("exit codes %+v", exit)
	}
	want := []string{"-h", "--help", "--config=", "-n", "--dry-run", "-v", "--verbose",
		"-q", "--quiet", "--log-format=", "--version", "--force", "--cron"}
	if got := h.Options(); !slices.Equal(got, want) {
		t.Errorf("options %q", got)
	}
}

func TestParseHelpRefusesOtherText(t *testing.T) {
	if _, err := ParseHelp("ot-probe: error: something\n"); err == nil {
		t.Error("no error for text without Usage")
	}
}

func TestManRendersWithoutWarnings(t *testing.T) {
	page := Man("ot-probe", fixture(t), "1.0.0-1", "2026-11-26", []string{"ot-probe", "ot-status"})
	for _, want := range []string{
		`ot\-probe \- copy production's filestore to the standby`,
		".SH \"OPTIONS\"\n.TP\n\\fB\\-h, \\-\\-help\\fR\n",
		".SH \"EXIT STATUS\"",
		".BR ot\\-status (1)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		prodlab.Missing(t, "no groff to check the page with")
	}
	file := filepath.Join(t.TempDir(), "ot-probe.1")
	os.WriteFile(file, []byte(page), 0o644)
	out, err := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z", file).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff: %v: %s", err, out)
	}
}

func TestCompletionIsValidBash(t *testing.T) {
	script := Completion("ot-probe", []string{"ot-p2"}, fixture(t))
	if !strings.Contains(script, "complete -o default -F _ot_probe ot-probe ot-p2\n") {
		t.Errorf("completion:\n%s", script)
	}
	out, err := exec.Command("bash", "-c", script+"\ncomplete -p ot-p2").CombinedOutput()
	if err != nil {
		t.Errorf("bash: %v: %s", err, out)
	}
}
