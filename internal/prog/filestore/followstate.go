package filestore

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
)

// The follower (ot-attachments-sync --follow) tells ot-status and the
// failover where it stands through a small file in STATE_DIR, rewritten
// whole after every change of state and every completed cycle.

// Follower states.
const (
	Following = "following" // cycles complete
	Retrying  = "retrying"  // production unreachable or a cycle failed; backing off
	Stopped   = "stopped"   // the follower exited (disabled sync, promotion, a signal)
)

// FollowState is the follower's state file.
type FollowState struct {
	PID       int       `json:"pid"`
	State     string    `json:"state"`                // Following, Retrying or Stopped
	Since     time.Time `json:"since"`                // when State began
	LastCycle time.Time `json:"last_cycle,omitempty"` // when the last completed cycle ended (standby's clock)
	// Covered is the standby-clock time up to which every attachment
	// production had is on the standby: the start of the last completed
	// cycle's listing. A failover loses at most what production stored
	// after it.
	Covered   time.Time `json:"covered,omitempty"`
	LastError string    `json:"last_error,omitempty"` // why the last cycle failed, while Retrying
	Cycles    int64     `json:"cycles"`               // completed cycles since the follower started
	Copied    int64     `json:"copied"`               // files copied since the follower started
	// Rejected counts the arrivals that failed their hash and were moved
	// into the trash's .rejected folder, since the follower started.
	Rejected int64 `json:"rejected,omitempty"`
	// ProductionCovered is Covered by production's own clock (Unix
	// seconds): the next start of the follower lists what changed on
	// production since then (less a margin), when Source is still SYNCSRC.
	ProductionCovered int64  `json:"production_covered,omitempty"`
	Source            string `json:"source,omitempty"` // the SYNCSRC that ProductionCovered was read from
}

// FollowStateFile is the follower's state file in dir (STATE_DIR).
func FollowStateFile(dir string) string { return filepath.Join(dir, "follow.json") }

// ReadFollowState reads the follower's state; ok is false when the
// follower never ran.
func ReadFollowState(dir string) (st FollowState, ok bool, err error) {
	b, err := os.ReadFile(FollowStateFile(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	return st, true, json.Unmarshal(b, &st)
}

// WriteFollowState replaces the state file whole.
func WriteFollowState(dir string, st FollowState) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(FollowStateFile(dir), append(b, '\n'), 0o600)
}
