// Package aptsync is ot-apt-sync: it installs on the standby every package
// that production has marked manual and that is missing here, and marks it
// manual here too, so that both machines' manual sets agree.
//
// Production's list is untrusted input: every line must be a Debian package
// name (optionally ":arch") or the run is refused before apt sees anything.
// apt-get then gets only names its cache holds exactly (apt-cache pkgnames,
// asked again after the update): it reads any other name as something else,
// a removal (openssh-server-), a name past APT_DENY (foo+), a regular
// expression (zstd.). Those are refused, named, and the rest installed.
// apt-get runs unattended (DEBIAN_FRONTEND=noninteractive, local conffiles
// kept), waits a bounded time for the dpkg lock, and gets "--" before names.
//
// Recommends follow apt's own setting (Debian installs them by default):
// production's packages were installed that way, so the standby gets the same
// recommended packages, unless APT::Install-Recommends says otherwise in the
// standby's apt.conf.
package aptsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Name is the command's name, as stamped in the summary file.
const Name = "ot-apt-sync"

// Options tune a sync. The zero value is what ot-apt-sync does.
type Options struct {
	// Config holds extra apt settings as "Key=Value", passed as "-o Key=Value"
	// to every apt-get and apt-mark call. Tests give apt private lists and
	// cache directories with it (Dir::State::Lists, Dir::Cache).
	Config []string
	// LockWait bounds the wait for the dpkg lock (DPkg::Lock::Timeout);
	// zero means LOCK_WAIT seconds.
	LockWait time.Duration
}

// CLI is ot-apt-sync's command line.
type CLI struct {
	cli.Globals
	job.Flags
}

// Main is the program.
func Main(args []string) int {
	return cli.Main(Name, "Install on this standby every apt package that production has marked manual (apt-mark showmanual) and that is missing here, then mark them manual here. Packages matching APT_DENY are never installed.", args, &CLI{})
}

// Run runs the sync as a job.
func (c *CLI) Run(env *cli.Env) error {
	if c.Cron {
		env.G.Quiet = true
	}
	return job.Sync(env, Name, c.Flags, func(j *job.Job) error { return Sync(j, Options{}) })
}

// Plan is what a sync will do.
type Plan struct {
	Production int               // manual packages on production
	Denied     map[string]string // package -> the APT_DENY pattern it matched
	Install    []string          // missing here
	Mark       []string          // not manual here (includes Install)
}

// MakePlan compares production's manual packages with this machine's
// installed and manual sets. Names are normalised for the native arch.
func MakePlan(prod []string, native string, installed, manual map[string]bool, deny []string) Plan {
	p := Plan{Production: len(prod), Denied: map[string]string{}}
	seen := map[string]bool{}
	for _, name := range prod {
		name = normalize(name, native)
		if seen[name] {
			continue
		}
		seen[name] = true
		if pat := Denied(name, deny); pat != "" {
			p.Denied[name] = pat
			continue
		}
		if !manual[name] {
			p.Mark = append(p.Mark, name)
		}
		if !installed[name] {
			p.Install = append(p.Install, name)
		}
	}
	slices.Sort(p.Install)
	slices.Sort(p.Mark)
	return p
}

// Inventory is what production and this standby have, and what a sync
// would change: read-only, for the sync and for ot-status --drift alike.
type Inventory struct {
	Production []string // production's manual packages, validated, normalized
	Standby    []string // this machine's manual packages, normalized
	Arch       string   // this machine's native architecture
	Plan       Plan
}

// Take reads both sides: production's manual packages over the run's
// connection, this machine's installed and manual sets.
func Take(j *job.Job, opts Options) (*Inventory, error) {
	ctx, host := j.Ctx, j.SSH.Host
	out, err := j.Remote(ctx, "apt-mark", "showmanual")
	if err != nil {
		var ce *cli.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, cli.Fail(cli.ExitFailure, "cannot list production's manual packages (apt-mark showmanual on "+host+"): "+run.Brief(err), "check apt on production; nothing was installed")
	}
	prod, err := ParseList(out)
	if err != nil {
		return nil, cli.Fail(cli.ExitRefused, "apt-mark showmanual on "+host+" printed "+err.Error(), "nothing was installed; check production's package database")
	}
	if len(prod) == 0 {
		return nil, cli.Fail(cli.ExitFailure, "apt-mark showmanual on "+host+" listed no packages", "check apt on production; nothing was installed")
	}
	native, installed, manual, err := newApt(j, opts).local(ctx)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Arch: native, Plan: MakePlan(prod, native, installed, manual, j.Cfg.Words(config.AptDeny))}
	for _, n := range prod {
		inv.Production = append(inv.Production, normalize(n, native))
	}
	inv.Standby = slices.Sorted(maps.Keys(manual))
	return inv, nil
}

// Sync makes this machine's manual packages a superset of production's.
func Sync(j *job.Job, opts Options) error {
	inv, err := Take(j, opts)
	if err != nil {
		return err
	}
	p := inv.Plan
	for _, name := range slices.Sorted(maps.Keys(p.Denied)) {
		j.Log.Debug().Str("package", name).Str("pattern", p.Denied[name]).Msg("skipped: APT_DENY")
	}
	if len(p.Mark) == 0 {
		j.Printf("apt: all %d of production's manual packages are manual here (%d skipped by APT_DENY)\n", p.Production, len(p.Denied))
		return nil
	}
	a := newApt(j, opts)
	o := &outcome{}
	var steps []run.Step
	if len(p.Install) > 0 {
		// The plan holds only names apt knows now, so that a pasted command
		// never carries one apt would misread; the real run asks again
		// after the update, which may bring new packages.
		now, refused, err := a.exact(j.Ctx, p.Install)
		if err != nil {
			return err
		}
		o.refused = refused
		steps = append(steps, a.update(), a.install(p.Install, now, o))
	}
	return j.Runner.Apply(j.Ctx, append(steps, a.mark(p.Mark, o), run.Step{Do: func(context.Context) error {
		return a.report(o)
	}})...)
}

// shown is how many names an error line holds; the log has them all.
const shown = 5

// outcome is what the install and mark steps did, for the report.
type outcome struct {
	refused   []string // not names apt's cache holds exactly: never given to apt-get
	missing   []string // given to apt-get, which could not install them
	installed []string
	marked    int
}

// without is names minus those refused or missing.
func (o *outcome) without(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool {
		return slices.Contains(o.refused, n) || slices.Contains(o.missing, n)
	})
}

// report says what the sync did. A package not installed fails the run:
// exit 8 when nothing else changed and every one was refused before apt-get
// saw it, else 1, naming what was installed.
func (a *apt) report(o *outcome) error {
	if len(o.installed) > 0 {
		a.j.Printf("apt: installed %d package(s) from production's manual set: %s\n", len(o.installed), strings.Join(o.installed, " "))
	}
	if o.marked > len(o.installed) {
		a.j.Printf("apt: marked %d installed package(s) manual\n", o.marked-len(o.installed))
	}
	bad := slices.Sorted(slices.Values(slices.Concat(o.refused, o.missing)))
	if len(bad) == 0 {
		return nil
	}
	if len(bad) > shown {
		a.j.Log.Warn().Strs("packages", bad).Msg("production's packages not available from this standby's apt sources")
	}
	msg := fmt.Sprintf("production's package(s) %s not available from this standby's apt sources", Few(bad, shown))
	if len(o.refused) > 0 {
		msg += " (a name apt does not know exactly is never given to apt-get)"
	}
	code := cli.ExitFailure
	switch extra := o.marked - len(o.installed); {
	case len(o.installed) > 0 && extra > 0:
		msg += fmt.Sprintf("; %d other package(s) installed and %d marked manual", len(o.installed), extra)
	case len(o.installed) > 0:
		msg += fmt.Sprintf("; %d other package(s) installed", len(o.installed))
	case extra > 0:
		msg += fmt.Sprintf("; %d other package(s) marked manual", extra)
	case len(o.missing) == 0:
		code, msg = cli.ExitRefused, msg+"; nothing was changed"
	}
	return cli.Fail(code, msg, "add the repository that has them (ot-conf-sync copies production's apt sources), or add them to APT_DENY")
}

// apt builds and runs this machine's apt-get and apt-mark commands.
type apt struct {
	j        *job.Job
	lockWait time.Duration
	config   []string // "-o" settings, in order
}

func newApt(j *job.Job, opts Options) *apt {
	wait := opts.LockWait
	if wait <= 0 {
		wait = j.Cfg.Duration(config.LockWait)
	}
	secs := int((wait + time.Second - 1) / time.Second)
	// Pattern-Only: apt-get and apt-mark never read a name as a regular
	// expression or a glob (Exact keeps such names away too).
	cfg := []string{"DPkg::Lock::Timeout=" + strconv.Itoa(secs), "APT::Cmd::Pattern-Only=true"}
	// A standby whose apt configuration lives elsewhere (APT_DIR) reads its
	// configuration from there: that is where ot-conf-sync puts production's
	// (sources, trusted keys, preferences), as ot-conf-sync's update does.
	if dir := filepath.Clean(j.Cfg.Get(config.AptDir)); dir != "/etc/apt" {
		cfg = append(cfg, "Dir::Etc="+dir+"/")
	}
	return &apt{j: j, lockWait: time.Duration(secs) * time.Second, config: append(cfg, opts.Config...)}
}

func (a *apt) argv(tool string, args ...string) []string {
	argv := []string{tool}
	for _, kv := range a.config {
		argv = append(argv, "-o", kv)
	}
	return append(argv, args...)
}

// unattended are apt-get's settings for a run nobody watches: keep local
// conffiles (and take the maintainer's where there is no local change), no
// pseudo-terminal progress in logs.
var unattended = []string{"-y", "-q", "-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Use-Pty=0"}

var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none"}

func (a *apt) step(what, tool string, args ...string) run.Step {
	s := run.Step{What: what, Argv: a.argv(tool, args...), Env: aptEnv, Timeout: time.Hour + a.lockWait}
	if a.j.G.Verbose {
		s.Stdout = a.j.Stderr
	}
	return s
}

func (a *apt) installArgv(names []string, simulate bool) []string {
	args := slices.Clone(unattended)
	if simulate {
		args = append(args, "-s")
	}
	args = append(append(args, "install", "--"), names...)
	return a.argv("apt-get", args...)
}

// local returns the native architecture and the installed and manual sets.
func (a *apt) local(ctx context.Context) (string, map[string]bool, map[string]bool, error) {
	r := a.j.Runner
	out, err := r.Query(ctx, "dpkg", "--print-architecture")
	if err != nil {
		return "", nil, nil, cli.Fail(cli.ExitFailure, "cannot ask dpkg for this machine's architecture: "+err.Error(), "is this a Debian system?")
	}
	native := strings.TrimSpace(string(out))
	out, err = r.Query(ctx, "dpkg-query", "-W", "-f", "${Package}\t${Architecture}\t${db:Status-Abbrev}\n")
	if err != nil {
		return "", nil, nil, cli.Fail(cli.ExitFailure, "cannot list this machine's packages: "+err.Error(), "check dpkg here")
	}
	installed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && len(f[2]) >= 2 && f[2][1] == 'i' {
			installed[normalize(f[0]+":"+f[1], native)] = true
		}
	}
	out, err = r.Query(ctx, a.argv("apt-mark", "showmanual")...)
	if err != nil {
		return "", nil, nil, cli.Fail(cli.ExitFailure, "cannot list this machine's manual packages: "+err.Error(), "check apt here")
	}
	manual := map[string]bool{}
	for _, name := range strings.Fields(string(out)) {
		manual[normalize(name, native)] = true
	}
	return native, installed, manual, nil
}

// update refreshes the package lists, so that a repository production added
// (and ot-conf-sync copied) is known. A failed update is only a warning: the
// install that follows names what it cannot find.
func (a *apt) update() run.Step {
	s := a.step("refresh the package lists (sources may have come from production)", "apt-get", "-q", "update")
	s.Do = func(ctx context.Context) error {
		if _, err := a.j.Runner.Exec(ctx, s); err != nil {
			a.j.Log.Warn().Err(err).Msg("apt-get update failed; installing from the lists at hand")
		}
		return nil
	}
	return s
}

// known returns the package names apt's cache holds (apt-cache pkgnames:
// every package with a version, from the lists and dpkg's status) and
// dpkg's foreign architectures. Read-only.
func (a *apt) known(ctx context.Context) (names, foreign map[string]bool, err error) {
	out, err := a.j.Runner.Exec(ctx, run.Step{Argv: a.argv("apt-cache", "pkgnames"), Env: aptEnv})
	if err != nil {
		return nil, nil, cli.Fail(cli.ExitFailure, "cannot list the packages this standby's apt knows (apt-cache pkgnames): "+run.Brief(err), "check apt here; nothing was installed")
	}
	names = map[string]bool{}
	for _, n := range strings.Fields(string(out)) {
		names[n] = true
	}
	out, err = a.j.Runner.Query(ctx, "dpkg", "--print-foreign-architectures")
	if err != nil {
		return nil, nil, cli.Fail(cli.ExitFailure, "cannot ask dpkg for this machine's foreign architectures: "+run.Brief(err), "check dpkg here; nothing was installed")
	}
	foreign = map[string]bool{}
	for _, arch := range strings.Fields(string(out)) {
		foreign[arch] = true
	}
	return names, foreign, nil
}

// exact splits names into those apt's cache holds exactly and the rest.
func (a *apt) exact(ctx context.Context, names []string) (ok, refused []string, err error) {
	known, foreign, err := a.known(ctx)
	if err != nil {
		return nil, nil, err
	}
	ok, refused = Exact(names, known, foreign)
	return ok, refused, nil
}

// install installs the names of all that apt's cache holds exactly once the
// lists are updated (now: those it holds before, for the plan); the others
// are refused. Packages apt-get cannot install are added to o.missing (and
// the rest installed anyway); any other failure is an error. Its preview is
// apt-get's own simulation.
func (a *apt) install(all, now []string, o *outcome) run.Step {
	s := a.step("install the package(s) production marks manual and this standby lacks, once the update brings them", "apt-get")
	s.Argv = nil
	if len(now) > 0 {
		s.What = fmt.Sprintf("install the %d package(s) production marks manual and this standby lacks", len(now))
		s.Argv = a.installArgv(now, false)
	}
	if len(o.refused) > 0 {
		s.Show = []string{fmt.Sprintf("not in this standby's apt cache, so never given to apt-get (the real run asks again after the update): %s", Few(o.refused, shown))}
	}
	s.Do = func(ctx context.Context) error {
		names, refused, err := a.exact(ctx, all)
		if err != nil {
			return err
		}
		o.refused = refused
		for len(names) > 0 {
			try := s
			try.Argv = a.installArgv(names, false)
			out, err := a.j.Runner.Exec(ctx, try)
			if err == nil {
				o.installed = names
				return nil
			}
			unknown := Unknown(run.Stderr(err))
			n := len(names)
			names = slices.DeleteFunc(slices.Clone(names), func(name string) bool { return slices.Contains(unknown, name) })
			if len(names) == n { // none of ours: no progress
				return a.explain(err, out, "apt-get install")
			}
			o.missing = append(o.missing, unknown...)
		}
		return nil
	}
	s.Preview = func(ctx context.Context) error {
		if len(now) == 0 {
			return nil
		}
		return a.simulate(ctx, now)
	}
	return s
}

// mark marks production's manual packages manual here too, but those
// refused or not installed.
func (a *apt) mark(names []string, o *outcome) run.Step {
	plan := o.without(names)
	s := a.step(fmt.Sprintf("mark the %d package(s) production marks manual manual here too", len(plan)), "apt-mark", append([]string{"manual", "--"}, plan...)...)
	if len(plan) == 0 { // none known yet: the install step's comment says so
		s.What, s.Argv = "", nil
	}
	s.Do = func(ctx context.Context) error {
		mark := o.without(names)
		if len(mark) == 0 {
			return nil
		}
		m := s
		m.Argv = a.argv("apt-mark", append([]string{"manual", "--"}, mark...)...)
		if out, err := a.j.Runner.Exec(ctx, m); err != nil {
			return a.explain(err, out, "apt-mark manual")
		}
		o.marked = len(mark)
		return nil
	}
	return s
}

// simulate shows apt-get's own simulation of the install, with the lists
// at hand (a dry run does not update them).
func (a *apt) simulate(ctx context.Context, names []string) error {
	j := a.j
	j.Printf("# apt-get's simulation (with the lists at hand; no update ran):\n")
	out, err := j.Runner.Query(ctx, a.installArgv(names, true)...)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "Inst ") || strings.HasPrefix(line, "Conf ") || strings.HasPrefix(line, "Remv ") {
			j.Printf("#   %s\n", line)
		}
	}
	if err != nil {
		if unknown := Unknown(run.Stderr(err)); len(unknown) > 0 {
			j.Log.Warn().Msgf("apt-get cannot find %s in the current lists (the real run updates them first)", strings.Join(unknown, ", "))
			return nil
		}
		return a.explain(err, out, "apt-get -s install")
	}
	return nil
}

var (
	unknownRE = regexp.MustCompile(`(?m)^E: (?:Unable to locate package (\S+)|Package '([^']+)' has no installation candidate)`)
	lockRE    = regexp.MustCompile(`Could not get lock (\S+?)\.? It is held by process (\d+)(?: \(([^)]*)\))?`)
	lockRE2   = regexp.MustCompile(`Unable to acquire the dpkg frontend lock \(([^)\s]+)\)|Unable to lock directory (\S+)|Could not get lock (\S+?)\.?\s*$`)
)

// Unknown returns the packages apt-get's stderr says it cannot install.
func Unknown(stderr string) []string {
	var names []string
	for _, m := range unknownRE.FindAllStringSubmatch(stderr, -1) {
		n := m[1] + m[2]
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// explain turns an apt failure into one line; a held lock names the lock,
// its holder and how long we waited.
func (a *apt) explain(err error, stdout []byte, what string) error {
	// apt names the lock's holder in its progress output, on stdout.
	stderr := run.Stderr(err) + "\n" + string(stdout)
	if m := lockRE.FindStringSubmatch(stderr); m != nil {
		holder := "process " + m[2]
		if m[3] != "" {
			holder += " (" + m[3] + ")"
		}
		return &cli.Error{Code: cli.ExitFailure, Err: err,
			Msg:  fmt.Sprintf("%s: the lock %s is held by %s; gave up after waiting %s", what, m[1], holder, a.lockWait),
			Hint: "let that finish, then run " + Name + " again (LOCK_WAIT sets the wait)"}
	}
	if m := lockRE2.FindStringSubmatch(stderr); m != nil {
		return &cli.Error{Code: cli.ExitFailure, Err: err,
			Msg:  fmt.Sprintf("%s: cannot get the lock %s after waiting %s", what, m[1]+m[2]+m[3], a.lockWait),
			Hint: "let the other apt or dpkg run finish, then run " + Name + " again"}
	}
	return &cli.Error{Code: cli.ExitFailure, Err: err, Msg: what + " failed: " + err.Error(), Hint: "run it by hand to see apt's full output"}
}
