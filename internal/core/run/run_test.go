package run

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A dry run prints the plan, pasteable: commands as they would run (the
// master socket shown as a plain command), in-process writes as comments,
// previews run; nothing of the plan runs. A real run runs each step.
func TestApplyPrintsOrRuns(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "touched it")
	did, previewed := 0, 0
	plan := []Step{
		{What: "create a file", Argv: []string{"touch", marker}},
		{What: "write a setting", Show: []string{`KEY="v"`}, Do: func(context.Context) error { did++; return nil }},
		{Argv: []string{"ssh", "-o", "ControlPath=/tmp/sock", "host"}, Do: func(context.Context) error { did++; return nil },
			Preview: func(context.Context) error { previewed++; return nil }},
		{Do: func(context.Context) error { did++; return nil }}, // a report: silent in a dry run
	}
	var out bytes.Buffer
	r := &Runner{DryRun: true, Out: &out, Shown: func(argv []string) []string {
		if argv[0] != "ssh" {
			return argv
		}
		return slices.Replace(slices.Clone(argv), 2, 3, "ControlPath=none")
	}}
	if err := r.Apply(context.Background(), plan...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) || did != 0 {
		t.Fatal("a dry run ran its plan")
	}
	want := "# create a file\ntouch '" + marker + "'\n# write a setting\n#   KEY=\"v\"\nssh -o ControlPath=none host\n"
	if out.String() != want || previewed != 1 {
		t.Fatalf("printed %q (previews %d), want %q", out.String(), previewed, want)
	}
	got, err := r.Query(context.Background(), "echo", "probe")
	if err != nil || string(got) != "probe\n" {
		t.Fatalf("a probe in a dry run: %q %v", got, err)
	}

	out.Reset()
	r.DryRun = false
	if err := r.Apply(context.Background(), plan...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil || did != 3 || previewed != 1 || out.Len() != 0 {
		t.Fatalf("real run: marker %v, did %d, previews %d, printed %q", err, did, previewed, out.String())
	}
}

// Apply stops at the first step that fails.
func TestApplyStopsAtFailure(t *testing.T) {
	ran := false
	err := (&Runner{}).Apply(context.Background(),
		Step{Argv: []string{"false"}},
		Step{Do: func(context.Context) error { ran = true; return nil }})
	if ExitCode(err) != 1 || ran {
		t.Fatalf("err %v, later step ran %v", err, ran)
	}
}

// Output past the limit stops the command and says so; nothing beyond the
// limit is kept.
func TestOutputLimit(t *testing.T) {
	out, err := (&Runner{}).Exec(context.Background(), Step{Argv: []string{"yes"}, MaxOutput: 1 << 20})
	if !errors.Is(err, ErrOutputLimit) || len(out) > 1<<20 {
		t.Fatalf("err %v, kept %d bytes", err, len(out))
	}
	if !strings.Contains(err.Error(), "more than 1 MiB of output") {
		t.Errorf("message %q", err)
	}
}

func TestErrorCarriesArgvStderrAndCode(t *testing.T) {
	r := &Runner{}
	_, err := r.Exec(context.Background(), Step{Argv: []string{"sh", "-c", "echo first >&2; echo 'it broke' >&2; exit 3"}})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v", err, err)
	}
	if e.ExitCode != 3 || ExitCode(err) != 3 {
		t.Errorf("exit code %d", e.ExitCode)
	}
	if !strings.HasPrefix(err.Error(), "it broke: sh -c") {
		t.Errorf("message %q", err.Error())
	}
}

func TestNotFound(t *testing.T) {
	_, err := (&Runner{}).Query(context.Background(), "ot-no-such-tool")
	if err == nil || !strings.Contains(err.Error(), "ot-no-such-tool not found") || !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("got %v", err)
	}
}

// A timeout kills the whole process group: a grandchild that ignores the
// parent's death must not survive.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	start := time.Now()
	_, err := (&Runner{}).Exec(context.Background(), Step{
		Argv:    []string{"sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"},
		Timeout: 300 * time.Millisecond,
	})
	var e *Error
	if !errors.As(err, &e) || !e.TimedOut {
		t.Fatalf("want timeout, got %v", err)
	}
	if time.Since(start) > 7*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	data, _ := os.ReadFile(pidFile)
	var pid int
	for _, c := range strings.TrimSpace(string(data)) {
		pid = pid*10 + int(c-'0')
	}
	if pid == 0 {
		t.Fatal("no pid recorded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCancelKillsStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := (&Runner{}).Exec(ctx, Step{Argv: []string{"sleep", "30"}})
	if err == nil || time.Since(start) > 6*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
}

func TestTail(t *testing.T) {
	tl := &Tail{Max: 4}
	tl.Write([]byte("abc"))
	tl.Write([]byte("defg"))
	if tl.String() != "defg" {
		t.Fatalf("tail %q", tl.String())
	}
}

// A detached step (a service start) returns when the command exits, even
// though the daemon it started keeps its output open, and the daemon lives on.
func TestDetachLeavesDaemonRunning(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	out, err := (&Runner{}).Exec(context.Background(), Step{
		Argv:   []string{"sh", "-c", "sleep 30 & echo $! > " + pidFile + "; echo started"},
		Detach: true,
	})
	if err != nil || string(out) != "started\n" || time.Since(start) > 3*time.Second {
		t.Fatalf("%q %v after %v", out, err, time.Since(start))
	}
	data, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid == 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("daemon %d not running", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	_, err = (&Runner{}).Exec(context.Background(), Step{Argv: []string{"sh", "-c", "echo no such service >&2; exit 1"}, Detach: true})
	if err == nil || !strings.HasPrefix(err.Error(), "no such service: sh -c") {
		t.Fatalf("%v", err)
	}
}

func TestStreamOnlyKeepsNothing(t *testing.T) {
	var seen bytes.Buffer
	r := &Runner{}
	got, err := r.Exec(context.Background(), Step{Argv: []string{"echo", "streamed"}, Stdout: &seen, StreamOnly: true})
	if err != nil || len(got) != 0 || seen.String() != "streamed\n" {
		t.Fatalf("returned %q, streamed %q, err %v", got, seen.String(), err)
	}
	got, err = r.Exec(context.Background(), Step{Argv: []string{"echo", "both"}, Stdout: &seen})
	if err != nil || string(got) != "both\n" || seen.String() != "streamed\nboth\n" {
		t.Fatalf("returned %q, streamed %q, err %v", got, seen.String(), err)
	}
}
