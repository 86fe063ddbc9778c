package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
// filestore's file system, where moving a file into it is a rename. A
// filestore not created yet (a first sync) is checked by its parent.
func (t *Trash) Prepare(filestore string) error {
	if err := os.MkdirAll(t.Root, 0o700); err != nil {
		return err
	}
	var a, b syscall.Stat_t
	if err := syscall.Stat(t.Root, &a); err != nil {
		return err
	}
	err := syscall.Stat(filestore, &b)
	if errors.Is(err, fs.ErrNotExist) {
		err = syscall.Stat(filepath.Dir(filestore), &b)
	}
	if err != nil {
		return err
	}
	if a.Dev != b.Dev {
		return fmt.Errorf("%s is not on the file system of %s, so moving a file into it would copy it", t.Root, filestore)
	}
	return nil
}

// move renames from/rel to to/rel, creating to's folders (with mode perm),
// and never replaces what is at to/rel already (fs.ErrExist). Both sides
// are reached through an os.Root: no symlink or ".." in rel leads out of
// from or to (the filestore is writable by Odoo's user, who must not steer
// what root moves), and the last component itself is renamed, never
// followed.
func move(from, to, rel string, perm os.FileMode) error {
	src, err := os.OpenRoot(from)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	dst, err := os.OpenRoot(to)
	if err != nil {
		return err
	}
	defer dst.Close()
	return moveIn(src, dst, rel, perm)
}

// moveIn is move between two open roots.
func moveIn(src, dst *os.Root, rel string, perm os.FileMode) error {
	dir, base := filepath.Split(rel)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("%s: not a file name", rel)
	}
	if dir == "" {
		dir = "."
	}
	sd, err := src.Open(dir)
	if err != nil {
		return err
	}
	defer sd.Close()
	if err := dst.MkdirAll(dir, perm); err != nil {
		return err
	}
	dd, err := dst.Open(dir)
	if err != nil {
		return err
	}
	defer dd.Close()
	err = unix.Renameat2(int(sd.Fd()), base, int(dd.Fd()), base, unix.RENAME_NOREPLACE)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(src.Name(), rel), New: filepath.Join(dst.Name(), rel), Err: err}
	}
	return nil
}

// Remove moves the standby's filestore/rel into the run's trash folder.
func (t *Trash) Remove(filestore, rel string) error { return move(filestore, t.Dir(), rel, 0o700) }

// Reject moves an arrival that failed its hash aside, into the run's
// folder of production's bad copies.
func (t *Trash) Reject(filestore, rel string) error {
	return move(filestore, t.RejectedDir(), rel, 0o700)
}

// Unremove puts back into filestore/rel the standby's file that this run
// moved into its trash folder (rsync's backup of a file it replaced), when
// nothing is at filestore/rel.
func (t *Trash) Unremove(filestore, rel string) error {
	return move(t.Dir(), filestore, rel, 0o755)
}

// TrashFolder is one dated folder of the trash.
type TrashFolder struct {
	Name     string    // the folder's name: a stamp, or a stamp with .rejected
	Time     time.Time // the run's start, read from the name
	Rejected bool      // production's bad copies, not the standby's files
}

// Folders lists the trash's dated folders, oldest first; other names are
// left out. A missing trash has none.
func Folders(root string) ([]TrashFolder, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []TrashFolder
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		stamp, rejected := strings.CutSuffix(e.Name(), rejectedSuffix)
		t, err := time.Parse(StampFormat, stamp)
		if err != nil {
			continue
		}
		out = append(out, TrashFolder{Name: e.Name(), Time: t, Rejected: rejected})
	}
	slices.SortFunc(out, func(a, b TrashFolder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Prune removes the trash's dated folders (the standby's files and
// production's rejected copies) of runs older than days before now, by the
// stamp in their names; days <= 0 keeps everything. It returns the folders
// removed.
func Prune(root string, days int, now time.Time) ([]string, error) {
	if days <= 0 {
		return nil, nil
	}
	folders, err := Folders(root)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-time.Duration(days) * 24 * time.Hour)
	var gone []string
	for _, f := range folders {
		if !f.Time.Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, f.Name)); err != nil {
			return gone, err
		}
		gone = append(gone, f.Name)
	}
	return gone, nil
}
