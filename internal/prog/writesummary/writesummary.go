// Package writesummary is ot-write-summary: it appends the original suite's
// summary line for each name given. The sync programs stamp their own lines;
// this command stays for scripts and habits that called it.
package writesummary

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
)

// CLI is ot-write-summary's command line.
type CLI struct {
	cli.Globals
	Names []string `arg:"" name:"name" help:"Command names to stamp, one line each."`
}

// Main is the program.
func Main(args []string) int {
	return cli.Main("ot-write-summary", "Append \"YYYY-MM-DD HH:MM:SS :  NAME\" to SUMMARYFILE for each NAME (a logging utility for the ot-* programs; not meant for manual use).", args, &CLI{})
}

// Run validates every name, then writes all lines in one write.
func (c *CLI) Run(env *cli.Env) error {
	for _, n := range c.Names {
		if err := validName(n); err != nil {
			return cli.Fail(cli.ExitUsage, err.Error(), "give plain command names")
		}
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	path, now := cfg.Get(config.SummaryFile), time.Now()
	lines := make([]string, len(c.Names))
	for i, n := range c.Names {
		lines[i] = strings.TrimSuffix(summary.Line(now, n), "\n")
	}
	return env.Runner.Apply(env.Ctx, run.Step{What: "append to " + path, Show: lines, Do: func(context.Context) error {
		if err := summary.Append(path, now, c.Names...); err != nil {
			return cli.Fail(cli.ExitFailure, fmt.Sprintf("cannot write summary file %s: %v", path, err), "check SUMMARYFILE and the permissions of its directory")
		}
		return nil
	}})
}

func validName(n string) error {
	if n == "" {
		return fmt.Errorf("empty name")
	}
	if len(n) > 200 {
		return fmt.Errorf("name longer than 200 characters")
	}
	for _, r := range n {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("name %q holds a control character", n)
		}
	}
	return nil
}
