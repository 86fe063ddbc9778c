package pg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Control is what a data directory's control file says (pg_controldata),
// readable whether the server runs or not.
type Control struct {
	SystemID    string // the cluster's identity: copies made by pg_basebackup share it
	State       string // "shut down", "shut down in recovery", "in production", "in archive recovery", ...
	TLI         int    // the latest checkpoint's timeline
	Checkpoint  LSN    // the latest checkpoint's location
	Checksums   bool   // data page checksums are on
	WalLogHints bool   // wal_log_hints was on
	SegmentSize int64  // bytes per WAL segment
}

// ReadControl runs pg_controldata on the cluster's data directory as its
// user (in the C locale, so its labels are the English ones).
func (c *Cluster) ReadControl(ctx context.Context, r *run.Runner) (*Control, error) {
	out, err := r.Exec(ctx, run.Step{Argv: c.As(c.Bin("pg_controldata"), "-D", c.Data), Dir: "/", Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("reading the control file of PostgreSQL %s: %w", c, err)
	}
	return ParseControl(out)
}

// ParseControl reads pg_controldata's output.
func ParseControl(out []byte) (*Control, error) {
	v := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, val, ok := strings.Cut(line, ":")
		if ok {
			v[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	c := &Control{SystemID: v["Database system identifier"], State: v["Database cluster state"],
		Checksums:   v["Data page checksum version"] != "" && v["Data page checksum version"] != "0",
		WalLogHints: v["wal_log_hints setting"] == "on"}
	var err error
	if c.TLI, err = strconv.Atoi(v["Latest checkpoint's TimeLineID"]); err != nil {
		return nil, fmt.Errorf("pg_controldata: no timeline in its output")
	}
	if c.Checkpoint, err = ParseLSN(v["Latest checkpoint location"]); err != nil {
		return nil, fmt.Errorf("pg_controldata: %v", err)
	}
	if c.SegmentSize, err = strconv.ParseInt(v["Bytes per WAL segment"], 10, 64); err != nil || c.SegmentSize <= 0 {
		return nil, fmt.Errorf("pg_controldata: no WAL segment size in its output")
	}
	if c.SystemID == "" || c.State == "" {
		return nil, fmt.Errorf("pg_controldata: unexpected output")
	}
	return c, nil
}

// InRecovery reports whether the control file shows a standby: a server
// in recovery, or one shut down while in recovery.
func (c *Control) InRecovery() bool {
	return c.State == "in archive recovery" || c.State == "shut down in recovery"
}

// CleanlyStopped reports whether the server was shut down cleanly (a
// crashed one says "in production" or "in archive recovery" while down).
func (c *Control) CleanlyStopped() bool {
	return c.State == "shut down" || c.State == "shut down in recovery"
}

// Rewindable reports whether pg_rewind can work on this data directory:
// it needs every hint-bit change logged, by checksums or wal_log_hints.
func (c *Control) Rewindable() bool { return c.Checksums || c.WalLogHints }

// StandbySignal reports whether the data directory holds standby.signal:
// the server starts, or started, as a standby.
func (c *Cluster) StandbySignal() bool {
	_, err := os.Lstat(filepath.Join(c.Data, "standby.signal"))
	return err == nil
}
