package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/pglab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestChooseDebianCluster(t *testing.T) {
	b, err := os.ReadFile("testdata/pg_lsclusters.json")
	if err != nil {
		t.Fatal(err)
	}
	list, err := ParseClusters(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Choose(list, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != "15/main" || !c.Online || c.Port != 5432 || c.BinDir != "/usr/lib/postgresql/15/bin" {
		t.Errorf("chose %+v, want the online 15/main standby", c)
	}
	c, err = Choose(list, "13/old")
	if err != nil || c.String() != "13/old" || c.Online {
		t.Fatalf("PG_CLUSTER=13/old chose %+v, %v", c, err)
	}
	if err := c.CheckVersion(); err != nil {
		t.Errorf("13 refused: %v", err)
	}
	if _, err := Choose(list, "14/main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown PG_CLUSTER: got %v, want ErrNotFound", err)
	}
	list[1].Recovery = 0
	if _, err := Choose(list, ""); err == nil || !strings.Contains(err.Error(), "set PG_CLUSTER") {
		t.Errorf("two clusters, none in recovery: got %v, want a hint to set PG_CLUSTER", err)
	}
}

func TestParseClustersText(t *testing.T) {
	out := "11 main 5432 online,recovery postgres /var/lib/postgresql/11/main /var/log/postgresql/postgresql-11-main.log\n"
	list, err := ParseClustersText([]byte(out), "/run/pg")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Choose(list, "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Online || c.Host != "/run/pg" || list[0].Recovery != 1 {
		t.Errorf("got %+v", c)
	}
	if err := c.CheckVersion(); err == nil || !strings.Contains(err.Error(), "older than 12") {
		t.Errorf("PostgreSQL 11 accepted: %v", err)
	}
}

func TestParseStatus(t *testing.T) {
	s, err := parseStatus("t|f|1700000000.5|1|streaming|127.0.0.1|5432|0/3000060|0/3000060|1700000010.5")
	if err != nil {
		t.Fatal(err)
	}
	if !s.InRecovery || s.ReplayPaused || s.Lag != 10*time.Second || s.SenderPort != 5432 || s.Timeline != 1 {
		t.Errorf("got %+v", s)
	}
	s, _ = parseStatus("t|t||1||||||1700000010")
	if !s.ReplayPaused || !s.LastReplay.IsZero() || s.Lag != 0 || s.ReceiverStatus != "" {
		t.Errorf("got %+v", s)
	}
	if _, err := parseStatus("t"); err == nil {
		t.Error("short status accepted")
	}
}

// labConfig points at a lab cluster, as a site without Debian's
// postgresql-common would (PG_DATA, PG_BINDIR, ...).
func labConfig(t testing.TB, c *pglab.Cluster) Options {
	return Options{Data: c.Data, BinDir: c.BinDir, Host: c.Socket, Port: c.Port, OSUser: c.OSUser}
}

func TestStandbyStatusAndPromotion(t *testing.T) {
	ctx := context.Background()
	p := pglab.StartPrimary(t)
	p.Exec(t, "CREATE TABLE t (n int)")
	s := pglab.StartStandby(t, p)
	p.Exec(t, "INSERT INTO t VALUES (1)")
	s.WaitReplay(t, p)

	r := &run.Runner{}
	cfg := labConfig(t, s)
	c, err := Find(ctx, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Online || c.Version != "15" || c.Debian {
		t.Fatalf("found %+v", c)
	}
	if err := c.CheckVersion(); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(ctx, c.Via(r))
	if err != nil {
		t.Fatal(err)
	}
	if !st.InRecovery || st.ReceiverStatus != "streaming" || st.SenderPort != p.Port || st.Timeline != 1 || st.LastReplay.IsZero() {
		t.Fatalf("standby status %+v", st)
	}
	if st.Lag > time.Minute {
		t.Errorf("lag %v, want seconds", st.Lag)
	}
	if prim, _, err := LocalIsPrimary(ctx, &run.Runner{}, cfg); err != nil || prim {
		t.Fatalf("LocalIsPrimary on a standby = %v, %v", prim, err)
	}

	sess, err := c.Open(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.Query(ctx, "SELECT * FROM no_such_table"); err == nil || !strings.Contains(err.Error(), `relation "no_such_table" does not exist`) {
		t.Errorf("a failing query: %v", err)
	}
	if _, err := sess.Query(ctx, "CREATE TABLE u (n int)"); err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("a write on a standby: %v", err)
	}
	p.Stop(t)
	out, err := sess.Query(ctx, PromoteSQL(30*time.Second))
	if err != nil || out != "t" {
		t.Fatalf("promote: %q, %v", out, err)
	}
	st, err = ReadStatus(ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	if st.InRecovery || st.Timeline != 2 {
		t.Fatalf("after promotion: %+v, want out of recovery on timeline 2", st)
	}
	if prim, _, err := LocalIsPrimary(ctx, &run.Runner{}, cfg); err != nil || !prim {
		t.Fatalf("LocalIsPrimary on a promoted standby = %v, %v", prim, err)
	}
	s.Exec(t, "INSERT INTO t VALUES (2)")
	if got := s.Query(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM t"); got != "1,2" {
		t.Errorf("rows after promotion: %s, want 1,2", got)
	}

	// A stopped cluster is found, offline, and is not taken for a primary;
	// the session says psql stopped.
	s.Stop(t)
	if _, err := sess.Query(ctx, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "psql stopped") {
		t.Errorf("query after the server stopped: %v", err)
	}
	c, err = Find(ctx, r, cfg)
	if err != nil || c.Online {
		t.Fatalf("stopped cluster: %+v, %v", c, err)
	}
	if prim, _, err := LocalIsPrimary(ctx, &run.Runner{}, cfg); err != nil || prim {
		t.Fatalf("LocalIsPrimary on a stopped cluster = %v, %v", prim, err)
	}
}

func TestPromoteWithPgCtl(t *testing.T) {
	ctx := context.Background()
	p := pglab.StartPrimary(t)
	s := pglab.StartStandby(t, p)
	p.Kill(t)
	r := &run.Runner{}
	c, err := Find(ctx, r, labConfig(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Exec(ctx, c.PromoteCtlStep(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(ctx, c.Via(r))
	if err != nil {
		t.Fatal(err)
	}
	if st.InRecovery || st.Timeline != 2 {
		t.Fatalf("after pg_ctl promote: %+v", st)
	}
}

func TestNoClusterConfigured(t *testing.T) {
	cfg := Options{Data: "/nonexistent/data"}
	if _, err := Find(context.Background(), &run.Runner{}, cfg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if prim, _, err := LocalIsPrimary(context.Background(), &run.Runner{}, cfg); err != nil || prim {
		t.Fatalf("LocalIsPrimary = %v, %v; want false, nil", prim, err)
	}
}

// TestDebianCluster runs the Debian path for real: a lab standby registered
// as cluster 15/lab in a private postgresql-common configuration root
// (PG_CLUSTER_CONF_ROOT), found by pg_lsclusters, promoted by pg_ctlcluster.
func TestDebianCluster(t *testing.T) {
	pglab.Require(t)
	for _, tool := range []string{"pg_lsclusters", "pg_ctlcluster"} {
		if _, err := exec.LookPath(tool); err != nil {
			prodlab.Missing(t, "integration test needs "+tool)
		}
	}
	ctx := context.Background()
	p := pglab.StartPrimary(t)
	s := pglab.StartStandby(t, p)
	root := t.TempDir()
	confDir := filepath.Join(root, "15", "lab")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("data_directory = '%s'\nport = %d\nunix_socket_directories = '%s'\n", s.Data, s.Port, s.Socket)
	if err := os.WriteFile(filepath.Join(confDir, "postgresql.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PG_CLUSTER_CONF_ROOT", root)

	cfg := Options{Cluster: "15/lab", Host: "/var/run/postgresql", Port: 5432, OSUser: "postgres"}
	r := &run.Runner{}
	c, err := Find(ctx, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != "15/lab" || !c.Debian || !c.Online || c.Port != s.Port || c.Host != s.Socket || c.Data != s.Data {
		t.Fatalf("found %+v", c)
	}
	st, err := ReadStatus(ctx, c.Via(r))
	if err != nil || !st.InRecovery {
		t.Fatalf("status %+v, %v", st, err)
	}
	p.Stop(t)
	step := c.PromoteCtlStep(30 * time.Second)
	if strings.Join(step.Argv, " ") != "pg_ctlcluster 15 lab promote" {
		t.Errorf("fallback promotion: %q", step.Argv)
	}
	if _, err := r.Exec(ctx, step); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		prim, _, err := LocalIsPrimary(ctx, &run.Runner{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if prim {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pg_ctlcluster promote: still in recovery after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
