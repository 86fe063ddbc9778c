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
}

func newNameSet() *nameSet { return &nameSet{seed: maphash.MakeSeed()} }

func (s *nameSet) add(p string) { s.h = append(s.h, maphash.String(s.seed, p)) }

// finish sorts the set; has may be called only after.
func (s *nameSet) finish() { slices.Sort(s.h); s.h = slices.Compact(s.h) }

func (s *nameSet) has(p string) bool {
	_, ok := slices.BinarySearch(s.h, maphash.String(s.seed, p))
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
