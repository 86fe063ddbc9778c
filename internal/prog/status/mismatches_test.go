package status

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
)

// The filestore sync's state file decides the "production content" check:
// CRITICAL in the text, the JSON and the Prometheus metric when production
// has attachments whose content does not match their name.
func TestProductionMismatches(t *testing.T) {
	dir := t.TempDir()
	report := func(standby bool) (*Report, string) {
		r := &Report{Time: time.Now()}
		mismatches(dir, standby, r)
		r.finish()
		var out bytes.Buffer
		c := &CLI{}
		c.print(&cli.Env{Stdout: &out, G: &cli.Globals{}}, r)
		return r, out.String()
	}

	// No sync has written the state: no check at all.
	if r, _ := report(true); len(r.Checks) != 0 || r.ProductionMismatches != nil {
		t.Errorf("no state file: %+v", r.Checks)
	}

	first := []string{"db1/aa/aa11", "db1/bb/bb22", "db1/cc/cc33", "db1/dd/dd44", "db1/ee/ee55"}
	if err := filestore.WriteState(dir, filestore.State{Time: time.Now(), Mismatches: 1234, First: first}); err != nil {
		t.Fatal(err)
	}
	r, text := report(true)
	want := "production has 1234 attachments whose content does not match their name (db1/aa/aa11, db1/bb/bb22, db1/cc/cc33, db1/dd/dd44, db1/ee/ee55, ...;"
	if r.Status != Critical || !strings.HasPrefix(text, "STATUS: CRITICAL: production content: "+want) {
		t.Errorf("status %v, text:\n%s\nwant CRITICAL and %q", r.Status, text, want)
	}
	js, _ := json.Marshal(r)
	var back struct {
		ProductionMismatches struct {
			Count int      `json:"count"`
			First []string `json:"first"`
		} `json:"production_mismatches"`
	}
	if err := json.Unmarshal(js, &back); err != nil || back.ProductionMismatches.Count != 1234 || len(back.ProductionMismatches.First) != 5 {
		t.Errorf("JSON: %s", js)
	}
	prom := filepath.Join(dir, "ot.prom")
	if err := writeMetrics(prom, r); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(prom); !strings.Contains(string(data), "\not_redundancy_production_mismatched_attachments 1234\n") {
		t.Errorf("metrics:\n%s", data)
	}

	// A promoted machine: production's old state is history, not an alarm.
	if r, _ := report(false); r.Status != OK {
		t.Errorf("promoted: %v", r.Status)
	}

	// A clean sync rewrites it with 0: OK, and the metric says 0.
	filestore.WriteState(dir, filestore.State{Time: time.Now()})
	r, text = report(true)
	if r.Status != OK || !strings.Contains(text, "production's attachments that arrived match their names") {
		t.Errorf("clean: %v\n%s", r.Status, text)
	}
	writeMetrics(prom, r)
	if data, _ := os.ReadFile(prom); !strings.Contains(string(data), "\not_redundancy_production_mismatched_attachments 0\n") {
		t.Errorf("metrics:\n%s", data)
	}
}
