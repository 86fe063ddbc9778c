package pglab

import "testing"

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
