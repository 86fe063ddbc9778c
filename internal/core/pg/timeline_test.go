package pg

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for s, want := range map[string]LSN{"0/30000A0": 0x30000A0, "1/0": 1 << 32, "FFFFFFFF/FFFFFFFF": 0xFFFFFFFFFFFFFFFF - 0} {
		got, err := ParseLSN(s)
		if err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", s, got, err, want)
		}
		if want != MaxLSN && got.String() != s {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), s)
		}
	}
	for _, s := range []string{"", "0", "/1", "1/", "x/1", "1/2/3", "123456789/0", "-1/0", "0/ 1"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) accepted", s)
		}
	}
}

func TestSegmentNames(t *testing.T) {
	const size = 16 << 20
	lsn, _ := ParseLSN("1/30000A0")
	seg := lsn.Segment(size)
	name := SegmentName(2, seg, size)
	if name != "000000020000000100000003" {
		t.Fatalf("SegmentName = %s", name)
	}
	tli, got, ok := ParseSegmentName(name, size)
	if !ok || tli != 2 || got != seg {
		t.Errorf("ParseSegmentName(%s) = %d, %d, %v", name, tli, got, ok)
	}
	for _, n := range []string{"00000002.history", "000000020000000100000003.partial", "00000002000000010000000G"} {
		if _, _, ok := ParseSegmentName(n, size); ok {
			t.Errorf("ParseSegmentName(%s) accepted", n)
		}
	}
}

func TestParseHistory(t *testing.T) {
	h, err := ParseHistory(3, []byte("1\t0/30000A0\tno recovery target specified\n\n2\t0/5000000\tbefore 2026-01-01 00:00:00+00\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := History{{1, 0x30000A0}, {2, 0x5000000}, {3, MaxLSN}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("history %v, want %v", h, want)
	}
	if h.Current() != 3 {
		t.Errorf("Current() = %d", h.Current())
	}
	// Production sends it: anything else is refused.
	for _, bad := range []string{"1\n", "x\t0/1\n", "2\t0/1\n1\t0/2\n", "3\t0/1\n", "1\t0/5\n2\t0/4\n", "1\tnot-an-lsn\n", strings.Repeat("#", maxHistory+1)} {
		if _, err := ParseHistory(3, []byte(bad)); err == nil {
			t.Errorf("ParseHistory accepted %q", bad)
		}
	}
	if h, err := ParseHistory(1, nil); err != nil || !reflect.DeepEqual(h, History{{1, MaxLSN}}) {
		t.Errorf("timeline 1: %v, %v", h, err)
	}
}

func TestFork(t *testing.T) {
	hist := func(tli int, text string) History {
		h, err := ParseHistory(tli, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name        string
		a, b        History
		tli         int
		at          string
		ok          bool
		sinceRanges int
	}{
		// The old primary, still on timeline 1; production promoted to 2.
		{"old primary", hist(1, ""), hist(2, "1\t0/30000A0\n"), 1, "0/30000A0", true, 1},
		// A full cycle: the old production, rejoined, then promoted to 3;
		// the other machine, left on 2, comes back.
		{"cycle", hist(2, "1\t0/30000A0\n"), hist(3, "1\t0/30000A0\n2\t0/5000000\n"), 2, "0/5000000", true, 1},
		// This machine promoted itself again after the fork.
		{"promoted after the fork", hist(3, "1\t0/4000000\n"), hist(2, "1\t0/30000A0\n"), 1, "0/30000A0", true, 2},
		// Same timeline.
		{"same timeline", hist(2, "1\t0/30000A0\n"), hist(2, "1\t0/30000A0\n"), 2, "end", true, 0},
		// Unrelated histories.
		{"unrelated", hist(2, "1\t0/1\n"), hist(3, "2\t0/1\n"), 0, "", false, 0},
	} {
		tli, at, ok := Fork(tc.a, tc.b)
		if ok != tc.ok || tli != tc.tli || (ok && at.String() != tc.at) {
			t.Errorf("%s: Fork = %d, %v, %v; want %d, %s, %v", tc.name, tli, at, ok, tc.tli, tc.at, tc.ok)
		}
		if ok {
			if r := tc.a.Since(tli, at); len(r) != tc.sinceRanges {
				t.Errorf("%s: Since = %v, want %d ranges", tc.name, r, tc.sinceRanges)
			}
		}
	}
	a := hist(3, "1\t0/4000000\n")
	r := a.Since(1, 0x30000A0)
	want := []Range{{1, 0x30000A0, 0x4000000}, {3, 0x4000000, MaxLSN}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Since = %v, want %v", r, want)
	}
}

func TestParseControl(t *testing.T) {
	out := []byte(`pg_control version number:            1300
Database system identifier:           7715737129564935096
Database cluster state:               shut down
Latest checkpoint location:           0/3000028
Latest checkpoint's TimeLineID:       1
wal_log_hints setting:                off
Bytes per WAL segment:                16777216
Data page checksum version:           1
`)
	c, err := ParseControl(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.SystemID != "7715737129564935096" || c.State != "shut down" || c.TLI != 1 || c.Checkpoint.String() != "0/3000028" ||
		!c.Checksums || c.WalLogHints || c.SegmentSize != 16<<20 || !c.Rewindable() || !c.CleanlyStopped() || c.InRecovery() {
		t.Errorf("control %+v", c)
	}
	if _, err := ParseControl([]byte("nonsense\n")); err == nil {
		t.Error("nonsense accepted")
	}
}

func TestConninfo(t *testing.T) {
	s := Conninfo("host", "db.example.com", "passfile", `/a b/it's\x`, "port", "5432")
	if s != `host='db.example.com' passfile='/a b/it\'s\\x' port='5432'` {
		t.Fatalf("Conninfo = %s", s)
	}
	m := ParseConninfo(s + ` user=replicator sslmode=prefer`)
	want := map[string]string{"host": "db.example.com", "passfile": `/a b/it's\x`, "port": "5432", "user": "replicator", "sslmode": "prefer"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("ParseConninfo = %v, want %v", m, want)
	}
	// What pg_basebackup -R writes.
	m = ParseConninfo(`user=postgres passfile='/var/lib/postgresql/.pgpass' channel_binding=prefer host=127.0.0.1 port=55432`)
	if m["host"] != "127.0.0.1" || m["port"] != "55432" || m["passfile"] != "/var/lib/postgresql/.pgpass" {
		t.Errorf("ParseConninfo = %v", m)
	}
	for _, bad := range []string{"host", "host='x", "=x"} {
		if ParseConninfo(bad) != nil {
			t.Errorf("ParseConninfo(%q) accepted", bad)
		}
	}
	if QuoteLiteral("a'b") != "'a''b'" {
		t.Error("QuoteLiteral")
	}
}

func TestPgpass(t *testing.T) {
	data := []byte("# comment\nprod:5432:replication:replicator:s3cr\\:et\nprod:5432:postgres:replicator:other\n*:*:*:admin:x\nother:5432:*:replicator:no\nshort:line\n")
	es := ParsePgpass(data)
	if len(es) != 4 {
		t.Fatalf("%d entries: %+v", len(es), es)
	}
	if es[0].Password != "s3cr:et" {
		t.Errorf("escaped colon: %q", es[0].Password)
	}
	var mine []PassEntry
	for _, e := range es {
		if e.For("prod", "5432", "replicator") {
			mine = append(mine, e)
		}
	}
	if len(mine) != 2 {
		t.Fatalf("matching entries: %+v", mine)
	}
	if got := string(FormatPgpass(mine)); got != "prod:5432:replication:replicator:s3cr\\:et\nprod:5432:postgres:replicator:other\n" {
		t.Errorf("FormatPgpass = %q", got)
	}
	if !(PassEntry{"*", "*", "*", "*", "x"}).For("h", "1", "u") {
		t.Error("wildcards do not match")
	}
}
