package filestore

import (
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A file created on production arrives within two intervals; SIGTERM
// stops the follower with exit 0 and the state stopped.
func TestFollowArrives(t *testing.T) {
	l := newLab(t, nil)
	l.extra = map[string]string{"FOLLOW_INTERVAL": "1", "STATE_DIR": filepath.Join(l.state, "lib")}
	l.p.WriteConfig(t, l.conf, l.config())
	casFill(t, l.prod, "db1", 0, 5)
	cmd := l.command("--follow")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait := func(rel string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(l.standby, rel)); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s did not arrive", rel)
	}
	names := casFill(t, l.prod, "db1", 10, 1)
	wait(names[0])
	names = casFill(t, l.prod, "newdb", 0, 1)
	start := time.Now()
	wait(names[0])
	t.Logf("a new database's file arrived in %s", time.Since(start))
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	st, ok, err := ReadFollowState(filepath.Join(l.state, "lib"))
	if !ok || err != nil || st.State != Stopped || st.Cycles == 0 || st.Copied < 2 || st.Rejected != 0 {
		t.Fatalf("state %+v %v %v", st, ok, err)
	}
}

// casFill writes n attachments named by the SHA-1 of their content, as Odoo does.
func casFill(t testing.TB, dir, db string, from, n int) []string {
	t.Helper()
	var names []string
	for i := from; i < from+n; i++ {
		data := []byte(fmt.Sprintf("%s attachment %d\n", db, i))
		sum := fmt.Sprintf("%x", sha1.Sum(data))
		rel := filepath.Join(db, sum[:2], sum)
		os.MkdirAll(filepath.Join(dir, db, sum[:2]), 0o755)
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, rel)
	}
	return names
}

// SYNCMODE turned off, then PROMOTED=yes: the follower stops with exit 0,
// state stopped; it refuses to start on a promoted machine (exit 5).
func TestFollowStops(t *testing.T) {
	l := newLab(t, nil)
	dir := filepath.Join(l.state, "lib")
	l.extra = map[string]string{"FOLLOW_INTERVAL": "1", "STATE_DIR": dir}
	l.p.WriteConfig(t, l.conf, l.config())
	casFill(t, l.prod, "db1", 0, 2)
	for _, key := range []string{"SYNCMODE", "PROMOTED"} {
		l.extra = map[string]string{"FOLLOW_INTERVAL": "1", "STATE_DIR": dir}
		l.p.WriteConfig(t, l.conf, l.config())
		cmd := l.command("--follow")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		l.extra[key] = map[string]string{"SYNCMODE": "off", "PROMOTED": "yes"}[key]
		l.p.WriteConfig(t, l.conf, l.config())
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s: the follower did not stop", key)
		}
		st, _, _ := ReadFollowState(dir)
		if code := cmd.ProcessState.ExitCode(); code != 0 || st.State != Stopped {
			t.Fatalf("%s: exit %d, state %q; want 0, stopped", key, code, st.State)
		}
	}
	if r := l.run(t, "--follow"); r.code != 5 {
		t.Errorf("start on a promoted machine: %+v; want exit 5", r)
	}
}
