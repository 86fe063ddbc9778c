// Package pipsync is ot-pip-sync: it installs on the standby, at
// production's exact version, every pip package production has and the
// standby lacks; packages at another version are reported, and aligned on
// request.
//
// Both sides are read from pip's machine-readable output (`pip inspect`, or
// `pip list --format=json` from a pip older than 22.2). Production's names
// and versions are validated (PEP 508, PEP 440) before use: a valid name or
// version never starts with '-', so none can become a pip option, and nothing
// is ever passed as a requirements file.
//
// Still, a valid name and version may select any project on the index, so
// pip installs wheels only (a source build runs the package's code) unless
// PIP_ALLOW_SDIST=yes, and runs as the owner of PIP's virtualenv when that
// is not root (see Local).
package pipsync

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Name is the command's name, as stamped in the summary file.
const Name = "ot-pip-sync"

// Options tune a sync. The zero value is what ot-pip-sync does.
type Options struct {
	// AlignVersions also moves packages installed here at another version
	// to production's version (PIP_ALIGN_VERSIONS=yes does too).
	AlignVersions bool
}

// CLI is ot-pip-sync's command line.
type CLI struct {
	cli.Globals
	job.Flags
	AlignVersions bool `help:"Also move packages installed here at another version to production's version (as PIP_ALIGN_VERSIONS=yes does)."`
}

// Main is the program.
func Main(args []string) int {
	return cli.Main(Name, "Install on this standby, at production's exact version, every pip package that production has and this standby lacks (PIP here, REMOTE_PIP on production). Packages at another version are reported, and aligned with --align-versions.", args, &CLI{})
}

// Run runs the sync as a job.
func (c *CLI) Run(env *cli.Env) error {
	if c.Cron {
		env.G.Quiet = true
	}
	return job.Sync(env, Name, c.Flags, func(j *job.Job) error {
		return Sync(j, Options{AlignVersions: c.AlignVersions})
	})
}

// Skipped reports pip's own tools: pip freeze leaves them out too, and moving
// them would change the installer under our feet.
func Skipped(name string) bool {
	switch Normalize(name) {
	case "pip", "setuptools", "wheel", "distribute":
		return true
	}
	return false
}

// Plan is what a sync will do.
type Plan struct {
	Install []Dist    // missing here (and, when aligning, at another version)
	Differ  [][2]Dist // [production, here] at different versions
	Direct  []Dist    // production's non-index installs missing here: reported only
}

// MakePlan compares production's distributions with this machine's.
func MakePlan(prod, local []Dist, align bool) Plan {
	here := map[string]Dist{}
	for _, d := range local {
		here[Normalize(d.Name)] = d
	}
	var p Plan
	seen := map[string]bool{}
	for _, d := range prod {
		n := Normalize(d.Name)
		if seen[n] || Skipped(n) {
			continue
		}
		seen[n] = true
		l, ok := here[n]
		switch {
		case !ok && d.Direct != "":
			p.Direct = append(p.Direct, d)
		case !ok:
			p.Install = append(p.Install, d)
		case d.Direct == "" && l.Version != d.Version:
			p.Differ = append(p.Differ, [2]Dist{d, l})
			if align {
				p.Install = append(p.Install, d)
			}
		}
	}
	return p
}

// Inventory is what production and this standby have, and what a sync
// would change: read-only, for the sync and for ot-status --drift alike.
type Inventory struct {
	Production []Dist // validated
	Standby    []Dist
	Plan       Plan
}

// Take lists both sides' distributions with pip's machine-readable output.
func Take(j *job.Job, opts Options) (*Inventory, error) {
	ctx, host := j.Ctx, j.SSH.Host
	remotePip, localPip := j.Cfg.Command(config.RemotePip), j.Cfg.Command(config.Pip)
	if len(remotePip) == 0 || len(localPip) == 0 {
		return nil, cli.Fail(cli.ExitConfig, "PIP and REMOTE_PIP must name a pip command", "set them in "+j.Cfg.Path)
	}
	prod, err := list(func(args ...string) ([]byte, error) {
		return j.Remote(ctx, append(slices.Clone(remotePip), args...)...)
	})
	if err != nil {
		var ce *cli.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, cli.Fail(cli.ExitFailure, fmt.Sprintf("cannot list production's pip packages (%s on %s): %s", shellquote.Join(remotePip...), host, run.Brief(err)), "check REMOTE_PIP and pip on production; nothing was installed")
	}
	if err := Validate(prod); err != nil {
		return nil, cli.Fail(cli.ExitRefused, fmt.Sprintf("%s on %s listed %v", shellquote.Join(remotePip...), host, err), "nothing was installed; check production's Python packages")
	}
	pip := Standby(localPip)
	local, err := list(func(args ...string) ([]byte, error) { return j.Runner.Exec(ctx, pip.Step(args...)) })
	if err != nil {
		return nil, cli.Fail(cli.ExitFailure, fmt.Sprintf("cannot list this standby's pip packages (%s): %v", shellquote.Join(localPip...), err), "check PIP")
	}
	return &Inventory{Production: prod, Standby: local, Plan: MakePlan(prod, local, align(j, opts))}, nil
}

func align(j *job.Job, opts Options) bool {
	return opts.AlignVersions || j.Cfg.Yes(config.PipAlignVersions)
}

// Sync installs production's missing pip packages here.
func Sync(j *job.Job, opts Options) error {
	inv, err := Take(j, opts)
	if err != nil {
		return err
	}
	p := inv.Plan
	for _, d := range p.Direct {
		j.Printf("pip: not installed: %s %s: production's copy is %s, not from an index; install it by hand\n", d.Name, d.Version, d.Direct)
	}
	for _, d := range p.Differ {
		verb := "differs"
		if align(j, opts) {
			verb = "aligned"
		}
		j.Printf("pip: %s %s: production %s, here %s\n", d[0].Name, verb, d[0].Version, d[1].Version)
	}
	if len(p.Install) == 0 {
		j.Printf("pip: nothing to install (%d packages on production)\n", len(inv.Production))
		return nil
	}
	reqs := make([]string, len(p.Install))
	for i, d := range p.Install {
		reqs[i] = d.Name + "==" + d.Version
	}
	return j.Runner.Apply(j.Ctx, installStep(j, Standby(j.Cfg.Command(config.Pip)), reqs))
}

// list returns the distributions pip reports, from `pip inspect`, or from
// `pip list --format=json` where pip is too old to inspect; pip runs
// args with pip(args...).
func list(pip func(args ...string) ([]byte, error)) ([]Dist, error) {
	out, err := pip("inspect", "--no-input", "--disable-pip-version-check")
	if err == nil {
		return ParseInspect(out)
	}
	var re *run.Error
	if !errors.As(err, &re) || !strings.Contains(re.Stderr, `unknown command "inspect"`) {
		return nil, err
	}
	out, err = pip("list", "--format=json", "--no-input", "--disable-pip-version-check")
	if err != nil {
		return nil, err
	}
	return ParseList(out)
}

var notFoundRE = regexp.MustCompile(`(?m)No matching distribution found for (\S+)`)

// wheelsOnly keeps pip from building a source distribution: a build runs
// the package's own code, and production's name and version may select
// any project on the index.
const wheelsOnly = "--only-binary=:all:"

// installStep installs reqs with pip, wheels only unless PIP_ALLOW_SDIST=yes;
// requirements pip cannot install are named in the error (the rest are
// installed anyway), any other failure is an error. Its preview runs the
// same loop with pip's own read-only `install --dry-run`, always wheels
// only (a dry run never builds): it resolves against the index and checks
// PEP 668 as the real run would, so the preview names what the real run
// would install, build, not find, or refuse.
func installStep(j *job.Job, pip Local, reqs []string) run.Step {
	sdist := j.Cfg.Yes(config.PipAllowSdist)
	args := []string{"install", "--no-input", "--disable-pip-version-check"}
	if !sdist {
		args = append(args, wheelsOnly)
	} else if pip.User == "root" {
		j.Log.Warn().Msg("PIP_ALLOW_SDIST=yes and PIP belongs to root: a package built from source runs its code as root; give PIP a virtualenv owned by ODOO_USER")
	}
	if j.Cfg.Yes(config.PipBreakSystemPackages) {
		args = append(args, "--break-system-packages")
	}
	argv := pip.Argv(args...)
	s := pip.Step()
	s.What = fmt.Sprintf("install production's %d pip package(s) missing here, at production's versions", len(reqs))
	if pip.User != "root" {
		s.What += ", as " + pip.User + ", who owns " + pip.Owned
	}
	s.Argv, s.Timeout = append(slices.Clone(argv), reqs...), time.Hour
	if j.G.Verbose {
		s.Stdout = j.Stderr
	}
	s.Do = func(ctx context.Context) error {
		_, missing, err := install(ctx, j, s, argv, reqs, !sdist)
		var source []string
		if err == nil && !sdist {
			source, missing = sourceOnly(ctx, j, pip, missing)
		}
		done := len(reqs) - len(missing) - len(source)
		if err == nil && done > 0 {
			j.Printf("pip: installed %d package(s) at production's versions\n", done)
		}
		return notInstalled(j, pip, err, done, missing, source)
	}
	s.Preview = func(ctx context.Context) error {
		dry := slices.Clone(argv)
		if sdist {
			dry = append(dry, wheelsOnly)
		}
		dry = append(dry, "--dry-run")
		out, missing, err := install(ctx, j, run.Step{Env: s.Env, Dir: s.Dir, Timeout: time.Hour}, dry, reqs, true)
		if line := wouldInstall(out); line != "" {
			j.Printf("pip: %s\n", line)
		}
		var source []string
		if err == nil {
			source, missing = sourceOnly(ctx, j, pip, missing)
		}
		if sdist && len(source) > 0 {
			j.Printf("pip: would build from source (PIP_ALLOW_SDIST=yes), as %s: %s\n", pip.User, strings.Join(source, " "))
			source = nil
		}
		var ce *cli.Error
		if err = notInstalled(j, pip, err, len(reqs)-len(missing)-len(source), missing, source); errors.As(err, &ce) {
			// The preview is complete: it says what the real run would meet.
			j.Printf("pip: the real run would fail: %s\n", ce.Error())
			return nil
		}
		return err
	}
	return s
}

// sourceOnly splits the requirements ("name==version") pip did not find
// as wheels into those the index has as source only, and the rest. pip
// index lists a project's versions, source or not, without building
// anything; a pip without it (older than 21.2) leaves all in missing.
func sourceOnly(ctx context.Context, j *job.Job, pip Local, reqs []string) (source, missing []string) {
	for _, r := range reqs {
		name, version, _ := strings.Cut(r, "==")
		out, err := j.Runner.Exec(ctx, pip.Step("index", "versions", "--no-input", "--disable-pip-version-check", name))
		if err == nil && slices.ContainsFunc(Available(out), func(v string) bool { return strings.EqualFold(v, version) }) {
			source = append(source, r)
		} else {
			missing = append(missing, r)
		}
	}
	return source, missing
}

// Available reads the versions `pip index versions` lists.
func Available(out []byte) []string {
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Available versions:"); ok {
			return strings.Fields(strings.ReplaceAll(v, ",", " "))
		}
	}
	return nil
}

// notInstalled is err, or the error naming the requirements not installed:
// missing (pip did not find them) and source (only a source distribution,
// while PIP_ALLOW_SDIST is no). When only source ones are left and
// nothing was installed, that is a refusal: exit 8.
func notInstalled(j *job.Job, pip Local, err error, done int, missing, source []string) error {
	if err != nil || len(missing)+len(source) == 0 {
		return err
	}
	slices.Sort(missing)
	slices.Sort(source)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("production's pip package(s) %s not found by %s", few(missing), shellquote.Join(pip.Pip...)))
	}
	if len(source) > 0 {
		parts = append(parts, fmt.Sprintf("production's pip package(s) %s exist only as source (sdist) here, and a build runs the package's code: refused, only wheels are installed", few(source)))
	}
	code, msg := cli.ExitFailure, strings.Join(parts, "; ")
	switch {
	case done > 0:
		msg += fmt.Sprintf("; %d other package(s) installed", done)
	case len(missing) == 0:
		code, msg = cli.ExitRefused, msg+"; nothing was installed"
	}
	hint := "check pip's index settings here (pip.conf), or install them by hand"
	if len(source) > 0 {
		hint = fmt.Sprintf("set PIP_ALLOW_SDIST=yes in %s to let pip build them (as %s), or install them by hand", j.Cfg.Path, pip.User)
	}
	return cli.Fail(code, msg, hint)
}

// few names the first five of names, and how many more there are.
func few(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
}

// install runs argv with reqs, dropping each requirement pip names as not
// found (returned in missing) and trying again with the rest: pip stops at
// the first it cannot find. wheels says pip was told to install wheels
// only, for the message when a dependency has none.
func install(ctx context.Context, j *job.Job, s run.Step, argv, reqs []string, wheels bool) (out []byte, missing []string, err error) {
	for len(reqs) > 0 {
		s.Argv = append(slices.Clone(argv), reqs...)
		out, err = j.Runner.Exec(ctx, s)
		if err == nil {
			return out, missing, nil
		}
		stderr := run.Stderr(err)
		if strings.Contains(stderr, "externally-managed-environment") {
			pip := j.Cfg.Command(config.Pip)
			return nil, nil, cli.Fail(cli.ExitRefused, fmt.Sprintf("%s refuses to install into this externally managed Python (PEP 668)", shellquote.Join(pip...)), "set PIP_BREAK_SYSTEM_PACKAGES=yes in "+j.Cfg.Path+" to allow it, or set PIP to a venv's pip")
		}
		var unknown []string
		for _, m := range notFoundRE.FindAllStringSubmatch(stderr, -1) {
			unknown = append(unknown, m[1])
		}
		n := len(reqs)
		reqs = slices.DeleteFunc(slices.Clone(reqs), func(r string) bool { return slices.Contains(unknown, r) })
		if len(reqs) == n { // none of ours: no progress
			hint := "run it by hand to see pip's full output"
			if wheels && len(unknown) > 0 {
				hint = "a dependency, " + unknown[0] + ", has no wheel that fits here: only wheels are installed unless PIP_ALLOW_SDIST=yes in " + j.Cfg.Path + "; " + hint
			}
			return nil, missing, cli.Fail(cli.ExitFailure, "pip install failed: "+err.Error(), hint)
		}
		missing = append(missing, unknown...)
	}
	return nil, missing, nil
}

// wouldInstall is pip's "Would install NAME-VERSION ..." line from
// `install --dry-run`, or "".
func wouldInstall(out []byte) string {
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "Would install ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
