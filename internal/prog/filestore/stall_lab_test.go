package filestore

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// remoteRsync finds production's rsync serving a path: its cmdline holds
// --server and the path (production's processes are visible from the host).
func remoteRsync(path string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "rsync" && bytes.Contains(b, []byte("--server")) && bytes.Contains(b, []byte("--sender")) && bytes.Contains(b, []byte(path)) {
			return pid
		}
	}
	return 0
}

// A remote rsync frozen with the connection alive (SIGSTOP) ends the run
// after STALL_TIMEOUT: exit 1 naming the stall, nothing deleted, the lock
// free for the next run.
func TestStalledRemoteRsync(t *testing.T) {
	l := newLab(t, map[string]string{"STALL_TIMEOUT": "3", "RSYNC_BWLIMIT": "4096"})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	for i := range 8 {
		p := filepath.Join(l.prod, "db1", "aa", "big"+strconv.Itoa(i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, big, 0o644)
	}
	fill(t, l.prod, "db1", 0, 60, 100)
	fill(t, l.standby, "db1", 0, 60, 100)
	writeFile(t, filepath.Join(l.standby, "db1", "ff", "gone"), 10, 0o644)

	cmd := l.command()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("production's rsync did not start in 30s")
		}
		pid = remoteRsync(l.standby)
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGKILL)
	stopped := time.Now()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the run did not end within 60s of the stall")
	}
	t.Logf("ended %v after the SIGSTOP: %s", time.Since(stopped), strings.TrimSpace(errb.String()))
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(errb.String(), "made no progress for 3s (STALL_TIMEOUT) and was stopped, nothing was deleted") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !prodlab.Exists(filepath.Join(l.standby, "db1", "ff", "gone")) || l.summaryLines(t) != 0 {
		t.Fatal("a deletion was applied or a summary line written")
	}
	// The frozen rsync is production's (still stopped); none of ours is left.
	out, _ := exec.Command("pgrep", "-f", "^(rsync|ssh) .*"+l.standby).Output()
	for _, f := range strings.Fields(string(out)) {
		if f != strconv.Itoa(pid) {
			t.Errorf("rsync or ssh still runs on the standby: pid %s", f)
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGCONT)
	l.extra = map[string]string{"STALL_TIMEOUT": "3"}
	l.p.WriteConfig(t, l.conf, l.config())
	if r := l.run(t); r.code != 0 {
		t.Fatalf("the next run: %+v", r)
	}
}
