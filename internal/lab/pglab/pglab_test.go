package pglab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPrimaryAndStandby(t *testing.T) {
	p := StartPrimary(t)
	p.Exec(t, "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 10)")
	s := StartStandby(t, p)
	p.Exec(t, "INSERT INTO t VALUES (11)")
	s.WaitReplay(t, p)
	if got := s.Query(t, "SELECT count(*) FROM t"); got != "11" {
		t.Fatalf("standby has %s rows, want 11", got)
	}
	if got := s.Query(t, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("standby pg_is_in_recovery() = %s, want t", got)
	}
	if got := p.Query(t, "SELECT pg_is_in_recovery()"); got != "f" {
		t.Fatalf("primary pg_is_in_recovery() = %s, want f", got)
	}
	p.Stop(t)
}

// TestOptionsRoleAndPromote: checksums and wal_log_hints as asked, the
// replication role's password demanded, a promotion moves to timeline 2.
func TestOptionsRoleAndPromote(t *testing.T) {
	p := StartPrimaryWith(t, Options{Checksums: true, Listen: "127.0.0.42"})
	if got := p.Query(t, "SHOW data_checksums"); got != "on" {
		t.Errorf("data_checksums = %s", got)
	}
	if got := p.Query(t, "SHOW wal_log_hints"); got != "off" {
		t.Errorf("wal_log_hints = %s", got)
	}
	if got := p.Query(t, "SHOW listen_addresses"); got != "127.0.0.1,127.0.0.42" {
		t.Errorf("listen_addresses = %s", got)
	}
	p.AddReplicationRole(t, "replicator", "s3cret")
	psql := filepath.Join(p.BinDir, "psql")
	conn := "host=127.0.0.42 port=" + strconv.Itoa(p.Port) + " user=replicator dbname=postgres"
	if _, err := p.Command(context.Background(), psql, "-X", "-w", "-d", conn, "-c", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("no password, yet: %v", err)
	}
	cmd := exec.Command(psql, "-X", "-w", "-At", "-d", conn+" replication=true", "-c", "IDENTIFY_SYSTEM")
	cmd.Env = append(os.Environ(), "PGPASSWORD=s3cret")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "|1|") {
		t.Errorf("replication with the password: %v\n%s", err, out)
	}

	s := StartStandbyWith(t, p, Options{WalLogHints: true})
	if got := s.Query(t, "SHOW data_checksums"); got != "on" {
		t.Errorf("standby data_checksums = %s", got)
	}
	if got := s.Query(t, "SHOW wal_log_hints"); got != "on" {
		t.Errorf("standby wal_log_hints = %s", got)
	}
	if s.Timeline(t) != 1 {
		t.Errorf("standby timeline %d", s.Timeline(t))
	}
	p.Stop(t)
	s.Promote(t)
	if s.Timeline(t) != 2 {
		t.Errorf("promoted standby on timeline %d, want 2", s.Timeline(t))
	}
	if p.Running() || !s.Running() {
		t.Errorf("running: primary %v, standby %v", p.Running(), s.Running())
	}
}

func TestWalLogHints(t *testing.T) {
	p := StartPrimaryWith(t, Options{WalLogHints: true})
	if got := p.Query(t, "SHOW wal_log_hints"); got != "on" {
		t.Errorf("wal_log_hints = %s", got)
	}
}
