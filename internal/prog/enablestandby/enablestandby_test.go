package enablestandby

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestChoose(t *testing.T) {
	rewindable := situation{sameSystem: true, historyKnown: true, forked: true, diverged: true}
	with := func(f func(*situation)) situation { s := rewindable; f(&s); return s }
	for _, tc := range []struct {
		name string
		s    situation
		want method
	}{
		{"diverged, rewindable", rewindable, methodRewind},
		{"not diverged, a stopped primary: pg_rewind -R", with(func(s *situation) { s.diverged = false }), methodRewind},
		{"a standby that wrote nothing", with(func(s *situation) { s.diverged, s.standby = false, true }), methodReconfigure},
		{"a standby that wrote", with(func(s *situation) { s.standby = true }), methodRewind},
		{"no checksums, no hints", with(func(s *situation) { s.rewindWhyNot = "no" }), methodBaseBackup},
		{"another system", with(func(s *situation) { s.sameSystem = false }), methodBaseBackup},
		{"asked", with(func(s *situation) { s.askedBackup = true }), methodBaseBackup},
		{"history missing", with(func(s *situation) { s.historyKnown = false }), methodBaseBackup},
		{"no common timeline", with(func(s *situation) { s.forked = false }), methodBaseBackup},
		{"newer than production (--force)", with(func(s *situation) { s.doubtful = true }), methodBaseBackup},
		{"rewind cut short", with(func(s *situation) { s.interrupted = "cut" }), methodBaseBackup},
		{"already streaming", with(func(s *situation) { s.streaming, s.interrupted = true, "cut" }), methodNone},
		{"copy in place", with(func(s *situation) { s.rebuilt, s.sameSystem = true, false }), methodReconfigure},
		{"copy ready to swap", with(func(s *situation) { s.copyReady = true }), methodBaseBackup},
	} {
		if got, why := choose(tc.s); got != tc.want || why == "" {
			t.Errorf("%s: %v (%q), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestWalCounter(t *testing.T) {
	out := `rmgr: XLOG        len (rec/tot):     49/   869, tx:          0, lsn: 0/030000A0, prev 0/03000028, desc: FPI_FOR_HINT , blkref #0: rel 1663/5/1259 blk 0 FPW
rmgr: Heap        len (rec/tot):     54/   150, tx:        725, lsn: 0/030020D8, prev 0/03000408, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/5/16384 blk 0 FPW
rmgr: Transaction len (rec/tot):     34/    34, tx:        725, lsn: 0/03002170, prev 0/030020D8, desc: COMMIT 2026-12-05 08:41:00.950101 UTC
rmgr: Heap        len (rec/tot):     59/    59, tx:        726, lsn: 0/03002198, prev 0/03002170, desc: HOT_UPDATE off 3 xmax 726 flags 0x10 ; new off 4 xmax 0, blkref #0: rel 1663/5/16384 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        726, lsn: 0/030021D8, prev 0/03002198, desc: COMMIT 2026-12-05 09:41:02.000001 UTC; inval msgs: catcache 55
rmgr: Transaction len (rec/tot):     34/    34, tx:        727, lsn: 0/03002240, prev 0/03002200, desc: ABORT 2026-12-05 08:41:00.955692 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        728, lsn: 0/03002268, prev 0/03002240, desc: COMMIT_PREPARED 5: 2026-12-05 07:00:00.000000 UTC
pg_waldump: error: error in WAL record at 0/3002268: invalid record length at 0/30022E0: wanted 24, got 0
`
	l := &lost{Fork: "timeline 1 at 0/30000A0"}
	var commits strings.Builder
	w := &walCounter{l: l, commits: &commits}
	// In pieces, as a pipe delivers it.
	for i := 0; i < len(out); i += 37 {
		w.Write([]byte(out[i:min(i+37, len(out))]))
	}
	if l.Records != 7 || l.Commits != 3 || l.Aborts != 1 || l.Changes != 2 || l.End.String() != "0/3002268" {
		t.Errorf("counted %+v", l)
	}
	if got := l.First.UTC().Format(time.RFC3339); got != "2026-12-05T07:00:00Z" {
		t.Errorf("first commit %s", got)
	}
	if got := l.Last.UTC().Format(time.RFC3339); got != "2026-12-05T09:41:02Z" {
		t.Errorf("last commit %s", got)
	}
	if n := strings.Count(commits.String(), "\n"); n != 4 {
		t.Errorf("%d transaction lines listed:\n%s", n, commits.String())
	}
	if s := l.summary(); !strings.Contains(s, "3 committed transactions (") || !strings.Contains(s, "2 heap row changes, 7 WAL records, written after timeline 1 at 0/30000A0") {
		t.Errorf("summary %q", s)
	}
	if !endOfWAL("pg_waldump: error: error in WAL record at 0/3002268: invalid record length at 0/30022E0: wanted 24, got 0") ||
		endOfWAL("pg_waldump: error: could not find file \"000000010000000000000003\": No such file or directory") {
		t.Error("endOfWAL")
	}
}

func TestKeepWALFile(t *testing.T) {
	const size = 16 << 20
	ranges := []pg.Range{{TLI: 1, Start: 0x3000000 + 0xA0, End: pg.MaxLSN}}
	end := pg.LSN(0x5000100) // the last record: segment 5
	for name, want := range map[string]bool{
		"000000010000000000000003": true,
		"000000010000000000000005": true,
		"000000010000000000000006": false, // recycled under a future name

		"000000010000000000000002":         false, // before the fork
		"000000020000000000000003":         false, // production's timeline
		"000000010000000000000004.partial": true,
		"00000002.history":                 true,
		"archive_status":                   false,
	} {
		if got := keepWALFile(name, ranges, size, end); got != want {
			t.Errorf("keepWALFile(%s) = %v", name, got)
		}
	}
	ended := []pg.Range{{TLI: 1, Start: 0x30000A0, End: 0x4000010}}
	if keepWALFile("000000010000000000000005", ended, size, end) || !keepWALFile("000000010000000000000004", ended, size, end) {
		t.Error("a range's end is not honoured")
	}
}

// Production's answers are untrusted: anything but PostgreSQL's form is
// refused.
func TestProductionAnswers(t *testing.T) {
	p := &production{}
	if err := p.identify("7715737129564935096|2|0/3000180|"); err != nil || p.tli != 2 || p.sysid != "7715737129564935096" || p.lsn != 0x3000180 {
		t.Errorf("identify: %+v %v", p, err)
	}
	for _, bad := range []string{"", "x|2|0/1|", "1|0|0/1|", "1|2|0/1", "1|2|zz|", "1;rm|2|0/1|"} {
		if err := (&production{}).identify(bad); err == nil {
			t.Errorf("identify accepted %q", bad)
		}
	}
	h, err := parseTimelineHistory(2, "00000002.history|1\t0/30000A0\tno recovery target specified\n\n")
	if err != nil || len(h) != 2 || h[0].End != 0x30000A0 {
		t.Errorf("history %v %v", h, err)
	}
	for _, bad := range []string{"00000003.history|1\t0/1\n", "../../x|1\t0/1\n", "00000002.history|garbage\n", "no bar"} {
		if _, err := parseTimelineHistory(2, bad); err == nil {
			t.Errorf("history accepted %q", bad)
		}
	}
	if err := p.state("f|150018|on|123456|physical,false|2"); err != nil || p.inRecovery || !p.fpw || p.size != 123456 || p.major() != 15 || p.slotType != "physical" || p.slotActive || p.checkpointTLI != 2 {
		t.Errorf("state: %+v %v", p, err)
	}
	for _, bad := range []string{"f|150018|on|1|", "x|150018|on|1||1", "f|15|on|1||1", "f|150018|maybe|1||1", "f|150018|on|-1||1", "f|150018|on|1|physical,x|1", "f|150018|on|1||x"} {
		if err := (&production{}).state(bad); err == nil {
			t.Errorf("state accepted %q", bad)
		}
	}
	if sql := stateSQL("slot_a"); !strings.Contains(sql, "slot_name = 'slot_a'") {
		t.Errorf("stateSQL: %s", sql)
	}
}

func TestFenceSteps(t *testing.T) {
	join := func(systemd bool) string {
		var out []string
		for _, s := range fenceSteps([]string{"odoo"}, systemd) {
			out = append(out, strings.Join(s.Argv, " "))
		}
		return strings.Join(out, "; ")
	}
	if got := join(true); got != "systemctl stop -- odoo; systemctl disable -- odoo" {
		t.Errorf("systemd: %s", got)
	}
	if got := join(false); got != "service odoo stop; update-rc.d odoo defaults; update-rc.d odoo disable" {
		t.Errorf("sysvinit: %s", got)
	}
}

// The password file must be root's alone and name production; only its
// lines for production are handed on.
func TestCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		prodlab.Missing(t, "the password file must be root's: run as root")
	}
	dir := t.TempDir()
	pass := filepath.Join(dir, "pgpass")
	conf := filepath.Join(dir, "ot.conf")
	os.WriteFile(conf, []byte(`SYNCSRC="prod.example.com"`+"\nREPLICATION_PASSFILE="+config.Quote(pass)+"\n"), 0o600)
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	cl := &pg.Cluster{Data: filepath.Join(dir, "15", "main"), OSUser: "root"}
	load := func() (*credentials, error) { return loadCredentials(cfg, "prod.example.com", 5432, cl) }

	if _, err := load(); !isConfigError(err, "file not found") {
		t.Errorf("missing: %v", err)
	}
	os.WriteFile(pass, []byte("prod.example.com:5432:*:replicator:s3cret\nother:5432:*:replicator:no\nprod.example.com:5432:*:admin:no\n"), 0o640)
	if _, err := load(); !isConfigError(err, "no one else can read") {
		t.Errorf("group-readable: %v", err)
	}
	os.Chmod(pass, 0o600)
	c, err := load()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if got := string(c.lines()); got != "prod.example.com:5432:*:replicator:s3cret\n" {
		t.Errorf("lines handed on: %q", got)
	}
	if b, err := os.ReadFile(c.probe); err != nil || string(b) != string(c.lines()) {
		t.Errorf("probe copy: %q %v", b, err)
	}
	if c.target != filepath.Join(dir, "15", "ot-redundancy-replication.pgpass") {
		t.Errorf("target %s", c.target)
	}
	os.WriteFile(pass, []byte("other:5432:*:replicator:no\n"), 0o600)
	if _, err := load(); !isConfigError(err, "no line for prod.example.com:5432 and user replicator") {
		t.Errorf("no line: %v", err)
	}
}

func isConfigError(err error, text string) bool {
	ce, ok := err.(*cli.Error)
	return ok && ce.Code == cli.ExitConfig && strings.Contains(ce.Error(), text)
}
