// Package conntest is ot-connection-test: a checklist that says, line by
// line, whether the standby can reach and read production, and why not.
// Nothing production prints is ever executed; it is only displayed.
package conntest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/ssh"
)

// CLI is ot-connection-test's command line.
type CLI struct {
	cli.Globals
}

// Main is the program.
func Main(args []string) int {
	return cli.Main("ot-connection-test", "Test whether the production server is reachable and login-able, step by step: configuration, name, ping, TCP, ssh login, rsync, filestore.", args, &CLI{})
}

// Status of one check.
type Status string

const (
	Pass Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
	Skip Status = "skip"
)

// Check is one line of the checklist.
type Check struct {
	Name     string
	Status   Status
	Detail   string
	Required bool
}

// Run performs the checks in order and prints each as it completes.
func (c *CLI) Run(env *cli.Env) error {
	var failed []string
	report := func(ch Check) {
		env.Printf("  %-5s %-10s %s\n", ch.Status, ch.Name, ch.Detail)
		if ch.Status == Fail && ch.Required {
			failed = append(failed, ch.Name)
		}
	}
	cfg, err := env.Config()
	if err != nil {
		report(Check{"config", Fail, err.Error(), true})
		return err
	}
	if _, err := cfg.Source(); err != nil {
		report(Check{"config", Fail, err.Error(), true})
		return err
	}
	Checks(env.Ctx, cfg, report)
	if len(failed) > 0 {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("production %s failed: %s", cfg.Get(config.SyncSrc), strings.Join(failed, ", ")), "see the FAIL lines above")
	}
	// A passed test is stamped, as the original's was.
	return env.Runner.Apply(env.Ctx, job.StampStep(cfg, "ot-connection-test"))
}

// Checks runs the checklist against cfg's production, calling report after
// each check, and returns them all. ot-configure and ot-status use it too.
func Checks(ctx context.Context, cfg *config.Config, report func(Check)) []Check {
	var all []Check
	add := func(ch Check) {
		all = append(all, ch)
		if report != nil {
			report(ch)
		}
	}
	add(Check{"config", Pass, cfg.Path, true})
	target, err := job.Target(cfg)
	if err != nil {
		add(Check{"config", Fail, err.Error(), true})
		return all
	}
	timeout := time.Duration(target.ConnectTimeout) * time.Second

	addr := target.Host
	if net.ParseIP(target.Host) == nil {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		addrs, err := net.DefaultResolver.LookupHost(rctx, target.Host)
		cancel()
		if err != nil || len(addrs) == 0 {
			add(Check{"resolve", Fail, fmt.Sprintf("cannot resolve %s: %v", target.Host, err), true})
			skipRest(add, "resolve")
			return all
		}
		addr = addrs[0]
		add(Check{"resolve", Pass, target.Host + " -> " + strings.Join(addrs, ", "), true})
	} else {
		add(Check{"resolve", Pass, target.Host + " is an IP address", true})
	}

	add(ping(ctx, addr))

	start := time.Now()
	hostPort := net.JoinHostPort(addr, strconv.Itoa(target.Port))
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		add(Check{"tcp", Fail, fmt.Sprintf("%s: %v", hostPort, err), true})
	} else {
		conn.Close()
		add(Check{"tcp", Pass, fmt.Sprintf("%s open (%d ms)", hostPort, time.Since(start).Milliseconds()), true})
	}

	master, err := ssh.Dial(ctx, &run.Runner{}, target)
	if err != nil {
		msg, hint := ssh.Explain(target, err)
		add(Check{"ssh", Fail, msg + "; " + hint, true})
		skipRest(add, "ssh")
		return all
	}
	defer master.Close()
	who := "key " + target.Identity
	if target.Identity == "" {
		who = "ssh's default keys"
	}
	add(Check{"ssh", Pass, fmt.Sprintf("logged in as %s with %s; host key verified against %s", target.User, who, target.KnownHosts), true})

	out, err := remote(ctx, master, "rsync", "--version")
	switch {
	case err != nil:
		add(Check{"rsync", Fail, "rsync does not run on production: " + err.Error() + "; install rsync there", true})
	default:
		if lerr := rsync.CheckLocal(ctx, &run.Runner{}); lerr != nil {
			add(Check{"rsync", Fail, lerr.Error(), true})
			break
		}
		add(Check{"rsync", Pass, "production has " + cli.Printable(firstLine(out)) + "; this standby's rsync is " + rsync.MinVersion + " or later", true})
	}

	fs := cfg.Get(config.Filestore)
	if _, err := remote(ctx, master, "test", "-d", fs, "-a", "-r", fs, "-a", "-x", fs); err != nil {
		add(Check{"filestore", Fail, fmt.Sprintf("%s on production is missing or not readable by %s", fs, target.User), true})
	} else {
		out, _ := remote(ctx, master, "find", fs, "-mindepth", "1", "-maxdepth", "1", "-type", "d")
		n := len(strings.Fields(string(out)))
		folders := "database folders"
		if n == 1 {
			folders = "database folder"
		}
		add(Check{"filestore", Pass, fmt.Sprintf("%s readable (%d %s)", fs, n, folders), true})
	}
	return all
}

func remote(ctx context.Context, c *ssh.Conn, argv ...string) ([]byte, error) {
	cmd := c.Command(argv...)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return runOutput(ctx, cmd)
}

func runOutput(ctx context.Context, argv []string) ([]byte, error) {
	return (&run.Runner{}).Query(ctx, argv...)
}

func skipRest(add func(Check), after string) {
	order := []string{"resolve", "ping", "tcp", "ssh", "rsync", "filestore"}
	seen := false
	for _, name := range order {
		if seen {
			add(Check{name, Skip, "not tried: " + after + " failed", false})
		}
		if name == after {
			seen = true
		}
	}
}

func ping(ctx context.Context, addr string) Check {
	out, err := runOutput(ctx, []string{"ping", "-n", "-c", "1", "-W", "2", addr})
	if err != nil {
		return Check{"ping", Warn, addr + " does not answer ping (ICMP is often filtered; not required)", false}
	}
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "time="); i >= 0 {
			return Check{"ping", Pass, addr + " answers, " + strings.TrimSpace(l[i+5:]), false}
		}
	}
	return Check{"ping", Pass, addr + " answers", false}
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
