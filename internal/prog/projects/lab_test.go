package projects

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/aptlab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// fixture is one lab: production's projects live in Prod, shown to
// production at Share, the standby's PROJECTS_DIR.
type fixture struct {
	lab   *prodlab.Prod
	conf  string
	share string // PROJECTS_DIR on both machines (the standby's copy here)
	prod  string // production's PROJECTS_DIR content, on the host
	cfg   *config.Config
}

func newFixture(t *testing.T) *fixture {
	prodlab.Require(t, "rsync")
	dir := t.TempDir()
	f := &fixture{share: filepath.Join(dir, "share"), prod: filepath.Join(dir, "prod-share"), conf: filepath.Join(dir, "ot.conf")}
	prodlab.Mkdir(t, f.share)
	prodlab.Mkdir(t, f.prod)
	f.lab = prodlab.Start(t, prodlab.Options{Binds: map[string]string{f.share: f.prod}})
	f.lab.WriteConfig(t, f.conf, map[string]string{
		"PROJECTS_DIR": f.share,
		"ODOO_USER":    "daemon",
		"ODOO_GROUP":   "daemon",
		"PG_CLUSTER":   "99/none", // never the host's clusters
	})
	cfg, err := config.Load(f.conf)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	return f
}

// sync runs ot-project-sync's Run in-process and returns its exit code and
// what it printed.
func (f *fixture) sync(t *testing.T, dryRun bool) (int, string) {
	t.Helper()
	c := &CLI{}
	r := clilab.Run(t, Name, cli.Globals{Config: f.conf, DryRun: dryRun, LogFormat: "console"}, zerolog.DebugLevel, nil, c.Run)
	return r.Code, r.Stdout + r.Stderr + r.Log
}

func (f *fixture) summary(t *testing.T) string {
	b, err := os.ReadFile(f.cfg.Get(config.SummaryFile))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) backups(t *testing.T) []string {
	m, _ := filepath.Glob(filepath.Join(f.cfg.Get(config.BackupDir), "*", f.share, "*"))
	return m
}

func TestSyncCopiesUpdatesAndKeepsStaleInBackup(t *testing.T) {
	f := newFixture(t)
	// Production: a new project with caches and a setuid file, an updated
	// one, Odoo itself (excluded) and an unrelated directory.
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "models", "a.py"), "a\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "models", "a.pyc"), "bytecode")
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "models", "__pycache__", "a.cpython-311.pyc"), "bytecode")
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "run.sh"), "#!/bin/sh\n")
	os.Chmod(filepath.Join(f.prod, "a-odoo", "run.sh"), 0o4755)
	prodlab.WriteFile(t, filepath.Join(f.prod, "b-odoo", "b.py"), "b v2\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "core-odoo", "odoo.py"), "core\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "unrelated", "x"), "x\n")
	// Standby: an old b-odoo with a file and a cached folder production
	// deleted, a stale project, its own core-odoo and an unrelated folder.
	prodlab.WriteFile(t, filepath.Join(f.share, "b-odoo", "b.py"), "b v1\n")
	old := time.Now().Add(-time.Hour) // same size: rsync tells them apart by mtime
	os.Chtimes(filepath.Join(f.share, "b-odoo", "b.py"), old, old)
	prodlab.WriteFile(t, filepath.Join(f.share, "b-odoo", "gone.py"), "gone\n")
	prodlab.WriteFile(t, filepath.Join(f.share, "b-odoo", "oldpkg", "__pycache__", "m.cpython-311.pyc"), "bytecode")
	prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "s.py"), "s\n")
	prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "__pycache__", "s.pyc"), "bytecode")
	prodlab.WriteFile(t, filepath.Join(f.share, "core-odoo", "odoo.py"), "local core\n")
	prodlab.WriteFile(t, filepath.Join(f.share, "mine", "y"), "y\n")
	before, _ := os.Stat(f.share)

	if code, out := f.sync(t, false); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if got := prodlab.ReadFile(t, filepath.Join(f.share, "a-odoo", "models", "a.py")); got != "a\n" {
		t.Errorf("a.py = %q", got)
	}
	for _, p := range []string{"a-odoo/models/a.pyc", "a-odoo/models/__pycache__", "b-odoo/oldpkg", "b-odoo/gone.py", "stale-odoo", "unrelated"} {
		if prodlab.Exists(filepath.Join(f.share, p)) {
			t.Errorf("%s exists on the standby", p)
		}
	}
	if got := prodlab.ReadFile(t, filepath.Join(f.share, "b-odoo", "b.py")); got != "b v2\n" {
		t.Errorf("b.py = %q", got)
	}
	if got := prodlab.ReadFile(t, filepath.Join(f.share, "core-odoo", "odoo.py")); got != "local core\n" {
		t.Errorf("excluded core-odoo touched: %q", got)
	}
	if !prodlab.Exists(filepath.Join(f.share, "mine", "y")) {
		t.Error("unrelated standby folder removed")
	}
	// Owner root, group ODOO_GROUP with write, no setuid.
	fi, _ := os.Stat(filepath.Join(f.share, "a-odoo", "run.sh"))
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || st.Gid != 1 || fi.Mode().Perm() != 0o775 || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("run.sh: uid %d gid %d mode %v", st.Uid, st.Gid, fi.Mode())
	}
	fi, _ = os.Stat(filepath.Join(f.share, "a-odoo", "models"))
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 1 || fi.Mode().Perm() != 0o775 {
		t.Errorf("models: gid %d mode %v", st.Gid, fi.Mode())
	}
	// PROJECTS_DIR itself is not rsync's to change.
	if after, _ := os.Stat(f.share); after.Mode() != before.Mode() {
		t.Errorf("PROJECTS_DIR mode %v -> %v", before.Mode(), after.Mode())
	}
	// The stale project and the overwritten/deleted files are in the backup.
	stamp, _ := filepath.Glob(filepath.Join(f.cfg.Get(config.BackupDir), "*"))
	if len(stamp) != 1 {
		t.Fatalf("backup folders %v", stamp)
	}
	bk := filepath.Join(stamp[0], f.share)
	if got := prodlab.ReadFile(t, filepath.Join(bk, "stale-odoo", "s.py")); got != "s\n" {
		t.Errorf("stale project in backup: %q", got)
	}
	if got := prodlab.ReadFile(t, filepath.Join(bk, "b-odoo", "gone.py")); got != "gone\n" {
		t.Errorf("deleted file in backup: %q", got)
	}
	if got := prodlab.ReadFile(t, filepath.Join(bk, "b-odoo", "b.py")); got != "b v1\n" {
		t.Errorf("overwritten file in backup: %q", got)
	}
	if !strings.Contains(f.summary(t), ":  ot-project-sync\n") {
		t.Errorf("no summary line: %q", f.summary(t))
	}

	// A second run changes nothing and moves nothing.
	if code, out := f.sync(t, false); code != 0 || !strings.Contains(out, "(0 added, 0 changed, 0 deleted); 0 stale") {
		t.Fatalf("second run: exit %d: %s", code, out)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newFixture(t)
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "a.py"), "a\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "a.pyc"), "bytecode")
	prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "s.py"), "s\n")
	code, out := f.sync(t, true)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{">f+++++++++ a-odoo/a.py", "would sync 1 projects", "(1 added, 0 changed, 0 deleted); 1 stale", "\nrsync -rlpt ", "\nmv -T -- "} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
	if strings.Contains(out, "a.pyc") {
		t.Error("dry run would copy a .pyc")
	}
	if prodlab.Exists(filepath.Join(f.share, "a-odoo")) || !prodlab.Exists(filepath.Join(f.share, "stale-odoo", "s.py")) || len(f.backups(t)) != 0 || f.summary(t) != "" {
		t.Error("dry run changed something")
	}
}

// countLogins counts the ssh connections production accepted so far.
func countLogins(t *testing.T, p *prodlab.Prod) int {
	b, err := os.ReadFile(filepath.Join(p.Dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Accepted publickey")
}

func TestThirtyProjectsOneConnection(t *testing.T) {
	f := newFixture(t)
	for i := range 30 {
		name := "p" + string(rune('a'+i/10)) + string(rune('0'+i%10)) + "-odoo"
		prodlab.WriteFile(t, filepath.Join(f.prod, name, "__init__.py"), name)
		prodlab.WriteFile(t, filepath.Join(f.prod, name, "__pycache__", "x.pyc"), name)
	}
	prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "s.py"), "s\n")
	before := countLogins(t, f.lab)
	if code, out := f.sync(t, false); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	got := countLogins(t, f.lab) - before
	entries, _ := os.ReadDir(f.share)
	t.Logf("ssh connections for 30 projects: %d", got)
	if got != 1 || len(entries) != 30 {
		t.Fatalf("%d ssh connections (want 1), %d projects (want 30)", got, len(entries))
	}
}

// Without a complete listing from production nothing is removed and no
// summary line is written.
func TestNoListingRemovesNothing(t *testing.T) {
	cases := map[string]struct {
		prepare func(t *testing.T, f *fixture)
		code    int
		msg     string
	}{
		"empty": {func(t *testing.T, f *fixture) {
			prodlab.WriteFile(t, filepath.Join(f.prod, "unrelated", "x"), "x")
		}, cli.ExitRefused, "production lists no projects matching"},
		"unreadable": {func(t *testing.T, f *fixture) {
			prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "x"), "x")
			os.Chmod(f.prod, 0o700) // odoo cannot list it
		}, cli.ExitFailure, "cannot list the projects in"},
		"ssh down": {func(t *testing.T, f *fixture) {
			prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "x"), "x")
			f.lab.Stop()
		}, cli.ExitFailure, "ssh connection to odoo@"},
		"bad name": {func(t *testing.T, f *fixture) {
			prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "x"), "x")
			prodlab.WriteFile(t, filepath.Join(f.prod, "x odoo;rm -rf", "x"), "x")
		}, cli.ExitRefused, `"x odoo;rm -rf" is not a plain directory name`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "s.py"), "s\n")
			tc.prepare(t, f)
			code, out := f.sync(t, false)
			if code != tc.code || !strings.Contains(out, tc.msg) {
				t.Fatalf("exit %d (want %d), output lacks %q", code, tc.code, tc.msg)
			}
			if !prodlab.Exists(filepath.Join(f.share, "stale-odoo", "s.py")) || prodlab.Exists(filepath.Join(f.share, "a-odoo")) {
				t.Error("the standby's projects changed")
			}
			if len(f.backups(t)) != 0 || f.summary(t) != "" {
				t.Errorf("backups %v, summary %q", f.backups(t), f.summary(t))
			}
		})
	}
}

// A failed transfer moves no stale project and writes no summary line.
func TestTransferFailureMovesNothing(t *testing.T) {
	f := newFixture(t)
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "ok.py"), "ok\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "secret.py"), "x\n")
	os.Chmod(filepath.Join(f.prod, "a-odoo", "secret.py"), 0o600) // odoo cannot read it
	prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "s.py"), "s\n")
	code, out := f.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(out, "copying projects from "+f.lab.Addr+" failed: some files could not be transferred") || !strings.Contains(out, "no stale project was moved") {
		t.Fatalf("exit %d", code)
	}
	if !prodlab.Exists(filepath.Join(f.share, "stale-odoo", "s.py")) || f.summary(t) != "" {
		t.Errorf("stale project moved or summary written: %q", f.summary(t))
	}
}

// A standby project directory a Debian package owns is apt's: never
// copied into, moved or deleted, whether production lacks it or has
// another copy; it is named, and the rest syncs.
func TestPackagedDirectoriesAreLeftAlone(t *testing.T) {
	prodlab.Require(t, "dpkg", "dpkg-deb", "dpkg-query")
	f := newFixture(t)
	pkg := aptlab.Pkg{Name: "otprojects-pkg", Version: "1.0", Files: map[string]string{
		filepath.Join(f.share, "pkg-odoo", "__init__.py"):  "packaged\n",
		filepath.Join(f.share, "both-odoo", "__init__.py"): "packaged\n",
	}}
	aptlab.Install(t, pkg)
	prodlab.WriteFile(t, filepath.Join(f.prod, "a-odoo", "a.py"), "a\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "both-odoo", "__init__.py"), "production's copy\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "both-odoo", "extra.py"), "extra\n")
	prodlab.WriteFile(t, filepath.Join(f.share, "stale-odoo", "s.py"), "s\n")

	code, out := f.sync(t, true)
	for _, name := range []string{"both-odoo", "pkg-odoo"} {
		if !strings.Contains(out, "left alone: "+filepath.Join(f.share, name)+" belongs to Debian package(s) otprojects-pkg (dpkg-query -S)") {
			t.Errorf("dry run does not name %s", name)
		}
	}
	if code != 0 || strings.Contains(out, ":"+filepath.Join(f.share, "both-odoo")) || strings.Contains(out, "mv -T -- "+filepath.Join(f.share, "pkg-odoo")) ||
		!strings.Contains(out, "mv -T -- "+filepath.Join(f.share, "stale-odoo")) {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}

	code, out = f.sync(t, false)
	if code != 0 || !strings.Contains(out, "synced 1 projects from "+f.lab.Addr+" (1 added, 0 changed, 0 deleted); 1 stale moved to ") ||
		!strings.Contains(out, "; 2 left alone (Debian packages own them)") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, name := range []string{"both-odoo", "pkg-odoo"} {
		if got := prodlab.ReadFile(t, filepath.Join(f.share, name, "__init__.py")); got != "packaged\n" {
			t.Errorf("%s/__init__.py = %q", name, got)
		}
	}
	if prodlab.Exists(filepath.Join(f.share, "both-odoo", "extra.py")) {
		t.Error("production's file was copied into a packaged directory")
	}
	// dpkg sees its files as it installed them: content, owner and mode.
	if out, err := exec.Command("dpkg", "--verify", pkg.Name).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("dpkg --verify %s: %v\n%s", pkg.Name, err, out)
	}
	for _, p := range []string{"both-odoo", "pkg-odoo"} {
		fi, err := os.Stat(filepath.Join(f.share, p, "__init__.py"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: uid %d gid %d mode %v", p, st.Uid, st.Gid, fi.Mode())
		}
	}
	if got := prodlab.ReadFile(t, filepath.Join(f.share, "a-odoo", "a.py")); got != "a\n" || prodlab.Exists(filepath.Join(f.share, "stale-odoo")) {
		t.Errorf("the rest did not sync: a.py %q, stale-odoo still here: %v", got, prodlab.Exists(filepath.Join(f.share, "stale-odoo")))
	}
	if bk := f.backups(t); len(bk) != 1 || filepath.Base(bk[0]) != "stale-odoo" {
		t.Errorf("backups %v", bk)
	}

	// Production without any project: the packaged ones are not the
	// standby's projects to keep, so this is no empty listing to refuse.
	os.RemoveAll(filepath.Join(f.prod, "a-odoo"))
	os.RemoveAll(filepath.Join(f.prod, "both-odoo"))
	os.RemoveAll(filepath.Join(f.share, "a-odoo"))
	if code, out := f.sync(t, false); code != 0 || !strings.Contains(out, "nothing to do") || !prodlab.Exists(filepath.Join(f.share, "pkg-odoo", "__init__.py")) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
