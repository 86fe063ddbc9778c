package enablestandby

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

// Phases of a rebuild, as the journal records them.
const (
	phaseStarted   = "started"    // PostgreSQL was stopped for the rebuild
	phaseRewinding = "rewinding"  // pg_rewind ran: the data directory may be half rewound
	phaseBackingUp = "backing-up" // pg_basebackup writes DATA.ot-basebackup
	phaseSwapping  = "swapping"   // the complete copy replaces DATA: DATA -> Old, copy -> DATA
	phaseSwapped   = "swapped"    // DATA is the copy, the old one is at Old
)

// journal records, across runs, a rebuild of this machine's PostgreSQL in
// progress, so that a run interrupted anywhere (Ctrl-C, a crash, a power
// cut) is continued safely by the next: a half-done pg_rewind leaves a data
// directory that only a base backup can replace, and a swap cut between
// its two renames must be finished, not started again. It lives in
// BACKUP_DIR (root's, persistent) and is removed once the standby streams.
type journal struct {
	Data    string    `json:"data"`  // the data directory being rebuilt
	Phase   string    `json:"phase"` // one of the phases above
	Kept    string    `json:"kept"`  // BACKUP_DIR/<time>-enable-standby: what this rebuild keeps
	Old     string    `json:"old,omitempty"`
	Keep    bool      `json:"keep_old,omitempty"` // --keep-old-data, as the swapping run was told
	Started time.Time `json:"started"`

	path string
}

func journalPath(cfg *config.Config) string {
	return filepath.Join(cfg.Get(config.BackupDir), prog+".journal")
}

// readJournal returns the journal, or nil when no rebuild is in progress.
func readJournal(cfg *config.Config) (*journal, error) {
	path := journalPath(cfg)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j := &journal{path: path}
	if err := json.Unmarshal(b, j); err != nil || j.Data == "" || j.Kept == "" {
		return nil, fmt.Errorf("%s is not a journal of %s; move it aside if no rebuild is in progress", path, prog)
	}
	return j, nil
}

// set records a phase (and the old data directory, for a swap).
func (j *journal) set(phase string) error {
	j.Phase = phase
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(j.path, append(b, '\n'), 0o600)
}

// done removes the journal: the rebuild is over.
func (j *journal) done() error {
	err := os.Remove(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
