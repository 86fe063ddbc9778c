// Package promote is ot-disable-standby-mode: it turns this standby into
// production. It checks first (PostgreSQL in recovery, replication state,
// production really gone), shows its plan and asks; then, under the sync
// lock, it turns sync off for good, promotes PostgreSQL with its own
// mechanism, starts Odoo, proves both work and writes a recovery report.
// Run again after a partial failure, it continues where it stopped.
package promote

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

const prog = "ot-disable-standby-mode"

const description = `Disable standby mode: promote this standby to production (manual, section 3).

Checks that PostgreSQL is a standby in recovery and that production is really
gone (shut it down first: two primaries would diverge and both Odoo instances
would run their cron jobs), shows the plan and asks to confirm. Then it takes
the sync lock, sets SYNCMODE="off" and PROMOTED="yes" so that nothing ever
syncs over the new production, promotes PostgreSQL (pg_promote), enables and
starts Odoo, checks that the database accepts writes and that Odoo answers,
and writes a recovery report to REPORT_DIR. Run again after a failure, it
continues where it stopped.`

// CLI is the command line of ot-disable-standby-mode.
type CLI struct {
	cli.Globals
	Yes          bool `short:"y" help:"Do not ask for confirmation (for scripts)."`
	Force        bool `help:"Promote even though production still answers, or the fencing command failed."`
	ResumeReplay bool `help:"Resume paused WAL replay before promoting (find out first why it was paused)."`
}

// Main runs ot-disable-standby-mode with args and returns its exit code.
func Main(args []string) int {
	return cli.Main(prog, description, args, &CLI{})
}

// Run is the whole command.
func (c *CLI) Run(env *cli.Env) error {
	start := time.Now()
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	f, err := inspect(env, cfg)
	if err != nil {
		return err
	}
	defer f.q.Close()
	f.print(env)
	if err := c.refusals(cfg, f); err != nil {
		return err
	}
	return plan(env, cfg, f, c, start).execute(env, c)
}

// refusals are the preflight checks that stop a promotion before anything
// changes.
func (c *CLI) refusals(cfg *config.Config, f *facts) error {
	if !f.status.InRecovery && !f.promoted {
		// Not this suite's promotion (PROMOTED is set before pg_promote):
		// someone else made it a primary, or it never was a standby.
		// Starting Odoo against it could run a second production.
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("PostgreSQL %s is already a primary (timeline %d), but this suite recorded no promotion (PROMOTED=no in %s): it was promoted by other means, or it is not the standby; Odoo was left as it is", f.cluster, f.status.Timeline, cfg.Path),
			"find out who promoted it and whether the old production is down; if this machine is to be production, set PROMOTED=\"yes\" in "+cfg.Path+" and run "+prog+" again to start Odoo")
	}
	if !f.status.InRecovery {
		return nil
	}
	if f.status.ReplayPaused && !c.ResumeReplay {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("WAL replay is paused on PostgreSQL %s: promoting now would drop WAL already received", f.cluster),
			"find out who paused it and why; then run again with --resume-replay")
	}
	if len(f.alive) > 0 && !c.Force && len(cfg.Command(config.FenceCommand)) == 0 {
		return cli.Fail(cli.ExitRefused, "production still answers: "+strings.Join(f.alive, "; ")+
			"; promoting now makes two primaries that diverge, and both Odoo instances run their cron jobs (mails sent twice)",
			"shut production down first (manual 3.1, step 3), set FENCE_COMMAND, or run again with --force")
	}
	return nil
}

// confirm asks the operator, unless --yes or nothing risky is left.
func (c *CLI) confirm(env *cli.Env, f *facts) error {
	if c.Yes || f.resumeOnly() {
		return nil
	}
	in, ok := env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return cli.Fail(cli.ExitRefused, "no terminal to ask for confirmation on; nothing was changed",
			"run it from a terminal, or with --yes to promote without asking")
	}
	fmt.Fprintf(env.Stdout, "\nThis is a one-way street: the standby becomes production. Go ahead? [y/N] ")
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
	if !Yes(answer.s) {
		return cli.Fail(cli.ExitRefused, "not confirmed; nothing was changed", "run it again and answer y to promote")
	}
	return nil
}

// Yes reports whether an answer means yes: y or yes, in any case, as the
// original's prompt accepted.
func Yes(answer string) bool {
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}

func since(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05 MST"), round(now.Sub(t)))
}

func round(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d < time.Minute:
		return d.Round(10 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}
