package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func fixture(t *testing.T) *Help { return fixtureFile(t, "testdata/help.txt") }

func fixtureFile(t *testing.T, name string) *Help {
	t.Helper()
	data, err := os.ReadFile(name)
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
		".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\nsuccess\n",
		".SH \"ENVIRONMENT\"\n.TP\n\\fBOT_CONFIG\\fR\n",
		".SH \"FILES\"\n.TP\n\\fB/etc/odoo/ot\\-redundancy\\-sync.conf\\fR\n",
		"\\fB/var/log/odoo/ot\\-redundancy\\-sync\\-timestamps.log\\fR\nSummary log",
		".SH \"SEE ALSO\"\n.BR ot\\-status (1),\n.BR ot\\-redundancy\\-sync.conf (5)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
	groffClean(t, page)
}

// ot-status's EXIT STATUS title carries a note; the page once lost the
// heading and ran the note into the last option.
func TestTitleWithNote(t *testing.T) {
	h := fixtureFile(t, "testdata/status-help.txt")
	var titles []string
	for _, s := range h.Sections {
		titles = append(titles, s.Title)
	}
	if !slices.Equal(titles, []string{"Flags", "EXIT STATUS"}) {
		t.Fatalf("sections %q", titles)
	}
	exit := h.Sections[1]
	if exit.Note != `monitoring-plugin convention; the first line is "STATUS: LEVEL: text"` {
		t.Errorf("note %q", exit.Note)
	}
	if len(exit.Items) != 4 || exit.Items[2].Term != "2" || !strings.HasSuffix(exit.Items[2].Desc, "of recovery while not promoted, corrupt files); also a bad command line") {
		t.Errorf("exit codes %+v", exit.Items)
	}
	if flags := h.Sections[0].Items; len(flags) != 2 || flags[1].Desc != "Replay lag above this is CRITICAL." {
		t.Errorf("the last flag is %+v", flags[len(flags)-1])
	}
	page := Man("ot-status", h, "1.0.0-1", "2026-11-26", []string{"ot-status"})
	want := ".SH \"EXIT STATUS\"\nMonitoring\\-plugin convention; the first line is \"STATUS: LEVEL: text\".\n.TP\n\\fB0\\fR\n"
	if !strings.Contains(page, want) {
		t.Errorf("man page lacks %q:\n%s", want, page)
	}
	groffClean(t, page)
}

func TestConfManShowsEveryKey(t *testing.T) {
	page := ConfMan("1.0.0-1", "2026-11-26", []string{"ot-configure", "ot-status"})
	for _, d := range config.Defs {
		if !strings.Contains(page, ".TP\n\\fB"+d.Name+"\\fR\n") {
			t.Errorf("the page lacks %s", d.Name)
		}
	}
	for _, want := range []string{
		".TH OT\\-REDUNDANCY\\-SYNC.CONF 5 \"2026-11-26\" \"ot-redundancy 1.0.0-1\"",
		"\\fBSYNCMODE\\fR\nSyncing runs only when",
		"when empty). Words separated by spaces, none starting with \\-. Default: empty.\n",
		"\\fBSSH_PORT\\fR\nProduction's ssh port. A port number, 1 to 65535. Default: \"22\".\n",
		".BR ot\\-configure (1),\n.BR ot\\-status (1)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	for k := config.Kind(0); k <= config.KindPercent; k++ {
		if kindWords(k) == "" {
			t.Errorf("kind %d has no words", k)
		}
	}
	groffClean(t, page)
}

// groffClean renders a page as man does, with every warning on.
func groffClean(t *testing.T, page string) {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		prodlab.Missing(t, "no groff to check the page with")
		return
	}
	file := filepath.Join(t.TempDir(), "page")
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
