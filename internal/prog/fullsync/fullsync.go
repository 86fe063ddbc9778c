// Package fullsync is ot-sync-from-source: every sync in one process, under
// one lock, over one ssh connection. Configuration comes first, so that apt
// sources production added exist before packages are installed (the
// original did it last); then apt, pip, projects and the filestore.
//
// A failing step does not stop the others. Each step stamps its own summary
// line when it succeeds; the whole stamps "ot-sync-from-source" only when
// every step ran and succeeded (a run narrowed by --only or --skip stamps
// "ot-sync-from-source --only ..." instead, so it never passes for a full
// sync). A table of steps, results and durations ends the run, and the exit
// status is 1 when any step failed.
package fullsync

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/aptsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/confsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/pipsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/projects"
)

// Name is the command's name, as stamped in the summary file.
const Name = "ot-sync-from-source"

// Options tune a full sync; the zero value runs every step with its
// defaults. The per-step options are passed to each step's Sync.
type Options struct {
	Only []string // run only these steps
	Skip []string // run all but these steps

	Conf      confsync.Options
	Apt       aptsync.Options
	Pip       pipsync.Options
	Projects  projects.Options
	Filestore filestore.Options
}

// step is one sync of the whole.
type step struct {
	Name    string // as --only and --skip name it
	Command string // the program doing it alone, as stamped in the summary
	run     func(j *job.Job, o *Options) error
}

// steps, in the order they run.
var steps = []step{
	{"conf", confsync.Name, func(j *job.Job, o *Options) error { return confsync.Sync(j, o.Conf) }},
	{"apt", aptsync.Name, func(j *job.Job, o *Options) error { return aptsync.Sync(j, o.Apt) }},
	{"pip", pipsync.Name, func(j *job.Job, o *Options) error { return pipsync.Sync(j, o.Pip) }},
	{"projects", projects.Name, func(j *job.Job, o *Options) error { return projects.Sync(j, o.Projects) }},
	{"filestore", filestore.Name, func(j *job.Job, o *Options) error { return filestore.Sync(j, o.Filestore) }},
}

// StepNames lists the steps in the order they run.
func StepNames() []string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.Name
	}
	return names
}

// CLI is ot-sync-from-source's command line.
type CLI struct {
	cli.Globals
	job.Flags
	Only          []string `help:"Run only these steps, comma-separated: conf, apt, pip, projects, filestore." sep:"," placeholder:"STEPS"`
	Skip          []string `help:"Run every step but these, comma-separated." sep:"," placeholder:"STEPS"`
	AlignVersions bool     `help:"pip: also move packages installed at another version to production's version (as PIP_ALIGN_VERSIONS=yes does)."`
	Force         bool     `help:"filestore: delete even when more than MAX_DELETE_PERCENT of the standby's files would go."`
}

// Main is the program.
func Main(args []string) int {
	return cli.Main(Name, "Run every sync from production in one go, under one lock and over one ssh connection: configuration (ot-conf-sync), apt packages (ot-apt-sync), pip packages (ot-pip-sync), addon projects (ot-project-sync) and the filestore (ot-attachments-sync). A failing step does not stop the others; a table of results ends the run, and the exit status is 1 when any step failed.", args, &CLI{})
}

// Run checks the step names, then runs the steps as one job.
func (c *CLI) Run(env *cli.Env) error {
	if _, err := selected(c.Only, c.Skip); err != nil {
		return err
	}
	if c.Cron {
		env.G.Quiet = true
	}
	opts := Options{
		Only: c.Only, Skip: c.Skip,
		Conf:      confsync.Options{Quiet: c.Cron},
		Projects:  projects.Options{Quiet: c.Cron},
		Pip:       pipsync.Options{AlignVersions: c.AlignVersions},
		Filestore: filestore.Options{Force: c.Force},
	}
	return job.Sync(env, Name, c.Flags, func(j *job.Job) error { return Sync(j, opts) })
}

// selected returns the steps to run, in order.
func selected(only, skip []string) ([]step, error) {
	for _, n := range append(slices.Clone(only), skip...) {
		if !slices.Contains(StepNames(), n) {
			return nil, cli.Fail(cli.ExitUsage, fmt.Sprintf("unknown step %q", n), "steps are "+strings.Join(StepNames(), ", "))
		}
	}
	var out []step
	for _, s := range steps {
		if (len(only) == 0 || slices.Contains(only, s.Name)) && !slices.Contains(skip, s.Name) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, cli.Fail(cli.ExitUsage, "--only and --skip leave no step to run", "steps are "+strings.Join(StepNames(), ", "))
	}
	return out, nil
}

// Result is how one step went.
type Result struct {
	Step   string
	Status string // "ok", "failed", "not run" (interrupted)
	Took   time.Duration
	Err    error
}

// Sync runs the selected steps inside the job, each after the other,
// whatever the previous one did.
func Sync(j *job.Job, opts Options) error {
	todo, err := selected(opts.Only, opts.Skip)
	if err != nil {
		return err
	}
	var results []Result
	for _, s := range todo {
		if j.Ctx.Err() != nil {
			results = append(results, Result{Step: s.Name, Status: "not run", Err: j.Ctx.Err()})
			continue
		}
		// A heading in the printed plan; nothing to run.
		j.Runner.Apply(j.Ctx, run.Step{What: fmt.Sprintf("---- %s (%s) ----", s.Name, s.Command)})
		start := time.Now()
		err := s.run(j, &opts)
		if err == nil {
			err = j.Stamp(s.Command)
		}
		r := Result{Step: s.Name, Status: "ok", Took: time.Since(start), Err: err}
		if err != nil {
			r.Status = "failed"
			_, line := cli.Describe(err)
			fmt.Fprintf(j.Stderr, "%s: error: %s: %s\n", Name, s.Name, line)
		}
		j.Log.Debug().Str("step", s.Name).Dur("took", r.Took).Err(err).Msg("step done")
		results = append(results, r)
	}
	var failed []string
	for _, r := range results {
		if r.Status != "ok" {
			failed = append(failed, r.Step)
		}
	}
	switch {
	case len(failed) > 0:
		Table(j.Stdout, results) // also under --quiet: it explains the failure
	case !j.G.Quiet:
		Table(j.Stdout, results)
	}
	if len(failed) > 0 {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("%d of %d steps failed: %s", len(failed), len(results), strings.Join(failed, ", ")),
			"see the errors above; once fixed, run "+Name+" --only "+strings.Join(failed, ","))
	}
	if len(todo) < len(steps) {
		// A narrowed run must not pass for a full sync in the summary file.
		names := make([]string, len(todo))
		for i, s := range todo {
			names[i] = s.Name
		}
		j.Name = Name + " --only " + strings.Join(names, ",")
	}
	return nil
}

// Table prints the results as an aligned table.
func Table(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-10s %-8s %s\n", "STEP", "RESULT", "DURATION")
	for _, r := range results {
		took := "-"
		if r.Status != "not run" {
			took = r.Took.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%-10s %-8s %s\n", r.Step, r.Status, took)
	}
}
