package status

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
)

// Report is everything ot-status found; --json prints it as is.
type Report struct {
	Status        Level       `json:"status"`
	Summary       string      `json:"summary"`
	Time          time.Time   `json:"time"`
	Config        string      `json:"config"`
	Role          string      `json:"role,omitempty"` // standby or promoted
	SyncOn        bool        `json:"sync_on"`
	Source        string      `json:"source,omitempty"`
	User          string      `json:"user,omitempty"`
	Syncs         []SyncInfo  `json:"syncs,omitempty"`
	Postgres      *PGInfo     `json:"postgres,omitempty"`
	CronFile      string      `json:"cron_file,omitempty"`
	CronInstalled bool        `json:"cron_installed"`
	Running       *Running    `json:"running,omitempty"`
	Databases     []DBInfo    `json:"databases,omitempty"`
	Drift         *Drift      `json:"drift,omitempty"`
	Follow        *FollowInfo `json:"follow,omitempty"`
	// ProductionMismatches is the filestore sync's verdict (mismatches.go).
	ProductionMismatches *Mismatches `json:"production_mismatches,omitempty"`
	Checks               []Check     `json:"checks"`
	FilestoreAge         string      `json:"-"`
	// filestoreAge is the filestore's age in seconds for performance data
	// (-1: never synced).
	filestoreAge float64
}

// SyncInfo is a command's last success, from the summary file.
type SyncInfo struct {
	Command    string     `json:"command"`
	Last       *time.Time `json:"last_success,omitempty"`
	AgeSeconds float64    `json:"age_seconds,omitempty"`
}

// PGInfo is the local PostgreSQL cluster's replication state.
type PGInfo struct {
	Cluster          string     `json:"cluster"`
	Online           bool       `json:"online"`
	InRecovery       bool       `json:"in_recovery"`
	ReplayPaused     bool       `json:"replay_paused,omitempty"`
	Receiver         string     `json:"wal_receiver,omitempty"`
	Sender           string     `json:"sender,omitempty"`
	ReceiveLSN       string     `json:"receive_lsn,omitempty"`
	ReplayLSN        string     `json:"replay_lsn,omitempty"`
	LastReplay       *time.Time `json:"last_replayed_commit,omitempty"`
	ReplayLagSeconds float64    `json:"replay_lag_seconds"`
}

// Running is the run holding the suite's lock.
type Running struct {
	PID     int    `json:"pid"`
	Command string `json:"command,omitempty"`
}

// Commands whose last success is shown; the first two are judged against
// the cron schedule, the others only shown.
var shownCommands = []string{"ot-apt-sync", "ot-pip-sync", "ot-project-sync", "ot-conf-sync", "ot-attachments-sync", "ot-sync-from-source"}

func (c *CLI) collect(env *cli.Env, cfg *config.Config, r *Report) {
	r.Config = cfg.Path
	r.SyncOn = cfg.SyncOn()
	r.User = cfg.Get(config.RemoteOdoo)
	r.Role = "standby"

	// PostgreSQL first: whether it left recovery decides the role.
	var cluster *pg.Cluster
	var pgCheck *Check
	if !c.skip("postgres") {
		// Reported after the role, which it decides.
		sub := &Report{Time: r.Time}
		cluster = c.postgres(env, cfg, sub)
		r.Postgres = sub.Postgres
		pgCheck = &sub.Checks[0]
	}
	promotedByPG := r.Postgres != nil && r.Postgres.Online && !r.Postgres.InRecovery
	switch {
	case cfg.Promoted():
		r.Role = "promoted"
		r.add("role", Warning, "promoted: this machine is production now (PROMOTED=yes); no standby follows it")
	case promotedByPG:
		r.Role = "promoted"
		r.add("role", Critical, "PostgreSQL "+r.Postgres.Cluster+" is out of recovery but PROMOTED=no: this machine acts as production while configured as a standby")
	default:
		r.add("role", OK, "standby")
	}
	standby := r.Role == "standby"

	src, err := cfg.Source()
	switch {
	case err != nil && standby:
		r.add("source", Critical, "SYNCSRC is not set: run ot-configure")
	case err != nil:
		r.add("source", OK, "none")
	default:
		r.Source = src
		r.add("source", OK, fmt.Sprintf("%s@%s port %s", r.User, src, cfg.Get(config.SSHPort)))
	}
	switch {
	case r.SyncOn && standby:
		r.add("sync", OK, "on")
	case standby:
		r.add("sync", Warning, "off: the standby does not follow production; run ot-enable-sync")
	case r.SyncOn:
		r.add("sync", OK, "on, but a promoted machine never syncs")
	default:
		r.add("sync", OK, "off")
	}

	c.syncs(cfg, r, standby)
	c.follow(cfg, r, standby)
	if pgCheck != nil {
		r.Checks = append(r.Checks, *pgCheck)
	}

	if !c.skip("cron") {
		r.CronFile = c.CronFile
		if _, err := os.Stat(c.CronFile); err == nil {
			r.CronInstalled = true
			r.add("cron", OK, c.CronFile+" installed")
		} else if standby {
			r.add("cron", Warning, c.CronFile+" is missing: no scheduled syncs; reinstall the package")
		} else {
			r.add("cron", OK, c.CronFile+" is missing")
		}
	}

	if h := lock.Holder(cfg.Get(config.LockFile)); h != nil {
		r.Running = &Running{PID: h.PID, Command: h.Cmd}
		r.add("running", OK, "a run is in progress: "+h.Error())
	} else {
		r.add("running", OK, "no run in progress")
	}

	mismatches(cfg.Get(config.StateDir), standby, r)
	if cluster != nil && cluster.Online && !c.skip("attachments") {
		c.attachments(env, cfg, cluster, r)
	}
	if c.Drift {
		c.drift(env, cfg, r)
	}
}

// syncs judges the last successes in the summary file against the cron
// schedule: the filestore hourly, everything monthly.
func (c *CLI) syncs(cfg *config.Config, r *Report, standby bool) {
	path := cfg.Get(config.SummaryFile)
	last, err := summary.Last(path)
	if err != nil {
		r.add("summary", Unknown, "cannot read "+path+": "+err.Error())
		return
	}
	for _, name := range shownCommands {
		si := SyncInfo{Command: name}
		if t, ok := last[name]; ok {
			si.Last = &t
			si.AgeSeconds = r.Time.Sub(t).Seconds()
		}
		r.Syncs = append(r.Syncs, si)
	}
	// The full sync also syncs the filestore; the manual spells the hourly
	// job both ways.
	fs := latest(last, "ot-attachments-sync", "ot-attachment-sync", "ot-sync-from-source")
	full := latest(last, "ot-sync-from-source")
	judge := func(name string, t time.Time, schedule string, late, crit time.Duration, cmd string) {
		switch {
		case t.IsZero() && standby:
			r.add(name, Critical, fmt.Sprintf("never succeeded (per %s); run %s", path, cmd))
			return
		case t.IsZero():
			r.add(name, OK, "never succeeded (not judged: promoted)")
			return
		}
		a := r.Time.Sub(t)
		text := fmt.Sprintf("last success %s (%s ago; %s)", t.Format(summary.Layout), age(a), schedule)
		l := OK
		switch {
		case !standby:
			text += " (not judged: promoted)"
		case a > crit:
			l = Critical
			text += fmt.Sprintf(": far too late (over %s)", age(crit))
		case a > late:
			l = Warning
			text += fmt.Sprintf(": late (over %s)", age(late))
		}
		r.add(name, l, text)
	}
	judge("filestore-sync", fs, "hourly", c.FilestoreLate, c.FilestoreCrit, "ot-attachments-sync")
	judge("full-sync", full, "monthly", c.FullLate, c.FullCrit, "ot-sync-from-source")
	r.filestoreAge = -1
	if !fs.IsZero() {
		r.FilestoreAge = age(r.Time.Sub(fs))
		r.filestoreAge = r.Time.Sub(fs).Seconds()
	}
}

func latest(m map[string]time.Time, names ...string) time.Time {
	var t time.Time
	for _, n := range names {
		if m[n].After(t) {
			t = m[n]
		}
	}
	return t
}

// postgres reads the local cluster's state; it returns the cluster when it
// could be found.
func (c *CLI) postgres(env *cli.Env, cfg *config.Config, r *Report) *pg.Cluster {
	q := &run.Runner{Log: env.Log}
	cl, err := pg.Find(env.Ctx, q, job.PG(cfg))
	if errors.Is(err, pg.ErrNotFound) {
		r.add("postgres", Unknown, err.Error()+" (set PG_CLUSTER or PG_DATA, or --skip postgres)")
		return nil
	}
	if err != nil {
		r.add("postgres", Unknown, err.Error())
		return nil
	}
	info := &PGInfo{Cluster: cl.String(), Online: cl.Online}
	r.Postgres = info
	if !cl.Online {
		r.add("postgres", Critical, "PostgreSQL "+cl.String()+" is not running")
		return cl
	}
	st, err := pg.ReadStatus(env.Ctx, cl.Via(q))
	if err != nil {
		r.add("postgres", Unknown, err.Error())
		cl.Online = false // nothing more can be read from it
		return cl
	}
	info.InRecovery, info.ReplayPaused, info.Receiver = st.InRecovery, st.ReplayPaused, st.ReceiverStatus
	info.ReceiveLSN, info.ReplayLSN = st.ReceiveLSN, st.ReplayLSN
	if st.SenderHost != "" {
		info.Sender = fmt.Sprintf("%s:%d", st.SenderHost, st.SenderPort)
	}
	if !st.LastReplay.IsZero() {
		t := st.LastReplay
		info.LastReplay = &t
	}
	if !st.InRecovery {
		// The role check reports it; here only the facts.
		r.add("postgres", OK, fmt.Sprintf("PostgreSQL %s runs as a primary (timeline %d)", cl, st.Timeline))
		return cl
	}
	// Lag counts only when WAL was received but not replayed yet: an idle
	// production commits nothing, and its last commit ages without any lag.
	lag := time.Duration(0)
	if st.ReceiveLSN != st.ReplayLSN || st.ReceiverStatus != "streaming" {
		lag = st.Lag
	}
	info.ReplayLagSeconds = lag.Seconds()
	text := fmt.Sprintf("PostgreSQL %s in recovery", cl)
	l := OK
	if st.ReceiverStatus == "streaming" {
		text += ", streaming from " + info.Sender
	} else {
		l = Warning
		text += ", not streaming (WAL receiver: " + orNone(st.ReceiverStatus) + ")"
	}
	if st.ReceiveLSN != "" && st.ReceiveLSN == st.ReplayLSN {
		text += ", replay caught up"
	} else {
		text += ", replay lag " + age(lag)
	}
	switch {
	case lag > c.LagCrit:
		l = Critical
		text += fmt.Sprintf(": far too far behind (over %s)", age(c.LagCrit))
	case lag > c.LagWarn:
		l = max(l, Warning)
		text += fmt.Sprintf(": behind (over %s)", age(c.LagWarn))
	}
	if st.ReplayPaused {
		l = max(l, Warning)
		text += "; replay is PAUSED (SELECT pg_wal_replay_resume())"
	}
	r.add("postgres", l, text)
	return cl
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
