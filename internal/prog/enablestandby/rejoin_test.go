package enablestandby

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// TestRejoinWithRewind is the split brain: B was promoted while A kept
// taking orders. On A, the command rewinds A to B's timeline, says what A
// loses (its three orders, with their times) and keeps its WAL, and makes
// A a streaming standby of B, synced and green.
func TestRejoinWithRewind(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a, b := l.a, l.b
	confBefore := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.conf"))

	res := l.run(t, a, prog, "--yes")
	if res.code != 0 {
		t.Fatalf("rejoin failed:\n%s", res)
	}
	for _, want := range []string{"running as a PRIMARY on timeline 1", "parted from production:  timeline 1 at ",
		"lost by the rebuild:", "3 committed transactions", "method:", "pg_rewind", "Plan:", "[1/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	// A streams from B, on B's timeline, with B's data and not its own.
	if !a.streamsFrom(t) {
		t.Fatal("A does not stream from B")
	}
	a.waitCaughtUp(t)
	if got, want := l.orders(t, a), l.orders(t, b); got != want {
		t.Errorf("A's orders differ from B's:\n%s\n---\n%s", got, want)
	}
	if got := l.orders(t, a); strings.Contains(got, "lost on A") || !strings.Contains(got, "301 taken on B") {
		t.Errorf("A's orders:\n%s", got)
	}
	if tl := a.pg.Timeline(t); tl != 2 {
		t.Errorf("A replays timeline %d, want 2", tl)
	}
	// Its own configuration stays (its port), and the password is only in
	// the file PostgreSQL's user reads.
	if got := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.conf")); got != confBefore {
		t.Errorf("A's postgresql.conf changed")
	}
	auto := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.auto.conf"))
	passfile := filepath.Join(filepath.Dir(a.pg.Data), "ot-redundancy-replication.pgpass")
	if !strings.Contains(auto, "passfile=''"+passfile+"''") || !strings.Contains(auto, "host=''"+b.prod.Addr+"''") && !strings.Contains(auto, "host="+b.prod.Addr) {
		t.Errorf("postgresql.auto.conf:\n%s", auto)
	}
	fi, err := os.Stat(passfile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the standby's password file: %v %v", fi, err)
	}
	assertNoPassword(t, l, a, res)

	// What was lost is stated, with its time range, and its WAL kept.
	rep := a.report(t)
	for _, want := range []string{"RESULT: this machine is a streaming standby of " + b.prod.Addr, "method:", "pg_rewind",
		"3 committed transactions (", "written after timeline 1 at ", "its WAL kept in", "streaming:", "after the command started",
		"ot-status: OK", "fenced", "first full sync:", "ok (ot-sync-from-source)"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	kept := a.kept(t)
	commits := prodlab.ReadFile(t, filepath.Join(kept, "diverged-commits.txt"))
	if n := strings.Count(commits, "desc: COMMIT "); n != 3 {
		t.Errorf("%d commits listed, want 3:\n%s", n, commits)
	}
	segs, _ := filepath.Glob(filepath.Join(kept, "diverged-wal", "000000010000000000000*"))
	if len(segs) == 0 {
		t.Error("no WAL segment kept")
	}
	if l := loadLost(kept); l == nil || l.Commits != 3 || l.First.IsZero() || l.Last.Before(l.First) {
		t.Errorf("lost.json: %+v", l)
	}
	if prodlab.Exists(a.journal()) {
		t.Error("the journal is left")
	}

	// Odoo fenced; sync on towards B, and the first full sync brought B's
	// files and projects.
	if l.enabledAtBoot(a) {
		t.Error("A's Odoo is still enabled at boot")
	}
	cfg := a.config(t)
	if cfg.Get(config.SyncMode) != "on" || cfg.Promoted() {
		t.Errorf("SYNCMODE=%s PROMOTED=%s", cfg.Get(config.SyncMode), cfg.Get(config.Promoted))
	}
	if !prodlab.Exists(filepath.Join(a.share, "odoo-addons-b")) {
		t.Error("the full sync did not bring B's projects")
	}
	last, err := summary.Last(cfg.Get(config.SummaryFile))
	if err != nil || last["ot-sync-from-source"].IsZero() || last[prog].IsZero() || last["ot-attachments-sync"].IsZero() {
		t.Errorf("summary: %v %v", last, err)
	}

	// Run again: already a standby, nothing asked, nothing rebuilt.
	res = l.run(t, a, prog)
	if res.code != 0 || !strings.Contains(res.stdout, "already streams from production") || strings.Contains(res.stdout, "pg_rewind") {
		t.Fatalf("second run:\n%s", res)
	}
}

// assertNoPassword checks that the replication password appears in no
// output, report, log, configuration or plan of the run.
func assertNoPassword(t *testing.T, l *lab, m *server, res result) {
	t.Helper()
	places := map[string]string{"stdout": res.stdout, "stderr": res.stderr}
	for _, glob := range []string{"reports/*", "log/*", "ot-redundancy-sync.conf"} {
		files, _ := filepath.Glob(filepath.Join(m.dir, glob))
		for _, f := range files {
			places[f] = prodlab.ReadFile(t, f)
		}
	}
	places["postgresql.auto.conf"] = prodlab.ReadFile(t, filepath.Join(m.pg.Data, "postgresql.auto.conf"))
	for where, text := range places {
		if strings.Contains(text, password) {
			t.Errorf("the password shows in %s", where)
		}
	}
}

// TestRejoinWithBaseBackup: no data checksums and no wal_log_hints, so
// pg_rewind cannot work: a base backup into a new directory replaces A's,
// the old one removed once the new one streams (or kept, when asked).
func TestRejoinWithBaseBackup(t *testing.T) {
	l := newLab(t, labOptions{})
	l.splitBrain(t)
	a, b := l.a, l.b
	confBefore := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.conf"))

	res := l.run(t, a, prog, "--yes")
	if res.code != 0 {
		t.Fatalf("rejoin failed:\n%s", res)
	}
	for _, want := range []string{"rewind possible:", "no: neither data checksums nor wal_log_hints", "pg_basebackup", "3 committed transactions"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !a.streamsFrom(t) {
		t.Fatal("A does not stream from B")
	}
	a.waitCaughtUp(t)
	if got, want := l.orders(t, a), l.orders(t, b); got != want {
		t.Errorf("A's orders differ from B's:\n%s\n---\n%s", got, want)
	}
	if got := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.conf")); got != confBefore {
		t.Error("A's postgresql.conf is not its own")
	}
	if old, _ := filepath.Glob(a.pg.Data + ".ot-*"); len(old) != 0 {
		t.Errorf("left behind: %v", old)
	}
	rep := a.report(t)
	for _, want := range []string{"pg_basebackup", "removed once the new one streamed", "3 committed transactions"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	assertNoPassword(t, l, a, res)
}

// TestKeepOldData: --keep-old-data keeps the replaced data directory.
func TestKeepOldData(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a := l.a
	res := l.run(t, a, prog, "--yes", "--base-backup", "--keep-old-data")
	if res.code != 0 {
		t.Fatalf("rejoin failed:\n%s", res)
	}
	old, _ := filepath.Glob(a.pg.Data + ".ot-old-*")
	if len(old) != 1 || !prodlab.Exists(filepath.Join(old[0], "PG_VERSION")) {
		t.Fatalf("old data directory: %v", old)
	}
	if rep := a.report(t); !strings.Contains(rep, "KEPT (--keep-old-data)") || !strings.Contains(rep, "asked for (--base-backup)") {
		t.Errorf("report:\n%s", rep)
	}
	if !a.streamsFrom(t) {
		t.Error("A does not stream from B")
	}
}

// TestRefusesWhileOdooServes: A's Odoo still answers, so A may still be
// the production its users reach: refused, nothing changed; --force
// fences it and goes on.
func TestRefusesWhileOdooServes(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a := l.a
	a.startOdoo(t, l)
	before := prodlab.ReadFile(t, a.conf)

	res := l.run(t, a, prog, "--yes")
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "its Odoo answers at "+a.url) || !strings.Contains(res.stderr, "--force") {
		t.Fatalf("want a refusal naming Odoo:\n%s", res)
	}
	if strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Errorf("error is not one line: %q", res.stderr)
	}
	if a.pg.Query(t, "SELECT pg_is_in_recovery()") != "f" || !a.odooUp() || !l.enabledAtBoot(a) ||
		prodlab.ReadFile(t, a.conf) != before || len(a.reports(t)) != 0 || prodlab.Exists(a.journal()) {
		t.Fatal("the refused run changed something")
	}

	res = l.run(t, a, prog, "--yes", "--force")
	if res.code != 0 {
		t.Fatalf("--force:\n%s", res)
	}
	if a.odooUp() || l.enabledAtBoot(a) {
		t.Error("A's Odoo was not fenced")
	}
	if !a.streamsFrom(t) {
		t.Error("A does not stream from B")
	}
}

// TestRefusals: the checks that stop a run before anything changes.
func TestRefusals(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	a, b := l.a, l.b

	// B is still a standby: it is not the new production.
	res := l.run(t, a, prog, "--yes")
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "is a standby (in recovery), not a primary") {
		t.Errorf("production in recovery:\n%s", res)
	}
	l.splitBrain(t)

	// No terminal to ask on, and no --yes.
	res = l.run(t, a, prog)
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "no terminal to ask for confirmation on") {
		t.Errorf("no terminal:\n%s", res)
	}
	// A password file others can read.
	pass := a.config(t).Get(config.ReplicationPassfile)
	os.Chmod(pass, 0o644)
	res = l.run(t, a, prog, "--yes")
	if res.code != cli.ExitConfig || !strings.Contains(res.stderr, "REPLICATION_PASSFILE "+pass+": must be a file owned by root that no one else can read") {
		t.Errorf("readable password file:\n%s", res)
	}
	os.Chmod(pass, 0o600)
	// A wrong password.
	prodlab.WriteFileMode(t, pass, b.prod.Addr+":"+strconv.Itoa(b.pg.Port)+":*:replicator:wrong\n", 0o600)
	res = l.run(t, a, prog, "--yes")
	if res.code != cli.ExitFailure || !strings.Contains(res.stderr, "cannot query production's PostgreSQL at "+b.prod.Addr) ||
		!strings.Contains(res.stderr, "password authentication failed") {
		t.Errorf("wrong password:\n%s", res)
	}
	if a.pg.Query(t, "SELECT pg_is_in_recovery()") != "f" || len(a.reports(t)) != 0 {
		t.Error("a refused run changed something")
	}
}

// TestDryRun prints the plan, the real commands shell-quoted, and changes
// nothing.
func TestDryRun(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a := l.a
	before := prodlab.ReadFile(t, a.conf)
	res := l.run(t, a, prog, "--dry-run")
	if res.code != 0 {
		t.Fatalf("dry run:\n%s", res)
	}
	for _, want := range []string{"# stop PostgreSQL", "pg_ctl stop -D " + a.pg.Data, "# rewind PostgreSQL", "pg_rewind --target-pgdata=" + a.pg.Data,
		"--write-recovery-conf", "# keep the WAL this machine wrote", "# set PROMOTED=\"no\" and SYNCMODE=\"on\"", "#   SYNCMODE=\"on\"",
		"# run a first full sync", "---- filestore (ot-attachments-sync) ----", "update-rc.d " + a.service + " disable"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("dry run lacks %q", want)
		}
	}
	if strings.Contains(res.stdout, "[y/N]") || strings.Contains(res.stdout, "[1/") {
		t.Error("the dry run asked or ran steps")
	}
	if a.pg.Query(t, "SELECT pg_is_in_recovery()") != "f" || prodlab.ReadFile(t, a.conf) != before || len(a.reports(t)) != 0 ||
		prodlab.Exists(a.journal()) || !l.enabledAtBoot(a) || prodlab.Exists(filepath.Join(a.share, "odoo-addons-b")) {
		t.Fatal("the dry run changed something")
	}
	assertNoPassword(t, l, a, res)
}

// TestInterruptedAtEachStep kills the command (SIGKILL: no cleanup, as a
// crash or a power cut) at the start of each step in turn, each run
// continuing from where the last was killed, then lets one finish. The
// kill during pg_rewind leaves a data directory that cannot be trusted:
// the next run replaces it by a base backup, whose own steps are then
// killed in turn. The last run ends with A a streaming standby of B, with
// B's data, what A lost still stated and nothing left behind.
func TestInterruptedAtEachStep(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a, b := l.a, l.b
	confBefore := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.conf"))
	for _, step := range []struct {
		marker string
		until  func() bool
	}{
		{"take the sync lock", nil}, {"stop Odoo", nil}, {"disable Odoo at boot", nil}, {"give PostgreSQL's user the replication password", nil},
		{"stop PostgreSQL", nil}, {"keep the WAL this machine wrote", nil}, {"keep this machine's PostgreSQL configuration files", nil},
		// While pg_rewind runs: the next run can only replace the data directory.
		{"rewind PostgreSQL", a.inPhase(phaseRewinding)},
		// While pg_basebackup runs: the next run starts the copy again.
		{"copy production's database", a.inPhase(phaseBackingUp)},
		{"put this machine's PostgreSQL configuration files back", nil}, {"put the copy in place", nil},
		{"append primary_conninfo", nil}, {"start PostgreSQL", nil}, {"point it at production", nil}, {"wait until it streams", nil}, {"remove the old data directory", nil},
		{"set PROMOTED", nil}, {"run a first full sync", nil}, {"check that ot-status is green", nil}, {"write the report", nil},
	} {
		res := l.killAt(t, a, step.marker, step.until, "--yes")
		if !res.killed {
			t.Fatalf("no step %q began:\n%s", step.marker, res)
		}
	}
	res := l.run(t, a, prog, "--yes")
	if res.code != 0 {
		t.Fatalf("the run after the interruptions failed:\n%s", res)
	}
	if !a.streamsFrom(t) {
		t.Fatal("A does not stream from B")
	}
	a.waitCaughtUp(t)
	if got, want := l.orders(t, a), l.orders(t, b); got != want {
		t.Errorf("A's orders differ from B's:\n%s\n---\n%s", got, want)
	}
	if got := prodlab.ReadFile(t, filepath.Join(a.pg.Data, "postgresql.conf")); got != confBefore {
		t.Error("A's postgresql.conf is not its own")
	}
	if left, _ := filepath.Glob(a.pg.Data + ".ot-*"); len(left) != 0 || prodlab.Exists(a.journal()) {
		t.Errorf("left behind: %v, journal %v", left, prodlab.Exists(a.journal()))
	}
	// The last report is green; what A lost is in it, or in the report
	// the run killed while writing it left.
	if rep := a.report(t); !strings.Contains(rep, "ot-status: OK") {
		t.Errorf("report:\n%s", rep)
	}
	stated := false
	for _, r := range a.reports(t) {
		stated = stated || strings.Contains(prodlab.ReadFile(t, r), "3 committed transactions (")
	}
	if !stated {
		t.Error("no report states the 3 lost transactions")
	}
	if strings.Count(prodlab.ReadFile(t, filepath.Join(a.kept(t), "diverged-commits.txt")), "desc: COMMIT ") != 3 {
		t.Error("the lost transactions' list is not complete")
	}
	if cfg := a.config(t); cfg.Get(config.SyncMode) != "on" || cfg.Promoted() || l.enabledAtBoot(a) {
		t.Errorf("SYNCMODE=%s PROMOTED=%v Odoo enabled %v", cfg.Get(config.SyncMode), cfg.Promoted(), l.enabledAtBoot(a))
	}
}

// TestFinishesAnInterruptedSwap: a run was cut between the swap's two
// renames, leaving the data directory missing, its copy beside it and
// the journal saying "swapping". A dry run says so and changes nothing;
// the next run finishes the swap, starts the copy and removes the old one.
func TestFinishesAnInterruptedSwap(t *testing.T) {
	l := newLab(t, labOptions{})
	l.splitBrain(t)
	a, b := l.a, l.b
	a.pg.Stop(t)
	// What the command had done: the copy, with A's own configuration,
	// then the journal, then the first rename.
	data, cp, old := a.pg.Data, a.pg.Data+".ot-basebackup", a.pg.Data+".ot-old-20260101-000000"
	if _, err := a.pg.Command(context.Background(), filepath.Join(a.pg.BinDir, "pg_basebackup"), "-D", cp, "-R", "-X", "stream", "-c", "fast",
		"-h", "127.0.0.1", "-p", strconv.Itoa(b.pg.Port), "-U", "postgres"); err != nil {
		t.Fatal(err)
	}
	for _, f := range confFiles {
		prodlab.WriteFileMode(t, filepath.Join(cp, f), prodlab.ReadFile(t, filepath.Join(data, f)), 0o600)
		os.Chown(filepath.Join(cp, f), uidOf(t, a.pg.OSUser), gidOf(t, a.pg.OSUser))
	}
	prodlab.WriteFileMode(t, a.journal(), fmt.Sprintf(`{"data": %q, "phase": "swapping", "kept": %q, "old": %q, "started": "2026-01-01T00:00:00Z"}`,
		data, filepath.Join(a.dir, "backups", "20260101-000000-enable-standby"), old), 0o600)
	if err := os.Rename(data, old); err != nil {
		t.Fatal(err)
	}

	res := l.run(t, a, prog, "--dry-run")
	if res.code != cli.ExitFailure || !strings.Contains(res.stderr, "an interrupted run left "+data+" missing") || prodlab.Exists(data) {
		t.Fatalf("dry run:\n%s", res)
	}
	res = l.run(t, a, prog, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "Finishing the swap an interrupted run began") {
		t.Fatalf("run:\n%s", res)
	}
	if !a.streamsFrom(t) {
		t.Fatal("A does not stream from B")
	}
	if prodlab.Exists(old) || prodlab.Exists(cp) || prodlab.Exists(a.journal()) {
		t.Error("the old data directory, the copy's name or the journal is left")
	}
}

// TestRefusesClientsFromElsewhere: a client connected to A's database
// from another address means A may still serve: refused unless --force.
func TestRefusesClientsFromElsewhere(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a := l.a
	hba := filepath.Join(a.pg.Data, "pg_hba.conf")
	prodlab.WriteFileMode(t, hba, prodlab.ReadFile(t, hba)+"host all postgres 127.0.0.9/32 trust\n", 0o600)
	a.pg.Exec(t, "SELECT pg_reload_conf()")
	conn := connectFrom(t, "127.0.0.9", a.pg.Port)
	defer conn.Close()
	res := l.run(t, a, prog, "--yes")
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "its database has clients from elsewhere: 127.0.0.9") {
		t.Fatalf("want a refusal naming the client:\n%s", res)
	}
	if a.pg.Query(t, "SELECT pg_is_in_recovery()") != "f" || len(a.reports(t)) != 0 {
		t.Error("the refused run changed something")
	}
}

// connectFrom opens a session to the server on 127.0.0.1:port from
// address src, as a client on another machine would: PostgreSQL's
// startup message, for user postgres (trusted on loopback), until the
// server is ready for a query.
func connectFrom(t *testing.T, src string, port int) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	params := "user\x00postgres\x00database\x00erp\x00\x00"
	msg := make([]byte, 8, 8+len(params))
	binary.BigEndian.PutUint32(msg, uint32(8+len(params)))
	binary.BigEndian.PutUint32(msg[4:], 196608) // protocol 3.0
	if _, err := conn.Write(append(msg, params...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	for {
		typ, err := r.ReadByte()
		if err != nil {
			t.Fatalf("startup: %v", err)
		}
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)-4); err != nil {
			t.Fatal(err)
		}
		switch typ {
		case 'E':
			t.Fatal("the server refused the session")
		case 'Z':
			conn.SetReadDeadline(time.Time{})
			return conn
		}
	}
}

func uidOf(t testing.TB, name string) int {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(u.Uid)
	return n
}

func gidOf(t testing.TB, name string) int {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(u.Gid)
	return n
}

// TestRewindWithoutItsWAL: A went on after the fork long enough for its
// own checkpoints to recycle its WAL back to the checkpoint before the
// fork, which pg_rewind needs. A still runs, so pg_rewind itself finds it
// out, before it changes anything: the run says nothing was rewound. The
// next run finds A stopped and asks pg_rewind's dry run, which says it
// cannot: a base backup is made instead. What A wrote is counted from the
// WAL left, and said to be a floor.
func TestRewindWithoutItsWAL(t *testing.T) {
	l := newLab(t, labOptions{checksums: true})
	l.splitBrain(t)
	a := l.a
	// Eight more segments (wal_keep_size keeps four), then a checkpoint.
	for i := range 8 {
		l.sql(t, a, fmt.Sprintf("INSERT INTO sale_order VALUES (%d, 'more on A')", 210+i))
		a.pg.Exec(t, "SELECT pg_switch_wal()")
	}
	a.pg.Exec(t, "CHECKPOINT")

	res := l.run(t, a, prog, "--yes")
	if res.code != cli.ExitFailure || !strings.Contains(res.stderr, "pg_rewind cannot rewind "+a.pg.Data+": pg_rewind: error: could not find previous WAL record") ||
		!strings.Contains(res.stderr, "nothing was rewound") {
		t.Fatalf("first run:\n%s", res)
	}
	if prodlab.ReadFile(t, a.journal()) == "" || a.inPhase(phaseRewinding)() {
		t.Error("the journal says the data directory may be half rewound")
	}

	res = l.run(t, a, prog, "--yes")
	if res.code != 0 {
		t.Fatalf("second run:\n%s", res)
	}
	for _, want := range []string{"pg_rewind's dry run says it cannot: pg_rewind: error: could not find previous WAL record", "pg_basebackup --pgdata",
		"AT LEAST: its WAL from 0/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !a.streamsFrom(t) {
		t.Fatal("A does not stream from B")
	}
	a.waitCaughtUp(t)
	if got, want := l.orders(t, a), l.orders(t, l.b); got != want {
		t.Errorf("A's orders differ from B's:\n%s\n---\n%s", got, want)
	}
	if rep := a.report(t); !strings.Contains(rep, "AT LEAST") {
		t.Errorf("the report does not say the count is a floor:\n%s", rep)
	}
}
