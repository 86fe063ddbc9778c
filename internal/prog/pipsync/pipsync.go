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
package pipsync

import (
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

// skipped are pip's own tools: pip freeze leaves them out too, and moving
// them would change the installer under our feet.
var skipped = map[string]bool{"pip": true, "setuptools": true, "wheel": true, "distribute": true}

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
		if seen[n] || skipped[n] {
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

// Sync installs production's missing pip packages here.
func Sync(j *job.Job, opts Options) error {
	ctx := j.Ctx
	host := j.SSH.Host
	remotePip := j.Cfg.Command(config.RemotePip)
	localPip := j.Cfg.Command(config.Pip)
	if len(remotePip) == 0 || len(localPip) == 0 {
		return cli.Fail(cli.ExitConfig, "PIP and REMOTE_PIP must name a pip command", "set them in "+j.Cfg.Path)
	}
	remote := func(argv ...string) ([]byte, error) { return j.Remote(ctx, argv...) }
	prod, err := list(remote, remotePip)
	if err != nil {
		var ce *cli.Error
		if errors.As(err, &ce) {
			return err
		}
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("cannot list production's pip packages (%s on %s): %s", shellquote.Join(remotePip...), host, run.Brief(err)), "check REMOTE_PIP and pip on production; nothing was installed")
	}
	if err := Validate(prod); err != nil {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("%s on %s listed %v", shellquote.Join(remotePip...), host, err), "nothing was installed; check production's Python packages")
	}
	local, err := list(func(argv ...string) ([]byte, error) { return j.Runner.Query(ctx, argv...) }, localPip)
	if err != nil {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("cannot list this standby's pip packages (%s): %v", shellquote.Join(localPip...), err), "check PIP")
	}
	p := MakePlan(prod, local, opts.AlignVersions || j.Cfg.Yes(config.PipAlignVersions))
	for _, d := range p.Direct {
		j.Printf("pip: not installed: %s %s: production's copy is %s, not from an index; install it by hand\n", d.Name, d.Version, d.Direct)
	}
	for _, d := range p.Differ {
		verb := "differs"
		if opts.AlignVersions || j.Cfg.Yes(config.PipAlignVersions) {
			verb = "aligned"
		}
		j.Printf("pip: %s %s: production %s, here %s\n", d[0].Name, verb, d[0].Version, d[1].Version)
	}
	if len(p.Install) == 0 {
		j.Printf("pip: nothing to install (%d packages on production)\n", len(prod))
		return nil
	}
	reqs := make([]string, len(p.Install))
	for i, d := range p.Install {
		reqs[i] = d.Name + "==" + d.Version
	}
	if j.G.DryRun {
		j.Printf("# pip: to install (%d): %s\n", len(reqs), strings.Join(reqs, " "))
	}
	missing, err := install(j, localPip, reqs)
	if err == nil {
		if done := len(reqs) - len(missing); done > 0 && !j.G.DryRun {
			j.Printf("pip: installed %d package(s) at production's versions\n", done)
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			err = cli.Fail(cli.ExitFailure, fmt.Sprintf("production's pip package(s) %s not found by %s", strings.Join(missing, ", "), shellquote.Join(localPip...)), "check pip's index settings here (pip.conf), or install them by hand")
		}
	}
	var ce *cli.Error
	if j.G.DryRun && errors.As(err, &ce) {
		// The preview is complete: it says what the real run would meet.
		j.Printf("pip: the real run would fail: %s\n", ce.Error())
		return nil
	}
	return err
}

// list returns the distributions pip reports, from `pip inspect`, or from
// `pip list --format=json` where pip is too old to inspect.
func list(query func(argv ...string) ([]byte, error), pip []string) ([]Dist, error) {
	out, err := query(append(slices.Clone(pip), "inspect", "--no-input", "--disable-pip-version-check")...)
	if err == nil {
		return ParseInspect(out)
	}
	var re *run.Error
	if !errors.As(err, &re) || !strings.Contains(re.Stderr, `unknown command "inspect"`) {
		return nil, err
	}
	out, err = query(append(slices.Clone(pip), "list", "--format=json", "--no-input", "--disable-pip-version-check")...)
	if err != nil {
		return nil, err
	}
	return ParseList(out)
}

var notFoundRE = regexp.MustCompile(`(?m)No matching distribution found for (\S+)`)

// install installs reqs; requirements pip cannot find are returned (the
// rest are installed anyway), any other failure is an error. In a dry run
// the same loop runs pip's own read-only `install --dry-run`: it resolves
// against the index and checks PEP 668 as the real run would, so the
// preview names what the real run would install, not find, or refuse.
func install(j *job.Job, pip, reqs []string) (missing []string, err error) {
	// pip names the first requirement it cannot find: drop it and retry.
	for len(reqs) > 0 {
		argv := append(slices.Clone(pip), "install", "--no-input", "--disable-pip-version-check")
		if j.Cfg.Yes(config.PipBreakSystemPackages) {
			argv = append(argv, "--break-system-packages")
		}
		s := run.Step{What: "install production's pip packages missing here, at production's versions", Argv: append(argv, reqs...), Changes: true, Timeout: time.Hour}
		if j.G.DryRun {
			j.Runner.Print(s)
			s = run.Step{Argv: slices.Concat(argv, []string{"--dry-run"}, reqs), Timeout: time.Hour}
		} else if j.G.Verbose {
			s.Stdout = j.Stderr
		}
		var out []byte
		out, err = j.Runner.Run(j.Ctx, s)
		if err == nil {
			if line := wouldInstall(out); j.G.DryRun && line != "" {
				j.Printf("pip: %s\n", line)
			}
			return missing, nil
		}
		var re *run.Error
		stderr := ""
		if errors.As(err, &re) {
			stderr = re.Stderr
		}
		if strings.Contains(stderr, "externally-managed-environment") {
			return nil, cli.Fail(cli.ExitRefused, fmt.Sprintf("%s refuses to install into this externally managed Python (PEP 668)", shellquote.Join(pip...)), "set PIP_BREAK_SYSTEM_PACKAGES=yes in "+j.Cfg.Path+" to allow it, or set PIP to a venv's pip")
		}
		var unknown []string
		for _, m := range notFoundRE.FindAllStringSubmatch(stderr, -1) {
			unknown = append(unknown, m[1])
		}
		if len(unknown) == 0 {
			return missing, cli.Fail(cli.ExitFailure, "pip install failed: "+err.Error(), "run it by hand to see pip's full output")
		}
		n := len(reqs)
		reqs = slices.DeleteFunc(slices.Clone(reqs), func(r string) bool { return slices.Contains(unknown, r) })
		if len(reqs) == n { // not one of ours: no progress
			return missing, cli.Fail(cli.ExitFailure, "pip install failed: "+err.Error(), "run it by hand to see pip's full output")
		}
		missing = append(missing, unknown...)
	}
	return missing, nil
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
