package filestore

import (
	"bufio"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/rsync"
)

// nameSet holds production's file list as 8-byte hashes of the paths:
// 100,000 files take 800 KB. A collision can only make a standby file look
// present on production, so it can only spare a file, never delete one.
type nameSet struct {
	seed maphash.Seed
	h    []uint64
}

func newNameSet() *nameSet { return &nameSet{seed: maphash.MakeSeed()} }

func (s *nameSet) add(p string) { s.h = append(s.h, maphash.String(s.seed, p)) }

// finish sorts the set; has may be called only after.
func (s *nameSet) finish() { slices.Sort(s.h); s.h = slices.Compact(s.h) }

func (s *nameSet) has(p string) bool {
	_, ok := slices.BinarySearch(s.h, maphash.String(s.seed, p))
	return ok
}

// stats counts the items of one rsync pass.
type stats struct {
	entries     int // every item: files, links, directories
	sourceFiles int // production's non-directories
	created     int // non-directories the standby did not have
	changed     int // non-directories updated
	copied      int // non-directories created or updated
	regs, dirs  int // regular files and directories listed

	// rsync's own count of its file list (--info=stats2), which the items
	// read must match before anything is deleted.
	haveCounts         bool
	listRegs, listDirs int
}

// complete reports whether every regular file and directory of rsync's
// file list was read.
func (st *stats) complete() bool {
	return st.haveCounts && st.regs == st.listRegs && st.dirs == st.listDirs
}

func (st *stats) add(set *nameSet, it rsync.Item) {
	if it.Deleting() {
		return
	}
	st.entries++
	set.add(it.Path())
	switch it.Code[1] {
	case 'f':
		st.regs++
	case 'd':
		st.dirs++
	}
	if it.Dir() {
		return
	}
	st.sourceFiles++
	switch {
	case it.New():
		st.created++
		st.copied++
	case it.Changed():
		st.changed++
		st.copied++
	}
}

// tailer reads rsync's log file while rsync writes it, so the file list is
// hashed during the transfer rather than after it, and progress can be shown.
type tailer struct {
	f    *os.File
	done chan struct{}
	end  chan error

	mu    sync.Mutex
	set   *nameSet
	stats stats
}

func newTailer(f *os.File) *tailer {
	t := &tailer{f: f, done: make(chan struct{}), end: make(chan error, 1), set: newNameSet()}
	go func() { t.end <- t.loop() }()
	return t
}

func (t *tailer) loop() error {
	r := bufio.NewReaderSize(t.f, 64<<10)
	var partial []byte
	draining := false
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			partial = append(partial, line...)
			continue
		}
		if err == io.EOF {
			partial = append(partial, line...)
			if draining {
				if len(partial) > 0 {
					t.line(string(partial))
				}
				return nil
			}
			select {
			case <-t.done:
				// rsync has exited: read to the end once more, as it
				// may have written since the last read.
				draining = true
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		if len(partial) > 0 {
			partial = append(partial, line...)
			t.line(string(partial))
			partial = partial[:0]
		} else {
			t.line(string(line))
		}
	}
}

func (t *tailer) line(l string) {
	it, ok := rsync.ParseItem(l)
	if !ok {
		if reg, dir, ok := rsync.FileCounts(l); ok {
			t.mu.Lock()
			t.stats.haveCounts, t.stats.listRegs, t.stats.listDirs = true, reg, dir
			t.mu.Unlock()
		}
		return
	}
	t.mu.Lock()
	t.stats.add(t.set, it)
	t.mu.Unlock()
}

func (t *tailer) progress() (checked, copied int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats.entries, t.stats.copied
}

// finish reads the rest of the log once rsync has exited.
func (t *tailer) finish() error {
	close(t.done)
	return <-t.end
}

// walkResult counts the standby's filestore against production's list.
type walkResult struct {
	files      int // non-directories on the standby
	extraFiles int // of which production has none
	extraDirs  int // directories production has not
	unmatched  int // entries whose names cannot be compared, never deleted
}

// comparable reports whether rsync prints the name as it is: it escapes
// control characters (and, by default, non-ASCII bytes) as \#ooo, and a
// literal "\#" too.
func comparable(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return false
		}
	}
	return !strings.Contains(name, `\#`)
}

// walkFunc walks root and calls extra (when not nil) for every entry that
// production lacks. Our partial directory is neither counted nor compared.
func walkFunc(root string, set *nameSet, extra func(rel string, dir bool)) (walkResult, error) {
	var w walkResult
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := p[len(root)+1:]
		if d.IsDir() && rel == partialDir {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			w.files++
		}
		if !comparable(rel) {
			w.unmatched++
			return nil
		}
		if set.has(rel) {
			return nil
		}
		if d.IsDir() {
			w.extraDirs++
		} else {
			w.extraFiles++
		}
		if extra != nil {
			extra(rel, d.IsDir())
		}
		return nil
	})
	return w, err
}

// remove deletes the standby's entries under root that production lacks:
// files as the walk meets them, directories afterwards, deepest first. A
// directory that still holds something (an entry with an unmatched name)
// stays.
func remove(root string, set *nameSet) (walkResult, error) {
	var dirs []string
	var errs []error
	w, err := walkFunc(root, set, func(rel string, dir bool) {
		p := filepath.Join(root, rel)
		if dir {
			dirs = append(dirs, rel)
			return
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	})
	if err != nil {
		return w, err
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := os.Remove(filepath.Join(root, d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	switch len(errs) {
	case 0:
		return w, nil
	case 1:
		return w, errs[0]
	}
	return w, fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
}
