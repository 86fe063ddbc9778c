package filestore

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
)

// Odoo stores an attachment as <db>/<xx>/<sha1>, where <sha1> is the SHA-1
// of the content in lower-case hex and <xx> its first two digits. Such a
// file is written once and never modified: a changed attachment is a new
// file. The sync relies on it: a standby file with such a name is never
// overwritten, and an arriving one is kept only when its content hashes to
// its name.

// ContentName returns the SHA-1 a filestore-relative path names, and whether
// the path is in the content-addressed layout at all.
func ContentName(rel string) (sum string, ok bool) {
	db, rest, ok1 := cut(rel)
	bucket, name, ok2 := cut(rest)
	if !ok1 || !ok2 || db == "" || len(bucket) != 2 || len(name) != 40 || name[:2] != bucket {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return name, true
}

func cut(s string) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Matches reports whether the file at path holds content whose SHA-1 is
// sum: one read of the file.
func Matches(path, sum string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == sum, nil
}

// State is what the last full filestore sync found, kept in STATE_DIR for
// ot-status: production's files whose content does not match their name.
type State struct {
	Time       time.Time `json:"time"`       // when the sync that wrote it ended
	Mismatches int       `json:"mismatches"` // production's content-addressed files that failed their hash
	First      []string  `json:"first"`      // the first few of them, filestore-relative
}

// StateFile is the sync's state file in dir (STATE_DIR).
func StateFile(dir string) string { return filepath.Join(dir, "filestore.json") }

// ReadState reads the state the last sync left; a missing file is the zero
// State and no error.
func ReadState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(StateFile(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// WriteState replaces the state file whole (root-only, like STATE_DIR).
func WriteState(dir string, st State) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(StateFile(dir), append(b, '\n'), 0o600)
}
