package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// tb lets the demo use the test labs (internal/lab/prodlab, internal/lab/pglab),
// which take a testing.TB: a failure panics with fatal, and main runs the
// registered cleanups, newest first, before it exits. Only the methods the
// labs call are implemented; the embedded nil TB panics on any other.
type tb struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	once     sync.Once
}

// fatal is what a lab's t.Fatalf panics with.
type fatal struct{ msg string }

func (t *tb) Helper()      {}
func (t *tb) Name() string { return "ot-demo" }
func (t *tb) Failed() bool { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *tb) fail()        { t.mu.Lock(); t.failed = true; t.mu.Unlock() }

func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *tb) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
}

func (t *tb) Errorf(format string, args ...any) { t.fail(); t.Logf(format, args...) }
func (t *tb) Fatalf(format string, args ...any) { t.fail(); panic(fatal{fmt.Sprintf(format, args...)}) }
func (t *tb) Fatal(args ...any)                 { t.fail(); panic(fatal{fmt.Sprint(args...)}) }
func (t *tb) Skip(args ...any)                  { t.fail(); panic(fatal{"cannot run: " + fmt.Sprint(args...)}) }
func (t *tb) Skipf(format string, args ...any) {
	t.fail()
	panic(fatal{"cannot run: " + fmt.Sprintf(format, args...)})
}

func (t *tb) TempDir() string {
	dir, err := os.MkdirTemp("", "ot-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cleanup runs the cleanups once, newest first, each protected from the
// others' failures.
func (t *tb) cleanup() {
	t.once.Do(func() {
		t.mu.Lock()
		fs := t.cleanups
		t.mu.Unlock()
		for i := len(fs) - 1; i >= 0; i-- {
			func() {
				defer func() {
					if r := recover(); r != nil {
						fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", r)
					}
				}()
				fs[i]()
			}()
		}
	})
}
