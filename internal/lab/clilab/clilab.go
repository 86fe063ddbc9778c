// Package clilab runs a program's body in the test's own process, as its
// command would run it, and captures what it printed.
package clilab

import (
	"bytes"
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Result is one run: the exit code and what went to each stream.
type Result struct {
	Code                int
	Stdout, Stderr, Log string
}

// Run runs body with g as prog's shared flags: stdout, stderr and the log
// (at level) go to buffers, the runner dry-runs when g.DryRun and adds
// runEnv to every command's environment, and the error becomes the exit
// code and the one-line message, as cli.Main does. All of it is logged.
func Run(t testing.TB, prog string, g cli.Globals, level zerolog.Level, runEnv []string, body func(*cli.Env) error) Result {
	t.Helper()
	var stdout, stderr, log bytes.Buffer
	env := &cli.Env{Prog: prog, Ctx: context.Background(), Stdout: &stdout, Stderr: &stderr, G: &g, Log: zerolog.New(&log).Level(level)}
	env.Runner = &run.Runner{DryRun: g.DryRun, Out: &stdout, Log: env.Log, Env: runEnv}
	code := cli.Report(prog, &stderr, env.Ctx, body(env), g.LogFormat == "json")
	t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s\nlog:\n%s", code, stdout.String(), stderr.String(), log.String())
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String(), Log: log.String()}
}
