package pipsync

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestValidNameAndVersion(t *testing.T) {
	for _, s := range []string{"a", "Babel", "zope.interface", "odoo_addon_x", "ot-pip-a", "A1"} {
		if !ValidName(s) {
			t.Errorf("name %q refused", s)
		}
	}
	for _, s := range []string{"", "-e", "--index-url=http://x", "a b", "a;b", "_a", "a-", "a==1", "-r requirements.txt"} {
		if ValidName(s) {
			t.Errorf("name %q accepted", s)
		}
	}
	for _, s := range []string{"1", "1.0", "2.1.post1", "0.3rc1", "1!2.0", "1.0.dev3", "1.0+local.7", "v1.0", "14.0.1.0.0", "1.0-1"} {
		if !ValidVersion(s) {
			t.Errorf("version %q refused", s)
		}
	}
	for _, s := range []string{"", "-1", "--pre", "1.0 ", "1.0;x", "latest", "1.0+", ">=1"} {
		if ValidVersion(s) {
			t.Errorf("version %q accepted", s)
		}
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../testdata/fixtures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseInspect(t *testing.T) {
	dists, err := ParseInspect(read(t, "pip-inspect.json"))
	if err != nil || len(dists) != 6 || Validate(dists) != nil {
		t.Fatalf("%v %v", dists, err)
	}
	want := []string{"", "", "", "an editable install (file:///usr/share/odoo-x)", "a local install (file:///root/local_tool-1.0-py3-none-any.whl)", "a git install (https://github.com/example/gitdep)"}
	for i, d := range dists {
		if d.Direct != want[i] {
			t.Errorf("%s: %q, want %q", d.Name, d.Direct, want[i])
		}
	}
	p := MakePlan(dists, []Dist{{Name: "babel", Version: "2.8"}, {Name: "Zope-Interface", Version: "5.4.0"}}, false)
	if len(p.Install) != 0 || len(p.Differ) != 1 || p.Differ[0][1].Version != "2.8" || len(p.Direct) != 3 {
		t.Fatalf("%+v", p)
	}
	if p = MakePlan(dists, nil, true); len(p.Install) != 2 || p.Install[0].Name != "Babel" {
		t.Fatalf("%+v", p)
	}
}

func TestParseList(t *testing.T) {
	dists, err := ParseList(read(t, "pip-list.json"))
	if err != nil || len(dists) != 3 || dists[2].Direct != "an editable install (/usr/share/odoo-x)" {
		t.Fatalf("%v %v", dists, err)
	}
	dists, err = ParseList(read(t, "pip-list-hostile.json"))
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(dists)
	if err == nil || err.Error() != `name "--index-url=http://evil.example/simple", version "-e ." of requests: not a PEP 508 name or PEP 440 version` {
		t.Fatal(err)
	}
	if _, err := ParseInspect([]byte(`{"version": "2", "installed": []}`)); err == nil {
		t.Fatal("unknown report version accepted")
	}
}

func TestAvailable(t *testing.T) {
	out := []byte("WARNING: pip index is currently an experimental command.\not-pip-src (1.0)\nAvailable versions: 1.0, 0.9rc1\n")
	if got := Available(out); !slices.Equal(got, []string{"1.0", "0.9rc1"}) {
		t.Fatal(got)
	}
	if got := Available([]byte("ERROR: No matching distribution found for x\n")); got != nil {
		t.Fatal(got)
	}
}

// PIP runs as root only when root owns its virtualenv and its program;
// otherwise as the first other owner found, through setpriv.
func TestStandbyRunsPipAsTheVenvOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		prodlab.Missing(t, "needs root (chown)")
	}
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	python := filepath.Join(venv, "bin", "python")
	prodlab.WriteFile(t, filepath.Join(venv, "pyvenv.cfg"), "home = /usr/bin\n")
	prodlab.WriteFile(t, python, "")
	other := filepath.Join(dir, "pip3")
	prodlab.WriteFile(t, other, "")
	pip := []string{python, "-m", "pip"}
	argv := func(l Local) string { return strings.Join(l.Argv("list"), " ") + " | " + strings.Join(l.env, " ") }

	if l := Standby(pip); l.User != "root" || argv(l) != python+" -m pip list | " {
		t.Fatalf("root's venv: %s %s", l.User, argv(l))
	}
	for _, owned := range []string{filepath.Join(venv, "pyvenv.cfg"), venv, python} {
		chown(t, owned, 1, 1)
		want := "setpriv --reuid=daemon --regid=1 --init-groups -- " + python + " -m pip list | HOME=/usr/sbin USER=daemon LOGNAME=daemon"
		if l := Standby(pip); l.User != "daemon" || l.Owned != owned || argv(l) != want {
			t.Errorf("%s daemon's: %s owns %s: %s", owned, l.User, l.Owned, argv(l))
		}
		chown(t, owned, 0, 0)
	}
	// A program outside a virtualenv; an owner without a passwd entry.
	chown(t, other, 54321, 54322)
	want := "setpriv --reuid=54321 --regid=54322 --clear-groups -- " + other + " list | HOME=/ USER=54321 LOGNAME=54321"
	if l := Standby([]string{other}); l.User != "54321" || argv(l) != want {
		t.Errorf("%s: %s", l.User, argv(l))
	}
}

func chown(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}
