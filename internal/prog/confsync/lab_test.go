package confsync

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
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
// the standby's paths. Nothing of the host's /etc is used. apt-get reads
// APT_DIR as its whole configuration (Dir::Etc, through APT_CONFIG), as it
// reads /etc/apt on a real standby: a hook that reached APT_DIR/apt.conf.d
// would run.
type fixture struct {
	lab              *prodlab.Prod
	dir, conf        string
	odoo, nginx, apt string // the standby's paths
	prod             string
	kv               map[string]string // the configuration's keys
	cfg              *config.Config
	aptConfig, env   []string
	key              aptlab.Key // signs the lab's repository
	keyring          string     // the standby's copy of its public key
	repo             string     // the repository's directory
}

const goodSite = "server { listen 127.0.0.1:18069; server_name odoo.test; location / { return 200; } }\n"

// scratch are the fixture's folders that tools write as they run (apt's
// lists, nginx's logs and temporary files): not the standby's configuration.
var scratch = []string{"apt-state", "apt-run", "nginx-run", "gnupg"}

func newFixture(t *testing.T, sets string) *fixture {
	prodlab.Require(t, "rsync", "nginx", "apt-get", "dpkg-scanpackages", "gpg", "gpgconf")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	f := &fixture{dir: dir, prod: filepath.Join(dir, "prod")}
	etc := filepath.Join(dir, "etc")
	f.odoo = filepath.Join(etc, "odoo", "odoo.conf")
	f.nginx = filepath.Join(etc, "nginx")
	f.apt = filepath.Join(etc, "apt")
	run := prodlab.Mkdir(t, filepath.Join(dir, "nginx-run"))

	// The standby: a working nginx (its logs, pid and temporary files in
	// nginx-run), an old odoo.conf owned by daemon, old apt sources, apt
	// settings of its own and the repository's key; the suite's own
	// configuration file inside APT_DIR (it must survive the sync).
	prodlab.WriteFile(t, f.odoo, "[options]\ndb_host = False\nold = 1\n")
	os.Chown(f.odoo, 1, 1)
	os.Chmod(f.odoo, 0o640)
	prodlab.WriteFile(t, filepath.Join(f.nginx, "nginx.conf"), strings.ReplaceAll(strings.ReplaceAll(`pid RUN/nginx.pid;
error_log RUN/error.log;
events {}
http {
	access_log RUN/access.log;
	client_body_temp_path RUN/body;
	proxy_temp_path RUN/proxy;
	fastcgi_temp_path RUN/fastcgi;
	uwsgi_temp_path RUN/uwsgi;
	scgi_temp_path RUN/scgi;
	include NGINX/sites-enabled/*;
}
`, "NGINX", f.nginx), "RUN", run))
	prodlab.WriteFile(t, filepath.Join(f.nginx, "sites-available", "default"), goodSite)
	symlink(t, filepath.Join(f.nginx, "sites-available", "default"), filepath.Join(f.nginx, "sites-enabled", "default"))
	prodlab.WriteFile(t, filepath.Join(f.apt, "sources.list"), "# old sources\n")
	prodlab.Mkdir(t, filepath.Join(f.apt, "sources.list.d"))
	f.key = aptlab.NewKey(t, dir)
	f.keyring = filepath.Join(f.apt, "keyrings", "ot-test.gpg")
	f.key.Export(t, f.keyring)

	// Production: a new odoo.conf, two sites (one link absolute, one
	// relative), apt sources naming a signed local file:// repository, and
	// the same apt settings and key as the standby.
	prodlab.WriteFile(t, filepath.Join(f.prod, "odoo", "odoo.conf"), "[options]\ndb_host = False\nnew = 1\n")
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "odoo"), goodSite)
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "other"), strings.Replace(goodSite, "18069", "18070", 1))
	symlink(t, filepath.Join(f.nginx, "sites-available", "odoo"), filepath.Join(f.prod, "sites-enabled", "odoo"))
	symlink(t, "../sites-available/other", filepath.Join(f.prod, "sites-enabled", "other"))
	f.repo = filepath.Join(dir, "repo")
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list"), aptlab.SignedRepo(t, f.repo, f.key, f.keyring))
	prodlab.Mkdir(t, filepath.Join(f.prod, "apt", "sources.list.d"))
	for _, d := range []string{f.apt, filepath.Join(f.prod, "apt")} {
		prodlab.WriteFile(t, filepath.Join(d, "apt.conf.d", "00local"), "Acquire::Retries \"0\";\n")
	}
	f.key.Export(t, filepath.Join(f.prod, "apt", "keyrings", "ot-test.gpg"))

	f.lab = prodlab.Start(t, prodlab.Options{Binds: map[string]string{
		// odoo.conf's folder, not the file: renaming over a file that is
		// bind-mounted elsewhere would drop the mount.
		filepath.Dir(f.odoo):                      filepath.Join(f.prod, "odoo"),
		filepath.Join(f.nginx, "sites-available"): filepath.Join(f.prod, "sites-available"),
		filepath.Join(f.nginx, "sites-enabled"):   filepath.Join(f.prod, "sites-enabled"),
		f.apt:                                     filepath.Join(f.prod, "apt"),
	}})
	f.conf = filepath.Join(f.apt, "ot-redundancy-sync.conf")
	f.kv = map[string]string{
		"CONF_SYNC":  sets,
		"ODOO_CONF":  f.odoo,
		"NGINX_DIR":  f.nginx,
		"APT_DIR":    f.apt,
		"ODOO_USER":  "daemon",
		"ODOO_GROUP": "daemon",
		"PG_CLUSTER": "99/none", // never the host's clusters
	}
	f.config(t, nil)
	// apt-get update gets private lists and cache, APT_DIR as its
	// configuration directory, and none of the host's update hooks.
	f.aptConfig = aptlab.Private(t, filepath.Join(dir, "apt-state"))
	aptConf := filepath.Join(dir, "apt-run", "apt.conf")
	prodlab.WriteFile(t, aptConf, "Dir::Etc \""+f.apt+"/\";\n#clear APT::Update::Post-Invoke;\n#clear APT::Update::Post-Invoke-Success;\n#clear DPkg::Post-Invoke;\n")
	f.env = []string{"APT_CONFIG=" + aptConf}
	return f
}

// config writes the configuration with extra keys.
func (f *fixture) config(t *testing.T, extra map[string]string) {
	t.Helper()
	kv := maps.Clone(f.kv)
	maps.Copy(kv, extra)
	f.lab.WriteConfig(t, f.conf, kv)
	cfg, err := config.Load(f.conf)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
}

// sync runs ot-conf-sync as a job, in-process, and returns its exit code
// and everything it printed.
func (f *fixture) sync(t *testing.T, dryRun bool) (int, string) {
	t.Helper()
	r := f.run(t, dryRun)
	return r.Code, r.Stdout + r.Stderr + r.Log
}

func (f *fixture) run(t *testing.T, dryRun bool) clilab.Result {
	t.Helper()
	return clilab.Run(t, Name, cli.Globals{Config: f.conf, DryRun: dryRun, LogFormat: "console"}, zerolog.InfoLevel, f.env, func(env *cli.Env) error {
		return job.Sync(env, Name, job.Flags{}, func(j *job.Job) error {
			return Sync(j, Options{AptConfig: f.aptConfig})
		})
	})
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

// snapshot describes everything of the fixture but the tools' scratch
// folders: the standby's configuration, production's, the repository.
func (f *fixture) snapshot(t *testing.T) string {
	t.Helper()
	var parts []string
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if !contains(scratch, e.Name()) {
			parts = append(parts, listTree(t, filepath.Join(f.dir, e.Name())))
		}
	}
	return strings.Join(parts, "\n")
}

// lists are the repository indexes apt-get update fetched and verified
// (apt keeps an InRelease file only once its signature checked out).
func (f *fixture) lists() []string {
	m, _ := filepath.Glob(filepath.Join(f.dir, "apt-state", "lists", "*_InRelease"))
	return m
}

// refused checks a refusal: exit 8, one error line holding every want,
// nothing of the fixture changed, no summary line.
func (f *fixture) refused(t *testing.T, before string, r clilab.Result, want ...string) {
	t.Helper()
	if r.Code != cli.ExitRefused {
		t.Errorf("exit %d, want %d", r.Code, cli.ExitRefused)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ot-conf-sync: error: ") {
		t.Errorf("stderr is not one error line:\n%s", r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("the error lacks %q:\n%s", w, r.Stderr)
		}
	}
	if after := f.snapshot(t); after != before {
		t.Errorf("something changed:\n%s", diff(before, after))
	}
	if f.summary(t) != "" {
		t.Errorf("summary line after a refusal: %q", f.summary(t))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	prodlab.Mkdir(t, filepath.Dir(p))
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// listTree describes a tree: every entry's path, type, mode, owner and
// modification time, and a file's content or a link's target.
func listTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		meta := fmt.Sprintf("%v %d:%d %d", fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, p+" "+meta+" -> "+target)
		case fi.Mode().IsRegular():
			lines = append(lines, p+" "+meta+": "+fmt.Sprintf("%q", prodlab.ReadFile(t, p)))
		default:
			// A directory's own time is left out: the restore's rsync sets
			// it back, but under load it was seen a few milliseconds off
			// (one run in four); what must come back is every entry below.
			lines = append(lines, p+"/ "+fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// diff shows the lines of two listings that differ.
func diff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func TestSyncAllSets(t *testing.T) {
	f := newFixture(t, "odoo nginx apt")
	// db_host naming production is synced, with a warning; production's
	// odoo.conf is a link, the standby gets the file it points to.
	os.Remove(filepath.Join(f.prod, "odoo", "odoo.conf"))
	prodlab.WriteFile(t, filepath.Join(f.prod, "odoo", "odoo-real.conf"), "[options]\ndb_host = "+f.lab.Addr+"\nnew = 1\n")
	symlink(t, "odoo-real.conf", filepath.Join(f.prod, "odoo", "odoo.conf"))

	code, out := f.sync(t, false)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// odoo.conf: new content, owner and mode kept, old one as .previous and
	// in the backup; a warning about db_host.
	if got := prodlab.ReadFile(t, f.odoo); !strings.Contains(got, "new = 1") {
		t.Errorf("odoo.conf = %q", got)
	}
	fi, _ := os.Lstat(f.odoo)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1 || st.Gid != 1 || fi.Mode().Perm() != 0o640 {
		t.Errorf("odoo.conf uid %d gid %d mode %v", st.Uid, st.Gid, fi.Mode())
	}
	if got := prodlab.ReadFile(t, f.odoo+".previous"); !strings.Contains(got, "old = 1") {
		t.Errorf("odoo.conf.previous = %q", got)
	}
	if fi, _ := os.Stat(f.odoo + ".previous"); fi.Sys().(*syscall.Stat_t).Uid != 1 || fi.Mode().Perm() != 0o640 {
		t.Errorf("odoo.conf.previous lost the owner or mode: %v", fi.Mode())
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
	// apt: sources replaced (canonical: production's line as apt reads it),
	// apt-get update verified and read the signed repository, the suite's
	// own configuration file kept, the old sources in the backup.
	if got, want := prodlab.ReadFile(t, filepath.Join(f.apt, "sources.list")), "deb [signed-by="+f.keyring+"] file:"+f.repo+" ./\n"; got != want {
		t.Errorf("sources.list = %q, want %q", got, want)
	}
	if len(f.lists()) == 0 {
		t.Error("apt-get update did not read the new sources")
	}
	if _, err := os.Stat(f.conf); err != nil {
		t.Errorf("the suite's own configuration file: %v", err)
	}
	if got := prodlab.ReadFile(t, filepath.Join(bk, f.apt, "sources.list")); got != "# old sources\n" {
		t.Errorf("backup of sources.list = %q", got)
	}
	if _, err := os.Stat(filepath.Join(bk, f.apt, "apt.conf.d")); err == nil {
		t.Error("the backup holds more of APT_DIR than the set syncs")
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

// After a failed nginx -t every file of the nginx set is back byte for
// byte, with its mode, owner and times: also a changed site whose size and
// modification time equal the standby's copy (rsync's quick check alone
// would leave it changed).
func TestBrokenNginxRolledBack(t *testing.T) {
	f := newFixture(t, "nginx")
	standbySite := filepath.Join(f.nginx, "sites-available", "default")
	broken := "server { bogus; }\n"
	broken += strings.Repeat("#", len(goodSite)-len(broken)-1) + "\n"
	prodSite := filepath.Join(f.prod, "sites-available", "default")
	prodlab.WriteFile(t, prodSite, broken)
	symlink(t, "../sites-available/default", filepath.Join(f.prod, "sites-enabled", "default"))
	fi, _ := os.Stat(standbySite)
	os.Chtimes(prodSite, fi.ModTime(), fi.ModTime())
	before := f.snapshot(t)

	code, out := f.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(out, `nginx -t failed after syncing `+f.nginx+`: `) || !strings.Contains(out, `unknown directive "bogus"`) || !strings.Contains(out, "the previous files were restored") {
		t.Fatalf("exit %d", code)
	}
	if after := f.snapshot(t); after != before {
		t.Errorf("not restored byte for byte:\n%s", diff(before, after))
	}
	if got := prodlab.ReadFile(t, standbySite); got != goodSite {
		t.Errorf("sites-available/default = %q", got)
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
	before := f.snapshot(t)
	f.refused(t, before, f.run(t, false), `production's apt sources name release "bullseye" (old.sources), this machine runs "bookworm"`)
}

func TestAptUpdateFailureRestores(t *testing.T) {
	f := newFixture(t, "apt")
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list"), "deb [signed-by="+f.keyring+"] file:"+filepath.Join(f.dir, "no-such-repo")+" ./\n")
	before := f.snapshot(t)
	code, out := f.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(out, "apt-get update failed after syncing") || !strings.Contains(out, "restored") {
		t.Fatalf("exit %d", code)
	}
	if after := f.snapshot(t); after != before || f.summary(t) != "" {
		t.Errorf("apt not restored or summary written:\n%s", diff(before, after))
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newFixture(t, "odoo nginx apt")
	before := f.snapshot(t)
	code, out := f.sync(t, true)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		f.nginx + "/sites-enabled: cL+++++++++ odoo",
		f.nginx + "/sites-available: *deleting   default",
		"nginx: would sync " + f.nginx + "/sites-available (2 added, 0 changed, 1 deleted)",
		"\n# keep the current " + f.odoo + " as " + f.odoo + ".previous\n#   copied to a temporary file beside it, renamed over " + f.odoo + ".previous once complete\n",
		" -t -q -e stderr -c " + f.nginx + "/nginx.conf\n",
		" apt-get -q update -o Dir::Etc=" + f.apt + "/ ",
		f.apt + ": >fcst...... sources.list",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if after := f.snapshot(t); after != before || f.summary(t) != "" {
		t.Errorf("dry run changed something:\n%s", diff(before, after))
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
		"too large": {func(t *testing.T, f *fixture) {
			prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "huge"), "# "+strings.Repeat("x", 1<<20)+"\n")
		}, "huge is larger than 1MiB"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "nginx")
			tc.prepare(t, f)
			before := f.snapshot(t)
			f.refused(t, before, f.run(t, false), strings.ReplaceAll(tc.msg, "NGINX", f.nginx))
		})
	}
}

// hook is an apt.conf.d file that has root touch marker on apt-get update.
func hook(marker string) string {
	return "APT::Update::Pre-Invoke { \"touch " + marker + "\"; };\n"
}

// Production's apt settings never reach the standby: a Pre-Invoke hook in
// apt.conf.d (which apt-get update would run as root), pins, credentials
// and keys stay production's. The sources are synced, apt-get update runs
// and the hook does not; the run names what it left out.
func TestHostileAptSettingsNotCopied(t *testing.T) {
	f := newFixture(t, "apt")
	marker := filepath.Join(f.dir, "apt-hook-ran")
	prodApt := filepath.Join(f.prod, "apt")
	prodlab.WriteFile(t, filepath.Join(prodApt, "apt.conf.d", "99evil"), hook(marker))
	prodlab.WriteFile(t, filepath.Join(prodApt, "apt.conf"), hook(marker))
	prodlab.WriteFile(t, filepath.Join(prodApt, "preferences.d", "pin"), "Package: *\nPin: origin evil.example\nPin-Priority: 1001\n")
	prodlab.WriteFile(t, filepath.Join(prodApt, "auth.conf.d", "evil.conf"), "machine evil.example login x password y\n")
	prodlab.WriteFile(t, filepath.Join(prodApt, "trusted.gpg.d", "evil.asc"), "not a key\n")
	prodlab.WriteFile(t, filepath.Join(prodApt, "sources.list.d", "notes.txt"), "not a source\n")
	prodlab.WriteFile(t, filepath.Join(prodApt, "sources.list.d", "bad name.list"), "deb http://evil.example/ stable main\n")
	symlink(t, "/etc/passwd", filepath.Join(prodApt, "sources.list.d", "linked.sources"))
	os.Remove(filepath.Join(prodApt, "sources.list.d", "linked.sources"))
	prodlab.Mkdir(t, filepath.Join(prodApt, "sources.list.d", "dir.list"))

	// The control: copied into APT_DIR, the hook runs as root.
	control := prodlab.Mkdir(t, filepath.Join(f.dir, "apt-run", "control"))
	prodlab.WriteFile(t, filepath.Join(control, "apt.conf.d", "99evil"), hook(marker))
	prodlab.WriteFile(t, filepath.Join(control, "sources.list"), "")
	prodlab.WriteFile(t, filepath.Join(control, "apt.conf"), "Dir::Etc \""+control+"/\";\n")
	ctl := exec.Command("apt-get", append([]string{"-q", "update"}, aptOptions(f.aptConfig)...)...)
	ctl.Env = append(os.Environ(), "APT_CONFIG="+filepath.Join(control, "apt.conf"))
	if out, err := ctl.CombinedOutput(); err != nil || !prodlab.Exists(marker) {
		t.Fatalf("control: the hook did not run (%v):\n%s", err, out)
	}
	os.Remove(marker)

	before := listTree(t, f.apt)
	code, out := f.sync(t, false)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if prodlab.Exists(marker) {
		t.Fatal("production's apt hook ran as root on the standby")
	}
	if len(f.lists()) == 0 {
		t.Error("apt-get update did not run with the synced sources")
	}
	// Only sources.list changed (and the times of the directories the
	// sources live in); nothing else of APT_DIR did.
	after := listTree(t, f.apt)
	for _, l := range strings.Split(diff(before, after), "\n") {
		if !strings.Contains(l, f.apt+"/sources.list ") && !strings.Contains(l, f.apt+"/sources.list.d/ d") && !strings.Contains(l, f.apt+"/ d") {
			t.Errorf("changed outside the sources: %s", l)
		}
	}
	for _, want := range []string{
		"apt: not copied, as apt's own settings, pins, credentials and keys never are (review them by hand): ",
		"apt.conf.d/99evil", "apt.conf", "preferences.d/pin", "auth.conf.d/evil.conf", "trusted.gpg.d/evil.asc", "sources.list.d/notes.txt",
		"apt: not copied, as apt reads no sources from them: sources.list.d/bad name.list, sources.list.d/dir.list",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// aptOptions turns Key=Value settings into apt-get's -o options.
func aptOptions(kv []string) []string {
	var o []string
	for _, s := range kv {
		o = append(o, "-o", s)
	}
	return o
}

// A hostile production's sources: each is refused with one line, exit 8;
// APT_DIR and everything else is as it was, apt-get update never ran, and
// the hook production also planted never ran.
func TestHostileAptSourcesRefused(t *testing.T) {
	cases := map[string]struct {
		file, text, want string
		prepare          func(t *testing.T, f *fixture)
	}{
		"trusted": {"sources.list.d/evil.list", "deb [trusted=yes] file:REPO ./\n", "sources.list.d/evil.list:1 refused: trusted=yes switches off apt's signature checks", nil},
		"allow-insecure": {"sources.list.d/evil.sources", "Types: deb\nURIs: file:REPO\nSuites: ./\nAllow-Insecure: yes\nSigned-By: KEYRING\n",
			"evil.sources:1 refused: allow-insecure=yes switches off", nil},
		"allow-downgrade": {"sources.list", "deb [allow-downgrade-to-insecure=yes signed-by=KEYRING] file:REPO ./\n", "allow-downgrade-to-insecure=yes", nil},
		"ssh method":      {"sources.list", "deb ssh://root@evil.example/srv stable main\n", `uses the "ssh" method`, nil},
		"unknown option":  {"sources.list", "deb [pre-invoke=x] file:REPO ./\n", `unknown option "pre-invoke"`, nil},
		"inline key": {"sources.list.d/evil.sources", "Types: deb\nURIs: file:REPO\nSuites: ./\nSigned-By:\nINLINE",
			"it embeds a new key in Signed-By: key FPR", nil},
		"keyring others may write": {"sources.list", "deb [signed-by=DIR/open/k.gpg] file:REPO ./\n", "open is writable by group or others", func(t *testing.T, f *fixture) {
			open := prodlab.Mkdir(t, filepath.Join(f.dir, "open"))
			os.Chmod(open, 0o777)
			f.key.Export(t, filepath.Join(open, "k.gpg"))
		}},
		"keyring of another user": {"sources.list", "deb [signed-by=DIR/keys/k.gpg] file:REPO ./\n", "k.gpg belongs to uid 1, not root", func(t *testing.T, f *fixture) {
			f.key.Export(t, filepath.Join(f.dir, "keys", "k.gpg"))
			os.Chown(filepath.Join(f.dir, "keys", "k.gpg"), 1, 1)
		}},
		"keyring nowhere": {"sources.list", "deb [signed-by=DIR/none.gpg] file:REPO ./\n", "none.gpg exists on neither machine", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "apt")
			marker := filepath.Join(f.dir, "apt-hook-ran")
			prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "apt.conf.d", "99evil"), hook(marker))
			if tc.prepare != nil {
				tc.prepare(t, f)
			}
			text := strings.NewReplacer("REPO", f.repo, "KEYRING", f.keyring, "DIR", f.dir, "INLINE", armoredInline(t, f)).Replace(tc.text)
			prodlab.WriteFile(t, filepath.Join(f.prod, "apt", tc.file), text)
			before := f.snapshot(t)
			f.refused(t, before, f.run(t, false), strings.NewReplacer("FPR", f.key.Fingerprint).Replace(tc.want))
			if prodlab.Exists(marker) || len(f.lists()) != 0 {
				t.Error("apt-get update ran")
			}
		})
	}
}

// armoredInline is the repository's key as a deb822 multi-line field value.
func armoredInline(t *testing.T, f *fixture) string {
	p := filepath.Join(f.dir, "apt-run", "inline.asc")
	f.key.Export(t, p)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(prodlab.ReadFile(t, p)), "\n") {
		if l == "" {
			l = "."
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

// A source signed by a key this machine lacks is refused with the key's
// fingerprint and the command that adds it; once the operator ran that
// command, the source syncs and apt-get update verifies the repository
// with the key.
func TestNewKeyringNeedsOperator(t *testing.T) {
	f := newFixture(t, "apt")
	// The new keyring is at a path that only production has.
	keys := filepath.Join(f.dir, "new-keyrings")
	prodKeys := filepath.Join(f.dir, "prod-keyrings")
	newKey := aptlab.NewKey(t, filepath.Join(f.dir, "new"))
	keyring := filepath.Join(keys, "vendor.gpg")
	newKey.Export(t, filepath.Join(prodKeys, "vendor.gpg"))
	repo := filepath.Join(f.dir, "vendor-repo")
	line := aptlab.SignedRepo(t, repo, newKey, keyring)
	f.lab.Stop()
	f.lab = prodlab.Start(t, prodlab.Options{Binds: map[string]string{
		f.apt: filepath.Join(f.prod, "apt"),
		keys:  prodKeys,
	}})
	f.config(t, nil)
	prodlab.WriteFile(t, filepath.Join(f.prod, "apt", "sources.list.d", "vendor.list"), line)

	before := f.snapshot(t)
	r := f.run(t, false)
	f.refused(t, before, r, "vendor.list:1 refused: its keyring "+keyring+" is not on this machine; production's holds key "+newKey.Fingerprint+` "ot-redundancy test repository <tests@example.invalid>"`)
	_, add, ok := strings.Cut(r.Stderr, "if that fingerprint is the publisher's, add the keyring and run again: ")
	add, _, _ = strings.Cut(add, "; "+f.apt+" was not changed")
	if !ok || !strings.HasPrefix(add, "rsync ") {
		t.Fatalf("no command to add the keyring in %q", r.Stderr)
	}
	// The operator approves: runs the command as printed.
	if out, err := exec.Command("sh", "-c", add).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", add, err, out)
	}
	if got := prodlab.ReadFile(t, keyring); got != prodlab.ReadFile(t, filepath.Join(prodKeys, "vendor.gpg")) {
		t.Fatal("the command did not install production's keyring")
	}
	if code, out := f.sync(t, false); code != 0 || !strings.Contains(out, "apt: synced") {
		t.Fatalf("after the key was added: exit %d", code)
	}
	found := false
	for _, l := range f.lists() {
		found = found || strings.Contains(l, "vendor-repo")
	}
	if !found {
		t.Errorf("apt-get update did not verify the vendor's repository: %v", f.lists())
	}
}

// nginxControl runs nginx -t on site alone, inside http {} as the sites
// are, with its own pid, logs and temporary files in dir: what the
// standby's nginx -t would do with production's file.
func nginxControl(t *testing.T, dir, site string) {
	t.Helper()
	run := prodlab.Mkdir(t, filepath.Join(dir, "nginx-run", "control"))
	file := filepath.Join(run, "site")
	conf := filepath.Join(run, "nginx.conf")
	prodlab.WriteFile(t, file, site)
	prodlab.WriteFile(t, conf, strings.ReplaceAll("pid RUN/pid; error_log RUN/error.log; events {} http { access_log RUN/access.log; client_body_temp_path RUN/b; proxy_temp_path RUN/p; fastcgi_temp_path RUN/f; uwsgi_temp_path RUN/u; scgi_temp_path RUN/s; include "+file+"; }\n", "RUN", run))
	if out, err := exec.Command("nginx", "-t", "-q", "-e", "stderr", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("control: nginx -t: %v\n%s", err, out)
	}
}

// A hostile production's nginx sites: each is refused with one line, exit
// 8, before nginx -t reads it; the file (or ownership change) root would
// have made does not exist, and nothing of the fixture changed. Where nginx
// -t can show it, a control first proves that the site does what it is
// refused for.
func TestHostileNginxRefused(t *testing.T) {
	type marker func(t *testing.T, f *fixture) bool // reports whether root's write happened
	file := func(name string) marker {
		return func(t *testing.T, f *fixture) bool { return prodlab.Exists(filepath.Join(f.dir, name)) }
	}
	chowned := func(t *testing.T, f *fixture) bool {
		fi, err := os.Stat(filepath.Join(f.dir, "victim"))
		return err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0
	}
	cases := map[string]struct {
		site, want string
		marker     marker // nil: nginx -t cannot show it (not in this context, module not loaded)
		logDirs    string
	}{
		"access_log": {"log_format evil '* * * * * root touch /tmp/x';\nserver { listen 127.0.0.1:18072; access_log DIR/cron.d/ot-evil evil; }\n",
			`evil:2 refused: access_log "@DIR@/cron.d/ot-evil" is outside /var/log/nginx, and nginx opens it as root, even under nginx -t; log under /var/log/nginx on production, or add the directory to NGINX_LOG_DIRS in @CONF@`, file("cron.d/ot-evil"), ""},
		"error_log":                 {"error_log DIR/cron.d/ot-error;\n", `error_log "@DIR@/cron.d/ot-error" is outside`, file("cron.d/ot-error"), ""},
		"quoted name":               {"\"access_log\" 'DIR/cron.d/ot-quoted';\n", `access_log "@DIR@/cron.d/ot-quoted" is outside`, file("cron.d/ot-quoted"), ""},
		"dot-dot":                   {"access_log /var/log/nginx/../../..DIR/cron.d/ot-dotdot;\n", "is not a plain path", file("cron.d/ot-dotdot"), ""},
		"link in the log directory": {"access_log DIR/logs/evil.log;\n", `access_log "@DIR@/logs/evil.log" is outside @DIR@/logs`, file("cron.d/ot-link"), "DIR/logs"},
		"temp path chown": {"server { listen 127.0.0.1:18074; client_body_temp_path DIR/victim; }\n",
			`client_body_temp_path "@DIR@/victim" is outside /var/cache/nginx /var/lib/nginx, and nginx creates it as root and gives it to its worker user`, chowned, ""},
		"cache path":      {"proxy_cache_path DIR/made keys_zone=evil:1m;\n", `proxy_cache_path "@DIR@/made" is outside`, file("made"), ""},
		"include outside": {"include DIR/outside.conf;\n", `include "@DIR@/outside.conf" reads a file outside @NGINX@`, file("cron.d/ot-include"), ""},
		"variable":        {"server { listen 127.0.0.1:18073; access_log DIR/cron.d/$host; }\n", "holds a variable", nil, ""},
		"load_module":     {"load_module DIR/evil.so;\n", `"load_module" loads a module (code) into nginx`, nil, ""},
		"lua":             {"server { location / { content_by_lua_block { os.execute(\"touch DIR/cron.d/lua\") } } }\n", `"content_by_lua_block" runs code inside nginx`, nil, ""},
		"njs":             {"js_import DIR/evil.js;\n", `"js_import" runs code`, nil, ""},
		"perl":            {"perl_modules DIR; perl_require evil.pm;\n", `"perl_modules" runs code`, nil, ""},
		"user":            {"user root;\n", `"user" changes the user nginx's workers run as`, nil, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "nginx")
			if tc.logDirs != "" {
				f.config(t, map[string]string{"NGINX_LOG_DIRS": strings.ReplaceAll(tc.logDirs, "DIR", f.dir)})
			}
			prodlab.Mkdir(t, filepath.Join(f.dir, "cron.d"))
			prodlab.Mkdir(t, filepath.Join(f.dir, "victim"))
			prodlab.Mkdir(t, filepath.Join(f.dir, "logs"))
			symlink(t, filepath.Join(f.dir, "cron.d", "ot-link"), filepath.Join(f.dir, "logs", "evil.log"))
			prodlab.WriteFile(t, filepath.Join(f.dir, "outside.conf"), "access_log "+filepath.Join(f.dir, "cron.d", "ot-include")+";\n")
			site := strings.ReplaceAll(tc.site, "DIR", f.dir)
			if tc.marker != nil {
				nginxControl(t, f.dir, site)
				if !tc.marker(t, f) {
					t.Fatal("control: nginx -t did not do what the site is refused for")
				}
				os.RemoveAll(filepath.Join(f.dir, "cron.d"))
				os.RemoveAll(filepath.Join(f.dir, "made"))
				prodlab.Mkdir(t, filepath.Join(f.dir, "cron.d"))
				os.Chown(filepath.Join(f.dir, "victim"), 0, 0)
				if tc.marker(t, f) {
					t.Fatal("control: cannot undo")
				}
			}
			prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "evil"), site)
			symlink(t, filepath.Join(f.nginx, "sites-available", "evil"), filepath.Join(f.prod, "sites-enabled", "evil"))
			before := f.snapshot(t)
			want := strings.NewReplacer("@DIR@", f.dir, "@CONF@", f.conf, "@NGINX@", f.nginx).Replace(tc.want)
			f.refused(t, before, f.run(t, false), "ot-conf-sync: error: production's nginx site "+f.nginx+"/sites-available/evil:", want, "; "+f.nginx+" was not changed")
			if tc.marker != nil && tc.marker(t, f) {
				t.Error("root wrote where production's site pointed")
			}
		})
	}
}

// A site that logs elsewhere is refused with the key to set; once the
// operator allows that directory, it syncs and nginx -t opens the log there.
func TestNginxLogDirsAllowed(t *testing.T) {
	f := newFixture(t, "nginx")
	logs := prodlab.Mkdir(t, filepath.Join(f.dir, "srv-logs"))
	prodlab.WriteFile(t, filepath.Join(f.prod, "sites-available", "odoo"), "server { listen 127.0.0.1:18069; access_log "+logs+"/odoo.log; }\n")
	before := f.snapshot(t)
	f.refused(t, before, f.run(t, false), "add the directory to NGINX_LOG_DIRS in "+f.conf)
	f.config(t, map[string]string{"NGINX_LOG_DIRS": "/var/log/nginx " + logs})
	if code, _ := f.sync(t, false); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !prodlab.Exists(filepath.Join(logs, "odoo.log")) {
		t.Error("nginx -t did not open the allowed log")
	}
}

// A full disk while odoo.conf.previous is written leaves the previous copy
// whole: the new one goes to a temporary file first, renamed only once
// complete. odoo.conf is left as it was, and no temporary file remains.
func TestPreviousDiskFull(t *testing.T) {
	f := newFixture(t, "odoo")
	dir := filepath.Dir(f.odoo)
	// odoo.conf's folder on a small tmpfs (the host's view only: production
	// sees its own folder there).
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "ot-test-full", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	current := "[options]\ndb_host = False\nold = 1\n" + strings.Repeat("; padding\n", 64<<10/10)
	prodlab.WriteFile(t, f.odoo, current)
	os.Chown(f.odoo, 1, 1)
	os.Chmod(f.odoo, 0o640)
	previous := "[options]\nolder = 1\n" + strings.Repeat("; older\n", 4<<10/8)
	prodlab.WriteFile(t, f.odoo+".previous", previous)
	// Fill the disk but 16 KiB: less than odoo.conf, more than nothing.
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	prodlab.WriteFile(t, filepath.Join(dir, "filler"), strings.Repeat("x", int(st.Bavail)*int(st.Bsize)-16<<10))
	before := listTree(t, dir)

	code, out := f.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(out, "ot-conf-sync: error: cannot keep a copy of "+f.odoo+": writing "+f.odoo+".previous: no space left on device; ") {
		t.Fatalf("exit %d", code)
	}
	if got := prodlab.ReadFile(t, f.odoo+".previous"); got != previous {
		t.Errorf("odoo.conf.previous lost: %d bytes of %d left", len(got), len(previous))
	}
	// Every entry as it was (listTree leaves the folder's own time aside:
	// the temporary file came and went).
	if d := diff(before, listTree(t, dir)); d != "" {
		t.Errorf("odoo.conf's folder changed:\n%s", d)
	}
	if f.summary(t) != "" {
		t.Errorf("summary line after a failure: %q", f.summary(t))
	}
}

// compare runs Compare (ot-status --drift's view) in a job.
func (f *fixture) compare(t *testing.T) (Drift, error) {
	t.Helper()
	var d Drift
	var cerr error
	clilab.Run(t, "ot-status", cli.Globals{Config: f.conf}, zerolog.InfoLevel, f.env, func(env *cli.Env) error {
		return job.Sync(env, "ot-status", job.Flags{}, func(j *job.Job) error {
			d, cerr = Compare(j)
			return nil
		})
	})
	return d, cerr
}

// Compare reports what a sync would change, in the sync's own terms: after
// a sync it reports nothing, although production's sources.list (with its
// comments) differs byte for byte from the canonical copy here.
func TestCompare(t *testing.T) {
	f := newFixture(t, "odoo nginx apt")
	sources := filepath.Join(f.prod, "apt", "sources.list")
	prodlab.WriteFile(t, sources, "# production's comment\n"+prodlab.ReadFile(t, sources))
	d, err := f.compare(t)
	if err != nil {
		t.Fatal(err)
	}
	sa, se := filepath.Join(f.nginx, "sites-available"), filepath.Join(f.nginx, "sites-enabled")
	want := Drift{
		OnlyProduction: []string{sa + "/odoo", sa + "/other", se + "/odoo", se + "/other"},
		OnlyStandby:    []string{sa + "/default", se + "/default"},
	}
	if fmt.Sprint(d.OnlyProduction) != fmt.Sprint(want.OnlyProduction) || fmt.Sprint(d.OnlyStandby) != fmt.Sprint(want.OnlyStandby) ||
		len(d.Differ) != 2 || !strings.HasPrefix(d.Differ[0], f.odoo+" (production sha256 ") || !strings.HasPrefix(d.Differ[1], f.apt+"/sources.list (production sha256 ") {
		t.Fatalf("got %+v", d)
	}
	if code, _ := f.sync(t, false); code != 0 {
		t.Fatalf("sync: exit %d", code)
	}
	if d, err := f.compare(t); err != nil || len(d.OnlyProduction)+len(d.OnlyStandby)+len(d.Differ) != 0 {
		t.Fatalf("after a sync: %+v, %v", d, err)
	}
	// A set the sync would refuse is Compare's error.
	prodlab.WriteFile(t, sources, "deb [trusted=yes] file:"+f.repo+" ./\n")
	if _, err := f.compare(t); err == nil || !strings.Contains(err.Error(), "trusted=yes") {
		t.Fatalf("got %v", err)
	}
}
