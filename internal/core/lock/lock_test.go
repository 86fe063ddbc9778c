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
