package enablestandby

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// TestCycle is the full cycle A -> B -> A. A is production, B its
// standby. A stops; B is promoted with ot-disable-standby-mode; A comes
// back as B's standby with this command, through a replication slot on B.
// Then the failover back goes wrong: A is promoted while B still runs and
// takes one more order (a split brain). B comes back as A's standby: its
// Odoo, still serving, is refused, then fenced with --force; its order is
// counted as lost; the rewind brings A's settings, whose slot (A's, on B)
// is reset. In the end A is the primary, B streams from A, and each
// machine's sync from the other worked.
func TestCycle(t *testing.T) {
	l := newLab(t, labOptions{walLogHints: true})
	a, b := l.a, l.b
	a.setKeys(t, map[string]string{"REPLICATION_SLOT": "standby_a"})
	b.setKeys(t, map[string]string{"SYNCMODE": "on"})

	// A stops; B takes over. A's sshd stays up in the lab: --force.
	a.pg.Stop(t)
	mustRun(t, l, b, "ot-disable-standby-mode", "--yes", "--force")
	if !b.odooUp() || b.pg.Timeline(t) != 2 {
		t.Fatalf("B is not production: Odoo up %v, timeline %d", b.odooUp(), b.pg.Timeline(t))
	}
	l.sql(t, b, "INSERT INTO sale_order VALUES (401, 'taken on B as production')")

	// A comes back as B's standby: it wrote nothing after B took over, so
	// pg_rewind has nothing to rewind and only makes it a standby.
	res := mustRun(t, l, a, prog, "--yes")
	if !strings.Contains(res.stdout, "pg_rewind -R makes it a standby (nothing to rewind)") {
		t.Errorf("A's method:\n%s", res.stdout)
	}
	if !a.streamsFrom(t) {
		t.Fatal("A does not stream from B")
	}
	if got := b.pg.Query(t, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_a'"); got != "t" {
		t.Errorf("slot standby_a on B active: %q", got)
	}
	if got := a.pg.Query(t, "SHOW primary_slot_name"); got != "standby_a" {
		t.Errorf("A's primary_slot_name %q", got)
	}
	assertSynced(t, a, "odoo-addons-b")

	// The failover back goes wrong: A is promoted while B still runs.
	a.waitCaughtUp(t)
	mustRun(t, l, a, "ot-disable-standby-mode", "--yes", "--force")
	if a.pg.Timeline(t) != 3 || !a.odooUp() {
		t.Fatalf("A is not production: timeline %d, Odoo up %v", a.pg.Timeline(t), a.odooUp())
	}
	l.sql(t, b, "INSERT INTO sale_order VALUES (402, 'lost on B')")
	l.sql(t, a, "INSERT INTO sale_order VALUES (403, 'taken on A as production again')")
	// A project deployed on A as production: B's first full sync brings it.
	prodlab.WriteFile(t, filepath.Join(a.share, "odoo-addons-deployed-on-a", "mod", "__init__.py"), "# deployed on A\n")

	// B's Odoo still serves: refused; with --force it is fenced.
	res = l.run(t, b, prog, "--yes")
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "its Odoo answers at "+b.url) {
		t.Fatalf("B's Odoo serves, yet:\n%s", res)
	}
	res = mustRun(t, l, b, prog, "--yes", "--force")
	for _, want := range []string{"running as a PRIMARY on timeline 2", "parted from production:  timeline 2 at ", "1 committed transaction ("} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("B's run lacks %q", want)
		}
	}
	if !b.streamsFrom(t) {
		t.Fatal("B does not stream from A")
	}
	if got := b.pg.Query(t, "SHOW primary_slot_name"); got != "" {
		t.Errorf("B's primary_slot_name %q: A's slot setting came with the rewind and stayed", got)
	}
	if b.odooUp() || l.enabledAtBoot(b) || !a.odooUp() || !l.enabledAtBoot(a) {
		t.Errorf("Odoo: B up %v enabled %v, A up %v enabled %v", b.odooUp(), l.enabledAtBoot(b), a.odooUp(), l.enabledAtBoot(a))
	}

	// A is the primary, B its standby: A's writes reach B, B's lost order
	// is gone, and B's own sync runs as cron runs it.
	l.sql(t, a, "INSERT INTO sale_order VALUES (404, 'after the cycle')")
	b.waitCaughtUp(t)
	if got, want := l.orders(t, b), l.orders(t, a); got != want || strings.Contains(got, "lost on B") || !strings.Contains(got, "404 after the cycle") {
		t.Errorf("B's orders:\n%s\nA's:\n%s", got, want)
	}
	if a.pg.Query(t, "SELECT pg_is_in_recovery()") != "f" || b.pg.Query(t, "SELECT pg_is_in_recovery()") != "t" {
		t.Error("A is not the primary, or B not the standby")
	}
	assertSynced(t, b, "odoo-addons-deployed-on-a")
	mustRun(t, l, b, "ot-sync-from-source")
	if cfg := a.config(t); !cfg.Promoted() || cfg.SyncOn() {
		t.Errorf("A's configuration: PROMOTED=%v SYNCMODE=%s", cfg.Promoted(), cfg.Get(config.SyncMode))
	}
}

func mustRun(t *testing.T, l *lab, m *server, program string, args ...string) result {
	t.Helper()
	res := l.run(t, m, program, args...)
	if res.code != 0 {
		t.Fatalf("%s on %s failed:\n%s", program, m.name, res)
	}
	return res
}

// assertSynced checks that m syncs from the other machine again: PROMOTED
// cleared, sync on, the other's projects here, a full sync stamped.
func assertSynced(t *testing.T, m *server, project string) {
	t.Helper()
	cfg := m.config(t)
	if cfg.Promoted() || !cfg.SyncOn() {
		t.Errorf("%s: PROMOTED=%v SYNCMODE=%s", m.name, cfg.Promoted(), cfg.Get(config.SyncMode))
	}
	if !prodlab.Exists(filepath.Join(m.share, project)) {
		t.Errorf("%s: no %s: the full sync did not run", m.name, project)
	}
	if last, err := summary.Last(cfg.Get(config.SummaryFile)); err != nil || last["ot-sync-from-source"].IsZero() {
		t.Errorf("%s: summary %v, %v", m.name, last, err)
	}
}
