package confsync

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/aptlab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// fixture: the standby's configuration under etc/ (ODOO_CONF, NGINX_DIR,
// APT_DIR point there), production's under prod/, shown to production at
// the standby's paths. Nothing of the host's /etc is used.
type fixture struct {
	lab                   *prodlab.Prod
	dir, conf             string
	odoo, nginx, apt      string // the standby's paths
	prod                  string
	cfg                   *config.Config
	aptConfig, aptConfEnv []string
}

const goodSite = "server { listen 127.0.0.1:18069; server_name odoo.test; location / { return 200; } }\n"

func newFixture(t *testing.T, sets string) *fixture {
	prodlab.Require(t, "rsync", "nginx", "apt-get", "dpkg-scanpackages")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	f := &fixture{dir: dir, prod: filepath.Join(dir, "prod")}
	etc := filepath.Join(dir, "etc")
	f.odoo = filepath.Join(etc, "odoo", "odoo.conf")
	f.nginx = filepath.Join(etc, "nginx")
	f.apt = filepath.Join(etc, "apt")

	// The standby: a working nginx (all paths in the test folder), an old
	// odoo.conf owned by daemon, old apt sources, and the suite's own
	// configuration file inside APT_DIR (it must survive the sync).
	prodlab.WriteFile(t, f.odoo, "[options]\ndb_host = False\nold = 1\n")
	os.Chown(f.odoo, 1, 1)
	os.Chmod(f.odoo, 0o640)
	prodlab.Mkdir(t, filepath.Join(dir, "nginx-tmp"))
	prodlab.WriteFile(t, filepath.Join(f.nginx, "nginx.conf"), strings.ReplaceAll(strings.ReplaceAll(`pid DIR/nginx.pid;
error_log DIR/nginx-error.log;
events {}
http {
	access_log DIR/nginx-access.log;
	client_body_temp_path DIR/nginx-tmp/body;
	proxy_temp_path DIR/nginx-tmp/proxy;
	fastcgi_temp_path DIR/nginx-tmp/fastcgi;
	uwsgi_temp_path DIR/nginx-tmp/uwsgi;
	scgi_temp_path DIR/nginx-tmp/scgi;
	include NGINX/sites-enabled/*;
}
`, "NGINX", f.nginx), "DIR", dir))
	prodlab.WriteFile(t, filepath.Join(f.nginx, "sites-available", "default"), goodSite)
	symlink(t, filepath.Join(f.nginx, "sites-available", "default"), filepath.Join(f.nginx, "sites-enabled", "default"))
	prodlab.WriteFile(t, filepath.Join(f.apt, "sources.list"), "# old sources\n")
	prodlab.Mkdir(t, filepath.Join(f.apt, "sources.list.d"))

	// Production: a new odoo.conf, two sites (one link absolute, one
	// relative), and apt sources naming a local file:// repository.
	prodlab.WriteFile(t, filepath.Join(f.prod, "odoo", "odoo.conf"), "[options]\ndb_host = False\nnew = 1\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "odoo"), goodSite)
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "other"), strings.Replace(goodSite, "18069", "18070", 1))
	symlink(t, filepath.Join(f.nginx, "sites-available", "odoo"), filepath.Join(f.prod, "sites-enabled", "odoo"))
	symlink(t, "../sites-available/other", filepath.Join(f.prod, "sites-enabled", "other"))
	repo := aptlab.Repo(t, filepath.Join(dir, "repo"))
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list"), repo)
	prodlab.Mkdir(t, filepath.Join(f.prod, "apt", "sources.list.d"))

	f.lab = prodlab.Start(t, prodlab.Options{Binds: map[string]string{
		// odoo.conf's folder, not the file: renaming over a file that is
		// bind-mounted elsewhere would drop the mount.
		filepath.Dir(f.odoo):                      filepath.Join(f.prod, "odoo"),
		filepath.Join(f.nginx, "sites-available"): filepath.Join(f.prod, "sites-available"),
		filepath.Join(f.nginx, "sites-enabled"):   filepath.Join(f.prod, "sites-enabled"),
		f.apt:                                     filepath.Join(f.prod, "apt"),
	}})
	f.conf = filepath.Join(f.apt, "ot-redundancy-sync.conf")
	f.lab.WriteConfig(t, f.conf, map[string]string{
		"CONF_SYNC":  sets,
		"ODOO_CONF":  f.odoo,
		"NGINX_DIR":  f.nginx,
		"APT_DIR":    f.apt,
		"ODOO_USER":  "daemon",
		"ODOO_GROUP": "daemon",
		"PG_CLUSTER": "99/none", // never the host's clusters
	})
	cfg, err := config.Load(f.conf)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	// apt-get update gets private lists and cache, and none of the host's
	// update hooks (they would touch the host's caches).
	f.aptConfig = aptlab.Private(t, filepath.Join(dir, "apt-state"))
	aptConf := filepath.Join(dir, "apt.conf")
	prodlab.WriteFile(t, aptConf, "#clear APT::Update::Post-Invoke;\n#clear APT::Update::Post-Invoke-Success;\n#clear DPkg::Post-Invoke;\n")
	f.aptConfEnv = []string{"APT_CONFIG=" + aptConf}
	return f
}

// sync runs ot-conf-sync as a job, in-process, and returns its exit code
// and everything it printed.
func (f *fixture) sync(t *testing.T, dryRun bool) (int, string) {
	t.Helper()
	r := clilab.Run(t, Name, cli.Globals{Config: f.conf, DryRun: dryRun, LogFormat: "console"}, zerolog.InfoLevel, f.aptConfEnv, func(env *cli.Env) error {
		return job.Sync(env, Name, job.Flags{}, func(j *job.Job) error {
			return Sync(j, Options{AptConfig: f.aptConfig})
		})
	})
	return r.Code, r.Stdout + r.Stderr + r.Log
}

func (f *fixture) summary(t *testing.T) string {
	b, err := os.ReadFile(f.cfg.Get(config.SummaryFile))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) backup(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.cfg.Get(config.BackupDir), "*"))
	if len(m) != 1 {
		t.Fatalf("backup folders: %v", m)
	}
	return m[0]
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	prodlab.Mkdir(t, filepath.Dir(p))
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// listTree describes a directory: every entry's path, type, target or content.
func listTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, rel+" -> "+target)
		case fi.Mode().IsRegular():
			lines = append(lines, rel+": "+prodlab.ReadFile(t, p))
		default:
			lines = append(lines, rel+"/")
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestSyncAllSets(t *testing.T) {
	f := newFixture(t, "odoo nginx apt")
	// db_host naming production is synced, with a warning.
	prodlab.WriteFile(t, filepath.Join(f.prod, "odoo", "odoo.conf"), "[options]\ndb_host = "+f.lab.Addr+"\nnew = 1\n")

	code, out := f.sync(t, false)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// odoo.conf: new content, owner and mode kept, old one as .previous and
	// in the backup; a warning about db_host.
	if got := prodlab.ReadFile(t, f.odoo); !strings.Contains(got, "new = 1") {
		t.Errorf("odoo.conf = %q", got)
	}
	fi, _ := os.Stat(f.odoo)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1 || st.Gid != 1 || fi.Mode().Perm() != 0o640 {
		t.Errorf("odoo.conf uid %d gid %d mode %v", st.Uid, st.Gid, fi.Mode())
	}
	if got := prodlab.ReadFile(t, f.odoo+".previous"); !strings.Contains(got, "old = 1") {
		t.Errorf("odoo.conf.previous = %q", got)
	}
	bk := f.backup(t)
	if got := prodlab.ReadFile(t, filepath.Join(bk, f.odoo)); !strings.Contains(got, "old = 1") {
		t.Errorf("backup of odoo.conf = %q", got)
	}
	if !strings.Contains(out, "db_host = "+f.lab.Addr+", which is production") {
		t.Error("no db_host warning")
	}
	// nginx: sites-available to sites-available, sites-enabled holds the
	// symlinks (not a nested sites-available); the old site is in the backup.
	if got := prodlab.ReadFile(t, filepath.Join(f.nginx, "sites-available", "other")); !strings.Contains(got, "18070") {
		t.Errorf("sites-available/other = %q", got)
	}
	for _, p := range []string{"sites-enabled/odoo", "sites-enabled/other"} {
		if fi, err := os.Lstat(filepath.Join(f.nginx, p)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink: %v", p, err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(f.nginx, "sites-enabled", "odoo")); target != filepath.Join(f.nginx, "sites-available", "odoo") {
		t.Errorf("sites-enabled/odoo -> %q", target)
	}
	if _, err := os.Lstat(filepath.Join(f.nginx, "sites-enabled", "sites-available")); err == nil {
		t.Error("sites-available nested in sites-enabled")
	}
	if _, err := os.Lstat(filepath.Join(f.nginx, "sites-available", "default")); err == nil {
		t.Error("stale site kept")
	}
	if got := prodlab.ReadFile(t, filepath.Join(bk, f.nginx, "sites-available", "default")); got != goodSite {
		t.Errorf("backup of sites-available/default = %q", got)
	}
	if target, _ := os.Readlink(filepath.Join(bk, f.nginx, "sites-enabled", "default")); target != filepath.Join(f.nginx, "sites-available", "default") {
		t.Errorf("backup of sites-enabled/default -> %q", target)
	}
	// apt: sources replaced, apt-get update read the new repository, the
	// suite's own configuration file kept.
	if got := prodlab.ReadFile(t, filepath.Join(f.apt, "sources.list")); !strings.Contains(got, "file:"+filepath.Join(f.dir, "repo")) {
		t.Errorf("sources.list = %q", got)
	}
	if lists, _ := filepath.Glob(filepath.Join(f.dir, "apt-state", "lists", "*Packages*")); len(lists) == 0 {
		t.Error("apt-get update did not read the new sources")
	}
	if _, err := os.Stat(f.conf); err != nil {
		t.Errorf("the suite's own configuration file: %v", err)
	}
	if !strings.Contains(f.summary(t), ":  ot-conf-sync\n") {
		t.Errorf("summary %q", f.summary(t))
	}

	// Again: nothing changes, nothing is backed up.
	code, out = f.sync(t, false)
	if code != 0 || strings.Count(out, ": unchanged") != 3 {
		t.Fatalf("second run: exit %d", code)
	}
	f.backup(t)
}

func TestBrokenNginxRolledBack(t *testing.T) {
	f := newFixture(t, "nginx")
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "odoo"), "server { bogus; }\n")
	before := listTree(t, f.nginx)
	code, out := f.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(out, `nginx -t failed after syncing `+f.nginx+`: `) || !strings.Contains(out, `unknown directive "bogus"`) || !strings.Contains(out, "the previous files were restored") {
		t.Fatalf("exit %d", code)
	}
	if after := listTree(t, f.nginx); after != before {
		t.Errorf("nginx not restored:\n%s\nwas:\n%s", after, before)
	}
	if f.summary(t) != "" {
		t.Errorf("summary line after a failure: %q", f.summary(t))
	}
	f.backup(t) // kept
}

// A failing set does not stop the others: nginx is rolled back, apt refused,
// odoo.conf still synced; the run fails naming both, without a summary line.
func TestFailingSetsDoNotStopOthers(t *testing.T) {
	f := newFixture(t, "odoo nginx apt")
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "odoo"), "server { bogus; }\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list.d", "old.list"), "deb http://deb.debian.org/debian bullseye main\n")
	nginx, apt := listTree(t, f.nginx), listTree(t, f.apt)
	code, out := f.sync(t, false)
	for _, want := range []string{
		"ot-conf-sync: error: nginx: nginx -t failed after syncing " + f.nginx,
		`ot-conf-sync: error: apt: production's apt sources name release "bullseye" (old.list)`,
		"ot-conf-sync: error: 2 configuration sets failed: nginx, apt; see the errors above",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != cli.ExitFailure {
		t.Errorf("exit %d, want %d", code, cli.ExitFailure)
	}
	if got := prodlab.ReadFile(t, f.odoo); !strings.Contains(got, "new = 1") {
		t.Errorf("odoo.conf not synced after the other sets failed: %q", got)
	}
	if listTree(t, f.nginx) != nginx || listTree(t, f.apt) != apt {
		t.Errorf("nginx or apt changed")
	}
	if f.summary(t) != "" {
		t.Errorf("summary line after a failure: %q", f.summary(t))
	}
}

func TestAptOtherReleaseRefused(t *testing.T) {
	f := newFixture(t, "apt")
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list.d", "old.sources"), "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bullseye bullseye-updates\nComponents: main\n")
	before := listTree(t, f.apt)
	code, out := f.sync(t, false)
	if code != cli.ExitRefused || !strings.Contains(out, `production's apt sources name release "bullseye" (old.sources), this machine runs "bookworm"`) {
		t.Fatalf("exit %d", code)
	}
	if after := listTree(t, f.apt); after != before || f.summary(t) != "" {
		t.Errorf("apt changed or summary written:\n%s", after)
	}
}

func TestAptUpdateFailureRestores(t *testing.T) {
	f := newFixture(t, "apt")
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list"), "deb [trusted=yes] file:"+filepath.Join(f.dir, "no-such-repo")+" ./\n")
	before := listTree(t, f.apt)
	code, out := f.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(out, "apt-get update failed after syncing") || !strings.Contains(out, "restored") {
		t.Fatalf("exit %d", code)
	}
	if after := listTree(t, f.apt); after != before || f.summary(t) != "" {
		t.Errorf("apt not restored or summary written:\n%s\nwas:\n%s", after, before)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newFixture(t, "odoo nginx apt")
	before := listTree(t, filepath.Join(f.dir, "etc"))
	code, out := f.sync(t, true)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		f.nginx + "/sites-enabled: cL+++++++++ odoo",
		f.nginx + "/sites-available: *deleting   default",
		"nginx: would sync " + f.nginx + "/sites-available (2 added, 0 changed, 1 deleted)",
		"\ncp -a -T -- " + f.odoo + " " + f.odoo + ".previous\n",
		" -t -q -e stderr -c " + f.nginx + "/nginx.conf\n",
		" apt-get -q update -o Dir::Etc=" + f.apt + "/ ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if after := listTree(t, filepath.Join(f.dir, "etc")); after != before || f.summary(t) != "" {
		t.Error("dry run changed something")
	}
	if m, _ := filepath.Glob(filepath.Join(f.cfg.Get(config.BackupDir), "*")); len(m) != 0 {
		t.Errorf("dry run made backups %v", m)
	}
}

func TestUnsafeProductionRefused(t *testing.T) {
	cases := map[string]struct {
		prepare func(t *testing.T, f *fixture)
		msg     string
	}{
		"link outside": {func(t *testing.T, f *fixture) {
			symlink(t, "/etc/shadow", filepath.Join(f.prod, "sites-enabled", "evil"))
		}, `symlink evil points to "/etc/shadow", outside ` + "NGINX"},
		"relative link outside": {func(t *testing.T, f *fixture) {
			symlink(t, "../../../../../etc/shadow", filepath.Join(f.prod, "sites-enabled", "evil"))
		}, `symlink evil points to "../../../../../etc/shadow"`},
		"empty": {func(t *testing.T, f *fixture) {
			os.Remove(filepath.Join(f.prod, "sites-available", "odoo"))
			os.Remove(filepath.Join(f.prod, "sites-available", "other"))
		}, "is empty: the standby's 1 entries are kept"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "nginx")
			tc.prepare(t, f)
			before := listTree(t, f.nginx)
			code, out := f.sync(t, false)
			if code != cli.ExitRefused || !strings.Contains(out, strings.ReplaceAll(tc.msg, "NGINX", f.nginx)) {
				t.Fatalf("exit %d, output lacks %q", code, tc.msg)
			}
			if after := listTree(t, f.nginx); after != before || f.summary(t) != "" {
				t.Error("nginx changed or summary written")
			}
		})
	}
}
