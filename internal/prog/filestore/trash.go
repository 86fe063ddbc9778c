package filestore

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The trash: what a filestore sync removes from the standby (gone on
// production, or replaced there by another type, or a content-addressed
// file production rewrote) is renamed into a dated folder of the trash,
// never deleted; a rename on the same file system, O(1) whatever the
// size. Production's copies that fail their hash are moved aside too, into
// a folder of their own that --restore never reads. Both are pruned after
// TRASH_DAYS.
//
//	<trash>/<stamp>/<db>/<xx>/<sha1>           the standby's files, restorable
//	<trash>/<stamp>.rejected/<db>/<xx>/<sha1>  production's bad copies
//
// <stamp> is the run's start, UTC, as 2006-01-02T15-04-05Z (sortable, no
// colon, so it is also a plain argument to --restore).

// StampFormat names a run's trash folder.
const StampFormat = "2006-01-02T15-04-05Z"

// rejectedSuffix marks the folder of production's bad copies.
const rejectedSuffix = ".rejected"

// Trash is one run's place in the trash.
type Trash struct {
	Root  string // FILESTORE_TRASH
	Stamp string // the run's folder name
}

// TrashRoot is FILESTORE_TRASH, or FILESTORE with .trash appended.
func TrashRoot(configured, filestore string) string {
	if configured != "" {
		return filepath.Clean(configured)
	}
	return filepath.Clean(filestore) + ".trash"
}

// NewTrash is the trash of a run that started at now.
func NewTrash(root string, now time.Time) *Trash {
	return &Trash{Root: root, Stamp: now.UTC().Format(StampFormat)}
}

// Dir is the run's folder of the standby's removed files.
func (t *Trash) Dir() string { return filepath.Join(t.Root, t.Stamp) }

// RejectedDir is the run's folder of production's bad copies.
func (t *Trash) RejectedDir() string { return filepath.Join(t.Root, t.Stamp+rejectedSuffix) }

// Prepare creates the trash (root-only) and checks that it is on the
// filestore's file system, where moving a file into it is a rename.
func (t *Trash) Prepare(filestore string) error {
	if err := os.MkdirAll(t.Root, 0o700); err != nil {
		return err
	}
	var a, b syscall.Stat_t
	if err := syscall.Stat(t.Root, &a); err != nil {
		return err
	}
	if err := syscall.Stat(filestore, &b); err != nil {
		return err
	}
	if a.Dev != b.Dev {
		return fmt.Errorf("%s is not on the file system of %s, so moving a file into it would copy it", t.Root, filestore)
	}
	return nil
}

// move renames filestore/rel to dir/rel, creating dir's folders.
func move(filestore, dir, rel string) error {
	dst := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.Rename(filepath.Join(filestore, rel), dst)
}

// Remove moves the standby's filestore/rel into the run's trash folder.
func (t *Trash) Remove(filestore, rel string) error { return move(filestore, t.Dir(), rel) }

// Reject moves an arrival that failed its hash aside, into the run's
// folder of production's bad copies.
func (t *Trash) Reject(filestore, rel string) error { return move(filestore, t.RejectedDir(), rel) }
