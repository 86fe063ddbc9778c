// Package cli holds what every ot-* program shares: its flags, its exit
// codes, how errors are printed, the logger, and Main, which parses the
// command line and maps whatever Run returns to one line and one exit code.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Version is set at build time from debian/changelog.
var Version = "dev"

// Exit codes, the same for every program (ot-status follows the monitoring
// plugin convention instead and says so in its help).
const (
	ExitOK          = 0
	ExitFailure     = 1   // a step or check failed
	ExitUsage       = 2   // bad flags or arguments
	ExitConfig      = 3   // configuration file missing, unreadable or invalid
	ExitDisabled    = 4   // sync is off (SYNCMODE is not "on")
	ExitPromoted    = 5   // this machine was promoted: it never syncs again
	ExitLocked      = 6   // another ot-* run holds the lock
	ExitNotRoot     = 7   // must be run as root
	ExitRefused     = 8   // a safety check refused (see the message); nothing changed
	ExitInterrupted = 130 // interrupted by SIGINT or SIGTERM
)

// ExitTable documents the exit codes; README and every --help show it.
var ExitTable = []struct {
	Code    int
	Meaning string
}{
	{ExitOK, "success"},
	{ExitFailure, "failure: a step or check failed"},
	{ExitUsage, "usage: bad flags or arguments"},
	{ExitConfig, "configuration file missing, unreadable or invalid"},
	{ExitDisabled, "sync is off (SYNCMODE is not \"on\"); run ot-enable-sync"},
	{ExitPromoted, "this machine was promoted to production: it never syncs again"},
	{ExitLocked, "another ot-* run holds the lock"},
	{ExitNotRoot, "must be run as root"},
	{ExitRefused, "a safety check refused; nothing was changed"},
	{ExitInterrupted, "interrupted (SIGINT/SIGTERM)"},
}

// ExitStatusText renders ExitTable as the EXIT STATUS section of --help.
func ExitStatusText() string {
	var b strings.Builder
	b.WriteString("EXIT STATUS\n")
	for _, e := range ExitTable {
		fmt.Fprintf(&b, "  %-4d %s\n", e.Code, e.Meaning)
	}
	return b.String()
}

// Error is an error meant for the operator: what failed and where (Msg),
// what to do (Hint), and the exit code.
type Error struct {
	Code int
	Msg  string
	Hint string
	Err  error // the cause, for errors.Is/As
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return e.Msg + "; " + e.Hint
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Fail returns an operator error.
func Fail(code int, msg, hint string) error { return &Error{Code: code, Msg: msg, Hint: hint} }

// Silent is returned when a run stops on purpose with nothing to say, such
// as a cron run while sync is off: exit with Code, print nothing.
type Silent struct{ Code int }

func (s Silent) Error() string { return fmt.Sprintf("exit %d", s.Code) }

// Globals are the flags every program shares. Embed it in a program's CLI.
type Globals struct {
	Config    string           `help:"Configuration file (default: ${default})." default:"/etc/odoo/ot-redundancy-sync.conf" env:"OT_CONFIG" placeholder:"FILE"`
	DryRun    bool             `short:"n" help:"Print every step that would change something, shell-quoted; change nothing."`
	Verbose   bool             `short:"v" help:"Say more: every command run, and details."`
	Quiet     bool             `short:"q" help:"Print errors only."`
	LogFormat string           `help:"Log format: console or json." enum:"console,json" default:"console"`
	Version   kong.VersionFlag `help:"Print the version and exit."`
}

// Env is what a program's Run gets: context, streams, logger, runner.
type Env struct {
	Prog   string
	Ctx    context.Context
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	TTY    bool // stdout is a terminal: progress and colour allowed
	Log    zerolog.Logger
	Runner *run.Runner
	G      *Globals
	cfg    *config.Config
}

// Printf prints normal output unless --quiet.
func (e *Env) Printf(format string, args ...any) {
	if e.G != nil && e.G.Quiet {
		return
	}
	fmt.Fprintf(e.Stdout, format, args...)
}

// Config loads (once) the configuration file named by --config.
func (e *Env) Config() (*config.Config, error) {
	if e.cfg != nil {
		return e.cfg, nil
	}
	c, err := config.Load(e.G.Config)
	if err != nil {
		return nil, err
	}
	e.cfg = c
	return c, nil
}

// RequireRoot refuses to go on unless running as root.
func (e *Env) RequireRoot() error {
	if os.Geteuid() != 0 {
		return Fail(ExitNotRoot, "must be run as root", "run it with sudo")
	}
	return nil
}

// Command is a program's parsed command line.
type Command interface {
	Run(env *Env) error
	Shared() *Globals
}

// Shared lets a CLI struct that embeds Globals satisfy Command.
func (g *Globals) Shared() *Globals { return g }

// Main parses args into cmd, runs it and returns the exit code.
func Main(prog, description string, args []string, cmd Command) int {
	return MainWith(prog, description, ExitStatusText(), args, cmd)
}

// UsageReporter is a Command that reports a bad command line its own way
// (ot-status: UNKNOWN, as monitoring plugins do) and returns the exit code.
type UsageReporter interface {
	UsageError(stdout, stderr io.Writer, prog string, err error) int
}

// MainWith is Main with a program's own EXIT STATUS text and parser options.
func MainWith(prog, description, exitText string, args []string, cmd Command, opts ...kong.Option) int {
	stdout, stderr := io.Writer(os.Stdout), io.Writer(os.Stderr)
	parser, err := kong.New(cmd, append([]kong.Option{
		Durations(),
		kong.Name(prog),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Vars{"version": prog + " " + Version},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.Help(func(opts kong.HelpOptions, ctx *kong.Context) error {
			if err := kong.DefaultHelpPrinter(opts, ctx); err != nil {
				return err
			}
			fmt.Fprintf(ctx.Stdout, "\n%s", exitText)
			return nil
		}),
	}, opts...)...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
		return ExitFailure
	}
	if _, err := parser.Parse(args); err != nil {
		if u, ok := cmd.(UsageReporter); ok {
			return u.UsageError(stdout, stderr, prog, err)
		}
		fmt.Fprintf(stderr, "%s: error: %v; see %s --help\n", prog, err, prog)
		return ExitUsage
	}
	g := cmd.Shared()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tty := isatty.IsTerminal(os.Stdout.Fd())
	env := &Env{
		Prog: prog, Ctx: ctx, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, TTY: tty,
		Log: NewLogger(prog, stderr, g, isatty.IsTerminal(os.Stderr.Fd())), G: g,
	}
	env.Runner = &run.Runner{DryRun: g.DryRun, Out: stdout, Log: env.Log}
	err = cmd.Run(env)
	return Report(prog, stderr, ctx, err, g.LogFormat == "json")
}

// Durations is the parser option every program's command line is read
// with: duration flags take days too (mapDuration).
func Durations() kong.Option {
	return kong.TypeMapper(reflect.TypeOf(time.Duration(0)), kong.MapperFunc(mapDuration))
}

// mapDuration reads duration flags as the configuration file's durations
// are read: plain seconds, or 90s, 5m, 2h, 2d, 1d12h (kong's own knows no
// days, which admins write).
func mapDuration(ctx *kong.DecodeContext, target reflect.Value) error {
	var s string
	if err := ctx.Scan.PopValueInto("duration", &s); err != nil {
		return err
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	target.Set(reflect.ValueOf(d))
	return nil
}

// Report prints err as one line and returns its exit code: GNU style
// ("prog: error: ..."), or under --log-format json one JSON object like
// every other line the program logs.
func Report(prog string, stderr io.Writer, ctx context.Context, err error, json bool) int {
	if err == nil {
		return ExitOK
	}
	var silent Silent
	if errors.As(err, &silent) {
		return silent.Code
	}
	code, line := Describe(err)
	if ctx != nil && ctx.Err() != nil {
		code, line = ExitInterrupted, "interrupted; nothing further was done: "+line
	}
	if json {
		log := zerolog.New(stderr).With().Timestamp().Str("program", prog).Logger()
		log.Error().Int("exit", code).Msg(line)
		return code
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", prog, line)
	return code
}

// Describe maps an error to its exit code and its one-line message.
func Describe(err error) (int, string) {
	var ce *Error
	var cfgErr *config.Error
	var held *lock.HeldError
	switch {
	case errors.As(err, &ce):
		return ce.Code, ce.Error()
	case errors.As(err, &cfgErr):
		line := cfgErr.Error()
		if cfgErr.Hint != "" {
			line += "; " + cfgErr.Hint
		}
		return ExitConfig, line
	case errors.As(err, &held):
		return ExitLocked, held.Error() + "; wait for it to finish (ot-status shows it), or raise LOCK_WAIT"
	}
	return ExitFailure, err.Error()
}

// Printable replaces control characters, so that text from production (or
// any peer) cannot drive the operator's terminal.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// NewLogger builds the one logger a program uses: JSON, or lines in the
// GNU style of its error line ("prog: warning: ..."), coloured on a
// terminal unless NO_COLOR, with the time of day only under --verbose.
func NewLogger(prog string, w io.Writer, g *Globals, tty bool) zerolog.Logger {
	level := zerolog.InfoLevel
	switch {
	case g.Verbose:
		level = zerolog.DebugLevel
	case g.Quiet:
		level = zerolog.ErrorLevel
	}
	if g.LogFormat == "json" {
		return zerolog.New(w).Level(level).With().Timestamp().Logger()
	}
	noColor := !tty || os.Getenv("NO_COLOR") != ""
	cw := zerolog.ConsoleWriter{Out: w, NoColor: noColor, TimeFormat: time.TimeOnly,
		FormatLevel: func(l any) string {
			s, _ := l.(string)
			switch s {
			case "", "info":
				return prog + ":"
			case "warn":
				s = "warning"
			}
			return prog + ": " + s + ":"
		}}
	if !g.Verbose {
		cw.PartsExclude = []string{zerolog.TimestampFieldName}
	}
	return zerolog.New(cw).Level(level).With().Timestamp().Logger()
}
