package lock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSecondAcquireWaitsThenNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ot.lock")
	l, err := Acquire(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Acquire(context.Background(), path, 300*time.Millisecond)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("want HeldError, got %v", err)
	}
	if held.PID != os.Getpid() || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("holder %d after %v", held.PID, time.Since(start))
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("message %q", err)
	}
	l.Release()
	l2, err := Acquire(context.Background(), path, 0)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
	if Holder(path) != nil {
		t.Fatal("holder reported after release")
	}
}

func TestWaiterGetsLockWhenHolderReleases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ot.lock")
	l, _ := Acquire(context.Background(), path, 0)
	if l.Waited() {
		t.Error("a free lock reports a wait")
	}
	go func() { time.Sleep(200 * time.Millisecond); l.Release() }()
	l2, err := Acquire(context.Background(), path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !l2.Waited() {
		t.Error("a lock taken after its holder released reports no wait")
	}
	l2.Release()
}

// A holder killed with SIGKILL leaves no stale lock behind.
func TestCrashedHolderLeavesNoLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ot.lock")
	cmd := exec.Command("flock", "-x", "-o", path, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal("flock(1):", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for Holder(path) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if Holder(path) == nil {
		t.Fatal("flock(1) never took the lock")
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(context.Background(), path, time.Second)
	if err != nil {
		t.Fatalf("lock stale after holder died: %v", err)
	}
	l.Release()
}

// No other user can hold or redirect the lock: a directory others may
// write in is refused, a symlink at the path is never followed, and the
// file is mode 0600 (nobody else can open it to flock it).
func TestLockIsPrivate(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, 0o1777)
	if _, err := Acquire(context.Background(), filepath.Join(shared, "lock"), 0); err == nil || !strings.Contains(err.Error(), "is not private") {
		t.Fatalf("a 1777 directory: %v", err)
	}
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me\n"), 0o644)
	os.Symlink(victim, filepath.Join(dir, "link"))
	if _, err := Acquire(context.Background(), filepath.Join(dir, "link"), 0); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	path := filepath.Join(dir, "lock")
	os.WriteFile(path, nil, 0o644) // left by an older version
	l, err := Acquire(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock mode %04o, want 0600", fi.Mode().Perm())
	}
}
