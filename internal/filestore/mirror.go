package filestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/run"
)

// nameSet holds production's file list as 8-byte hashes of the paths:
// 100,000 files take 800 KB. A collision can only make a standby file look
// present on production, so it can only spare a file, never delete one.
type nameSet struct {
	seed maphash.Seed
	h    []uint64
	idx  []uint32 // idx[k] is the first i with h[i]>>48 >= k (after finish)
}

func newNameSet() *nameSet { return &nameSet{seed: maphash.MakeSeed()} }

func (s *nameSet) hash(p string) uint64 { return maphash.String(s.seed, p) }

func (s *nameSet) add(p []byte) { s.h = append(s.h, maphash.Bytes(s.seed, p)) }

// finish sorts the set and indexes it by the hashes' top 16 bits, so that a
// lookup searches the few hashes sharing them instead of the whole list;
// has may be called only after.
func (s *nameSet) finish() {
	slices.Sort(s.h)
	s.h = slices.Compact(s.h)
	s.idx = make([]uint32, 1<<16+1)
	i := 0
	for k := range s.idx {
		for i < len(s.h) && s.h[i]>>48 < uint64(k) {
			i++
		}
		s.idx[k] = uint32(i)
	}
}

func (s *nameSet) has(h uint64) bool {
	lo, hi := s.idx[h>>48], s.idx[h>>48+1]
	_, ok := slices.BinarySearch(s.h[lo:hi], h)
	return ok
}

// stream runs argv (production's listing) and calls rec for each
// sep-terminated record of its output as it arrives. Not through the
// runner, which keeps a command's whole output in memory: this one grows
// with the filestore. Like the runner, it runs the command in its own
// process group, killed on deadline or interrupt.
func stream(ctx context.Context, timeout time.Duration, argv []string, sep byte, rec func([]byte)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	stderr := &run.Tail{Max: 8 << 10}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return &run.Error{Argv: argv, ExitCode: -1, Err: err}
	}
	r := bufio.NewReaderSize(out, 64<<10)
	var long []byte // a record longer than the buffer
	var readErr error
	for {
		b, err := r.ReadSlice(sep)
		if err == bufio.ErrBufferFull {
			long = append(long, b...)
			continue
		}
		if err != nil {
			if err != io.EOF {
				readErr = err
			}
			break // a last record without its separator is incomplete: dropped
		}
		if long != nil {
			rec(append(long, b[:len(b)-1]...))
			long = nil
		} else {
			rec(b[:len(b)-1])
		}
	}
	err = cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err == nil {
		err = readErr
	}
	if err == nil {
		return nil
	}
	e := &run.Error{Argv: argv, Stderr: stderr.String(), ExitCode: -1, Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		e.ExitCode = exitErr.ExitCode()
	}
	e.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	return e
}

// walkResult counts the standby's filestore against production's list.
type walkResult struct {
	files      int // non-directories on the standby
	extraFiles int // of which production has none
	extraDirs  int // directories production has not
}

// walkFunc walks root and calls extra (when not nil) for every entry that
// production lacks.
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
		if !d.IsDir() {
			w.files++
		}
		if set.has(set.hash(rel)) {
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

// entry is one path under the standby's filestore.
type entry struct {
	rel string
	dir bool
	h   uint64 // the path's hash in production's nameSet
}

// compared is the standby's filestore against production's list.
type compared struct {
	walkResult
	extras   []entry // what production lacks, parents before children
	overflow bool    // more than maxKept: extras is incomplete
}

// walkAhead is how many standby entries the walk may read before
// production's list is complete (about 70 bytes each); maxKept is how many
// names of entries to delete are kept (beyond, the deletion walks again).
// Both bound our memory whatever the filestore's size.
var (
	walkAhead = 1 << 16
	maxKept   = 1 << 16
)

// errStopped ends a walk whose result is no longer wanted.
var errStopped = errors.New("stopped")

// compare walks the standby's root while list reads production's: the two
// take about as long, so doing them at once halves this step. The walk's
// entries wait in a bounded queue until production's list is complete.
// An error from list is returned as is; a walk error is a *fs.PathError.
func compare(root string, set *nameSet, list func() error) (compared, error) {
	queue := make(chan entry, walkAhead)
	stop := make(chan struct{})
	walked := make(chan error, 1)
	go func() {
		defer close(queue)
		walked <- filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err
			}
			rel := p[len(root)+1:]
			select {
			case queue <- entry{rel, d.IsDir(), set.hash(rel)}:
				return nil
			case <-stop:
				return errStopped
			}
		})
	}()
	if err := list(); err != nil {
		close(stop)
		for range queue { // the walk ends at its next entry
		}
		return compared{}, err
	}
	var c compared
	for e := range queue {
		if !e.dir {
			c.files++
		}
		if set.has(e.h) {
			continue
		}
		if e.dir {
			c.extraDirs++
		} else {
			c.extraFiles++
		}
		if len(c.extras) < maxKept {
			c.extras = append(c.extras, e)
		} else {
			c.overflow = true
		}
	}
	if err := <-walked; err != nil {
		return compared{}, err
	}
	return c, nil
}

// unlinkers is how many files are deleted at once: an unlink mostly waits
// for the file system (freeing the file's blocks), so a few in parallel
// finish sooner than one after the other.
const unlinkers = 4

// removeEntries deletes the standby's entries production lacks: files by
// a few workers at once, then directories, deepest first.
func removeEntries(root string, extras []entry) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	files := make(chan string)
	for range unlinkers {
		wg.Go(func() {
			for p := range files {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	var dirs []string
	for _, e := range extras {
		if e.dir {
			dirs = append(dirs, e.rel)
		} else {
			files <- filepath.Join(root, e.rel)
		}
	}
	close(files)
	wg.Wait()
	return firstOf(append(errs, removeDirs(root, dirs)...))
}

// removeDirs removes directories deepest first, so a parent is empty when
// its turn comes.
func removeDirs(root string, dirs []string) (errs []error) {
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := os.Remove(filepath.Join(root, d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errs
}

// remove deletes the standby's entries under root that production lacks:
// files as the walk meets them, directories afterwards, deepest first.
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
	return w, firstOf(append(errs, removeDirs(root, dirs)...))
}

// firstOf is errs as one error that names the first and counts the rest:
// a thousand failed unlinks make one readable line.
func firstOf(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
}
