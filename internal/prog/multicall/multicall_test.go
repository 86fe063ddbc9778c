package multicall

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/programs"
)

func TestNamesAreProgramsThenAliases(t *testing.T) {
	var want []string
	for _, p := range programs.All() {
		want = append(want, p.Name)
	}
	want = append(want, "ot-attachment-sync")
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	for _, n := range Names() {
		if lookup(n) == nil {
			t.Errorf("%s has no Main", n)
		}
	}
	if lookup(Name) != nil || lookup("ot-nonesuch") != nil {
		t.Error("lookup found a Main for a name that is no program")
	}
}

func TestOwnCommands(t *testing.T) {
	for _, c := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"--list"}, 0, "ot-connection-test\n", ""},
		{[]string{"--version"}, 0, Name + " " + cli.Version + "\n", ""},
		{[]string{"--help"}, 0, "Usage: ot-redundancy COMMAND", ""},
		{nil, cli.ExitUsage, "", "Usage: ot-redundancy COMMAND"},
		{[]string{"ot-nonesuch"}, cli.ExitUsage, "", `ot-redundancy: error: "ot-nonesuch" is not an ot-* command; ot-redundancy --list names them`},
		{[]string{"upgrade-conf", "0.5-3"}, cli.ExitUsage, "", "usage: ot-redundancy upgrade-conf OLD-VERSION FILE"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"/usr/libexec/ot-redundancy/" + Name}, c.args...), &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String(), c.out) || !strings.Contains(stderr.String(), c.errs) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, code, stdout.String(), stderr.String(), c.code, c.out, c.errs)
		}
	}
}

// The built binary, called through links as the package installs them:
// each name runs its own program, the alias runs the program it names.
func TestDispatchOnName(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, Name)
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/ot-redundancy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(out)) {
		if err := os.Symlink(Name, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{filepath.Join(dir, "ot-status"), "--version"}, "ot-status " + cli.Version + "\n"},
		{[]string{filepath.Join(dir, "ot-apt-sync"), "--version"}, "ot-apt-sync " + cli.Version + "\n"},
		{[]string{filepath.Join(dir, "ot-attachment-sync"), "--version"}, "ot-attachments-sync " + cli.Version + "\n"},
		{[]string{bin, "ot-write-summary", "--version"}, "ot-write-summary " + cli.Version + "\n"},
	} {
		got, err := exec.Command(c.argv[0], c.argv[1:]...).CombinedOutput()
		if err != nil || string(got) != c.want {
			t.Errorf("%q: %v: %q, want %q", c.argv, err, got, c.want)
		}
	}
	// Usage errors keep the program's own name and exit code.
	got, err := exec.Command(filepath.Join(dir, "ot-enable-sync"), "--nonesuch").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != cli.ExitUsage || !strings.HasPrefix(string(got), "ot-enable-sync: error: ") {
		t.Errorf("ot-enable-sync --nonesuch: %v: %q", err, got)
	}
}

func TestUpgradeConf(t *testing.T) {
	original := "# the operator's notes\nSYNCSRC=\"192.0.2.10\"\nREMOTEODOO=\"odoo\"\n"
	for _, c := range []struct {
		name, text, want, says string
	}{
		{"missing", original, original + "SYNCMODE=\"on\"\n", "SYNCMODE was missing"},
		{"empty", "SYNCMODE=\"\"  # sync\n" + original, "SYNCMODE=\"on\"  # sync\n" + original, "SYNCMODE was empty"},
		{"bare-empty", "SYNCMODE=\n" + original, "SYNCMODE=\"on\"\n" + original, "SYNCMODE was empty"},
		{"off", "SYNCMODE=\"off\"\n" + original, "SYNCMODE=\"off\"\n" + original, ""},
		{"on", "SYNCMODE=on\n" + original, "SYNCMODE=on\n" + original, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ot-redundancy-sync.conf")
			if err := os.WriteFile(path, []byte(c.text), 0o640); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := upgradeConf("0.5-3", path, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			got, _ := os.ReadFile(path)
			if string(got) != c.want {
				t.Errorf("file now:\n%s\nwant:\n%s", got, c.want)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
			if c.says == "" && stdout.Len() > 0 || !strings.Contains(stdout.String(), c.says) {
				t.Errorf("said %q, want %q", stdout.String(), c.says)
			}
		})
	}
	t.Run("no-file", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := upgradeConf("0.5-3", filepath.Join(t.TempDir(), "none"), &stdout, &stderr); code != 0 || stdout.Len()+stderr.Len() > 0 {
			t.Errorf("exit %d, %q %q", code, stdout.String(), stderr.String())
		}
	})
	// A file this version cannot read is left alone, and the error says
	// what to do; the package's postinst goes on.
	t.Run("unreadable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ot-redundancy-sync.conf")
		text := "SYNCMODE=\"\"\nSYNCSRC=\"192.0.2.10\"\nCUSTOM=\"x\"\n"
		os.WriteFile(path, []byte(text), 0o600)
		var stdout, stderr bytes.Buffer
		code := upgradeConf("0.5-3", path, &stdout, &stderr)
		if code != cli.ExitConfig || !strings.Contains(stderr.String(), "unknown key CUSTOM") || !strings.Contains(stderr.String(), "ot-enable-sync") {
			t.Errorf("exit %d: %q", code, stderr.String())
		}
		if got, _ := os.ReadFile(path); string(got) != text {
			t.Errorf("changed the file:\n%s", got)
		}
	})
}
