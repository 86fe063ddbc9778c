package aptsync

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/aptlab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/clilab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// lab is a production whose dpkg database lists prodPkgs (auto ones marked
// so in its extended_states), a standby apt directory whose sources name a
// local repository holding repoPkgs, and private apt lists and cache.
type lab struct {
	prod *prodlab.Prod
	conf string
	dir  string
	opts Options
	env  []string // for apt-get: no host hooks
}

func startLab(t *testing.T, repoPkgs, prodPkgs []aptlab.Pkg, auto []string, binds map[string]string) *lab {
	prodlab.Require(t, "apt-get", "apt-mark", "dpkg-deb", "dpkg-scanpackages")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	aptDir := filepath.Join(dir, "apt")
	os.MkdirAll(filepath.Join(aptDir, "sources.list.d"), 0o755)
	line := aptlab.Repo(t, filepath.Join(dir, "repo"), repoPkgs...)
	prodlab.WriteFile(t, filepath.Join(aptDir, "sources.list"), line)

	b := aptlab.ProductionBinds(t, dir, prodPkgs, auto)
	for k, v := range binds {
		b[k] = v
	}
	p := prodlab.Start(t, prodlab.Options{Binds: b})
	conf := filepath.Join(dir, "ot.conf")
	l := &lab{prod: p, conf: conf, dir: dir, opts: Options{Config: aptlab.Private(t, filepath.Join(dir, "state")), LockWait: 30 * time.Second},
		env: []string{aptlab.HookFreeEnv(t, dir)}}
	l.configure(t, nil)
	return l
}

// configure writes the lab's configuration, with extra keys.
func (l *lab) configure(t *testing.T, extra map[string]string) {
	// PG_CLUSTER names no cluster: a host PostgreSQL must not look like promotion.
	kv := map[string]string{"APT_DIR": filepath.Join(l.dir, "apt"), "PG_CLUSTER": "99/none"}
	maps.Copy(kv, extra)
	l.prod.WriteConfig(t, l.conf, kv)
}

// sync runs ot-apt-sync's job in this process and returns its exit code,
// stdout and stderr.
func (l *lab) sync(t *testing.T, dryRun bool) (int, string, string) {
	t.Helper()
	r := clilab.Run(t, Name, cli.Globals{Config: l.conf, DryRun: dryRun}, zerolog.InfoLevel, l.env, func(env *cli.Env) error {
		return job.Sync(env, Name, job.Flags{}, func(j *job.Job) error { return Sync(j, l.opts) })
	})
	return r.Code, r.Stdout, r.Stderr
}

func (l *lab) stamped(t *testing.T) bool {
	t.Helper()
	last, err := summary.Last(l.prod.SummaryFile())
	if err != nil {
		return false
	}
	_, ok := last[Name]
	return ok
}

func TestSyncInstallsProductionsManualPackages(t *testing.T) {
	a := aptlab.Pkg{Name: "otaptsync-a", Version: "1.0"}
	b := aptlab.Pkg{Name: "otaptsync-b", Version: "2.1-3"}
	dep := aptlab.Pkg{Name: "otaptsync-dep", Version: "0.5"}   // auto on production
	fw := aptlab.Pkg{Name: "otaptsync-firmware", Version: "1"} // APT_DENY: *-firmware
	all := []aptlab.Pkg{a, b, dep, fw}
	l := startLab(t, all, all, []string{dep.Name}, nil)
	aptlab.PurgeAtCleanup(t, a.Name, b.Name, dep.Name, fw.Name)
	manualBefore := aptlab.Manual(t)

	// A dry run changes nothing. Before the lists know the repository,
	// its commands name no package apt does not know (the real run asks
	// again after its update).
	code, out, _ := l.sync(t, true)
	if code != 0 || !strings.Contains(out, "#   not in this standby's apt cache, so never given to apt-get (the real run asks again after the update): otaptsync-a, otaptsync-b\n") ||
		strings.Contains(out, "install --") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if aptlab.Installed(t, a.Name) != "" || l.stamped(t) {
		t.Fatal("the dry run installed or stamped")
	}
	// With lists that know the repository, the commands name the packages
	// and the preview has apt-get's simulation.
	l.apt(t, "apt-get", "-q", "update")
	code, out, _ = l.sync(t, true)
	if code != 0 || !strings.Contains(out, "# install the 2 package(s) production marks manual and this standby lacks\n") ||
		!strings.Contains(out, "install -- otaptsync-a otaptsync-b\n") || !strings.Contains(out, "apt-mark -o") ||
		!strings.Contains(out, "#   Inst otaptsync-a (1.0 ") || strings.Contains(out, "not in this standby's apt cache") {
		t.Fatalf("dry run with lists: exit %d\n%s", code, out)
	}

	code, _, _ = l.sync(t, false)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, p := range []aptlab.Pkg{a, b} {
		if got := aptlab.Installed(t, p.Name); got != p.Version {
			t.Errorf("%s: installed %q, production has %q", p.Name, got, p.Version)
		}
	}
	for _, p := range []aptlab.Pkg{dep, fw} {
		if got := aptlab.Installed(t, p.Name); got != "" {
			t.Errorf("%s %s installed; production has it auto or APT_DENY denies it", p.Name, got)
		}
	}
	manual := aptlab.Manual(t)
	if !manual[a.Name] || !manual[b.Name] {
		t.Errorf("not manual here: %v %v", manual[a.Name], manual[b.Name])
	}
	delete(manual, a.Name)
	delete(manual, b.Name)
	for n := range manualBefore {
		if !manual[n] {
			t.Errorf("%s is no longer manual here", n)
		}
	}
	if !l.stamped(t) {
		t.Error("no summary line")
	}

	// Again: nothing to do.
	code, out, _ = l.sync(t, false)
	if code != 0 || !strings.Contains(out, "are manual here") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
}

// apt runs an apt tool with the lab's sources, lists and cache, and
// returns its stdout.
func (l *lab) apt(t *testing.T, tool string, args ...string) string {
	t.Helper()
	argv := []string{tool, "-o", "Dir::Etc=" + filepath.Join(l.dir, "apt") + "/"}
	for _, kv := range l.opts.Config {
		argv = append(argv, "-o", kv)
	}
	out, err := (&run.Runner{Env: l.env}).Query(context.Background(), append(argv, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestUnknownPackageIsNamedAndTheRestInstalled(t *testing.T) {
	a := aptlab.Pkg{Name: "otaptsync-known", Version: "1.0"}
	ghost := aptlab.Pkg{Name: "otaptsync-ghost", Version: "1.0"}
	l := startLab(t, []aptlab.Pkg{a}, []aptlab.Pkg{a, ghost}, nil, nil)
	aptlab.PurgeAtCleanup(t, a.Name, ghost.Name)
	code, _, stderr := l.sync(t, false)
	if code != cli.ExitFailure || !strings.Contains(stderr, "ot-apt-sync: error: production's package(s) otaptsync-ghost not available from this standby's apt sources (a name apt does not know exactly is never given to apt-get); 1 other package(s) installed; ") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if aptlab.Installed(t, a.Name) != "1.0" {
		t.Error("the known package was not installed")
	}
	if l.stamped(t) {
		t.Error("a failed sync was stamped")
	}
}

// fakeAptMark makes production's apt-mark print out and exit with code.
func fakeAptMark(t *testing.T, out string, code int) map[string]string {
	binds, _ := fakeAptMarkFile(t, out, code)
	return binds
}

// fakeAptMarkFile is fakeAptMark, and the file holding what it prints:
// rewrite it to change production's listing between runs.
func fakeAptMarkFile(t *testing.T, out string, code int) (map[string]string, string) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	data := filepath.Join(dir, "out")
	prodlab.WriteFile(t, data, out)
	script := filepath.Join(dir, "apt-mark")
	prodlab.WriteFileMode(t, script, "#!/bin/sh\ncat "+data+"\necho 'E: simulated failure' >&2\nexit "+strconv.Itoa(code)+"\n", 0o755)
	return map[string]string{"/usr/bin/apt-mark": script}, data
}

func TestHostileOrFailedListingChangesNothing(t *testing.T) {
	a := aptlab.Pkg{Name: "otaptsync-h", Version: "1.0"}
	marker := filepath.Join(t.TempDir(), "x")
	hostile := a.Name + "\n-oDPkg::Pre-Invoke::=touch " + marker + "\n"
	for _, tc := range []struct {
		name, out string
		exit      int
		code      int
		msg       string
	}{
		{"option-like line", hostile, 0, cli.ExitRefused, `^ot-apt-sync: error: apt-mark showmanual on 127\.[0-9.]+ printed "-oDPkg::Pre-Invoke::=touch ` + regexp.QuoteMeta(marker) + `": not a Debian package name; nothing was installed`},
		{"failed listing", a.Name + "\n", 1, cli.ExitFailure, `^ot-apt-sync: error: cannot list production's manual packages \(apt-mark showmanual on 127\.[0-9.]+\): E: simulated failure \(exit status 1\); check apt on production; nothing was installed\n$`},
		{"empty listing", "", 0, cli.ExitFailure, `^ot-apt-sync: error: apt-mark showmanual on 127\.[0-9.]+ listed no packages`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLab(t, []aptlab.Pkg{a}, []aptlab.Pkg{a}, nil, fakeAptMark(t, tc.out, tc.exit))
			aptlab.PurgeAtCleanup(t, a.Name)
			code, _, stderr := l.sync(t, false)
			if code != tc.code || !regexp.MustCompile(tc.msg).MatchString(stderr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr, tc.code, tc.msg)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the hostile line ran")
			}
			if aptlab.Installed(t, a.Name) != "" {
				t.Fatal("installed despite the refusal")
			}
		})
	}
}

func TestHeldDpkgLockGivesABoundedWaitNamingIt(t *testing.T) {
	a := aptlab.Pkg{Name: "otaptsync-lock", Version: "1.0"}
	l := startLab(t, []aptlab.Pkg{a}, []aptlab.Pkg{a}, nil, nil)
	aptlab.PurgeAtCleanup(t, a.Name)
	// apt takes the lock next to Dir::State::status: give it a private copy,
	// so holding the lock here never blocks the host's own dpkg.
	admin := filepath.Join(l.dir, "dpkg")
	os.MkdirAll(admin, 0o755)
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	prodlab.WriteFile(t, filepath.Join(admin, "status"), string(status))
	lockPath := filepath.Join(admin, "lock-frontend")
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	l.opts.Config = append(l.opts.Config, "Dir::State::status="+filepath.Join(admin, "status"))
	l.opts.LockWait = 2 * time.Second

	start := time.Now()
	code, _, stderr := l.sync(t, false)
	took := time.Since(start)
	want := "ot-apt-sync: error: apt-get install: the lock " + lockPath + " is held by process " + strconv.Itoa(os.Getpid())
	if code != cli.ExitFailure || !strings.Contains(stderr, want) || !strings.Contains(stderr, "gave up after waiting 2s") {
		t.Fatalf("exit %d, stderr %q; want %q", code, stderr, want)
	}
	if took < 2*time.Second || took > 30*time.Second {
		t.Errorf("took %v; the wait is 2s", took)
	}
	if aptlab.Installed(t, a.Name) != "" {
		t.Fatal("installed despite the lock")
	}
}

// Production's names that apt-get would read as something other than one
// package — a trailing '-' that removes (openssh-server-), a trailing '+'
// that slips past APT_DENY, a regular expression (zstd.), an architecture
// this machine does not have — never reach apt-get: each is named, the
// intended package is installed, and nothing else on this host changes.
// Lines that cannot be package names at all (a search pattern, a version
// or release selector) refuse the whole run.
func TestNameTricksNeverReachAptGet(t *testing.T) {
	keep := aptlab.Pkg{Name: "otaptsync-keep", Version: "1.0"} // stands for openssh-server
	want := aptlab.Pkg{Name: "otaptsync-ok", Version: "1.0"}
	rxa := aptlab.Pkg{Name: "otaptsync-rxa", Version: "1.0"}
	rxb := aptlab.Pkg{Name: "otaptsync-rxb", Version: "1.0"}
	denied := aptlab.Pkg{Name: "otaptsync-denied", Version: "1.0"}
	binds, listing := fakeAptMarkFile(t, "", 0)
	l := startLab(t, []aptlab.Pkg{keep, want, rxa, rxb, denied}, nil, nil, binds)
	l.configure(t, map[string]string{"APT_DENY": denied.Name})
	aptlab.PurgeAtCleanup(t, want.Name, rxa.Name, rxb.Name, denied.Name)
	aptlab.Install(t, keep)
	l.apt(t, "apt-get", "-q", "update")

	// The tricks are live: given to the real apt-get, each would change
	// this host beyond the one package it names.
	live := map[string][]string{
		keep.Name + "-":       {"Remv otaptsync-keep "},
		"otaptsync-rx.":       {"Inst otaptsync-rxa ", "Inst otaptsync-rxb "},
		denied.Name + "+":     {"Inst otaptsync-denied "},
		"?name(otaptsync-rx)": {"Inst otaptsync-rxa ", "Inst otaptsync-rxb "},
		rxa.Name + "=1.0":     {"Inst otaptsync-rxa "},
	}
	for name, effects := range live {
		out := l.apt(t, "apt-get", "-s", "-q", "install", "--", name)
		for _, e := range effects {
			if !strings.Contains(out, e) {
				t.Fatalf("apt-get -s install %s: no %q; the lab does not reproduce the trick:\n%s", name, e, out)
			}
		}
	}

	before, manualBefore := aptlab.State(t, "otaptsync-"), aptlab.Manual(t)
	tricks := []string{"otaptsync-denied+", "otaptsync-keep-", "otaptsync-rx.", "otaptsync-rxa:any"}
	prodlab.WriteFile(t, listing, want.Name+"\n"+strings.Join(tricks, "\n")+"\n")

	// The plan's commands (the lines an operator could paste) hold none.
	code, out, _ := l.sync(t, true)
	if code != 0 || !strings.Contains(out, " -o APT::Cmd::Pattern-Only=true ") || !strings.Contains(out, "install -- otaptsync-ok\n") ||
		!strings.Contains(out, "#   not in this standby's apt cache, so never given to apt-get (the real run asks again after the update): "+strings.Join(tricks, ", ")+"\n") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		for _, trick := range tricks {
			if !strings.HasPrefix(line, "#") && strings.Contains(line, trick) {
				t.Errorf("a command of the plan holds %q: %s", trick, line)
			}
		}
	}

	code, _, stderr := l.sync(t, false)
	msg := "ot-apt-sync: error: production's package(s) " + strings.Join(tricks, ", ") + " not available from this standby's apt sources (a name apt does not know exactly is never given to apt-get); 1 other package(s) installed; add the repository that has them (ot-conf-sync copies production's apt sources), or add them to APT_DENY\n"
	if code != cli.ExitFailure || stderr != msg {
		t.Fatalf("exit %d, stderr %q; want 1, %q", code, stderr, msg)
	}
	wantState := maps.Clone(before)
	wantState[want.Name+":all"] = "ii  1.0"
	if after := aptlab.State(t, "otaptsync-"); !maps.Equal(after, wantState) {
		t.Errorf("dpkg's state changed beyond %s:\n%s", want.Name, stateDiff(wantState, after))
	}
	manual := aptlab.Manual(t)
	for n := range manual {
		if !manualBefore[n] && n != want.Name && (!strings.HasPrefix(n, "ot") || strings.HasPrefix(n, "otaptsync-")) {
			t.Errorf("%s became manual", n)
		}
	}
	if !manual[want.Name] {
		t.Errorf("%s is not manual", want.Name)
	}

	// Only tricks left to do: refused, and nothing was changed (exit 8).
	code, _, stderr = l.sync(t, false)
	if code != cli.ExitRefused || !strings.Contains(stderr, "never given to apt-get); nothing was changed; ") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if after := aptlab.State(t, "otaptsync-"); !maps.Equal(after, wantState) {
		t.Errorf("dpkg's state changed:\n%s", stateDiff(wantState, after))
	}

	// Not a package name at all: the whole listing is refused.
	for _, line := range []string{"?name(otaptsync-rx)", rxa.Name + "=1.0", rxa.Name + "/stable"} {
		prodlab.WriteFile(t, listing, rxb.Name+"\n"+line+"\n")
		code, _, stderr = l.sync(t, false)
		if code != cli.ExitRefused || !strings.Contains(stderr, `printed "`+line+`": not a Debian package name; nothing was installed`) {
			t.Errorf("%s: exit %d, stderr %q", line, code, stderr)
		}
	}
	if after := aptlab.State(t, "otaptsync-"); !maps.Equal(after, wantState) {
		t.Errorf("dpkg's state changed:\n%s", stateDiff(wantState, after))
	}
}

// stateDiff lists the packages whose dpkg state differs.
func stateDiff(want, got map[string]string) string {
	var b strings.Builder
	for k, v := range want {
		if got[k] != v {
			fmt.Fprintf(&b, "%s: want %q, got %q\n", k, v, got[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "%s: want absent, got %q\n", k, v)
		}
	}
	return b.String()
}
