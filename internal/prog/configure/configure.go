// Package configure is ot-configure, the configuration wizard: it asks for
// production's host and user (or takes them from flags), prepares ssh (the
// standby's key, production's host key), runs the connection test and turns
// sync on only when that test passes. Every answer is validated before it
// reaches the file, which is rewritten in place with its comments kept.
package configure

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/conntest"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/follower"
)

// CLI is ot-configure's command line.
type CLI struct {
	cli.Globals
	Source       string `help:"Production server: host name or IP address (SYNCSRC)." placeholder:"HOST"`
	User         string `help:"User on production the standby logs in as (REMOTEODOO)." placeholder:"USER"`
	Port         int    `help:"Production's ssh port (SSH_PORT)." placeholder:"PORT"`
	Enable       bool   `help:"Turn sync on if the connection test passes." xor:"enable"`
	NoEnable     bool   `help:"Leave sync off." xor:"enable"`
	Yes          bool   `short:"y" help:"Ask nothing: take flags and current values, create a missing ssh key. A new host key is trusted only with --trust-host-key."`
	TrustHostKey string `help:"Trust production's host key only if its fingerprint is this one (as ssh-keygen -lf prints it on production)." placeholder:"SHA256:..."`
}

// Main is the program.
func Main(args []string) int {
	return cli.Main("ot-configure", "Configuration wizard: set production's host and user, prepare ssh (key, host key), test the connection, and turn sync on when the test passes. Interactive unless --yes.", args, &CLI{})
}

// errNoAnswer ends an interactive run whose input closed.
var errNoAnswer = cli.Fail(cli.ExitUsage, "no answer: standard input closed", "answer the questions, or run non-interactively with --yes and flags")

// prompter asks questions on a terminal (or any line-based input).
type prompter struct {
	in  *bufio.Reader
	out io.Writer
}

func (p *prompter) line(q string) (string, error) {
	fmt.Fprint(p.out, q)
	s, err := p.in.ReadString('\n')
	if err != nil && (s == "" || !errors.Is(err, io.EOF)) {
		fmt.Fprintln(p.out)
		return "", errNoAnswer
	}
	return strings.TrimSpace(s), nil
}

// ask asks for a value, offering cur (Enter keeps it), until valid accepts it.
func (p *prompter) ask(label, cur string, valid func(string) error) (string, error) {
	for {
		q := label
		if cur != "" {
			q += " [" + cur + "]"
		}
		ans, err := p.line(q + ": ")
		if err != nil {
			return "", err
		}
		if ans == "" {
			ans = cur
		}
		if ans == "" {
			fmt.Fprintln(p.out, "  an answer is needed")
			continue
		}
		if err := valid(ans); err != nil {
			fmt.Fprintf(p.out, "  not valid: %s; try again\n", cli.Printable(err.Error()))
			continue
		}
		return ans, nil
	}
}

// yes asks a yes/no question; Enter takes def.
func (p *prompter) yes(q string, def bool) (bool, error) {
	hint := " [y/N]: "
	if def {
		hint = " [Y/n]: "
	}
	for {
		ans, err := p.line(q + hint)
		if err != nil {
			return false, err
		}
		switch strings.ToLower(ans) {
		case "":
			return def, nil
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		fmt.Fprintln(p.out, "  please answer y or n")
	}
}

// Run is the wizard.
func (c *CLI) Run(env *cli.Env) error {
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := c.load(env)
	if err != nil {
		return err
	}
	var p *prompter
	if !c.Yes {
		p = &prompter{in: bufio.NewReader(env.Stdin), out: env.Stdout}
	}

	// 1. Where production is and whom to log in as.
	oldHost, oldUser, oldPort := cfg.Get(config.SyncSrc), cfg.Get(config.RemoteOdoo), cfg.Get(config.SSHPort)
	host := oldHost
	if host == config.NotSet {
		host = ""
	}
	user := oldUser
	if c.Source != "" {
		if err := config.ValidHost(c.Source); err != nil {
			return cli.Fail(cli.ExitUsage, "--source: "+err.Error(), "give a host name or an IP address")
		}
		host = c.Source
	}
	if c.User != "" {
		if err := config.ValidUser(c.User); err != nil {
			return cli.Fail(cli.ExitUsage, "--user: "+err.Error(), "give the user's login name on production")
		}
		user = c.User
	}
	keys := []config.Key{config.SyncSrc, config.RemoteOdoo}
	if c.Port != 0 {
		if c.Port < 1 || c.Port > 65535 {
			return cli.Fail(cli.ExitUsage, fmt.Sprintf("--port %d is not a port number (1-65535)", c.Port), "give production's ssh port")
		}
		if err := cfg.Set(config.SSHPort, strconv.Itoa(c.Port)); err != nil {
			return err
		}
		keys = append(keys, config.SSHPort)
	}
	if p != nil {
		env.Printf("ot-configure: answer each question; Enter keeps the value in brackets.\n")
		if host, err = p.ask("Production server (host name or IP address)", host, config.ValidHost); err != nil {
			return err
		}
		if user, err = p.ask("User on production", user, config.ValidUser); err != nil {
			return err
		}
	} else if host == "" {
		return cli.Fail(cli.ExitUsage, "no production host: SYNCSRC is not set in "+cfg.Path, "pass --source HOST")
	}
	if err := cfg.Set(config.SyncSrc, host); err != nil {
		return err
	}
	if err := cfg.Set(config.RemoteOdoo, user); err != nil {
		return err
	}
	moved := host != oldHost || user != oldUser || cfg.Get(config.SSHPort) != oldPort
	wasOn := cfg.SyncOn()
	if moved && wasOn {
		// Not on towards a production that has not passed the test yet.
		if err := cfg.Set(config.SyncMode, "off"); err != nil {
			return err
		}
		keys = append(keys, config.SyncMode)
	}
	if err := c.save(env, cfg, keys...); err != nil {
		return err
	}

	// 2. The standby's key, and how to authorise it on production.
	if err := c.prepareKey(env, cfg, p); err != nil {
		return err
	}
	// 3. Production's host key.
	if err := c.trustHostKey(env, cfg, p); err != nil {
		return err
	}

	// 4. The connection test; 5. sync on only when it passed.
	return env.Runner.Apply(env.Ctx, run.Step{What: "run the connection test (ot-connection-test) once the changes are made; sync is turned on only when it passes",
		Do: func(context.Context) error { return c.testAndEnable(env, cfg, p, wasOn) }})
}

// testAndEnable runs the connection test (again, while the operator asks
// for it) and turns sync on when asked and when it passed.
func (c *CLI) testAndEnable(env *cli.Env, cfg *config.Config, p *prompter, wasOn bool) error {
	host, user := cfg.Get(config.SyncSrc), cfg.Get(config.RemoteOdoo)
	failed := c.test(env, cfg)
	for len(failed) > 0 && p != nil {
		again, err := p.yes("Fix what the FAIL lines say, then test again?", true)
		if err != nil {
			return err
		}
		if !again {
			break
		}
		failed = c.test(env, cfg)
	}
	want := wasOn
	switch {
	case c.Enable:
		want = true
	case c.NoEnable:
		want = false
	case p != nil && len(failed) == 0:
		var err error
		if want, err = p.yes("Turn sync on now?", true); err != nil {
			return err
		}
	case p != nil:
		want = true // the operator wanted a working setup: say why it is not
	}
	if want && cfg.Promoted() {
		return cli.Fail(cli.ExitPromoted, "this machine was promoted to production (PROMOTED=yes in "+cfg.Path+"): sync stays off", "if it is a standby again, run ot-enable-sync --clear-promoted")
	}
	if want && len(failed) == 0 {
		if err := job.LocalPrimary(env.Ctx, cfg); err != nil {
			return err
		}
	}
	mode := "off"
	if want && len(failed) == 0 {
		mode = "on"
	}
	if cfg.Get(config.SyncMode) != mode {
		if err := cfg.Set(config.SyncMode, mode); err != nil {
			return err
		}
		if err := c.save(env, cfg, config.SyncMode); err != nil {
			return err
		}
	}
	if want && len(failed) > 0 {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("connection test to %s failed (%s): sync stays off", host, strings.Join(failed, ", ")),
			"fix what the FAIL lines say, then run ot-configure again")
	}
	if mode == "on" {
		env.Printf("sync is on (source %s, user %s)\n", host, user)
		// The filestore follower comes with sync, as with ot-enable-sync.
		return env.Runner.Apply(env.Ctx, follower.StartSteps(follower.Detect(env.Ctx, env.Runner), cfg, env.Printf)...)
	} else {
		env.Printf("sync is off; run ot-enable-sync when ready\n")
	}
	return nil
}

// load reads the configuration file, creating it from the packaged
// template when it does not exist (only in memory in a dry run).
func (c *CLI) load(env *cli.Env) (*config.Config, error) {
	path := env.G.Config
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		err := env.Runner.Apply(env.Ctx, run.Step{What: "create " + path + " from the default template", Do: func(context.Context) error {
			return create(env, path)
		}})
		if err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		// Not created (a dry run): the plan goes on from the template.
		return config.Parse(path, []byte(config.Template()))
	}
	return config.Load(path)
}

func create(env *cli.Env, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return cli.Fail(cli.ExitConfig, "cannot create "+filepath.Dir(path)+": "+err.Error(), "check the path given with --config")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		_, err = f.WriteString(config.Template())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return cli.Fail(cli.ExitConfig, "cannot create "+path+": "+err.Error(), "check the path given with --config")
	}
	env.Printf("created %s from the default template\n", path)
	return nil
}

func (c *CLI) save(env *cli.Env, cfg *config.Config, keys ...config.Key) error {
	return env.Runner.Apply(env.Ctx, cfg.SaveStep(keys...))
}

// prepareKey makes sure root has a key to log in with, and prints how to
// authorise it on production.
func (c *CLI) prepareKey(env *cli.Env, cfg *config.Config, p *prompter) error {
	id := cfg.Get(config.SSHIdentity)
	if _, err := os.Stat(id); os.IsNotExist(err) {
		create := true
		if p != nil {
			var err error
			if create, err = p.yes(fmt.Sprintf("There is no ssh key at %s. Create one (ed25519, no passphrase)?", id), true); err != nil {
				return err
			}
		}
		if !create {
			env.Printf("no key created: put one at %s (SSH_IDENTITY) before syncing\n", id)
			return nil
		}
		hostname, _ := os.Hostname()
		comment := "root@" + hostname + " ot-redundancy"
		keygen := run.Step{What: "create the standby's ssh key", Timeout: time.Minute,
			Argv: []string{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", id}}
		keygen.Do = func(ctx context.Context) error {
			if err := os.MkdirAll(filepath.Dir(id), 0o700); err != nil {
				return cli.Fail(cli.ExitFailure, "cannot create "+filepath.Dir(id)+": "+err.Error(), "check SSH_IDENTITY")
			}
			if _, err := env.Runner.Exec(ctx, keygen); err != nil {
				return cli.Fail(cli.ExitFailure, "creating the ssh key "+id+" failed: "+err.Error(), "create it by hand: ssh-keygen -t ed25519 -f "+id)
			}
			env.Printf("created the ssh key %s\n", id)
			return authorize(env, cfg, id)
		}
		return env.Runner.Apply(env.Ctx, keygen)
	}
	return authorize(env, cfg, id)
}

// authorize prints how to authorise the standby's key on production.
func authorize(env *cli.Env, cfg *config.Config, id string) error {
	pub, err := os.ReadFile(id + ".pub")
	if err != nil {
		env.Printf("cannot read %s.pub (%v): authorise the key that goes with %s on production\n", id, err, id)
		return nil
	}
	key := strings.TrimSpace(string(pub))
	user := cfg.Get(config.RemoteOdoo)
	line := restrict(cfg.Get(config.SyncSrc), cfg.Int(config.SSHPort)) + key
	inner := "umask 077 && mkdir -p ~/.ssh && echo " + shellquote.Join(line) + " >> ~/.ssh/authorized_keys"
	env.Printf("\nThe standby logs in with this public key (%s.pub):\n  %s\n", id, key)
	env.Printf("Unless done already, authorise it for %s: on production, run\n  %s\n\n", user,
		shellquote.Join("sudo", "-u", user, "-H", "sh", "-c", inner))
	return nil
}

// restrict is the options part of the authorized_keys line: the standby
// needs no terminal, no forwarding and no agent, only commands and rsync
// ("restrict"), and only from its own address ("from"), so that a stolen
// copy of its key opens no shell from elsewhere. The address is the one
// this machine reaches production from (a UDP "connection" sends nothing).
func restrict(host string, port int) string {
	c, err := net.Dial("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return "restrict "
	}
	defer c.Close()
	ip := c.LocalAddr().(*net.UDPAddr).IP
	return `restrict,from="` + ip.String() + `" `
}

// trustHostKey fetches production's host key and trusts it into the suite's
// known_hosts file once the operator (or --trust-host-key) vouched for it.
func (c *CLI) trustHostKey(env *cli.Env, cfg *config.Config, p *prompter) error {
	host, port := cfg.Get(config.SyncSrc), cfg.Int(config.SSHPort)
	kh := cfg.Get(config.SSHKnownHosts)
	name := KnownHostsName(host, port)
	// ssh-keyscan only reads; it runs in a dry run too, so the preview is exact.
	key, err := Scan(env.Ctx, &run.Runner{Log: env.Log}, host, port, int(cfg.Duration(config.SSHConnectTimeout).Seconds()))
	if err != nil {
		env.Printf("cannot fetch production's host key: %s\n", cli.Printable(err.Error()))
		if c.TrustHostKey != "" {
			return cli.Fail(cli.ExitFailure, "cannot fetch production's host key to check --trust-host-key", "is "+host+" up, and SSH_PORT right?")
		}
		return nil
	}
	fp := key.Fingerprint()
	if c.TrustHostKey != "" && c.TrustHostKey != fp {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("production %s offers host key %s, not %s as --trust-host-key says", name, fp, c.TrustHostKey),
			"if production was not reinstalled, someone may be intercepting the connection: check the fingerprint on production")
	}
	trusted, err := Trusted(kh, name)
	if err != nil {
		return cli.Fail(cli.ExitFailure, "cannot read "+kh+": "+err.Error(), "check SSH_KNOWN_HOSTS")
	}
	for _, k := range trusted {
		if k == key {
			env.Printf("production's host key %s (%s) is trusted already (%s)\n", fp, key.Type, kh)
			return nil
		}
	}
	if len(trusted) > 0 {
		env.Printf("WARNING: production's host key has CHANGED: %s trusts %s, production now offers %s.\n"+
			"If production was not reinstalled, someone may be intercepting the connection.\n", kh, trusted[0].Fingerprint(), fp)
	}
	env.Printf("Production %s offers the host key %s (%s).\n", name, fp, key.Type)
	ok := c.TrustHostKey == fp
	if !ok && p != nil {
		env.Printf("Compare it with what production says: ssh-keygen -lf /etc/ssh/%s\n", hostKeyFile(key.Type))
		if ok, err = p.yes("Trust this host key?", false); err != nil {
			return err
		}
	}
	if !ok {
		if p == nil {
			return cli.Fail(cli.ExitRefused, "production's host key "+fp+" is not trusted yet",
				"check it on production (ssh-keygen -lf /etc/ssh/"+hostKeyFile(key.Type)+") and pass --trust-host-key="+fp)
		}
		env.Printf("not trusted: the connection test cannot log in until it is\n")
		return nil
	}
	return env.Runner.Apply(env.Ctx, run.Step{What: "trust production's host key in " + kh, Show: []string{name + " " + key.Type + " " + key.Blob},
		Do: func(context.Context) error {
			if err := Trust(kh, name, key); err != nil {
				return cli.Fail(cli.ExitFailure, "cannot write "+kh+": "+err.Error(), "check SSH_KNOWN_HOSTS")
			}
			env.Printf("trusted %s for %s in %s\n", fp, name, kh)
			return nil
		}})
}

func hostKeyFile(keyType string) string {
	switch {
	case keyType == "ssh-ed25519":
		return "ssh_host_ed25519_key.pub"
	case strings.HasPrefix(keyType, "ecdsa-"):
		return "ssh_host_ecdsa_key.pub"
	}
	return "ssh_host_rsa_key.pub"
}

// test runs ot-connection-test's checks and returns the required ones that failed.
func (c *CLI) test(env *cli.Env, cfg *config.Config) []string {
	env.Printf("Connection test:\n")
	var failed []string
	conntest.Checks(env.Ctx, cfg, func(ch conntest.Check) {
		env.Printf("  %-5s %-10s %s\n", ch.Status, ch.Name, ch.Detail)
		if ch.Status == conntest.Fail && ch.Required {
			failed = append(failed, ch.Name)
		}
	})
	return failed
}
