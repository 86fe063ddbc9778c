package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
)

// The transfer names what it brings: --out-format prints one line per item
// rsync created or changed, its change code and its name, after a mark
// that sets it apart from rsync's other output:
//
//	ot-arrived: >f+++++++++ db1/ab/ab34...
//
// A regular file received under a content-addressed name is hashed once,
// after the transfer (verify); an entry of another type that rsync created
// may have replaced a standby file, which rsync's --backup then moved into
// the run's trash folder (replaced). A run that changes nothing prints no
// such line, and the standby's files are never re-read.

// arrivalMark starts each --out-format line.
const arrivalMark = "ot-arrived: "

var arrivalBytes = []byte(arrivalMark)

// arrivalFormat is the transfer's --out-format.
func arrivalFormat() string { return "--out-format=" + arrivalMark + rsync.ItemFormat }

// arrivals is what pending keeps of the --out-format lines.
type arrivals struct {
	// casNames are the content-addressed regular files received, each
	// followed by '\n' (names in that layout are 45 to 300 bytes of
	// printable ASCII, never escaped): about 60 bytes per file.
	casNames []byte
	cas      int
	// made are the entries of another type (directory, symlink) that rsync
	// created, unescaped, the first maxKept of them.
	made     []string
	madeMore bool
}

// arrived reads one --out-format line.
func (p *pending) arrived(line string) {
	it, ok := rsync.ParseItem(strings.TrimPrefix(line, arrivalMark))
	if !ok || it.Deleting() {
		return
	}
	if it.Code[0] == '>' && it.Code[1] == 'f' {
		if _, ok := ContentName(it.Name); ok {
			p.casNames = append(p.casNames, it.Name...)
			p.casNames = append(p.casNames, '\n')
			p.cas++
		}
		return
	}
	if it.New() && it.Code[1] != 'f' {
		// Past the first kilobyte of rsync's line the reading may be wrong (see
		// unescape): at worst one replaced entry is not counted.
		rel, _ := unescape(it.Path(), len(arrivalMark)+12)
		if !local(rel) {
			return
		}
		if len(p.made) < maxKept {
			p.made = append(p.made, rel)
		} else {
			p.madeMore = true
		}
	}
}

// casArrivals lists the content-addressed files received.
func (a *arrivals) casArrivals() []string {
	names := make([]string, 0, a.cas)
	for b := a.casNames; len(b) > 0; {
		i := bytes.IndexByte(b, '\n')
		names = append(names, string(b[:i]))
		b = b[i+1:]
	}
	return names
}

// replaced counts the standby's files that production replaced by an entry
// of another type in this transfer: rsync moved each into the run's trash
// folder (--backup) before creating production's entry. One lstat per
// created non-file entry, only when the run's trash folder exists.
func (a *arrivals) replaced(t *Trash) (n int, names []string) {
	if _, err := os.Lstat(t.Dir()); err != nil {
		return 0, nil
	}
	for _, rel := range a.made {
		fi, err := os.Lstat(filepath.Join(t.Dir(), rel))
		if err == nil && !fi.IsDir() {
			n++
			if len(names) < firstNames {
				names = append(names, rel)
			}
		}
	}
	return n, names
}

// firstNames is how many names a message or the state file shows.
const firstNames = 5

// verified is what the hashing of the arrivals found.
type verified struct {
	Checked  int      // content-addressed files hashed
	Rejected []string // those whose content does not match their name, moved aside
	Restored int      // of those, the standby's own copies put back
}

// verify hashes every content-addressed file the transfer brought, once.
// One whose content does not match its name is moved aside into the run's
// folder of rejected copies, and the standby's copy that rsync moved into
// the run's trash folder to make room for it (when it had one) is renamed
// back: a content-addressed file on the standby is never replaced by
// content that does not match its name, and production's bad copy is kept
// for inspection. A file that cannot be read fails the run.
func verify(root string, t *Trash, names []string) (verified, error) {
	v := verified{Checked: len(names)}
	if len(names) == 0 {
		return v, nil
	}
	var (
		mu   sync.Mutex
		bad  []string
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan string)
	for range max(2, runtime.NumCPU()) {
		wg.Go(func() {
			for rel := range work {
				sum, _ := ContentName(rel)
				ok, err := Matches(filepath.Join(root, rel), sum)
				mu.Lock()
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					errs = append(errs, err)
				case !ok:
					bad = append(bad, rel)
				}
				mu.Unlock()
			}
		})
	}
	for _, rel := range names {
		work <- rel
	}
	close(work)
	wg.Wait()
	slices.Sort(bad)
	for _, rel := range bad {
		if err := t.Reject(root, rel); err != nil {
			errs = append(errs, err)
			continue
		}
		v.Rejected = append(v.Rejected, rel)
		switch err := t.Unremove(root, rel); {
		case err == nil:
			v.Restored++
		case !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return v, fmt.Errorf("verifying the files that arrived: %w", firstOf(errs))
	}
	return v, nil
}

// removeEntries moves the entries rsync named into the run's trash folder:
// files and symlinks by rename (O(1), the trash is on the filestore's file
// system), then directories, deepest first, removed once empty (their files
// are in the trash). Everything goes through an os.Root, so no path can
// lead out of the filestore, even through a symlink; an entry whose type
// changed since rsync named it (production's new entry took its place) is
// kept.
func removeEntries(root string, t *Trash, entries []entry) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := os.MkdirAll(t.Dir(), 0o700); err != nil {
		return err
	}
	tr, err := os.OpenRoot(t.Dir())
	if err != nil {
		return err
	}
	defer tr.Close()
	var errs []error
	fail := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	var dirs []entry
	for _, e := range entries {
		if e.dir() {
			dirs = append(dirs, e)
		} else {
			fail(removeSame(r, tr, e))
		}
	}
	slices.SortFunc(dirs, func(a, b entry) int { return strings.Count(b.rel, "/") - strings.Count(a.rel, "/") })
	for _, d := range dirs {
		fail(removeSame(r, tr, d))
	}
	return firstOf(errs)
}

// removeSame moves e into the trash (a directory: removes it, empty) if it
// is still of the type rsync saw.
func removeSame(r, trash *os.Root, e entry) error {
	fi, err := r.Lstat(e.rel)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Mode&syscall.S_IFMT != e.mode&syscall.S_IFMT {
		return nil
	}
	if e.dir() {
		return r.Remove(e.rel)
	}
	return moveIn(r, trash, e.rel, 0o700)
}
