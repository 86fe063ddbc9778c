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
func Acquire(ctx context.Context, path string, wait time.Duration) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// O_CLOEXEC is Go's default: tools we start never inherit the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
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

// Holder describes who holds the lock at path, or returns nil when nobody does.
func Holder(path string) *HeldError {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return nil
	}
	e := &HeldError{Path: path}
	data, _ := os.ReadFile(path)
	e.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
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
