package fullsync

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/aptlab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/piplab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/aptsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/confsync"
)

func TestMain(m *testing.M) {
	code := m.Run()
	piplab.Cleanup()
	os.Exit(code)
}

// The lab's apt package is only in a repository that production's apt
// sources name and the standby's do not: ot-conf-sync must copy them first.
var (
	debPkg = aptlab.Pkg{Name: "otfullsync-a", Version: "1.0"}
	wheel  = piplab.Wheel{Name: "ot-full-w", Version: "3.1"}
)

// lab is production with configuration (odoo.conf, apt sources), an apt
// package, a pip package, addon projects and a filestore, and a standby
// that has none of them, at the same paths.
type lab struct {
	prod      *prodlab.Prod
	dir       string
	conf      string
	kv        map[string]string // the configuration's keys
	odooConf  string            // ODOO_CONF (the standby's)
	share     string            // PROJECTS_DIR (the standby's)
	filestore string            // FILESTORE (the standby's)
	pip       string            // the standby's pip command
	prodPip   string
	env       []string // apt-get without the host's hooks
	opts      Options
	nProjects int
}

func newLab(t testing.TB, nProjects int) *lab {
	t.Helper()
	prodlab.Require(t, "rsync", "apt-get", "apt-mark", "dpkg-deb", "dpkg-scanpackages", "gpg", "gpgconf")
	dir := t.TempDir()
	for d := dir; strings.HasPrefix(d, filepath.Clean(os.TempDir())+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	l := &lab{dir: dir, nProjects: nProjects,
		odooConf:  filepath.Join(dir, "etc", "odoo", "odoo.conf"),
		share:     prodlab.Mkdir(t, filepath.Join(dir, "share")),
		filestore: prodlab.Mkdir(t, filepath.Join(dir, "filestore")),
	}
	prod := filepath.Join(dir, "prod")
	aptDir := filepath.Join(dir, "etc", "apt")

	// conf: the standby's odoo.conf and apt sources are old; production's
	// sources name the repository holding the package, signed by a key the
	// standby has (ot-conf-sync refuses unsigned sources).
	prodlab.WriteFile(t, l.odooConf, "[options]\nold = 1\n")
	prodlab.WriteFile(t, filepath.Join(aptDir, "sources.list"), "# the standby's old sources\n")
	prodlab.Mkdir(t, filepath.Join(aptDir, "sources.list.d"))
	prodlab.WriteFile(t, filepath.Join(prod, "odoo", "odoo.conf"), "[options]\nnew = 1\n")
	key := aptlab.NewKey(t, dir)
	keyring := filepath.Join(aptDir, "keyrings", "ot-test.gpg")
	key.Export(t, keyring)
	prodlab.WriteFile(t, filepath.Join(prod, "apt", "sources.list"), aptlab.SignedRepo(t, filepath.Join(dir, "repo"), key, keyring, debPkg))
	prodlab.Mkdir(t, filepath.Join(prod, "apt", "sources.list.d"))
	// pip: a venv on each side; production's has the wheel.
	wh := piplab.Wheelhouse(t, filepath.Join(dir, "wheels"), wheel)
	l.prodPip = piplab.Venv(t, filepath.Join(dir, "prod-venv"), wh)
	l.pip = piplab.Venv(t, filepath.Join(dir, "venv"), wh)
	piplab.Run(t, append(strings.Fields(l.prodPip), "install", "-q", wheel.Name+"=="+wheel.Version)...)
	// projects and filestore.
	for i := range nProjects {
		prodlab.WriteFile(t, filepath.Join(prod, "share", fmt.Sprintf("odoo-addons-%02d", i), "mod", "__init__.py"), fmt.Sprintf("# project %d\n", i))
	}
	prodlab.WriteFile(t, filepath.Join(prod, "share", "core-odoo", "odoo-bin"), "# Odoo itself: never synced\n")
	prodlab.WriteFile(t, filepath.Join(prod, "filestore", "db1", "ab", "abcdef"), "attachment\n")

	// apt: production's dpkg database has the package, manual.
	binds := aptlab.ProductionBinds(t, prod, []aptlab.Pkg{debPkg}, nil)
	binds[filepath.Dir(l.odooConf)] = filepath.Join(prod, "odoo")
	binds[aptDir] = filepath.Join(prod, "apt")
	binds[l.share] = filepath.Join(prod, "share")
	binds[l.filestore] = filepath.Join(prod, "filestore")
	l.prod = prodlab.Start(t, prodlab.Options{Binds: binds})
	l.conf = filepath.Join(dir, "ot.conf")
	l.kv = map[string]string{
		"CONF_SYNC":    "odoo apt",
		"ODOO_CONF":    l.odooConf,
		"APT_DIR":      aptDir,
		"PIP":          l.pip,
		"REMOTE_PIP":   l.prodPip,
		"PROJECTS_DIR": l.share,
		"FILESTORE":    l.filestore,
		"ODOO_USER":    "daemon",
		"ODOO_GROUP":   "daemon",
		"PG_CLUSTER":   "99/none", // never the host's clusters
	}
	l.prod.WriteConfig(t, l.conf, l.kv)
	aptConfig := aptlab.Private(t, filepath.Join(dir, "apt-state"))
	l.opts = Options{Conf: confsync.Options{AptConfig: aptConfig}, Apt: aptsync.Options{Config: aptConfig}}
	l.env = []string{aptlab.HookFreeEnv(t, dir)}
	aptlab.PurgeAtCleanup(t, debPkg.Name)
	return l
}

func (l *lab) config(t testing.TB, extra map[string]string) {
	t.Helper()
	kv := maps.Clone(l.kv)
	maps.Copy(kv, extra)
	l.prod.WriteConfig(t, l.conf, kv)
}

// sync runs ot-sync-from-source's job in this process.
func (l *lab) sync(t testing.TB, dryRun bool, opts Options) (int, string, string) {
	t.Helper()
	r := clilab.Run(t, Name, cli.Globals{Config: l.conf, DryRun: dryRun}, zerolog.InfoLevel, l.env, func(env *cli.Env) error {
		return job.Sync(env, Name, job.Flags{}, func(j *job.Job) error { return Sync(j, opts) })
	})
	return r.Code, r.Stdout, r.Stderr
}

func (l *lab) stamps(t testing.TB) map[string]bool {
	t.Helper()
	last, err := summary.Last(l.prod.SummaryFile())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for k := range last {
		m[k] = true
	}
	return m
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestFullSyncOverOneConnection(t *testing.T) {
	l := newLab(t, 3)

	// A dry run previews every step and changes nothing.
	code, out, _ := l.sync(t, true, l.opts)
	for _, s := range StepNames() {
		if !strings.Contains(out, "# ---- "+s+" (") {
			t.Errorf("dry run: no %s section", s)
		}
	}
	// apt's lists know production's package only once ot-conf-sync's sources
	// are updated: the plan names it in a comment, never in a command.
	if code != 0 || !strings.Contains(out, "never given to apt-get (the real run asks again after the update): otfullsync-a\n") || !strings.Contains(out, "ot-full-w==3.1") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if exists(filepath.Join(l.share, "odoo-addons-00")) || aptlab.Installed(t, debPkg.Name) != "" || len(l.stamps(t)) != 0 {
		t.Fatal("the dry run changed something")
	}

	before := l.prod.Logins(t)
	code, out, _ = l.sync(t, false, l.opts)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := l.prod.Logins(t) - before; n != 1 {
		t.Errorf("%d ssh logins, want 1", n)
	}
	for _, s := range StepNames() {
		if !strings.Contains(out, fmt.Sprintf("\n%-10s ok ", s)) {
			t.Errorf("table lacks %s ok:\n%s", s, out)
		}
	}
	// Configuration first: the package only production's sources know installed.
	if got := aptlab.Installed(t, debPkg.Name); got != debPkg.Version {
		t.Errorf("apt: %s installed %q", debPkg.Name, got)
	}
	if got := piplab.Versions(t, l.pip); got[wheel.Name] != wheel.Version || len(got) != 1 {
		t.Errorf("pip: %v", got)
	}
	if b, _ := os.ReadFile(l.odooConf); string(b) != "[options]\nnew = 1\n" {
		t.Errorf("odoo.conf: %q", b)
	}
	for i := range l.nProjects {
		if !exists(filepath.Join(l.share, fmt.Sprintf("odoo-addons-%02d", i), "mod", "__init__.py")) {
			t.Errorf("project %d not synced", i)
		}
	}
	if exists(filepath.Join(l.share, "core-odoo")) {
		t.Error("core-odoo synced")
	}
	if !exists(filepath.Join(l.filestore, "db1", "ab", "abcdef")) {
		t.Error("filestore not synced")
	}
	want := map[string]bool{Name: true, "ot-conf-sync": true, "ot-apt-sync": true, "ot-pip-sync": true, "ot-project-sync": true, "ot-attachments-sync": true}
	if got := l.stamps(t); !maps.Equal(got, want) {
		t.Errorf("summary has %v, want %v", got, want)
	}
}

func TestFailingStepLeavesTheOthersDone(t *testing.T) {
	l := newLab(t, 2)
	// pip fails: production's pip is missing.
	l.config(t, map[string]string{"REMOTE_PIP": filepath.Join(l.dir, "no-such-pip")})
	code, out, stderr := l.sync(t, false, l.opts)
	if code != cli.ExitFailure {
		t.Fatalf("exit %d, want %d", code, cli.ExitFailure)
	}
	if !strings.Contains(stderr, "ot-sync-from-source: error: pip: cannot list production's pip packages") ||
		!strings.HasSuffix(stderr, "ot-sync-from-source: error: 1 of 5 steps failed: pip; see the errors above; once fixed, run ot-sync-from-source --only pip\n") {
		t.Errorf("stderr %q", stderr)
	}
	if !strings.Contains(out, fmt.Sprintf("\n%-10s failed ", "pip")) || !strings.Contains(out, fmt.Sprintf("\n%-10s ok ", "filestore")) {
		t.Errorf("table:\n%s", out)
	}
	if aptlab.Installed(t, debPkg.Name) != debPkg.Version || !exists(filepath.Join(l.share, "odoo-addons-01")) || !exists(filepath.Join(l.filestore, "db1", "ab", "abcdef")) {
		t.Error("a step after the failing one did not run")
	}
	want := map[string]bool{"ot-conf-sync": true, "ot-apt-sync": true, "ot-project-sync": true, "ot-attachments-sync": true}
	if got := l.stamps(t); !maps.Equal(got, want) {
		t.Errorf("summary has %v, want %v", got, want)
	}

	// --only the failed step, fixed: it alone runs, and the whole's line
	// says it was not a full sync.
	l.config(t, nil)
	opts := l.opts
	opts.Only = []string{"pip"}
	if code, out, _ = l.sync(t, false, opts); code != 0 || strings.Contains(out, "\napt ") {
		t.Fatalf("--only pip: exit %d\n%s", code, out)
	}
	if got := l.stamps(t); !got["ot-pip-sync"] || got[Name] || !got[Name+" --only pip"] {
		t.Errorf("summary has %v", got)
	}
}
