// Package debtest proves the Debian package on this very machine: it builds
// the .deb with `make deb` from a copy of the source tree, runs lintian, then
// installs, upgrades and purges it with apt-get and dpkg, and checks what
// each step leaves. It needs root, and it leaves the host as it found it:
// the package purged and every file it created removed, even on failure.
package debtest

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/multicall"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/programs"
)

const (
	pkg        = "ot-redundancy"
	conf       = "/etc/odoo/ot-redundancy-sync.conf"
	knownHosts = "/etc/odoo/ot-redundancy-known_hosts"
	logDir     = "/var/log/odoo"
	summaryLog = "/var/log/odoo/ot-redundancy-sync-timestamps.log"
	cronFile   = "/etc/cron.d/ot-redundancy"
	oldHourly  = "/etc/cron.hourly/ot-cron-hourly"
	oldMonthly = "/etc/cron.monthly/ot-cron-monthly"
	binary     = "/usr/libexec/ot-redundancy/ot-redundancy"
	unitDir    = "/lib/systemd/system"
	timerWants = "/etc/systemd/system/timers.target.wants"
	// The package was 66 MiB of one static binary per program; one
	// multi-call binary brought it to about 10 MiB.
	maxInstalledKiB = 16 * 1024
)

// The original suite's programs, as its 0.5-3 package installed them.
var originalPrograms = []string{
	"ot-connection-test", "ot-disable-standby-mode", "ot-configure", "ot-enable-sync",
	"ot-disable-sync", "ot-sync-from-source", "ot-apt-sync", "ot-pip-sync",
	"ot-attachments-sync", "ot-project-sync", "ot-conf-sync", "ot-write-summary",
}

// require skips unless root with the packaging tools at hand; with
// OT_REQUIRE_INTEGRATION=1 a skip is a failure.
func require(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"make", "dh", "dpkg-deb", "dpkg-query", "apt-get", "lintian", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	prodlab.Missing(t, "package test needs "+strings.Join(missing, ", "))
}

func TestPackage(t *testing.T) {
	require(t)
	host := checkHostIsClean(t)
	t.Cleanup(func() { restoreHost(t, host) })

	src := copySource(t)
	version := changelogVersion(t, src)
	names := multicall.Names()
	arch := strings.TrimSpace(run(t, "dpkg", "--print-architecture"))
	deb := buildDeb(t, src, version, arch)
	contents := run(t, "dpkg-deb", "--contents", deb)
	for _, old := range []string{oldHourly, oldMonthly, summaryLog} {
		if strings.Contains(contents, "."+old+"\n") || strings.Contains(contents, "."+old+" ") {
			t.Errorf("the package ships %s", old)
		}
	}
	size := strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, "Installed-Size"))
	fi, _ := os.Stat(deb)
	t.Logf("installed size: %s KiB; .deb: %d bytes", size, fi.Size())
	if n, err := strconv.Atoi(size); err != nil || n > maxInstalledKiB {
		t.Errorf("Installed-Size %q KiB, want at most %d", size, maxInstalledKiB)
	}
	checkBuiltUsing(t, deb)

	t.Run("lintian", func(t *testing.T) {
		// Errors and warnings fail; justified ones are overridden in
		// debian/ot-redundancy.lintian-overrides.
		run(t, "lintian", "--fail-on", "error,warning", deb)
	})

	t.Run("install-purge", func(t *testing.T) {
		fresh(t)
		aptInstall(t, deb)
		checkInstalled(t, version, names)
		t.Run("cron-stands-aside-for-systemd", cronStandsAside)
		text := prodlab.ReadFile(t, conf)
		for _, want := range []string{`SYNCMODE="off"`, `SYNCSRC="NOT-SET"`} {
			if !strings.Contains(text, "\n"+want+"\n") {
				t.Errorf("%s lacks %s:\n%s", conf, want, text)
			}
		}
		for _, k := range config.Defs {
			if !regexp.MustCompile(`(?m)^#?` + k.Name + `=`).MatchString(text) {
				t.Errorf("%s does not show key %s", conf, k.Name)
			}
		}
		if fi, err := os.Stat(summaryLog); err != nil || fi.Size() != 0 {
			t.Errorf("postinst did not create an empty %s: %v", summaryLog, err)
		}
		// The installed programs read the packaged file: sync is off,
		// and cannot be turned on before ot-configure names production.
		if out := run(t, "/usr/bin/ot-disable-sync"); !strings.Contains(out, "already off") {
			t.Errorf("ot-disable-sync: %q", out)
		}
		if out, err := exec.Command("/usr/bin/ot-enable-sync").CombinedOutput(); err == nil || !strings.Contains(string(out), "SYNCSRC") {
			t.Errorf("ot-enable-sync with SYNCSRC unset: %v: %s", err, out)
		}
		// What cron runs, while sync is off: exit 0, not a word.
		for _, job := range []string{"/usr/bin/ot-attachments-sync", "/usr/bin/ot-sync-from-source"} {
			if !prodlab.Exists(job) {
				continue
			}
			if out, err := exec.Command(job, "--cron").CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("%s --cron with sync off: %v: %q", job, err, out)
			}
		}
		t.Run("against-production", againstProduction)
		os.WriteFile(summaryLog, []byte("2026-11-26 10:00:00 :  ot-write-summary\n"), 0o640)
		os.WriteFile(knownHosts, []byte("[192.0.2.10]:22 ssh-ed25519 AAAA\n"), 0o644)
		files := installedFiles(t)
		purge(t)
		checkPurged(t, host, files)
		if got := prodlab.ReadFile(t, summaryLog); got != "2026-11-26 10:00:00 :  ot-write-summary\n" {
			t.Errorf("purge changed %s: %q", summaryLog, got)
		}
		if prodlab.Exists(knownHosts) {
			t.Errorf("purge left %s", knownHosts)
		}
		os.Remove(summaryLog)
	})

	// The original may or may not have marked its cron files as conffiles,
	// and was Architecture: all (bash) or not: the upgrade must remove the
	// cron files either way. It synced when SYNCMODE was missing or empty;
	// the upgrade must keep such a standby syncing, by writing "on", and
	// say so.
	for _, v := range []struct {
		cronConffiles bool
		arch          string
		syncMode      string // the operator's SYNCMODE line, "" for none
		upgraded      string // the line after the upgrade
		says          string // in the upgrade's output
	}{
		{true, "all", `SYNCMODE="on"`, `SYNCMODE="on"`, ""},
		{false, arch, "", `SYNCMODE="on"`, "SYNCMODE was missing"},
		{true, arch, `SYNCMODE=""`, `SYNCMODE="on"`, "SYNCMODE was empty"},
	} {
		name := fmt.Sprintf("upgrade-from-0.5-3/cron-conffiles=%v,arch=%s,syncmode=%q", v.cronConffiles, v.arch, v.syncMode)
		t.Run(name, func(t *testing.T) {
			fresh(t)
			old := buildOriginal(t, v.cronConffiles, v.arch)
			aptInstall(t, old)
			rest := "SYNCSRC=\"192.0.2.10\"\nREMOTEODOO=\"odoo\"\nSUMMARYFILE=\"" + summaryLog + "\"\n"
			operatorConf, upgradedConf := "# edited by the operator\n"+rest, "# edited by the operator\n"+rest+v.upgraded+"\n"
			if v.syncMode != "" {
				operatorConf = "# edited by the operator\n" + v.syncMode + "\n" + rest
				upgradedConf = "# edited by the operator\n" + v.upgraded + "\n" + rest
			}
			history := "2026-10-01 06:52:01 :  ot-sync-from-source\n2026-11-26 09:17:03 :  ot-attachments-sync\n"
			prodlab.WriteFileMode(t, conf, operatorConf, 0o640)
			prodlab.WriteFileMode(t, summaryLog, history, 0o644)

			out := aptInstall(t, deb)
			if got := strings.TrimSpace(run(t, "dpkg-query", "--show", "--showformat", "${Version}", pkg)); got != version {
				t.Fatalf("installed version %s, want %s", got, version)
			}
			if got := prodlab.ReadFile(t, conf); got != upgradedConf {
				t.Errorf("after the upgrade %s is:\n%s\nwant:\n%s", conf, got, upgradedConf)
			}
			if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("upgrade changed the mode of %s: %v", conf, err)
			}
			if v.says != "" && !strings.Contains(out, v.says+" in "+conf) {
				t.Errorf("the upgrade did not say %q:\n%s", v.says, out)
			}
			if v.says == "" && strings.Contains(out, "SYNCMODE") {
				t.Errorf("the upgrade spoke of SYNCMODE, which was set:\n%s", out)
			}
			if got := prodlab.ReadFile(t, summaryLog); got != history {
				t.Errorf("upgrade changed %s: %q", summaryLog, got)
			}
			for _, f := range []string{oldHourly, oldMonthly} {
				if left, _ := filepath.Glob(f + "*"); len(left) > 0 {
					t.Errorf("upgrade left %v", left)
				}
			}
			if left, _ := filepath.Glob(summaryLog + ".dpkg-*"); len(left) > 0 {
				t.Errorf("upgrade left %v", left)
			}
			checkInstalled(t, version, names)
			// The new programs work on the original's file, and sync is on:
			// ot-disable-sync flips it off in place, the rest kept.
			if out := run(t, "/usr/bin/ot-disable-sync"); strings.Contains(out, "already off") {
				t.Errorf("ot-disable-sync found sync off after the upgrade: %q", out)
			}
			want := strings.Replace(upgradedConf, `SYNCMODE="on"`, `SYNCMODE="off"`, 1)
			if got := prodlab.ReadFile(t, conf); got != want {
				t.Errorf("ot-disable-sync rewrote %s as:\n%s", conf, got)
			}

			files := installedFiles(t)
			purge(t)
			checkPurged(t, host, files)
			if got := prodlab.ReadFile(t, summaryLog); got != history {
				t.Errorf("purge changed %s: %q", summaryLog, got)
			}
			os.Remove(summaryLog)
		})
	}
}

// againstProduction runs the installed programs as the manual does (4.3,
// 5.2) against a simulated production: ot-configure, ot-enable-sync, the
// connection test, and the hourly cron job, which must print nothing. The
// configuration is a copy of the packaged file in a temporary directory,
// with every path the programs write pointed there too.
func againstProduction(t *testing.T) {
	prodlab.Require(t, "rsync", "ssh-keyscan")
	dir := t.TempDir()
	standby, prod := filepath.Join(dir, "filestore"), filepath.Join(dir, "prod-filestore")
	prodlab.WriteFileMode(t, filepath.Join(prod, "db1", "ab", "abcdef"), "attachment\n", 0o644)
	if err := os.MkdirAll(standby, 0o755); err != nil {
		t.Fatal(err)
	}
	p := prodlab.Start(t, prodlab.Options{Binds: map[string]string{standby: prod}})
	fp := strings.Fields(run(t, "ssh-keygen", "-lf", p.KnownHosts))[1]

	summary := filepath.Join(dir, "summary.log")
	text := prodlab.ReadFile(t, conf)
	// Set each key as an operator would: on its line, uncommented.
	for k, v := range map[string]string{
		"SSH_PORT": fmt.Sprint(p.Port), "SSH_IDENTITY": p.KeyFile, "SSH_CONNECT_TIMEOUT": "5",
		"SSH_KNOWN_HOSTS": filepath.Join(dir, "known_hosts"), "FILESTORE": standby,
		"ODOO_USER": "daemon", "ODOO_GROUP": "daemon", "PG_CLUSTER": "0/none",
		"SUMMARYFILE": summary, "RUN_LOG": filepath.Join(dir, "runs.log"),
		"LOCK_FILE": filepath.Join(dir, "lock"), "BACKUP_DIR": filepath.Join(dir, "backups"),
		"REPORT_DIR": dir,
	} {
		line := regexp.MustCompile(`(?m)^#?` + k + `=.*$`)
		if !line.MatchString(text) {
			t.Fatalf("the packaged %s has no line for %s", conf, k)
		}
		text = line.ReplaceAllLiteralString(text, k+`="`+v+`"`)
	}
	cfg := filepath.Join(dir, "ot-redundancy-sync.conf")
	prodlab.WriteFileMode(t, cfg, text, 0o600)

	run(t, "/usr/bin/ot-configure", "--config", cfg, "--yes", "--source", p.Addr, "--user", p.User,
		"--trust-host-key", fp, "--enable")
	got := prodlab.ReadFile(t, cfg)
	for _, want := range []string{`SYNCMODE="on"`, `SYNCSRC="` + p.Addr + `"`} {
		if !strings.Contains(got, "\n"+want+"\n") {
			t.Errorf("after ot-configure, %s lacks %s:\n%s", cfg, want, got)
		}
	}
	run(t, "/usr/bin/ot-disable-sync", "--config", cfg)
	if out := run(t, "/usr/bin/ot-enable-sync", "--config", cfg); !strings.Contains(out, "sync is now on") {
		t.Errorf("ot-enable-sync: %q", out)
	}
	run(t, "/usr/bin/ot-connection-test", "--config", cfg)
	if !prodlab.Exists("/usr/bin/ot-attachments-sync") {
		return
	}
	cmd := exec.Command("/usr/bin/ot-attachments-sync", "--config", cfg, "--cron")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("ot-attachments-sync --cron: %v: %q (cron mails any output)", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(standby, "db1", "ab", "abcdef")); string(got) != "attachment\n" {
		t.Errorf("the cron job did not copy production's filestore: %q", got)
	}
	if !strings.Contains(prodlab.ReadFile(t, summary), ":  ot-attachments-sync") {
		t.Errorf("no summary line for the cron job: %q", prodlab.ReadFile(t, summary))
	}
}

// hostState is what the test may create and must remove again.
type hostState struct {
	existed map[string]bool
}

var touched = []string{logDir, "/usr/libexec", "/etc/odoo", "/etc/cron.d", "/etc/logrotate.d", "/etc/cron.hourly", "/etc/cron.monthly",
	"/usr/share/bash-completion", "/usr/share/bash-completion/completions"}

// checkHostIsClean refuses to run where the package or its files already
// are: the test would replace, then purge, them.
func checkHostIsClean(t *testing.T) hostState {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--show", "--showformat", "${db:Status-Status}", pkg).Output()
	if s := string(out); s != "" && s != "not-installed" {
		t.Fatalf("%s is %s on this host; the package test would replace it (purge it first)", pkg, s)
	}
	for _, f := range []string{conf, knownHosts, summaryLog, cronFile, "/etc/logrotate.d/ot-redundancy", oldHourly, oldMonthly} {
		if prodlab.Exists(f) {
			t.Fatalf("%s exists on this host; the package test would remove it", f)
		}
	}
	h := hostState{existed: map[string]bool{}}
	for _, d := range touched {
		h.existed[d] = prodlab.Exists(d)
	}
	return h
}

// fresh purges what an earlier failed subtest may have left.
func fresh(t *testing.T) {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--show", "--showformat", "${db:Status-Status}", pkg).Output()
	if s := string(out); s != "" && s != "not-installed" {
		purge(t)
	}
	os.Remove(summaryLog)
}

// restoreHost purges the package if a failed step left it, and removes the
// files and directories the test created.
func restoreHost(t *testing.T, h hostState) {
	out, _ := exec.Command("dpkg-query", "--show", "--showformat", "${db:Status-Status}", pkg).Output()
	if s := string(out); s != "" && s != "not-installed" {
		if out, err := apt("purge", pkg); err != nil {
			t.Errorf("cleanup: apt-get purge %s: %v\n%s", pkg, err, out)
		}
	}
	for _, f := range []string{summaryLog, summaryLog + ".dpkg-keep", knownHosts} {
		os.Remove(f)
	}
	for i := len(touched) - 1; i >= 0; i-- {
		if !h.existed[touched[i]] {
			os.Remove(touched[i]) // only when empty: never someone else's files
		}
	}
}

// copySource copies the work tree, without what builds leave, so that the
// test's build touches neither the tree nor a build running in it.
func copySource(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	tar := exec.Command("sh", "-c", `tar -C "$1" --exclude=./.git --exclude=./bin --exclude=./build --exclude=./deb \
		--exclude=./debian/ot-redundancy --exclude=./debian/.debhelper -cf - . | tar -C "$2" -xf -`, "sh", root, dst)
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v\n%s", root, err, out)
	}
	return dst
}

// changelogVersion is the version the package gets: the first changelog line's.
func changelogVersion(t *testing.T, src string) string {
	t.Helper()
	first, _, _ := strings.Cut(prodlab.ReadFile(t, filepath.Join(src, "debian/changelog")), "\n")
	m := regexp.MustCompile(`^ot-redundancy \(([^)]+)\)`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("debian/changelog starts with %q", first)
	}
	return m[1]
}

func buildDeb(t *testing.T, src, version, arch string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "deb")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	// clean first: the copy may hold a stamp of a build done in the tree.
	run(t, "make", "-C", src, "clean", "deb", "DEB_DIR="+out, "GO="+goTool)
	deb := filepath.Join(out, fmt.Sprintf("%s_%s_%s.deb", pkg, version, arch))
	if !prodlab.Exists(deb) {
		t.Fatalf("make deb did not build %s", deb)
	}
	return deb
}

// buildOriginal builds a package laid out like the original ot-redundancy
// 0.5-3: bash scripts in /usr/bin, the configuration file as a conffile,
// cron.hourly and cron.monthly scripts, and the summary log as a file of
// the package.
func buildOriginal(t *testing.T, cronConffiles bool, arch string) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	control := "Package: ot-redundancy\nVersion: 0.5-3\nArchitecture: " + arch + "\nMaintainer: package test <test@example.org>\n" +
		"Depends: rsync\nDescription: stand-in for the original ot-redundancy suite\n Built by internal/pkgtest.\n"
	conffiles := conf + "\n"
	if cronConffiles {
		conffiles += oldHourly + "\n" + oldMonthly + "\n"
	}
	prodlab.WriteFileMode(t, filepath.Join(tree, "DEBIAN/control"), control, 0o644)
	prodlab.WriteFileMode(t, filepath.Join(tree, "DEBIAN/conffiles"), conffiles, 0o644)
	for _, p := range originalPrograms {
		prodlab.WriteFileMode(t, filepath.Join(tree, "usr/bin", p), "#!/bin/bash\necho \"$0: the original script\"\n", 0o755)
	}
	prodlab.WriteFileMode(t, filepath.Join(tree, conf), "SYNCMODE=\"off\"\nSYNCSRC=\"NOT-SET\"\nREMOTEODOO=\"odoo\"\n"+
		"SUMMARYFILE=\""+summaryLog+"\"\n", 0o644)
	prodlab.WriteFileMode(t, filepath.Join(tree, oldHourly), "#!/bin/bash\not-attachments-sync\n", 0o755)
	prodlab.WriteFileMode(t, filepath.Join(tree, oldMonthly), "#!/bin/bash\not-sync-from-source\n", 0o755)
	prodlab.WriteFileMode(t, filepath.Join(tree, summaryLog), "", 0o644)
	deb := filepath.Join(dir, "ot-redundancy_0.5-3_"+arch+".deb")
	run(t, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, deb)
	return deb
}

// checkInstalled checks every program, its man page and its completion,
// and the files the package installs beside them.
func checkInstalled(t *testing.T, version string, names []string) {
	t.Helper()
	alias := map[string]string{}
	for _, a := range programs.Aliases() {
		alias[a.Name] = a.Program
	}
	for _, p := range names {
		bin := "/usr/bin/" + p
		// One binary, every command a link to it.
		if target, err := os.Readlink(bin); err != nil || target != "../libexec/ot-redundancy/ot-redundancy" {
			t.Errorf("%s: %q %v, want a link to ../libexec/ot-redundancy/ot-redundancy", bin, target, err)
		}
		prog := p
		if alias[p] != "" {
			prog = alias[p]
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || string(out) != prog+" "+version+"\n" {
			t.Errorf("%s --version: %v: %q, want %q", bin, err, out, prog+" "+version)
		}
		out, err = exec.Command(bin, "--help").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "Usage: "+prog+" ") || !strings.Contains(string(out), "\nEXIT STATUS") {
			t.Errorf("%s --help: %v: %q", bin, err, out)
		}
		page := "/usr/share/man/man1/" + p + ".1.gz"
		if alias[p] == "" {
			checkManPage(t, page, `.SH "EXIT STATUS"`, `.SH "ENVIRONMENT"`, `.SH "FILES"`, ".BR ot\\-redundancy\\-sync.conf (5)")
		} else if target, err := os.Readlink(page); err != nil || target != prog+".1.gz" {
			t.Errorf("%s: %q %v, want a link to %s.1.gz", page, target, err, prog)
		}
		comp := "/usr/share/bash-completion/completions/" + p
		if out, err := exec.Command("bash", "-c", `source "$1" && complete -p "$2"`, "bash", comp, p).CombinedOutput(); err != nil {
			t.Errorf("bash completion for %s: %v: %s", p, err, out)
		}
	}
	// Every key in the configuration file's page, from config.Defs.
	conf5 := "/usr/share/man/man5/ot-redundancy-sync.conf.5.gz"
	var keys []string
	for _, d := range config.Defs {
		keys = append(keys, "\\fB"+d.Name+"\\fR")
	}
	checkManPage(t, conf5, keys...)
	// Built as the Makefile says: trimmed paths, no cgo, version stamped.
	if goTool, err := exec.LookPath("go"); err == nil {
		info := run(t, goTool, "version", "-m", binary)
		for _, want := range []string{"-trimpath=true", "CGO_ENABLED=0"} {
			if !strings.Contains(info, want) {
				t.Errorf("go version -m %s lacks %s:\n%s", binary, want, info)
			}
		}
	}
	checkSystemd(t)
	conffiles := run(t, "dpkg-query", "--show", "--showformat", "${Conffiles}", pkg)
	for _, f := range []string{conf, cronFile, "/etc/logrotate.d/ot-redundancy"} {
		if !strings.Contains(conffiles, " "+f+" ") {
			t.Errorf("%s is not a conffile:\n%s", f, conffiles)
		}
	}
	cron := prodlab.ReadFile(t, cronFile)
	for _, want := range []string{
		"root\ttest -d /run/systemd/system || test ! -x /usr/bin/ot-attachments-sync || ot-attachments-sync --cron\n",
		"root\ttest -d /run/systemd/system || test ! -x /usr/bin/ot-sync-from-source || ot-sync-from-source --cron\n",
		"\n#MAILTO=",
	} {
		if !strings.Contains(cron, want) {
			t.Errorf("%s lacks %q", cronFile, want)
		}
	}
	if logrotate, err := exec.LookPath("logrotate"); err == nil {
		state := filepath.Join(t.TempDir(), "state")
		run(t, logrotate, "--debug", "--state", state, "/etc/logrotate.d/ot-redundancy")
	}
	if !prodlab.Exists(summaryLog) {
		t.Errorf("no %s after install", summaryLog)
	}
	if strings.Contains(run(t, "dpkg-query", "--listfiles", pkg), summaryLog) {
		t.Errorf("%s is a file of the package", summaryLog)
	}
}

// checkManPage checks that a page renders without a warning from groff and
// holds each of want in its source.
func checkManPage(t *testing.T, page string, want ...string) {
	t.Helper()
	src := run(t, "zcat", page)
	for _, w := range want {
		if !strings.Contains(src, w) {
			t.Errorf("%s lacks %q", page, w)
		}
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(src)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff %s: %v: %s", page, err, out)
	}
}

// checkSystemd checks the package's units with systemd-analyze verify (the
// programs and man pages they name are installed now), and that the
// timers are enabled while the services they start are not: installing
// must not run a sync.
func checkSystemd(t *testing.T) {
	t.Helper()
	var units, services []string
	for _, f := range strings.Fields(run(t, "dpkg-query", "--listfiles", pkg)) {
		if filepath.Dir(f) != unitDir {
			continue
		}
		name := filepath.Base(f)
		switch {
		case strings.Contains(name, "@"):
			// A template is verified through the instances that use it.
		case strings.HasSuffix(name, ".timer"):
			units = append(units, f)
			if target, err := os.Readlink(filepath.Join(timerWants, name)); err != nil || target != f {
				t.Errorf("%s is not enabled: %q %v", name, target, err)
			}
		case strings.HasSuffix(name, ".service"):
			units = append(units, f)
			services = append(services, strings.TrimSuffix(name, ".service"))
		}
	}
	for _, want := range []string{"ot-attachments-sync", "ot-sync-from-source", "ot-status"} {
		if !slices.Contains(services, want) || !slices.Contains(units, filepath.Join(unitDir, want+".timer")) {
			t.Errorf("no %s.service and .timer in %s", want, unitDir)
		}
	}
	checkFollower(t, services)
	for _, s := range services {
		text := prodlab.ReadFile(t, filepath.Join(unitDir, s+".service"))
		if !strings.Contains(text, "\nOnFailure=ot-redundancy-failure@%N.service\n") {
			t.Errorf("%s.service has no OnFailure= hook", s)
		}
		// The hook's instance for this service, as OnFailure= names it.
		units = append(units, "ot-redundancy-failure@"+s+".service")
		if links, _ := filepath.Glob("/etc/systemd/system/*/" + s + ".service"); len(links) > 0 {
			t.Errorf("%s.service is enabled (%v): only its timer should be", s, links)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		prodlab.Missing(t, "no systemd-analyze to verify the units with")
		return
	}
	cmd := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(units, " "), err, out)
	}
}

// checkFollower checks the filestore follower's unit: installed, running
// the installed program, neither enabled nor started by the install
// (ot-enable-sync does that), restarted by an upgrade only if it runs, and
// stopped on remove.
func checkFollower(t *testing.T, services []string) {
	t.Helper()
	const follow = "ot-attachments-follow"
	if !slices.Contains(services, follow) {
		t.Errorf("no %s.service in %s", follow, unitDir)
		return
	}
	text := prodlab.ReadFile(t, filepath.Join(unitDir, follow+".service"))
	for _, want := range []string{"\nExecStart=/usr/bin/ot-attachments-sync --follow --cron\n", "\nRestart=on-failure\n",
		"\nStartLimitBurst=", "\nWantedBy=multi-user.target\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("%s.service lacks %q", follow, want)
		}
	}
	if links, _ := filepath.Glob("/etc/systemd/system/*/" + follow + ".service"); len(links) > 0 {
		t.Errorf("%s.service is enabled after install (%v): ot-enable-sync enables it", follow, links)
	}
	info := "/var/lib/dpkg/info/" + pkg + "."
	postinst, prerm := prodlab.ReadFile(t, info+"postinst"), prodlab.ReadFile(t, info+"prerm")
	if !strings.Contains(postinst, "deb-systemd-invoke try-restart '"+follow+".service'") {
		t.Errorf("postinst does not try-restart a running follower on upgrade")
	}
	if regexp.MustCompile(`deb-systemd-invoke (\$_dh_action|start|restart) [^\n]*` + follow).MatchString(postinst) {
		t.Errorf("postinst starts the follower on install")
	}
	if !regexp.MustCompile(`"\$1" = remove [^\n]*\n\s*deb-systemd-invoke stop [^\n]*` + follow).MatchString(prerm) {
		t.Errorf("prerm does not stop the follower on remove:\n%s", prerm)
	}
}

// cronStandsAside runs each job line of the installed cron file as cron
// would, in a private mount namespace with a fresh /run: with
// /run/systemd/system there (systemd is the init system, its timers run
// the jobs) the line must do nothing; without, it must run the program.
// The installed programs run against a configuration with sync on and no
// production set, so that a run shows: it fails, saying so, and writes the
// run log; cron would mail that output.
func cronStandsAside(t *testing.T) {
	prodlab.Require(t, "unshare", "mount")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ot-redundancy-sync.conf")
	runLog := filepath.Join(dir, "runs.log")
	prodlab.WriteFileMode(t, cfg, "SYNCMODE=\"on\"\nSYNCSRC=\"NOT-SET\"\nRUN_LOG=\""+runLog+"\"\n"+
		"LOCK_FILE=\""+filepath.Join(dir, "lock")+"\"\nSUMMARYFILE=\""+filepath.Join(dir, "summary.log")+"\"\n", 0o600)
	var jobs []string
	for _, line := range strings.Split(prodlab.ReadFile(t, cronFile), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || strings.HasPrefix(f[0], "#") || strings.Contains(f[0], "=") {
			continue
		}
		if f[5] != "root" {
			t.Errorf("%s: job not run as root: %q", cronFile, line)
		}
		jobs = append(jobs, strings.Join(f[6:], " "))
	}
	if len(jobs) != 2 {
		t.Fatalf("%s has %d jobs, want 2: %q", cronFile, len(jobs), jobs)
	}
	for _, job := range jobs {
		for _, systemd := range []bool{true, false} {
			os.Remove(runLog)
			setup := "mount -t tmpfs tmpfs /run"
			if systemd {
				setup += " && mkdir -p /run/systemd/system"
			}
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", setup+" && exec /bin/sh -c \"$0\"", job)
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "OT_CONFIG=" + cfg, "LANG=C"}
			out, err := cmd.CombinedOutput()
			ran := prodlab.Exists(runLog)
			switch {
			case systemd && (err != nil || len(out) > 0 || ran):
				t.Errorf("%q with /run/systemd/system: %v: %q (ran: %v); want nothing, the timer runs it", job, err, out, ran)
			case !systemd && (!strings.Contains(string(out), "SYNCSRC") || !ran):
				t.Errorf("%q without systemd: %v: %q (ran: %v); want the program's error", job, err, out, ran)
			}
		}
	}
}

// checkBuiltUsing checks Static-Built-Using against the binary in the
// package: the Go toolchain and every module it links in.
func checkBuiltUsing(t *testing.T, deb string) {
	t.Helper()
	field := run(t, "dpkg-deb", "--field", deb, "Static-Built-Using")
	dir := t.TempDir()
	run(t, "dpkg-deb", "--extract", deb, dir)
	info, err := buildinfo.ReadFile(filepath.Join(dir, binary))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := strings.TrimPrefix(strings.Fields(info.GoVersion)[0], "go")
	toolchain := "golang-" + goVersion[:strings.LastIndexByte(goVersion, '.')] + " (= " + goVersion + "), "
	entries := strings.Split(strings.TrimSpace(field), ", ")
	if !strings.HasPrefix(field, toolchain) || len(entries) != 1+len(info.Deps) {
		t.Errorf("Static-Built-Using %q: want %sand one entry for each of the %d modules", field, toolchain, len(info.Deps))
	}
	for _, d := range info.Deps {
		// The module's last two path elements name it well enough here:
		// golang.org/x/sys is golang-golang-x-sys.
		parts := strings.Split(strings.ToLower(d.Path), "/")
		tail := "-" + strings.Join(parts[len(parts)-2:], "-") + " (= "
		if !strings.Contains(field, tail) {
			t.Errorf("Static-Built-Using lacks the module %s (%q): %s", d.Path, tail, field)
		}
	}
}

// installedFiles lists the package's files, as dpkg knows them.
func installedFiles(t *testing.T) []string {
	t.Helper()
	return strings.Fields(run(t, "dpkg-query", "--listfiles", pkg))
}

// checkPurged checks that nothing the package installed is left: every file
// and link gone, and every directory the host did not have before.
func checkPurged(t *testing.T, h hostState, files []string) {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--show", "--showformat", "${db:Status-Status}", pkg).Output()
	if s := string(out); s != "" && s != "not-installed" {
		t.Errorf("after purge, %s is %s", pkg, s)
	}
	// deb-systemd-helper's links and state go with the package.
	for _, pattern := range []string{timerWants + "/ot-*", "/var/lib/systemd/deb-systemd-helper-enabled/*/ot-*",
		"/var/lib/systemd/deb-systemd-helper-enabled/ot-*"} {
		if left, _ := filepath.Glob(pattern); len(left) > 0 {
			t.Errorf("purge left %v", left)
		}
	}
	for _, f := range append(files, conf) {
		fi, err := os.Lstat(f)
		if err != nil {
			continue
		}
		// usrmerge's /lib -> usr/lib: a directory of the system's, which
		// dpkg lists for the units in it and never removes.
		if st, err := os.Stat(f); err == nil && st.IsDir() && fi.Mode()&os.ModeSymlink != 0 {
			continue
		}
		if !fi.IsDir() {
			t.Errorf("purge left %s", f)
		} else if existed, known := h.existed[f]; known && !existed {
			t.Errorf("purge left the directory %s", f)
		}
	}
}

// aptInstall installs deb and returns what apt-get and the maintainer
// scripts printed.
func aptInstall(t *testing.T, deb string) string {
	t.Helper()
	// confdef/confold: what an unattended upgrade does with a conffile
	// the operator changed: keep the operator's.
	out, err := apt("install", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", deb)
	if err != nil {
		t.Fatalf("apt-get install %s: %v\n%s", deb, err, out)
	}
	return string(out)
}

func purge(t *testing.T) {
	t.Helper()
	if out, err := apt("purge", pkg); err != nil {
		t.Fatalf("apt-get purge: %v\n%s", err, out)
	}
}

// apt runs apt-get, waiting for the dpkg lock that other tests may hold.
func apt(args ...string) ([]byte, error) {
	cmd := exec.Command("apt-get", append([]string{"-y", "-o", "DPkg::Lock::Timeout=300"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
