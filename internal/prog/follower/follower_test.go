package follower

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
)

// The test binary doubles as a follower: run with OT_FAKE_FOLLOWER set to
// a file, it waits for SIGTERM and writes "terminated" there. It is started
// under the follower's own command line (argv[0] ot-attachments-sync,
// --follow), so /proc/PID/cmdline reads as a real follower's does.
func TestMain(m *testing.M) {
	if mark := os.Getenv("OT_FAKE_FOLLOWER"); mark != "" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		os.WriteFile(mark, []byte("ready"), 0o600)
		select {
		case <-sig:
			os.WriteFile(mark, []byte("terminated"), 0o600)
			os.Exit(0)
		case <-time.After(time.Minute):
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

func testConfig(t *testing.T, path, stateDir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(path, []byte(`STATE_DIR="`+stateDir+`"`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func dryRun(steps []run.Step) string {
	var b bytes.Buffer
	r := &run.Runner{DryRun: true, Out: &b}
	r.Apply(context.Background(), steps...)
	return b.String()
}

func TestStartSteps(t *testing.T) {
	dir := t.TempDir()
	def := testConfig(t, DefaultConfig, dir)
	other := testConfig(t, filepath.Join(dir, "other.conf"), dir)
	for _, c := range []struct {
		name string
		h    Host
		cfg  *config.Config
		want string
	}{
		{"systemd", Host{Systemd: true, Unit: true}, def, "\nsystemctl enable --now -- ot-attachments-follow.service\n"},
		{"other-config", Host{Systemd: true, Unit: true}, other, "reads /etc/odoo/ot-redundancy-sync.conf, not " + other.Path},
		{"no-unit", Host{Systemd: true}, def, "is not installed"},
		{"no-systemd", Host{}, def, "without systemd nothing would supervise it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := dryRun(StartSteps(c.h, c.cfg, nil))
			if !strings.Contains(out, c.want) {
				t.Errorf("dry run:\n%s\nwant %q", out, c.want)
			}
			if c.name != "systemd" && strings.Contains(out, "systemctl") {
				t.Errorf("dry run runs systemctl:\n%s", out)
			}
			// Every line is a comment or a command: pasteable.
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "systemctl ") {
					t.Errorf("not pasteable: %q", l)
				}
			}
		})
	}
	var said string
	steps := StartSteps(Host{}, def, func(f string, a ...any) { said = f })
	if err := (&run.Runner{}).Apply(context.Background(), steps...); err != nil || !strings.HasPrefix(said, "note: ") {
		t.Errorf("without systemd the real run said %q (%v)", said, err)
	}
}

func TestStopStepsPlan(t *testing.T) {
	dir := t.TempDir()
	def := testConfig(t, DefaultConfig, dir)
	out := dryRun(StopSteps(Host{Systemd: true, Unit: true}, def))
	if out != "# disable and stop the filestore follower (ot-attachments-follow.service): it must not start again\n"+
		"systemctl disable --now -- ot-attachments-follow.service\n" {
		t.Errorf("systemd, no follower running:\n%s", out)
	}
	if out := dryRun(StopSteps(Host{}, def)); out != "" {
		t.Errorf("no systemd, no follower: %q", out)
	}
	other := testConfig(t, filepath.Join(dir, "x.conf"), dir)
	if out := dryRun(StopSteps(Host{Systemd: true, Unit: true}, other)); out != "" {
		t.Errorf("another configuration's run stops the unit: %q", out)
	}
	// A stale state file (a pid that is gone) plans nothing.
	filestore.WriteFollowState(dir, filestore.FollowState{PID: 999999999, State: filestore.Following})
	if out := dryRun(StopSteps(Host{}, def)); out != "" {
		t.Errorf("a dead follower is stopped: %q", out)
	}
}

func TestFollowerCmdline(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"/usr/bin/ot-attachments-sync\x00--follow\x00--cron\x00":                          true,
		"ot-attachment-sync\x00--cron\x00--follow\x00":                                    true,
		"/usr/libexec/ot-redundancy/ot-redundancy\x00ot-attachments-sync\x00--follow\x00": true,
		"/usr/bin/ot-attachments-sync\x00--cron\x00":                                      false, // the hourly run
		"/usr/bin/ot-sync-from-source\x00--follow\x00":                                    false,
		"/tmp/ot-attachments-syncx\x00--follow\x00":                                       false,
		"sleep\x00600\x00": false,
		"/usr/bin/ot-attachments-sync\x00--\x00--follow\x00": false,
		"": false,
	} {
		if got := FollowerCmdline([]byte(cmdline)); got != want {
			t.Errorf("FollowerCmdline(%q) = %v, want %v", cmdline, got, want)
		}
	}
}

// startFake starts the test binary as a follower; it returns the process
// and the file it writes "terminated" to on SIGTERM.
func startFake(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	mark := filepath.Join(t.TempDir(), "mark")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Args = append([]string{"ot-attachments-sync"}, args...)
	cmd.Env = append(os.Environ(), "OT_FAKE_FOLLOWER="+mark)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 200; i++ {
		if b, _ := os.ReadFile(mark); len(b) > 0 {
			return cmd, mark
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("the fake follower did not start")
	return nil, ""
}

// Without systemd, StopSteps signal the follower that the state file names
// and wait for it; a process that is not a follower is left alone.
func TestStopWithoutSystemd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, DefaultConfig, dir)

	cmd, mark := startFake(t, "--follow", "--cron")
	pid := cmd.Process.Pid
	// Not reaped until the cleanup: once it exits it is a zombie, which
	// counts as gone.
	if err := filestore.WriteFollowState(dir, filestore.FollowState{PID: pid, State: filestore.Following, Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if !IsFollower(pid) || Running(dir) != pid {
		t.Fatalf("pid %d is not seen as the follower", pid)
	}
	steps := StopSteps(Host{}, cfg)
	out := dryRun(steps)
	if !strings.Contains(out, "\nkill -TERM "+strconv.Itoa(pid)+"\n") {
		t.Errorf("dry run:\n%s", out)
	}
	if b, _ := os.ReadFile(mark); string(b) != "ready" {
		t.Fatalf("the dry run signalled the follower: %q", b)
	}
	start := time.Now()
	if err := (&run.Runner{}).Apply(context.Background(), steps...); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(mark); string(b) != "terminated" {
		t.Errorf("the follower did not get SIGTERM: %q", b)
	}
	if IsFollower(pid) {
		t.Errorf("Stop returned while pid %d still runs", pid)
	}
	t.Logf("stopped in %s", time.Since(start))

	// Not ours: a sleep, and our own program without --follow (an hourly
	// run), each named in the state file: neither is signalled.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	hourly, hourlyMark := startFake(t, "--cron")
	for _, p := range []int{sleep.Process.Pid, hourly.Process.Pid} {
		filestore.WriteFollowState(dir, filestore.FollowState{PID: p, State: filestore.Retrying})
		steps := StopSteps(Host{}, cfg)
		if len(steps) != 0 {
			t.Errorf("pid %d, not a follower, gets a stop step: %s", p, dryRun(steps))
		}
		if err := Stop(context.Background(), dir, time.Second); err != nil {
			t.Error(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("sleep was signalled: %v", err)
	}
	if b, _ := os.ReadFile(hourlyMark); string(b) != "ready" {
		t.Errorf("the run without --follow was signalled: %q", b)
	}
}

func TestLossWindow(t *testing.T) {
	dir := t.TempDir()
	stamp := func(t time.Time) string { return t.UTC().Format("15:04:05") }
	hourly := time.Date(2026, 12, 5, 10, 17, 0, 0, time.UTC)
	if got := LossWindow(dir, hourly).Text(stamp); !strings.Contains(got, "after 10:17:00") || !strings.Contains(got, "the follower never ran") {
		t.Errorf("never ran: %s", got)
	}
	if got := LossWindow(dir, time.Time{}).Text(stamp); !strings.HasPrefix(got, "unknown") {
		t.Errorf("nothing ever ran: %s", got)
	}
	covered := hourly.Add(40*time.Minute + 15*time.Second)
	filestore.WriteFollowState(dir, filestore.FollowState{State: filestore.Stopped, Covered: covered, LastCycle: covered.Add(2 * time.Second)})
	if got := LossWindow(dir, hourly).Text(stamp); got != "attachments stored on production after 10:57:15 may be missing (the follower's last completed cycle)" {
		t.Errorf("follower: %s", got)
	}
	if w := LossWindow(dir, covered.Add(time.Hour)); w.Follower || !w.Ran {
		t.Errorf("a later hourly sync: %+v", w)
	}
}
