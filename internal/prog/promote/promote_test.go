package promote

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/syncmode"
)

func TestYes(t *testing.T) {
	for _, a := range []string{"y", "Y", "yes", "YES", "Yes\n", " y "} {
		if !Yes(a) {
			t.Errorf("Yes(%q) = false", a)
		}
	}
	for _, a := range []string{"", "\n", "n", "no", "NO", "j", "yess", "ok"} {
		if Yes(a) {
			t.Errorf("Yes(%q) = true", a)
		}
	}
}

func TestOdooSteps(t *testing.T) {
	join := func(systemd, running bool) string {
		var out []string
		for _, s := range odooSteps([]string{"odoo"}, systemd, running) {
			out = append(out, strings.Join(s.Argv, " "))
		}
		return strings.Join(out, "; ")
	}
	for _, tc := range []struct {
		systemd, running bool
		want             string
	}{
		{true, false, "systemctl enable odoo; systemctl start odoo"},
		{true, true, "systemctl enable odoo"},
		{false, false, "update-rc.d odoo defaults; update-rc.d odoo enable; service odoo start"},
		{false, true, "update-rc.d odoo defaults; update-rc.d odoo enable"},
	} {
		if got := join(tc.systemd, tc.running); got != tc.want {
			t.Errorf("systemd=%v running=%v: %s, want %s", tc.systemd, tc.running, got, tc.want)
		}
	}
}

// TestPromote is the worst day: production is down, the operator promotes.
func TestPromote(t *testing.T) {
	t.Parallel()
	l := newLab(t, nil)
	l.primary.Stop(t)

	res := l.run(t, input{}, "--yes")
	if res.code != 0 {
		t.Fatalf("promotion failed:\n%s", res)
	}
	for _, want := range []string{"standby: in recovery, timeline 1", "Plan:", "SELECT pg_promote(false)", "update-rc.d " + l.service + " enable",
		"Report written to " + l.reportDir} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	// Writable, on a new timeline, with the rows replicated before.
	if l.inRecovery(t) {
		t.Fatal("the standby is still in recovery")
	}
	if tl := l.timeline(t); tl != 2 {
		t.Errorf("timeline %d, want 2", tl)
	}
	if got := l.standby.Query(t, "SELECT count(*) FROM sale_order"); got != "101" {
		t.Errorf("%s rows replicated, want 101", got)
	}
	l.standby.Exec(t, "INSERT INTO sale_order VALUES (102, 'SO102 after promotion')")

	cfg := l.config(t)
	if cfg.Get(config.SyncMode) != "off" || cfg.Get(config.Promoted) != "yes" {
		t.Errorf("config: SYNCMODE=%s PROMOTED=%s, want off and yes", cfg.Get(config.SyncMode), cfg.Get(config.Promoted))
	}
	if !strings.Contains(l.confText(t), "# ot-disable-standby-mode test") {
		t.Error("the configuration's comment was lost")
	}
	// Stamped in the summary file, as the original's was.
	if last, _ := summary.Last(cfg.Get(config.SummaryFile)); last[prog].IsZero() {
		t.Error("no summary line for " + prog)
	}
	resp, err := http.Get(l.odooURL)
	if err != nil {
		t.Fatalf("Odoo does not answer: %v", err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(l.dir, "rc2.d", "S01"+l.service)); err != nil {
		t.Errorf("Odoo not enabled at boot: %v", err)
	}

	// The report holds the lag and the sync times.
	reports := l.reports(t)
	if len(reports) != 1 {
		t.Fatalf("reports: %v, want one", reports)
	}
	b, err := os.ReadFile(reports[0])
	if err != nil {
		t.Fatal(err)
	}
	rep := string(b)
	wants := []string{"timeline 1 -> 2", "last replayed commit:", "lag:", " at the preflight", "addresses:", "Remaining checklist",
		"repoint reverse proxies", "answers (after"}
	for name, at := range l.syncTimes {
		wants = append(wants, name+strings.Repeat(" ", 25-len(name))+at.Local().Format("2006-01-02 15:04:05"))
	}
	for _, want := range wants {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}

	// Every sync, and ot-enable-sync, now refuses: the machine was promoted.
	err = job.Guard(context.Background(), cfg, false, false)
	var ce *cli.Error
	if !errors.As(err, &ce) || ce.Code != cli.ExitPromoted || !strings.Contains(ce.Msg, "promoted") {
		t.Errorf("sync guard after promotion: %v, want exit %d saying promoted", err, cli.ExitPromoted)
	}
	if code := syncmode.EnableMain([]string{"--config", l.conf, "--quiet"}); code != cli.ExitPromoted {
		t.Errorf("ot-enable-sync after promotion: exit %d, want %d", code, cli.ExitPromoted)
	}

	// A second run says so and does no harm, without asking.
	res = l.run(t, input{})
	if res.code != 0 || !strings.Contains(res.stdout, "already promoted") {
		t.Fatalf("second run:\n%s", res)
	}
	if strings.Contains(res.stdout, "pg_promote") || strings.Contains(res.stdout, "service "+l.service+" start") {
		t.Errorf("second run promoted or started Odoo again:\n%s", res.stdout)
	}
	if tl := l.timeline(t); tl != 2 {
		t.Errorf("timeline %d after the second run, want 2", tl)
	}
	if got := l.standby.Query(t, "SELECT count(*) FROM sale_order"); got != "102" {
		t.Errorf("%s rows after the second run, want 102", got)
	}
}

// TestRefusesLiveProduction: production answers, so the two would diverge.
func TestRefusesLiveProduction(t *testing.T) {
	t.Parallel()
	ssh, err := net.Listen("tcp", "127.0.0.1:0") // production's ssh still answers too
	if err != nil {
		t.Fatal(err)
	}
	defer ssh.Close()
	l := newLab(t, map[string]string{"SSH_PORT": strconv.Itoa(ssh.Addr().(*net.TCPAddr).Port)})
	before := l.confText(t)

	res := l.run(t, input{}, "--yes")
	if res.code != cli.ExitRefused {
		t.Fatalf("exit %d, want %d:\n%s", res.code, cli.ExitRefused, res)
	}
	for _, want := range []string{"production still answers", "the WAL receiver streams from 127.0.0.1:" + strconv.Itoa(l.primary.Port),
		"production's PostgreSQL answers on 127.0.0.1:" + strconv.Itoa(l.primary.Port), "production's ssh answers", "two primaries", "mails sent twice", "--force"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Errorf("error is not one line: %q", res.stderr)
	}
	l.assertUnchanged(t, before)

	res = l.run(t, input{}, "--yes", "--force")
	if res.code != 0 {
		t.Fatalf("--force: %s", res)
	}
	if l.inRecovery(t) || l.timeline(t) != 2 {
		t.Error("--force did not promote")
	}
}

func TestRefusesPausedReplay(t *testing.T) {
	t.Parallel()
	l := newLab(t, nil)
	l.primary.Stop(t)
	l.standby.Exec(t, "SELECT pg_wal_replay_pause()")
	before := l.confText(t)

	res := l.run(t, input{}, "--yes")
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "WAL replay is paused") || !strings.Contains(res.stderr, "--resume-replay") {
		t.Fatalf("paused replay not refused:\n%s", res)
	}
	l.assertUnchanged(t, before)

	res = l.run(t, input{}, "--yes", "--resume-replay")
	if res.code != 0 || !strings.Contains(res.stdout, "pg_wal_replay_resume()") {
		t.Fatalf("--resume-replay:\n%s", res)
	}
	if l.inRecovery(t) {
		t.Error("--resume-replay did not promote")
	}
}

// TestConfirmation: nothing changes unless the operator says yes.
func TestConfirmation(t *testing.T) {
	t.Parallel()
	l := newLab(t, nil)
	l.primary.Stop(t)
	before := l.confText(t)

	for _, tc := range []struct {
		name string
		in   input
		args []string
		code int
		want string
	}{
		{"answer n", input{tty: true, answer: "n\n"}, nil, cli.ExitRefused, "not confirmed; nothing was changed"},
		{"answer enter", input{tty: true, answer: "\n"}, nil, cli.ExitRefused, "not confirmed"},
		{"no terminal", input{answer: "yes\n"}, nil, cli.ExitRefused, "no terminal to ask for confirmation on"},
		{"dry run", input{}, []string{"--dry-run"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := l.run(t, tc.in, tc.args...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("want exit %d and %q:\n%s", tc.code, tc.want, res)
			}
			l.assertUnchanged(t, before)
		})
	}
	t.Run("ctrl-c at the question", func(t *testing.T) {
		res := l.interruptAtPrompt(t)
		if res.code != cli.ExitInterrupted || !strings.Contains(res.stderr, "interrupted; nothing further was done") {
			t.Fatalf("want exit %d:\n%s", cli.ExitInterrupted, res)
		}
		l.assertUnchanged(t, before)
	})
	res := l.run(t, input{tty: true, answer: "YES\n"}, "--dry-run")
	if !strings.Contains(res.stdout, "# promote PostgreSQL") || !strings.Contains(res.stdout, "SELECT pg_promote(false)") || strings.Contains(res.stdout, "[y/N]") {
		t.Errorf("dry run output:\n%s", res.stdout)
	}

	res = l.run(t, input{tty: true, answer: "YES\n"})
	if res.code != 0 || !strings.Contains(res.stdout, "[y/N]") {
		t.Fatalf("answer YES:\n%s", res)
	}
	if l.inRecovery(t) {
		t.Error("answering YES did not promote")
	}
}

// TestOdooFailureThenRetry: Odoo does not start; a second run retries it.
func TestOdooFailureThenRetry(t *testing.T) {
	t.Parallel()
	l := newLab(t, map[string]string{"ODOO_TIMEOUT": "2"})
	l.primary.Kill(t)
	prodlab.WriteFile(t, filepath.Join(l.dir, "odoo-fails"), "")

	res := l.run(t, input{}, "--yes")
	if res.code != cli.ExitFailure || !strings.Contains(res.stderr, "PostgreSQL promoted, Odoo failed") || !strings.Contains(res.stderr, "broken addon") {
		t.Fatalf("want Odoo's failure reported:\n%s", res)
	}
	if l.inRecovery(t) {
		t.Fatal("PostgreSQL was not promoted")
	}
	if len(l.reports(t)) != 1 {
		t.Errorf("the failed run left no report")
	}

	os.Remove(filepath.Join(l.dir, "odoo-fails"))
	res = l.run(t, input{}, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "already promoted") || !strings.Contains(res.stdout, "service "+l.service+" start") {
		t.Fatalf("retry:\n%s", res)
	}
	if l.timeline(t) != 2 {
		t.Errorf("timeline %d, want 2", l.timeline(t))
	}
}

// TestFence: FENCE_COMMAND powers production off (here: stops its
// PostgreSQL), then promotion goes on; a failing fence aborts.
func TestFence(t *testing.T) {
	t.Parallel()
	l := newLab(t, map[string]string{"FENCE_COMMAND": "false"})
	before := l.confText(t)
	res := l.run(t, input{}, "--yes")
	if res.code != cli.ExitFailure || !strings.Contains(res.stderr, "fencing production failed") {
		t.Fatalf("failing fence:\n%s", res)
	}
	l.assertUnchanged(t, before)

	fence := "runuser -u postgres -- " + filepath.Join(l.primary.BinDir, "pg_ctl") + " stop -w -m fast -D " + l.primary.Data
	cfg := l.config(t)
	if err := cfg.Set(config.FenceCommand, fence); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Save(config.FenceCommand); err != nil {
		t.Fatal(err)
	}
	res = l.run(t, input{}, "--yes")
	if res.code != 0 {
		t.Fatalf("fence then promote:\n%s", res)
	}
	if l.inRecovery(t) {
		t.Error("not promoted after fencing")
	}
}

// TestLockHolder: a running sync is waited for, then stopped; an unknown
// process holding the lock is never killed.
func TestLockHolder(t *testing.T) {
	t.Parallel()
	l := newLab(t, map[string]string{"LOCK_WAIT": "1"})
	l.primary.Stop(t)
	before := l.confText(t)

	other := l.holdLock(t, "some-daemon")
	res := l.run(t, input{}, "--yes")
	if res.code != cli.ExitLocked || !strings.Contains(res.stderr, "is held by pid "+strconv.Itoa(other.Process.Pid)) {
		t.Fatalf("want exit %d naming the holder:\n%s", cli.ExitLocked, res)
	}
	l.assertUnchanged(t, before)
	other.Process.Kill()
	other.Wait()

	sync := l.holdLock(t, "ot-attachment-sync")
	res = l.run(t, input{}, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "stopping pid "+strconv.Itoa(sync.Process.Pid)+" (ot-attachment-sync") {
		t.Fatalf("want the sync stopped:\n%s", res)
	}
	if err := sync.Wait(); err == nil {
		t.Error("the sync holding the lock was not stopped")
	}
	if l.inRecovery(t) {
		t.Error("not promoted")
	}
}

// TestPromoteDebian: a Debian standby with no PG_* keys set; the cluster is
// found by pg_lsclusters and promoted.
func TestPromoteDebian(t *testing.T) {
	t.Parallel()
	l := newDebianLab(t)
	l.primary.Stop(t)
	res := l.run(t, input{}, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "PostgreSQL 15/lab (version 15") {
		t.Fatalf("promotion failed:\n%s", res)
	}
	if l.inRecovery(t) || l.timeline(t) != 2 {
		t.Error("not promoted to timeline 2")
	}
	if got := l.standby.Query(t, "SELECT count(*) FROM sale_order"); got != "101" {
		t.Errorf("%s rows replicated, want 101", got)
	}
}

// A database that is already primary, with no promotion recorded by this
// suite, is refused (exit 8) and Odoo is left alone; once the suite's record
// says it promoted (PROMOTED=yes), a re-run goes on to Odoo.
func TestAlreadyPrimaryWithoutRecordRefused(t *testing.T) {
	t.Parallel()
	l := newLab(t, nil)
	l.primary.Stop(t)
	if _, err := l.standby.Command(context.Background(), filepath.Join(l.standby.BinDir, "pg_ctl"), "promote", "-w", "-D", l.standby.Data); err != nil {
		t.Fatal(err)
	}
	before := l.confText(t)
	res := l.run(t, input{}, "--yes")
	if res.code != cli.ExitRefused || !strings.Contains(res.stderr, "is already a primary (timeline 2), but this suite recorded no promotion") {
		t.Fatalf("want a refusal:\n%s", res)
	}
	if prodlab.Exists(filepath.Join(l.dir, "odoo.pid")) || len(l.reports(t)) != 0 || l.confText(t) != before {
		t.Fatalf("Odoo was started, a report written or the configuration changed:\n%s", res.stdout)
	}

	prodlab.WriteFileMode(t, l.conf, before+"PROMOTED=\"yes\"\n", 0o600)
	res = l.run(t, input{}, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "service "+l.service+" start") {
		t.Fatalf("with the record, a re-run starts Odoo:\n%s", res)
	}
}
