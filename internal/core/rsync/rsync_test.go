package rsync

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

func TestParseItem(t *testing.T) {
	for _, tc := range []struct {
		line                           string
		ok                             bool
		path                           string
		dir, isNew, changed, unchanged bool
		deleting                       bool
	}{
		{line: ".d          ./", ok: true, path: ".", dir: true, unchanged: true},
		{line: "2026/11/26 09:21:51 [2544] >f+++++++++ db/ab/f2\n", ok: true, path: "db/ab/f2", isNew: true},
		{line: "2026/11/26 09:21:51 [2544] .f          db/x] y", ok: true, path: "db/x] y", unchanged: true},
		{line: ">f.st...... db/ab/f1", ok: true, path: "db/ab/f1", changed: true},
		{line: ".d..t...... db/ab/", ok: true, path: "db/ab", dir: true, changed: true},
		{line: "cL+++++++++ db/good", ok: true, path: "db/good", isNew: true},
		{line: "cd+++++++++ db/new/", ok: true, path: "db/new", dir: true, isNew: true},
		{line: "*deleting   db/old/", ok: true, path: "db/old", dir: true, deleting: true},
		{line: "*deleting   db/old/z", ok: true, path: "db/old/z", deleting: true},
		{line: "2026/11/26 09:21:51 [2544] building file list"},
		{line: "skipping non-regular file \"db/fifo\""},
		{line: "sent 240 bytes  received 45 bytes  total size 19"},
		{line: "cannot delete non-empty directory: db/old"},
		{line: ""},
	} {
		it, ok := ParseItem(tc.line)
		if ok != tc.ok {
			t.Errorf("ParseItem(%q) ok = %v", tc.line, ok)
			continue
		}
		if !ok {
			continue
		}
		got := []bool{it.Dir(), it.New(), it.Changed(), it.Unchanged(), it.Deleting()}
		want := []bool{tc.dir, tc.isNew, tc.changed, tc.unchanged, tc.deleting}
		if it.Path() != tc.path || !equal(got, want) {
			t.Errorf("ParseItem(%q) = %q dir/new/changed/unchanged/deleting %v, want %q %v", tc.line, it.Path(), got, tc.path, want)
		}
	}
}

func equal(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFileCounts(t *testing.T) {
	reg, dir, ok := FileCounts("2026/11/26 09:36:09 [6192] Number of files: 100,258 (reg: 100,000, dir: 257, link: 1)")
	if !ok || reg != 100000 || dir != 257 {
		t.Errorf("FileCounts = %d %d %v", reg, dir, ok)
	}
	if reg, dir, ok := FileCounts("Number of files: 1 (dir: 1)"); !ok || reg != 0 || dir != 1 {
		t.Errorf("FileCounts(dir only) = %d %d %v", reg, dir, ok)
	}
	if _, _, ok := FileCounts("Number of created files: 7 (reg: 3, dir: 4)"); ok {
		t.Errorf("FileCounts read the created-files line")
	}
}

func TestExplain(t *testing.T) {
	err := &run.Error{Argv: []string{"rsync"}, ExitCode: 23, Stderr: "rsync: [receiver] write failed on \"x\": No space left on device (28)\nrsync error: some files/attrs were not transferred (code 23) at main.c(1338) [generator=3.5.0]\n"}
	got := Explain(err)
	if !strings.HasPrefix(got, "the standby's disk is full (some files could not be transferred") || !strings.HasSuffix(got, "No space left on device (28)") {
		t.Errorf("Explain = %q", got)
	}
	if got := Explain(&run.Error{ExitCode: -1, TimedOut: true, Err: errors.New("killed")}); got != "stopped at its deadline" {
		t.Errorf("Explain(timeout) = %q", got)
	}
	if !Warning(24) || Warning(23) || Warning(0) {
		t.Errorf("Warning: only 24 is a warning")
	}
	for _, code := range []int{11, 12, 23, 25, 255} {
		if m := Exit(code); !strings.Contains(m, "exit") {
			t.Errorf("Exit(%d) = %q", code, m)
		}
	}
}

func TestParseStats(t *testing.T) {
	out := "\r        1,234 100%  1.00MB/s  0:00:01 (xfr#3, to-chk=0/10)\n\nNumber of files: 100,258 (reg: 100,000, dir: 257, link: 1)\nNumber of created files: 1,001 (reg: 1,000, dir: 1)\nNumber of deleted files: 0\nNumber of regular files transferred: 1,002\nTotal file size: 1 bytes\n"
	st := ParseStats(out)
	if want := (Stats{Counted: true, Regs: 100000, NonDirs: 100001, CreatedNonDirs: 1000, CreatedRegs: 1000, Transferred: 1002}); st != want {
		t.Errorf("ParseStats = %+v, want %+v", st, want)
	}
	// Entries the standby never keeps (devices, fifos, unsafe links) are
	// not regular files: Regs leaves them out.
	st = ParseStats("Number of files: 10 (reg: 5, dir: 2, link: 1, dev: 1, special: 1)\nNumber of created files: 3 (reg: 2, link: 1)\n")
	if want := (Stats{Counted: true, Regs: 5, NonDirs: 8, CreatedNonDirs: 3, CreatedRegs: 2}); st != want {
		t.Errorf("ParseStats = %+v, want %+v", st, want)
	}
	if st := ParseStats("rsync: connection unexpectedly closed\n"); st.Counted {
		t.Errorf("ParseStats found counts in %q", "rsync: connection unexpectedly closed")
	}
}

func TestItemize(t *testing.T) {
	out := []byte(`cd+++++++++ a-odoo/
>f+++++++++ a-odoo/a.py
cL+++++++++ a-odoo/link
>f.st...... b-odoo/b.py
.d..t...... b-odoo/
.f...p..... b-odoo/mode-only
*deleting   b-odoo/old/
*deleting   b-odoo/old/x.py
`)
	c := Itemize(out)
	if c.Added != 2 || c.Changed != 1 || c.Deleted != 1 || len(c.Lines) != 6 {
		t.Fatalf("%+v", c)
	}
	if c.String() != "2 added, 1 changed, 1 deleted" {
		t.Fatal(c.String())
	}
}

func TestVersion(t *testing.T) {
	for out, want := range map[string]string{
		"rsync  version 3.2.7  protocol version 31\nCopyright (C) 1996-2022\n": "3.2.7",
		"rsync  version v3.4.1  protocol version 32\n":                         "3.4.1",
	} {
		v, err := Version([]byte(out))
		if err != nil || v.String() != want {
			t.Errorf("%q: %v, %v; want %s", out, v, err, want)
		}
	}
	if _, err := Version([]byte("openrsync: protocol version 29\n")); err == nil {
		t.Error("read a version where there is none")
	}
	// This machine's rsync is what the suite runs: it must pass.
	if err := CheckLocal(context.Background(), &run.Runner{}); err != nil {
		t.Fatal(err)
	}
}
