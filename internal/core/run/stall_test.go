package run

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a slow writer (TestMain-free helper pattern):
// OT_RUN_TEST_WRITER=<file>:<bytes>:<times> appends that many bytes to
// the file every 200 ms, writing nothing to stdout.
func TestMain(m *testing.M) {
	if spec := os.Getenv("OT_RUN_TEST_WRITER"); spec != "" {
		f := strings.Split(spec, ":")
		n, _ := strconv.Atoi(f[1])
		times, _ := strconv.Atoi(f[2])
		out, err := os.OpenFile(f[0], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			os.Exit(3)
		}
		for range times {
			out.Write(make([]byte, n))
			time.Sleep(200 * time.Millisecond)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A command that makes no progress is stopped after Stall, its whole group
// with it (a grandchild too), long before its deadline, and says so.
func TestStallStopsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	_, err := (&Runner{}).Exec(context.Background(), Step{
		Argv:    []string{"sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"},
		Stall:   time.Second,
		Timeout: time.Minute,
	})
	took := time.Since(start)
	var e *Error
	if !errors.As(err, &e) || !e.Stalled || e.TimedOut || e.Stall != time.Second {
		t.Fatalf("want a stall, got %#v", err)
	}
	if took < time.Second || took > 10*time.Second {
		t.Errorf("stopped after %v, want about 1s", took)
	}
	if !strings.Contains(err.Error(), "no progress for 1s") || !strings.Contains(Brief(err), "no progress for 1s") {
		t.Errorf("error %q, brief %q", err, Brief(err))
	}
	data, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid == 0 {
		t.Fatal("no pid recorded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive after the stall", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A command that keeps making progress runs to its end, however much longer
// than Stall it takes: output on stdout (items), or bytes moved by its
// processes (here written to a file, nothing on stdout).
func TestProgressIsNoStall(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name string
		argv []string
		env  []string
	}{
		{"output", []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick $i; sleep 0.25; done"}, nil},
		{"bytes", []string{os.Args[0]}, []string{"OT_RUN_TEST_WRITER=" + file + ":65536:15"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, err := (&Runner{}).Exec(context.Background(), Step{Argv: tc.argv, Env: tc.env, Stall: time.Second})
			if err != nil {
				t.Fatalf("stopped after %v: %v", time.Since(start), err)
			}
			if time.Since(start) < 2500*time.Millisecond {
				t.Fatalf("ended after %v, before it could show a stall", time.Since(start))
			}
			if tc.name == "output" && !strings.Contains(string(out), "tick 12") {
				t.Errorf("output %q", out)
			}
		})
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() != 15*65536 {
		t.Errorf("the writer did not finish: %v %v", fi, err)
	}
}

// A trickle below the floor is no progress: rsync's keep-alives to a
// frozen sender (a few bytes a minute) must not keep a stalled run alive.
func TestTrickleIsStall(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	start := time.Now()
	_, err := (&Runner{}).Exec(context.Background(), Step{
		Argv:  []string{os.Args[0]},
		Env:   []string{"OT_RUN_TEST_WRITER=" + file + ":4:50"}, // 10 s of keep-alives
		Stall: time.Second,
	})
	var e *Error
	if !errors.As(err, &e) || !e.Stalled {
		t.Fatalf("want a stall, got %v", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("stopped after %v, want about 1s", took)
	}
}
