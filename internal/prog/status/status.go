// Package status is ot-status: one screen that says whether this standby is
// ready to take over, and a monitoring check (Nagios/Icinga plugin exit
// codes, JSON, node_exporter textfile metrics). It changes nothing, on this
// machine or on production.
package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

// Level is a check's outcome, valued as its monitoring-plugin exit code.
type Level int

const (
	OK       Level = 0
	Warning  Level = 1
	Critical Level = 2
	Unknown  Level = 3
)

func (l Level) String() string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[l]
}

// tag is the level as the checklist shows it.
func (l Level) tag() string {
	return [...]string{"ok", "WARN", "CRIT", "UNKN"}[l]
}

// MarshalText writes the level's name in JSON.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// rank orders levels by how bad they are: a known CRITICAL outranks UNKNOWN.
func (l Level) rank() int { return [...]int{0, 1, 3, 2}[l] }

// Check is one line of the checklist.
type Check struct {
	Name  string `json:"name"`
	Level Level  `json:"level"`
	Text  string `json:"text"`
}

// CLI is ot-status's command line.
type CLI struct {
	cli.Globals
	JSON            bool          `help:"Print the report as JSON (status, every check, details) instead of text."`
	Prometheus      string        `help:"Also write node_exporter textfile metrics to FILE (atomically)." placeholder:"FILE" type:"path"`
	VerifyFilestore bool          `help:"Check that every stored file's content matches its content-addressed name (sha1); reads the whole filestore."`
	Drift           bool          `help:"Compare production and standby (apt manual packages, pip packages, projects, configuration files) over one ssh connection, read-only."`
	Skip            []string      `help:"Checks to leave out: postgres, attachments, cron (comma-separated)." placeholder:"CHECK"`
	FilestoreLate   time.Duration `help:"A filestore sync older than this is late (WARNING)." default:"2h"`
	FilestoreCrit   time.Duration `help:"A filestore sync older than this is CRITICAL." default:"6h"`
	FullLate        time.Duration `help:"A full sync (ot-sync-from-source) older than this is late (WARNING)." default:"35d"`
	FullCrit        time.Duration `help:"A full sync older than this is CRITICAL." default:"62d"`
	LagWarn         time.Duration `help:"Replay lag above this is a WARNING." default:"5m"`
	LagCrit         time.Duration `help:"Replay lag above this is CRITICAL." default:"1h"`
	CronFile        string        `help:"The suite's cron file." default:"/etc/cron.d/ot-redundancy" hidden:""`
}

// ExitText is ot-status's EXIT STATUS section: the monitoring-plugin convention.
const ExitText = `EXIT STATUS (monitoring-plugin convention; the first line is "STATUS: LEVEL: text")
  0    OK: this standby is ready to take over
  1    WARNING: something needs attention (a late sync, sync off, missing attachments, drift, promoted)
  2    CRITICAL: a failover now would lose data or fail (sync far too late, PostgreSQL down or out
       of recovery while not promoted, corrupt files)
  3    UNKNOWN: the state cannot be read (configuration missing or invalid, PostgreSQL unreadable),
       or a bad command line
`

// Main is the program. It changes nothing, so it has no --dry-run.
func Main(args []string) int {
	return cli.MainWith("ot-status", "Say whether this standby is ready to take over: role, sync, last syncs against their schedule, PostgreSQL replication, cron, a run in progress, and attachments a failover would lose. Changes nothing. Usable as a Nagios/Icinga check.", ExitText, args, &CLI{},
		kong.IgnoreFields(`^CLI\.DryRun$`))
}

// UsageError follows the monitoring-plugin guidelines: a bad command line
// is UNKNOWN (3), said on the status line a monitoring system shows.
func (c *CLI) UsageError(stdout, stderr io.Writer, prog string, err error) int {
	fmt.Fprintf(stdout, "STATUS: UNKNOWN: %s; see %s --help\n", cli.Printable(err.Error()), prog)
	fmt.Fprintf(stderr, "%s: error: %v; see %s --help\n", prog, err, prog)
	return int(Unknown)
}

func (c *CLI) skip(name string) bool {
	for _, s := range c.Skip {
		if s == name {
			return true
		}
	}
	return false
}

// Run gathers the report, prints it and exits with its level.
func (c *CLI) Run(env *cli.Env) error {
	for _, s := range c.Skip {
		switch s {
		case "postgres", "attachments", "cron":
		default:
			return cli.Silent{Code: c.UsageError(env.Stdout, env.Stderr, env.Prog, fmt.Errorf("--skip %q: not a check; use postgres, attachments or cron", s))}
		}
	}
	r := &Report{Time: time.Now(), Config: env.G.Config}
	cfg, err := config.Load(env.G.Config)
	if err != nil {
		_, line := cli.Describe(err)
		r.add("config", Unknown, line)
	} else {
		c.collect(env, cfg, r)
	}
	r.finish()
	if c.Prometheus != "" {
		if err := writeMetrics(c.Prometheus, r); err != nil {
			r.add("prometheus", Unknown, "cannot write "+c.Prometheus+": "+err.Error())
			r.finish()
		}
	}
	if c.JSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		c.print(env, r)
	}
	return cli.Silent{Code: int(r.Status)}
}

// add appends a check to the report.
func (r *Report) add(name string, l Level, text string) {
	r.Checks = append(r.Checks, Check{Name: name, Level: l, Text: text})
}

// finish computes the overall level and the one-line summary.
func (r *Report) finish() {
	r.Status = OK
	var problems []string
	for _, ch := range r.Checks {
		if ch.Level.rank() > r.Status.rank() {
			r.Status = ch.Level
		}
	}
	// The worst first, so a one-line summary cut short still says the worst.
	for _, l := range []Level{Critical, Unknown, Warning} {
		for _, ch := range r.Checks {
			if ch.Level == l {
				problems = append(problems, ch.Name+": "+ch.Text)
			}
		}
	}
	if len(problems) == 0 {
		r.Summary = "standby ready to take over"
		if r.Role == "promoted" {
			r.Summary = "this machine is production (promoted)"
		}
		if r.FilestoreAge != "" {
			r.Summary += "; filestore synced " + r.FilestoreAge + " ago"
		}
	} else {
		r.Summary = strings.Join(problems, "; ")
	}
}

func (c *CLI) print(env *cli.Env, r *Report) {
	// The first line is what a monitoring system shows: always printed,
	// with performance data after "|" (monitoring-plugin guidelines).
	line := fmt.Sprintf("STATUS: %s: %s", r.Status, cli.Printable(r.Summary))
	if perf := c.perfdata(r); perf != "" {
		line += " |" + perf
	}
	fmt.Fprintln(env.Stdout, line)
	if env.G.Quiet {
		return
	}
	for _, ch := range r.Checks {
		fmt.Fprintf(env.Stdout, "  %-4s  %-14s %s\n", ch.Level.tag(), ch.Name, ch.Text)
	}
	for _, db := range r.Databases {
		if !c.Verbose {
			break
		}
		for _, f := range db.MissingFiles {
			fmt.Fprintf(env.Stdout, "  missing   %s/%s\n", db.Name, f)
		}
		for _, f := range db.Corrupt {
			fmt.Fprintf(env.Stdout, "  corrupt   %s/%s\n", db.Name, f)
		}
	}
	if r.Drift != nil {
		for _, k := range r.Drift.Kinds {
			list := func(what string, items []string) {
				max := len(items)
				if !c.Verbose && max > 10 {
					max = 10
				}
				for _, it := range items[:max] {
					fmt.Fprintf(env.Stdout, "  drift     %-8s %-16s %s\n", k.Kind, what, it)
				}
				if max < len(items) {
					fmt.Fprintf(env.Stdout, "  drift     %-8s %-16s ... %d more (--verbose lists them)\n", k.Kind, what, len(items)-max)
				}
			}
			list("only-production", k.OnlyProduction)
			list("only-standby", k.OnlyStandby)
			list("differs", k.Differ)
		}
	}
}

// perfdata is the status line's performance data: label=value[unit];warn;crit,
// the thresholds the checks judge by.
func (c *CLI) perfdata(r *Report) string {
	var b strings.Builder
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	if r.Postgres != nil {
		fmt.Fprintf(&b, " lag=%ss;%s;%s", strconv.FormatFloat(r.Postgres.ReplayLagSeconds, 'f', 1, 64), secs(c.LagWarn), secs(c.LagCrit))
	}
	if r.filestoreAge >= 0 && r.FilestoreAge != "" {
		fmt.Fprintf(&b, " filestore_age=%.0fs;%s;%s", r.filestoreAge, secs(c.FilestoreLate), secs(c.FilestoreCrit))
	}
	followPerf(r, &b)
	if len(r.Databases) > 0 {
		missing := 0
		for _, db := range r.Databases {
			missing += db.Missing
		}
		fmt.Fprintf(&b, " missing_attachments=%d;;0", missing)
	}
	return b.String()
}

// age renders a duration for people: 45s, 12m, 3h05m, 4d06h.
func age(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < 0:
		return "in the future (clock skew?)"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// Collect gathers what ot-status would report, with its default
// thresholds and every check: ot-enable-standby-mode ends with it, as its
// proof that the new standby is ready.
func Collect(env *cli.Env, cfg *config.Config) (*Report, error) {
	c := &CLI{}
	parser, err := kong.New(c, kong.Name("ot-status"), cli.Durations())
	if err != nil {
		return nil, err
	}
	// Parsing nothing sets every flag to its default.
	if _, err := parser.Parse([]string{"--config", cfg.Path}); err != nil {
		return nil, err
	}
	r := &Report{Time: time.Now(), Config: cfg.Path}
	c.collect(env, cfg, r)
	r.finish()
	return r, nil
}
