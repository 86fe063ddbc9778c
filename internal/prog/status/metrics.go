package status

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
)

// writeMetrics writes the report as node_exporter textfile metrics.
func writeMetrics(path string, r *Report) error {
	var b strings.Builder
	metric := func(name, help, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	value := func(name, labels string, v float64) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(&b, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'f', -1, 64))
	}
	bool01 := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	metric("ot_redundancy_status", "Overall status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", "gauge")
	value("ot_redundancy_status", "", float64(r.Status))
	metric("ot_redundancy_promoted", "1 when this machine was promoted to production.", "gauge")
	value("ot_redundancy_promoted", "", bool01(r.Role == "promoted"))
	metric("ot_redundancy_sync_enabled", "1 when SYNCMODE is on.", "gauge")
	value("ot_redundancy_sync_enabled", "", bool01(r.SyncOn))
	metric("ot_redundancy_last_success_timestamp_seconds", "Last success of each command, from the summary file (absent: never).", "gauge")
	for _, s := range r.Syncs {
		if s.Last != nil {
			value("ot_redundancy_last_success_timestamp_seconds", label("command", s.Command), float64(s.Last.Unix()))
		}
	}
	if r.Postgres != nil {
		metric("ot_redundancy_postgres_in_recovery", "1 when the local PostgreSQL is a standby in recovery.", "gauge")
		value("ot_redundancy_postgres_in_recovery", "", bool01(r.Postgres.InRecovery))
		metric("ot_redundancy_replay_lag_seconds", "Replay lag of the local PostgreSQL standby (0 when caught up).", "gauge")
		value("ot_redundancy_replay_lag_seconds", "", r.Postgres.ReplayLagSeconds)
	}
	followMetrics(r, metric, value)
	metric("ot_redundancy_run_in_progress", "1 when an ot-* run holds the lock.", "gauge")
	value("ot_redundancy_run_in_progress", "", bool01(r.Running != nil))
	if len(r.Databases) > 0 {
		metric("ot_redundancy_attachments", "Stored files each Odoo database references.", "gauge")
		for _, d := range r.Databases {
			value("ot_redundancy_attachments", label("database", d.Name), float64(d.Attachments))
		}
		metric("ot_redundancy_missing_attachments", "Referenced files missing from the standby's filestore.", "gauge")
		for _, d := range r.Databases {
			value("ot_redundancy_missing_attachments", label("database", d.Name), float64(d.Missing))
		}
		metric("ot_redundancy_corrupt_attachments", "Stored files whose sha1 does not match their name (--verify-filestore).", "gauge")
		for _, d := range r.Databases {
			value("ot_redundancy_corrupt_attachments", label("database", d.Name), float64(len(d.Corrupt)))
		}
	}
	mismatchMetrics(r, metric, value)
	if r.Drift != nil && r.Drift.Error == "" {
		metric("ot_redundancy_drift_items", "Differences between production and standby, per kind (--drift).", "gauge")
		for _, k := range r.Drift.Kinds {
			if k.Error == "" {
				value("ot_redundancy_drift_items", label("kind", k.Kind), float64(k.count()))
			}
		}
	}
	return atomicfile.Write(path, []byte(b.String()), 0o644)
}

func label(name, v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return name + `="` + r.Replace(v) + `"`
}
