// Package enablestandby is ot-enable-standby-mode, the mirror image of
// ot-disable-standby-mode: run on the old production (or a fresh
// machine) with SYNCSRC pointing at the new production, it makes this
// machine a streaming standby of it, and proves it.
//
// It checks first (the new production answers and is a primary of the same
// PostgreSQL major version; this machine is not the production the world
// uses), works out what this machine committed after the two parted (what
// rewinding throws away), shows its plan and asks. Then, under the sync
// lock, it fences this machine's Odoo, rebuilds PostgreSQL as a standby
// (pg_rewind where it can, pg_basebackup otherwise, PostgreSQL's own -R
// writing the standby settings), waits until it streams, turns sync on
// and runs a first full sync, checks ot-status and writes a report. A
// journal in BACKUP_DIR lets a run that was interrupted anywhere be
// continued by running the command again.
package enablestandby

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/promote"
)

const prog = "ot-enable-standby-mode"

const description = `Enable standby mode: make this machine a streaming standby of the production
named by SYNCSRC (after a failover, run it on the old production).

Checks that production's PostgreSQL answers (as REPLICATION_USER, with the
password from REPLICATION_PASSFILE) and is a primary of the same major
version, and that this machine is not the production the world uses (its
Odoo answers, or its database has clients from elsewhere: refused unless
--force). It counts what this machine committed after it parted from
production (what the rebuild throws away) and keeps that WAL, shows the plan
and asks. Then it stops and disables Odoo here, rebuilds PostgreSQL as a
standby of production (pg_rewind when it can, pg_basebackup otherwise),
waits until it streams, clears PROMOTED, turns sync on, runs a first full
ot-sync-from-source, checks ot-status and writes a report to REPORT_DIR.
Run again after an interruption, it continues where it stopped.`

// CLI is the command line of ot-enable-standby-mode.
type CLI struct {
	cli.Globals
	Yes         bool `short:"y" help:"Do not ask for confirmation (for scripts)."`
	Force       bool `help:"Go on although this machine may still be the production the world uses: its Odoo answers, its database has clients from elsewhere or feeds a standby, or its timeline is not older than production's."`
	BaseBackup  bool `help:"Copy production's database afresh with pg_basebackup, even where pg_rewind could rewind this one."`
	KeepOldData bool `help:"After a base backup, keep the old data directory (DATA.ot-old-TIME) instead of removing it once the new one streams."`
}

// Main runs ot-enable-standby-mode with args and returns its exit code.
func Main(args []string) int {
	return cli.Main(prog, description, args, &CLI{})
}

// Run is the whole command: preflight, refusals, plan, confirmation, run.
func (c *CLI) Run(env *cli.Env) error {
	start := time.Now()
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	j := &job.Job{Env: env, Name: prog, Cfg: cfg, Runner: env.Runner, Start: start}
	err = c.run(env, cfg, j)
	j.Record(err)
	return err
}

func (c *CLI) run(env *cli.Env, cfg *config.Config, j *job.Job) error {
	f, err := inspect(env, cfg, c, j)
	defer f.close()
	if err != nil {
		return err
	}
	f.print(env)
	if err := c.refusals(f); err != nil {
		return err
	}
	return newRejoin(env, cfg, f, c, j.Start).execute()
}

// confirm asks the operator, unless --yes or nothing risky is left.
func (c *CLI) confirm(env *cli.Env, f *facts) error {
	if c.Yes || f.method == methodNone {
		return nil
	}
	in, ok := env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return cli.Fail(cli.ExitRefused, "no terminal to ask for confirmation on; nothing was changed",
			"run it from a terminal, or with --yes to go ahead without asking")
	}
	fmt.Fprintf(env.Stdout, "\n%s Go ahead? [y/N] ", f.warning())
	// Read aside: Ctrl-C cancels env.Ctx but cannot interrupt a read.
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(env.Stdin).ReadString('\n')
		got <- line{s, err}
	}()
	var answer line
	select {
	case answer = <-got:
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	if answer.err != nil && !errors.Is(answer.err, io.EOF) {
		return answer.err
	}
	if !promote.Yes(answer.s) {
		return cli.Fail(cli.ExitRefused, "not confirmed; nothing was changed", "run it again and answer y to go ahead")
	}
	return nil
}
