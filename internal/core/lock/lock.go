// Package lock is the one exclusive lock that every sync and promotion
// takes. It is an flock(2) on a file: the kernel drops it when the holder
// exits, however it exits, so a crashed run never leaves a stale lock. The
// holder's pid is written into the file so that a waiting run can name it.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
)

// HeldError says another process holds the lock.
type HeldError struct {
	Path string
	PID  int // 0 when unknown
	Cmd  string
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("pid %d", e.PID)
		if e.Cmd != "" {
			who += " (" + e.Cmd + ")"
		}
	}
	return fmt.Sprintf("lock %s is held by %s", e.Path, who)
}

// Lock is a held lock.
type Lock struct {
	f      *os.File
	waited bool
}

// Waited tells whether another holder had the lock when Acquire began:
// what that holder did (a promotion) may have changed what was checked
// before taking the lock.
func (l *Lock) Waited() bool { return l.waited }

// Acquire takes the lock at path, waiting up to wait for a holder to finish.
//
// Nobody else may hold, replace or redirect it: its directory must belong
// to us and be writable by nobody else (a 1777 directory such as /run/lock
// would let any user plant a symlink or hold the lock and block every sync
// and the failover), the file is opened without following a symlink, and it
// is mode 0600, so no other user can open it to flock it.
func Acquire(ctx context.Context, path string, wait time.Duration) (*Lock, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := privateDir(dir); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// O_CLOEXEC is Go's default: tools we start never inherit the lock.
	f, err := atomicfile.OpenOwn(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil { // a lock file left by an older version
		f.Close()
		return nil, err
	}
	deadline := time.Now().Add(wait)
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, Holder(path)
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f, waited: waited}, nil
}

// privateDir refuses a directory that another user owns or may write in.
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("directory %s (uid %d, mode %04o) is not private: other users could hold or replace the lock; set LOCK_FILE to a file in a directory only root writes, such as /run/ot-redundancy", dir, st.Uid, fi.Mode().Perm())
	}
	return nil
}

// Holder describes who holds the lock at path, or returns nil when nobody does.
func Holder(path string) *HeldError {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return nil
	}
	e := &HeldError{Path: path}
	data := make([]byte, 32)
	n, _ := f.ReadAt(data, 0)
	e.PID, _ = strconv.Atoi(strings.TrimSpace(string(data[:n])))
	if e.PID > 0 {
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", e.PID)); err == nil {
			e.Cmd = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return e
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}
