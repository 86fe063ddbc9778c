package pipsync

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/piplab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestMain(m *testing.M) {
	code := m.Run()
	piplab.Cleanup()
	os.Exit(code)
}

type lab struct {
	prod       *prodlab.Prod
	dir        string
	conf       string
	prodPip    string
	standbyPip string
	wheelhouse string
	env        []string // extra environment for the commands a sync runs
}

// open makes dir and its ancestors in the temporary directory traversable:
// production's odoo runs production's pip from the shared file system.
func open(t *testing.T, dir string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for d := dir; strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// startLab builds wheels, a production venv with prodReqs installed and a
// standby venv with standbyReqs, both installing only from the wheelhouse.
func startLab(t *testing.T, wheels []piplab.Wheel, prodReqs, standbyReqs []string) *lab {
	prodlab.Require(t, "rsync")
	if _, err := os.Stat(piplab.Python()); err != nil && piplab.Python() != "python3" {
		t.Fatal(err)
	}
	dir := t.TempDir()
	open(t, dir)
	l := &lab{dir: dir, wheelhouse: piplab.Wheelhouse(t, filepath.Join(dir, "wheels"), wheels...)}
	l.prodPip = piplab.Venv(t, filepath.Join(dir, "prod-venv"), l.wheelhouse)
	l.standbyPip = piplab.Venv(t, filepath.Join(dir, "standby-venv"), l.wheelhouse)
	if len(prodReqs) > 0 {
		piplab.Run(t, append(strings.Fields(l.prodPip+" install -q"), prodReqs...)...)
	}
	if len(standbyReqs) > 0 {
		piplab.Run(t, append(strings.Fields(l.standbyPip+" install -q"), standbyReqs...)...)
	}
	l.prod = prodlab.Start(t, prodlab.Options{})
	l.conf = filepath.Join(dir, "ot.conf")
	l.config(t, nil)
	return l
}

func (l *lab) config(t *testing.T, extra map[string]string) {
	kv := map[string]string{"PIP": l.standbyPip, "REMOTE_PIP": l.prodPip, "PG_CLUSTER": "99/none"}
	maps.Copy(kv, extra)
	l.prod.WriteConfig(t, l.conf, kv)
}

func (l *lab) sync(t *testing.T, dryRun bool, opts Options) (int, string, string) {
	t.Helper()
	r := clilab.Run(t, Name, cli.Globals{Config: l.conf, DryRun: dryRun}, zerolog.InfoLevel, l.env, func(env *cli.Env) error {
		return job.Sync(env, Name, job.Flags{}, func(j *job.Job) error { return Sync(j, opts) })
	})
	return r.Code, r.Stdout, r.Stderr
}

var wheels = []piplab.Wheel{
	{Name: "ot-pip-a", Version: "1.0"},
	{Name: "ot-pip-b", Version: "2.0"},
	{Name: "ot-pip-b", Version: "2.1.post1"},
	{Name: "ot-pip-c", Version: "0.3rc1"},
}

func TestSyncInstallsProductionsVersions(t *testing.T) {
	l := startLab(t, wheels, []string{"ot-pip-a==1.0", "ot-pip-b==2.1.post1", "ot-pip-c==0.3rc1"}, []string{"ot-pip-b==2.0"})
	// A local-path install on production is reported, never installed.
	local := piplab.Wheel{Name: "ot-pip-local", Version: "9.9"}.Build(t, t.TempDir())
	piplab.Run(t, append(strings.Fields(l.prodPip), "install", "-q", local)...)

	code, out, _ := l.sync(t, true, Options{})
	if code != 0 || !strings.Contains(out, "# install production's 2 pip package(s) missing here, at production's versions\n") ||
		!strings.Contains(out, "install --no-input --disable-pip-version-check --only-binary=:all: ot-pip-a==1.0 ot-pip-c==0.3rc1\n") ||
		!strings.Contains(out, "pip: Would install ot-pip-a-1.0 ot-pip-c-0.3rc1\n") ||
		strings.Contains(out, "--break-system-packages") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if got := piplab.Versions(t, l.standbyPip); len(got) != 1 {
		t.Fatalf("the dry run installed: %v", got)
	}

	code, out, _ = l.sync(t, false, Options{})
	if code != 0 || !strings.Contains(out, "pip: ot-pip-b differs: production 2.1.post1, here 2.0\n") ||
		!strings.Contains(out, "pip: not installed: ot-pip-local 9.9: production's copy is a local install (file://") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	want := map[string]string{"ot-pip-a": "1.0", "ot-pip-b": "2.0", "ot-pip-c": "0.3rc1"}
	if got := piplab.Versions(t, l.standbyPip); !maps.Equal(got, want) {
		t.Fatalf("standby has %v, want %v", got, want)
	}

	// Aligned, the standby has exactly production's wheels, the local one aside.
	if code, _, _ = l.sync(t, false, Options{AlignVersions: true}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	prod := piplab.Versions(t, l.prodPip)
	delete(prod, "ot-pip-local")
	if got := piplab.Versions(t, l.standbyPip); !maps.Equal(got, prod) {
		t.Fatalf("standby has %v, production %v", got, prod)
	}
}

func TestHostileListingIsRefused(t *testing.T) {
	l := startLab(t, wheels, nil, nil)
	fake := filepath.Join(l.dir, "fake-pip")
	report := `{"version": "1", "installed": [` +
		`{"metadata": {"name": "ot-pip-a", "version": "1.0"}},` +
		`{"metadata": {"name": "--index-url=http://127.0.0.1:9/simple", "version": "1.0"}}]}`
	if err := os.WriteFile(fake, []byte("#!/bin/sh\ncat <<'EOF'\n"+report+"\nEOF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.config(t, map[string]string{"REMOTE_PIP": fake})
	code, _, stderr := l.sync(t, false, Options{})
	if code != cli.ExitRefused || !strings.Contains(stderr, `listed name "--index-url=http://127.0.0.1:9/simple": not a PEP 508 name or PEP 440 version; nothing was installed`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := piplab.Versions(t, l.standbyPip); len(got) != 0 {
		t.Fatalf("installed despite the refusal: %v", got)
	}
}

func TestExternallyManagedPythonGivesOneLine(t *testing.T) {
	marker, err := filepath.Glob("/usr/lib/python3*/EXTERNALLY-MANAGED")
	if err != nil || len(marker) == 0 {
		prodlab.Missing(t, "no externally managed system Python here")
	}
	l := startLab(t, wheels, []string{"ot-pip-a==1.0"}, nil)
	l.config(t, map[string]string{"PIP": "/usr/bin/python3 -m pip"})
	// The dry run meets the refusal too, through pip's own --dry-run.
	code, out, _ := l.sync(t, true, Options{})
	if code != 0 || !strings.Contains(out, "pip: the real run would fail: /usr/bin/python3 -m pip refuses to install into this externally managed Python (PEP 668)") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	code, _, stderr := l.sync(t, false, Options{})
	want := "ot-pip-sync: error: /usr/bin/python3 -m pip refuses to install into this externally managed Python (PEP 668); set PIP_BREAK_SYSTEM_PACKAGES=yes in " + l.conf + " to allow it, or set PIP to a venv's pip\n"
	if code != cli.ExitRefused || stderr != want {
		t.Fatalf("exit %d, stderr %q; want %q", code, stderr, want)
	}
	// Only the key allows --break-system-packages (shown by a dry run,
	// whose pip --dry-run then resolves from the wheelhouse).
	l.config(t, map[string]string{"PIP": "/usr/bin/python3 -m pip", "PIP_BREAK_SYSTEM_PACKAGES": "yes"})
	l.env = []string{"PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + l.wheelhouse}
	if code, out, _ := l.sync(t, true, Options{}); code != 0 || !strings.Contains(out, "/usr/bin/python3 -m pip install --no-input --disable-pip-version-check --only-binary=:all: --break-system-packages ot-pip-a==1.0\n") ||
		!strings.Contains(out, "pip: Would install ot-pip-a-1.0\n") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
}

func TestUnknownRequirementIsNamed(t *testing.T) {
	l := startLab(t, wheels, []string{"ot-pip-a==1.0", "ot-pip-b==2.0", "ot-pip-c==0.3rc1"}, nil)
	// The standby's wheelhouse lacks two of them; pip names one at a time.
	os.Remove(filepath.Join(l.wheelhouse, "ot_pip_b-2.0-py3-none-any.whl"))
	os.Remove(filepath.Join(l.wheelhouse, "ot_pip_c-0.3rc1-py3-none-any.whl"))
	code, out, _ := l.sync(t, true, Options{})
	if code != 0 || !strings.Contains(out, "pip: the real run would fail: production's pip package(s) ot-pip-b==2.0, ot-pip-c==0.3rc1 not found by ") ||
		!strings.Contains(out, "pip: Would install ot-pip-a-1.0\n") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if got := piplab.Versions(t, l.standbyPip); len(got) != 0 {
		t.Fatalf("the dry run installed: %v", got)
	}
	code, _, stderr := l.sync(t, false, Options{})
	if code != cli.ExitFailure || !strings.Contains(stderr, "ot-pip-sync: error: production's pip package(s) ot-pip-b==2.0, ot-pip-c==0.3rc1 not found by ") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := piplab.Versions(t, l.standbyPip); got["ot-pip-a"] != "1.0" {
		t.Fatalf("standby has %v", got)
	}
}

// A package this standby's index has only as source is refused by default
// (its build would run the package's code), with one line naming the key
// that allows it. Allowed, in a virtualenv that belongs to another user,
// pip runs as that user: the build's marker is that user's, not root's.
func TestSourceOnlyIsRefusedThenBuiltAsTheVenvOwner(t *testing.T) {
	const owner, uid = "daemon", 1
	l := startLab(t, wheels, []string{"ot-pip-a==1.0"}, []string{"ot-pip-a==1.0"})
	// Production has ot-pip-src (as a wheel); this standby's index has
	// only its source, whose build writes the marker.
	wheel := piplab.Wheel{Name: "ot-pip-src", Version: "1.0"}.Build(t, l.wheelhouse)
	piplab.Run(t, append(strings.Fields(l.prodPip), "install", "-q", "ot-pip-src==1.0")...)
	os.Remove(wheel)
	marks := filepath.Join(l.dir, "marks")
	prodlab.Mkdir(t, marks)
	os.Chmod(marks, 0o1777)
	marker := filepath.Join(marks, "built")
	piplab.Sdist{Name: "ot-pip-src", Version: "1.0", Marker: marker}.Build(t, l.wheelhouse)
	venv := filepath.Dir(filepath.Dir(strings.Fields(l.standbyPip)[0]))
	piplab.Run(t, "chown", "-R", owner+":", venv)

	code, _, stderr := l.sync(t, false, Options{})
	want := "ot-pip-sync: error: production's pip package(s) ot-pip-src==1.0 exist only as source (sdist) here, and a build runs the package's code: refused, only wheels are installed; nothing was installed; set PIP_ALLOW_SDIST=yes in " + l.conf + " to let pip build them (as " + owner + "), or install them by hand\n"
	if code != cli.ExitRefused || stderr != want {
		t.Fatalf("exit %d, stderr %q; want 8, %q", code, stderr, want)
	}
	if prodlab.Exists(marker) || piplab.Versions(t, l.standbyPip)["ot-pip-src"] != "" {
		t.Fatal("built or installed despite the refusal")
	}

	// Allowed: a dry run says what it would build, and as whom, and builds
	// nothing.
	l.config(t, map[string]string{"PIP_ALLOW_SDIST": "yes"})
	code, out, _ := l.sync(t, true, Options{})
	if code != 0 || !strings.Contains(out, "pip: would build from source (PIP_ALLOW_SDIST=yes), as "+owner+": ot-pip-src==1.0\n") ||
		!strings.Contains(out, "# install production's 1 pip package(s) missing here, at production's versions, as "+owner+", who owns "+venv+"\n") ||
		!strings.Contains(out, "HOME=") || !strings.Contains(out, " setpriv --reuid="+owner+" ") || strings.Contains(out, "--only-binary") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if prodlab.Exists(marker) {
		t.Fatal("the dry run built the package")
	}
	if code, _, _ = l.sync(t, false, Options{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	fi, err := os.Stat(marker)
	if err != nil {
		t.Fatalf("the build did not run: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || prodlab.ReadFile(t, marker) != "built by uid 1\n" {
		t.Fatalf("the build ran as uid %d (%q), not as %s", st.Uid, prodlab.ReadFile(t, marker), owner)
	}
	if got := piplab.Versions(t, l.standbyPip)["ot-pip-src"]; got != "1.0" {
		t.Fatalf("ot-pip-src %q installed", got)
	}
	// What pip installed is the owner's, like the rest of the virtualenv.
	mods, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "ot_pip_src.py"))
	if len(mods) != 1 {
		t.Fatalf("installed module: %v", mods)
	}
	if fi, err := os.Stat(mods[0]); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid {
		t.Fatalf("%s: %v, not %s's", mods[0], err, owner)
	}
}
