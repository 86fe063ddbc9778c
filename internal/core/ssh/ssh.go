// Package ssh builds the commands that reach production, and owns the one
// multiplexed connection a run shares between all its ssh and rsync steps.
//
// Behaviour is fixed by our options alone: -F /dev/null so that neither
// root's ~/.ssh/config nor /etc/ssh/ssh_config can change it, batch mode (no
// prompt can ever hang cron), strict host-key checking against the suite's own
// known_hosts file, keep-alives so a dead link is noticed, and "--" before
// the destination. Remote commands are one string built with shellquote.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Target is where production is and how we log in.
type Target struct {
	Host           string
	User           string
	Port           int
	Identity       string // private key; empty uses ssh's default identities
	KnownHosts     string
	ConnectTimeout int // seconds
}

// Options returns the ssh options every connection uses, without the
// destination. controlPath, when set, routes the connection through a master.
func (t Target) Options(controlPath string) []string {
	timeout := t.ConnectTimeout
	if timeout <= 0 {
		timeout = 10
	}
	o := []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=" + strconv.Itoa(timeout),
		"-o", "ServerAliveInterval=15",
		"-o", "ServerAliveCountMax=4",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + t.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "UpdateHostKeys=no",
		"-o", "LogLevel=ERROR",
	}
	if t.Identity != "" {
		o = append(o, "-o", "IdentitiesOnly=yes", "-i", t.Identity)
	}
	if controlPath != "" {
		o = append(o, "-o", "ControlMaster=no", "-o", "ControlPath="+controlPath)
	} else {
		o = append(o, "-o", "ControlMaster=no", "-o", "ControlPath=none")
	}
	return append(o, "-p", strconv.Itoa(t.Port), "-l", t.User)
}

// Command returns the ssh argv that runs remote (an argv, quoted here for
// the remote shell) on production, without a master connection.
func (t Target) Command(remote ...string) []string {
	return t.command("", remote)
}

func (t Target) command(controlPath string, remote []string) []string {
	argv := append([]string{"ssh"}, t.Options(controlPath)...)
	argv = append(argv, "--", t.Host)
	if len(remote) > 0 {
		argv = append(argv, shellquote.Join(remote...))
	}
	return argv
}

// Conn is one run's multiplexed connection to production.
type Conn struct {
	Target
	// Prelude, when set, is a POSIX shell line that production runs before
	// every command of this connection (Command, RsyncPath): a check that
	// costs no round trip of its own (job's check that SYNCSRC is not this
	// very machine).
	Prelude string
	// Nice is the command production's rsync runs under ("nice -n 19
	// ionice -c 2 -n 7"), quoted for the remote shell; "" runs it plainly.
	Nice   string
	r      *run.Runner
	dir    string
	sock   string
	master *run.Proc
}

// Dial opens the master connection through r, bounded by the connect
// timeout. The master belongs to this process (no ControlPersist): Close
// ends it.
func Dial(ctx context.Context, r *run.Runner, t Target) (*Conn, error) {
	dir, err := os.MkdirTemp("", "ot-ssh-")
	if err != nil {
		return nil, err
	}
	c := &Conn{Target: t, r: r, dir: dir, sock: filepath.Join(dir, "master")}
	argv := append([]string{"ssh"}, t.Options("")...)
	// Replace the client's "ControlMaster=no, ControlPath=none" with a master.
	for i := range argv {
		switch argv[i] {
		case "ControlMaster=no":
			argv[i] = "ControlMaster=yes"
		case "ControlPath=none":
			argv[i] = "ControlPath=" + c.sock
		}
	}
	argv = append(argv, "-o", "ControlPersist=no", "-N", "--", t.Host)
	master, err := r.Start(ctx, argv, run.StartOptions{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.master = master

	timeout := time.Duration(t.ConnectTimeout+5) * time.Second
	if t.ConnectTimeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-master.Done():
			os.RemoveAll(dir)
			return nil, master.Err(nil)
		case <-deadline.C:
			c.Close()
			return nil, master.Err(errors.New("timed out"))
		case <-ctx.Done():
			c.Close()
			return nil, ctx.Err()
		case <-tick.C:
			if c.ready() == nil {
				return c, nil
			}
		}
	}
}

// ready reports whether the master accepts clients. OpenSSH listens on a
// temporary name and links it to ControlPath only then, so the path
// existing is enough: no "ssh -O check" process per poll.
func (c *Conn) ready() error {
	_, err := os.Stat(c.sock)
	return err
}

// Command returns the ssh argv that runs remote on production through the
// master connection.
func (c *Conn) Command(remote ...string) []string {
	argv := c.command(c.sock, remote)
	if c.Prelude != "" && len(remote) > 0 {
		argv[len(argv)-1] = c.Prelude + "exec " + argv[len(argv)-1]
	}
	return argv
}

// RsyncPath is the value for rsync's --rsync-path: the Prelude, then check
// (a POSIX shell line ending in "; ", or ""), then rsync, under Nice.
func (c *Conn) RsyncPath(check string) string {
	return c.Prelude + check + "exec " + strings.TrimSpace(c.Nice+" rsync")
}

// RsyncShell is the value for rsync's -e: the same options and master.
// rsync splits it on spaces and honours single quotes, which is what
// shellquote produces for our validated paths.
func (c *Conn) RsyncShell() string {
	return shellquote.Join(append([]string{"ssh"}, c.Options(c.sock)...)...)
}

// Spec returns rsync's "host:path" for a path on production.
func (c *Conn) Spec(path string) string {
	host := c.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + path
}

// Plain rewrites an argv that uses the master connection into the one an
// operator can run: the same options without the run's private socket and
// without the Prelude.
// Runner.Shown uses it to print a plan.
func (c *Conn) Plain(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, "ControlPath="+c.sock, "ControlPath=none")
		if c.Prelude != "" {
			a = strings.ReplaceAll(a, c.Prelude, "")
		}
		out[i] = a
	}
	return out
}

// Close ends the master connection (ssh -O exit, through the runner, with
// a deadline; then the master is stopped) and removes its socket directory.
func (c *Conn) Close() error {
	if c.master == nil {
		return nil
	}
	select {
	case <-c.master.Done():
	default:
		c.r.Exec(context.Background(), run.Step{Timeout: 3 * time.Second,
			Argv: []string{"ssh", "-F", "/dev/null", "-o", "ControlPath=" + c.sock, "-O", "exit", "--", c.Host}})
		c.master.Stop(3 * time.Second)
	}
	return os.RemoveAll(c.dir)
}

// Explain turns an ssh failure into what went wrong and what to do, for
// the one-line error message.
func Explain(t Target, err error) (msg, hint string) {
	var re *run.Error
	errors.As(err, &re)
	stderr := run.Stderr(err)
	dest := fmt.Sprintf("%s@%s port %d", t.User, t.Host, t.Port)
	switch {
	case strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		return "host key of " + dest + " has CHANGED: host-key verification failed", "if production was reinstalled, trust its new key with ot-configure; otherwise investigate before syncing"
	case strings.Contains(stderr, "Host key verification failed"), strings.Contains(stderr, "No ED25519 host key is known"), strings.Contains(stderr, "host key is known"):
		return "host-key verification failed for " + dest + " (key unknown to " + t.KnownHosts + ")", "run ot-configure to check and trust production's host key"
	case strings.Contains(stderr, "Permission denied"):
		return "login refused by " + dest, "authorise the standby's public key in ~" + t.User + "/.ssh/authorized_keys on production (see ot-configure)"
	case strings.Contains(stderr, "Could not resolve hostname"):
		return "cannot resolve " + t.Host, "check SYNCSRC and DNS"
	case strings.Contains(stderr, "Connection refused"):
		return "ssh connection to " + dest + " refused", "is sshd running on production, and SSH_PORT right?"
	case strings.Contains(stderr, "timed out"), strings.Contains(stderr, "Connection timed out"), re != nil && re.Err != nil && strings.Contains(re.Err.Error(), "timed out"):
		return "ssh connection to " + dest + " timed out", "is production up and reachable on that port?"
	case strings.Contains(stderr, "No route to host"), strings.Contains(stderr, "Network is unreachable"):
		return "no route to " + t.Host, "check the network between standby and production"
	}
	if cause := run.Cause(err); cause != "" {
		return "ssh to " + dest + " failed: " + cause, "run ot-connection-test for a full check"
	}
	return "ssh to " + dest + " failed: " + err.Error(), "run ot-connection-test for a full check"
}
