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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
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

// FromConfig reads the target from a loaded configuration.
func FromConfig(c *config.Config) (Target, error) {
	host, err := c.Source()
	if err != nil {
		return Target{}, err
	}
	t := Target{
		Host:           host,
		User:           c.Get(config.RemoteOdoo),
		Port:           c.Int(config.SSHPort),
		KnownHosts:     c.Get(config.SSHKnownHosts),
		ConnectTimeout: c.Int(config.SSHConnectTimeout),
	}
	// A missing default key is not an error: ssh then tries its defaults
	// (an agent is never consulted: root's cron has none).
	if id := c.Get(config.SSHIdentity); c.IsSet(config.SSHIdentity) || fileExists(id) {
		t.Identity = id
	}
	return t, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

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
	dir    string
	sock   string
	master *exec.Cmd
	stderr *run.Tail
	done   chan struct{}
}

// Dial opens the master connection, bounded by the connect timeout. The
// master belongs to this process (no ControlPersist): Close ends it.
func Dial(ctx context.Context, t Target) (*Conn, error) {
	dir, err := os.MkdirTemp("", "ot-ssh-")
	if err != nil {
		return nil, err
	}
	c := &Conn{Target: t, dir: dir, sock: filepath.Join(dir, "master"), stderr: &run.Tail{Max: 4096}, done: make(chan struct{})}
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
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, &run.Error{Argv: argv, ExitCode: -1, Err: err}
	}
	c.master = cmd
	go func() { cmd.Wait(); close(c.done) }()

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
		case <-c.done:
			os.RemoveAll(dir)
			return nil, c.failure(argv, nil)
		case <-deadline.C:
			c.Close()
			return nil, c.failure(argv, errors.New("timed out"))
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

func (c *Conn) failure(argv []string, cause error) error {
	code := -1
	if c.master.ProcessState != nil {
		code = c.master.ProcessState.ExitCode()
	}
	if cause == nil {
		cause = fmt.Errorf("exit status %d", code)
	}
	return &run.Error{Argv: argv, Stderr: c.stderr.String(), ExitCode: code, Err: cause}
}

// Command returns the ssh argv that runs remote on production through the
// master connection.
func (c *Conn) Command(remote ...string) []string {
	return c.command(c.sock, remote)
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

// Close ends the master connection and removes its socket directory.
func (c *Conn) Close() error {
	if c.master == nil || c.master.Process == nil {
		return nil
	}
	select {
	case <-c.done:
	default:
		exec.Command("ssh", "-F", "/dev/null", "-o", "ControlPath="+c.sock, "-O", "exit", "--", c.Host).Run()
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
			syscall.Kill(-c.master.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	}
	return os.RemoveAll(c.dir)
}

// Explain turns an ssh failure into what went wrong and what to do, for
// the one-line error message.
func Explain(t Target, err error) (msg, hint string) {
	var re *run.Error
	stderr := ""
	if errors.As(err, &re) {
		stderr = re.Stderr
	}
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
	if stderr != "" {
		return "ssh to " + dest + " failed: " + lastLine(stderr), "run ot-connection-test for a full check"
	}
	return "ssh to " + dest + " failed: " + err.Error(), "run ot-connection-test for a full check"
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}
