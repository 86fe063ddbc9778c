package filestore

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ot-disable-sync stops a running follower (SIGTERM: exit 0, state
// stopped), and a follower started again afterwards, as its unit or a
// supervisor would, exits 0 at once without following: it never restarts
// while sync is off.
func TestDisableSyncStopsFollower(t *testing.T) {
	l := newLab(t, nil)
	dir := filepath.Join(l.state, "lib")
	l.extra = map[string]string{"FOLLOW_INTERVAL": "1", "STATE_DIR": dir}
	l.p.WriteConfig(t, l.conf, l.config())
	disable := filepath.Join(filepath.Dir(binary), "ot-disable-sync")
	if build := exec.Command("go", "build", "-o", disable, "../../../cmd/ot-disable-sync"); build.Run() != nil {
		t.Fatal("building ot-disable-sync failed")
	}
	casFill(t, l.prod, "db1", 0, 3)

	follower := l.command("--follow", "--cron")
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { follower.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _, _ := ReadFollowState(dir)
		if st.State == Following && st.Cycles > 0 && st.PID == follower.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			follower.Process.Kill()
			t.Fatalf("the follower did not complete a cycle: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var out bytes.Buffer
	cmd := exec.Command(disable, "--config", l.conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("ot-disable-sync: %v: %s", err, out.String())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		follower.Process.Kill()
		t.Fatalf("ot-disable-sync returned while the follower still runs: %s", out.String())
	}
	st, _, _ := ReadFollowState(dir)
	if code := follower.ProcessState.ExitCode(); code != 0 || st.State != Stopped {
		t.Fatalf("follower: exit %d, state %q; want 0, stopped", code, st.State)
	}
	if conf, _ := os.ReadFile(l.conf); !strings.Contains(string(conf), `SYNCMODE="off"`) {
		t.Fatalf("SYNCMODE is not off:\n%s", conf)
	}

	// Started again (Restart=, a reboot, a supervisor): it exits 0 in
	// silence, follows nothing, and the state stays stopped.
	casFill(t, l.prod, "db1", 10, 1)
	again := l.run(t, "--follow", "--cron")
	if again.code != 0 || again.stdout != "" || again.stderr != "" {
		t.Fatalf("follower started with sync off: %+v; want exit 0, no output", again)
	}
	if st2, _, _ := ReadFollowState(dir); st2.State != Stopped || st2.PID != st.PID || st2.Cycles != st.Cycles {
		t.Fatalf("the state changed: %+v, was %+v", st2, st)
	}
	if again := l.run(t, "--follow"); again.code != 4 {
		t.Fatalf("follower started by hand with sync off: %+v; want exit 4", again)
	}
}
