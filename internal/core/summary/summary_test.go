package summary

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendOriginalFormatAndLast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "odoo", "ts.log")
	t1 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	t2 := t1.Add(time.Hour)
	if err := Append(path, t1, "ot-apt-sync", "ot-pip-sync"); err != nil {
		t.Fatal(err)
	}
	if err := Append(path, t2, "ot-apt-sync"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "2026-03-04 05:06:07 :  ot-apt-sync\n2026-03-04 05:06:07 :  ot-pip-sync\n2026-03-04 06:06:07 :  ot-apt-sync\n"
	if string(data) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", data, want)
	}
	last, err := Last(path)
	if err != nil {
		t.Fatal(err)
	}
	if !last["ot-apt-sync"].Equal(t2) || !last["ot-pip-sync"].Equal(t1) || len(last) != 2 {
		t.Fatalf("last %v", last)
	}
}

func TestConcurrentAppendsDoNotInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ts.log")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); Append(path, time.Now(), "ot-attachments-sync") }()
	}
	wg.Wait()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, " :  ot-attachments-sync") || len(l) != len("2006-01-02 15:04:05 :  ot-attachments-sync") {
			t.Fatalf("bad line %q", l)
		}
	}
}

func TestLastMissingFileAndJunk(t *testing.T) {
	dir := t.TempDir()
	last, err := Last(filepath.Join(dir, "none"))
	if err != nil || len(last) != 0 {
		t.Fatalf("%v %v", last, err)
	}
	p := filepath.Join(dir, "ts")
	os.WriteFile(p, []byte("garbage\n2026-01-01 00:00:00 :  ot-conf-sync\n"), 0o644)
	last, _ = Last(p)
	if len(last) != 1 {
		t.Fatalf("%v", last)
	}
}

func TestRunLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "runs.log")
	Log(p, Record{Time: time.Now(), Command: "ot-apt-sync", Status: "failed", Exit: 1, Error: "boom"})
	Log(p, Record{Time: time.Now(), Command: "ot-apt-sync", Status: "ok"})
	rs, err := Records(p)
	if err != nil || len(rs) != 2 || rs[0].Error != "boom" || rs[1].Status != "ok" {
		t.Fatalf("%+v %v", rs, err)
	}
}
