package status

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/follower"
)

// FollowInfo is the filestore follower's state: the file RPO.
type FollowInfo struct {
	State      string     `json:"state"` // following, retrying, stopped, or "never ran", "not running"
	PID        int        `json:"pid,omitempty"`
	LastCycle  *time.Time `json:"last_cycle,omitempty"`
	AgeSeconds float64    `json:"last_cycle_age_seconds"` // -1: no cycle completed
	LastError  string     `json:"last_error,omitempty"`
	Up         bool       `json:"up"` // a follower runs and its cycles complete
	warn       time.Duration
}

// followCritical is the age of the follower's last cycle that is CRITICAL
// while sync is on.
const followCritical = 15 * time.Minute

// followWarn is the age that is a WARNING: four intervals, at least a minute.
func followWarn(cfg *config.Config) time.Duration {
	return max(4*cfg.Duration(config.FollowInterval), time.Minute)
}

// follow judges the follower (docs/status.md): OK while it follows with a
// recent cycle; WARNING when its last cycle is older than followWarn or it
// retries; CRITICAL past followCritical while sync is on; never ran: a
// WARNING where systemd runs its unit, else OK (not supervised here, the
// hourly sync covers); not judged on a promoted machine or with sync off.
func (c *CLI) follow(cfg *config.Config, r *Report, standby bool) {
	dir := cfg.Get(config.StateDir)
	st, ok, err := filestore.ReadFollowState(dir)
	if err != nil {
		r.add("follower", Unknown, "cannot read "+filestore.FollowStateFile(dir)+": "+err.Error())
		return
	}
	fi := &FollowInfo{AgeSeconds: -1, warn: followWarn(cfg)}
	r.Follow = fi
	judged := standby && r.SyncOn
	if !ok {
		fi.State = "never ran"
		h := follower.Detect(context.Background(), &run.Runner{})
		switch {
		case judged && h.Systemd:
			r.add("follower", Warning, "follower never ran: run ot-enable-sync")
		default:
			r.add("follower", OK, "never ran (without systemd it is not started; the hourly sync covers the filestore)")
		}
		return
	}
	fi.State, fi.PID, fi.LastError = st.State, st.PID, st.LastError
	running := st.State != filestore.Stopped && follower.IsFollower(st.PID)
	if st.State != filestore.Stopped && !running {
		fi.State = "not running"
	}
	ref := st.LastCycle
	if !ref.IsZero() {
		t := st.LastCycle
		fi.LastCycle = &t
		fi.AgeSeconds = r.Time.Sub(ref).Seconds()
	} else {
		ref = st.Since
	}
	a := r.Time.Sub(ref)
	fi.Up = running && st.State == filestore.Following && !st.LastCycle.IsZero() && a <= followWarn(cfg)
	text := fmt.Sprintf("%s (pid %d), last cycle %s", fi.State, st.PID, agoText(st.LastCycle, r.Time))
	if st.LastError != "" && st.State == filestore.Retrying {
		text += ": " + st.LastError
	}
	if !judged {
		r.add("follower", OK, text+" (not judged: "+map[bool]string{true: "sync off", false: "promoted"}[standby]+")")
		return
	}
	l := OK
	switch {
	case a > followCritical:
		l = Critical
		text += fmt.Sprintf(": over %s, a failover would lose the attachments since", age(followCritical))
	case a > followWarn(cfg):
		l = Warning
		text += fmt.Sprintf(": late (over %s)", age(followWarn(cfg)))
	case !running:
		l = Warning
		text += ": the follower is not running; run ot-enable-sync"
	case st.State == filestore.Retrying:
		l = Warning
	}
	r.add("follower", l, text)
}

func agoText(t, now time.Time) string {
	if t.IsZero() {
		return "none completed"
	}
	return age(now.Sub(t)) + " ago"
}

// followPerf is the follower's performance data.
func followPerf(r *Report, b *strings.Builder) {
	if r.Follow == nil || r.Follow.AgeSeconds < 0 {
		return
	}
	warn := r.Follow.warn
	fmt.Fprintf(b, " follow_age=%.0fs;%s;%s", r.Follow.AgeSeconds, strconv.FormatFloat(warn.Seconds(), 'f', -1, 64), strconv.FormatFloat(followCritical.Seconds(), 'f', -1, 64))
}

// followMetrics writes the follower's metrics.
func followMetrics(r *Report, metric func(name, help, typ string), value func(name, labels string, v float64)) {
	if r.Follow == nil {
		return
	}
	up := 0.0
	if r.Follow.Up {
		up = 1
	}
	metric("ot_redundancy_follow_up", "1 when the filestore follower runs and its last cycle is recent.", "gauge")
	value("ot_redundancy_follow_up", "", up)
	if r.Follow.AgeSeconds >= 0 {
		metric("ot_redundancy_follow_last_cycle_age_seconds", "Age of the filestore follower's last completed cycle: the file RPO.", "gauge")
		value("ot_redundancy_follow_last_cycle_age_seconds", "", r.Follow.AgeSeconds)
	}
}
