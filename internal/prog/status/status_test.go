package status

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/pglab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
	"github.com/rogpeppe/go-internal/testscript"
)

// The test binary doubles as ot-status, run as its own process.
// TestMain puts ot-status on PATH: the test binary plays it under that name.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"ot-status": func() { os.Exit(Main(os.Args[1:])) }})
}

func otStatus(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("ot-status", args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func writeConf(t *testing.T, path string, kv map[string]string) {
	t.Helper()
	var b strings.Builder
	for k, v := range kv {
		b.WriteString(k + "=" + config.Quote(v) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// store writes content into the filestore the way Odoo does and returns its store_fname.
func store(t *testing.T, dir, content string) string {
	t.Helper()
	sum := sha1.Sum([]byte(content))
	h := hex.EncodeToString(sum[:])
	name := h[:2] + "/" + h
	if err := os.MkdirAll(filepath.Join(dir, h[:2]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func psqlDB(t *testing.T, c *pglab.Cluster, db, sql string) {
	t.Helper()
	if _, err := c.Command(context.Background(), filepath.Join(c.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", c.Socket, "-p", strconv.Itoa(c.Port), "-d", db, "-c", sql); err != nil {
		t.Fatal(err)
	}
}

func TestStatusAgainstPostgreSQL(t *testing.T) {
	pglab.Require(t)
	primary := pglab.StartPrimary(t)
	standby := pglab.StartStandby(t, primary)
	dir := t.TempDir()
	fs := filepath.Join(dir, "filestore")
	var names []string
	for i := range 5 {
		names = append(names, store(t, filepath.Join(fs, "odoo_demo"), fmt.Sprintf("attachment %d", i)))
	}
	primary.Exec(t, "CREATE DATABASE odoo_demo")
	primary.Exec(t, "CREATE DATABASE not_odoo")
	var values []string
	for i, n := range names {
		values = append(values, fmt.Sprintf("('file%d.pdf', '%s')", i, n))
	}
	// Two rows share a file, and URL attachments have no store_fname.
	psqlDB(t, primary, "odoo_demo", "CREATE TABLE ir_attachment (id serial PRIMARY KEY, name varchar, store_fname varchar);"+
		"INSERT INTO ir_attachment (name, store_fname) VALUES "+strings.Join(values, ", ")+
		", ('copy.pdf', '"+names[0]+"'), ('https://odoo.com', NULL)")
	standby.WaitReplay(t, primary)

	sum := filepath.Join(dir, "ts.log")
	cron := filepath.Join(dir, "cron")
	os.WriteFile(cron, []byte("# cron\n"), 0o644)
	conf := filepath.Join(dir, "ot.conf")
	kv := map[string]string{
		"SYNCMODE": "on", "SYNCSRC": "prod.example.com", "SUMMARYFILE": sum,
		"LOCK_FILE": filepath.Join(dir, "lock"), "FILESTORE": fs,
		"PG_DATA": standby.Data, "PG_BINDIR": standby.BinDir, "PG_HOST": standby.Socket, "PG_PORT": strconv.Itoa(standby.Port),
	}
	writeConf(t, conf, kv)
	stamp := func(filestore, full time.Duration) {
		os.Remove(sum)
		now := time.Now()
		summary.Append(sum, now.Add(-full), "ot-sync-from-source")
		summary.Append(sum, now.Add(-filestore), "ot-attachments-sync")
	}
	args := []string{"--config", conf, "--cron-file", cron}

	t.Run("fresh", func(t *testing.T) {
		stamp(10*time.Minute, 24*time.Hour)
		prom := filepath.Join(dir, "ot.prom")
		code, out := otStatus(t, append(args, "--prometheus", prom, "--verify-filestore")...)
		// Performance data for graphs, with the thresholds the checks judge by.
		if code != 0 || !regexp.MustCompile(`^STATUS: OK: standby ready to take over; filestore synced 10m ago \| lag=\d+\.\ds;300;3600 filestore_age=60\ds;7200;21600 missing_attachments=0;;0\n`).MatchString(out) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, want := range []string{"in recovery, streaming from 127.0.0.1:" + strconv.Itoa(primary.Port) + ", replay caught up",
			"db odoo_demo   5 attachments, all in " + filepath.Join(fs, "odoo_demo") + "; 5 stored files match their sha1"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "not_odoo") {
			t.Errorf("a database without ir_attachment was checked:\n%s", out)
		}
		m, _ := os.ReadFile(prom)
		for _, want := range []string{"ot_redundancy_status 0\n", "ot_redundancy_postgres_in_recovery 1\n", "ot_redundancy_replay_lag_seconds 0\n",
			`ot_redundancy_missing_attachments{database="odoo_demo"} 0` + "\n", `ot_redundancy_last_success_timestamp_seconds{command="ot-attachments-sync"} `} {
			if !strings.Contains(string(m), want) {
				t.Errorf("metrics lack %q:\n%s", want, m)
			}
		}
		code, out = otStatus(t, append(args, "--json")...)
		var r struct {
			Status    string
			Role      string
			Postgres  struct{ In_recovery bool }
			Databases []DBInfo
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
			t.Fatalf("exit %d, %v:\n%s", code, err, out)
		}
		if r.Status != "OK" || r.Role != "standby" || !r.Postgres.In_recovery || len(r.Databases) != 1 || r.Databases[0].Attachments != 5 || r.Databases[0].Missing != 0 {
			t.Fatalf("JSON: %+v", r)
		}
	})

	t.Run("late", func(t *testing.T) {
		stamp(3*time.Hour, 24*time.Hour)
		code, out := otStatus(t, args...)
		if code != 1 || !strings.HasPrefix(out, "STATUS: WARNING: filestore-sync: last success ") || !strings.Contains(out, "(3h00m ago; hourly): late (over 2h00m)") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		stamp(7*time.Hour, 24*time.Hour)
		if code, out := otStatus(t, args...); code != 2 || !strings.Contains(out, "CRIT  filestore-sync") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		stamp(10*time.Minute, 40*24*time.Hour)
		if code, out := otStatus(t, append(args, "-q")...); code != 1 || !strings.Contains(out, "STATUS: WARNING: full-sync: ") || strings.Count(out, "\n") != 1 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		os.Remove(sum)
		if code, out := otStatus(t, args...); code != 2 || !strings.Contains(out, "never succeeded") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("missing-attachment", func(t *testing.T) {
		stamp(10*time.Minute, 24*time.Hour)
		gone := filepath.Join(fs, "odoo_demo", names[3])
		data, _ := os.ReadFile(gone)
		os.Remove(gone)
		defer os.WriteFile(gone, data, 0o644)
		code, out := otStatus(t, append(args, "--verbose")...)
		if code != 1 || !strings.Contains(out, "1 of 5 attachments missing from") || !strings.Contains(out, "  missing   odoo_demo/"+names[3]+"\n") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		code, out = otStatus(t, append(args, "--json")...)
		var j struct {
			Status    string
			Databases []DBInfo
		}
		if err := json.Unmarshal([]byte(out), &j); err != nil || code != 1 || j.Status != "WARNING" ||
			len(j.Databases) != 1 || j.Databases[0].Missing != 1 || j.Databases[0].MissingFiles[0] != names[3] {
			t.Fatalf("exit %d, %v:\n%s", code, err, out)
		}
		// A truncated file is found by --verify-filestore only.
		os.WriteFile(gone, data[:3], 0o644)
		if code, out := otStatus(t, args...); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		code, out = otStatus(t, append(args, "--verify-filestore", "-v")...)
		if code != 2 || !strings.Contains(out, "1 of 5 stored files do NOT match their sha1 name") || !strings.Contains(out, "  corrupt   odoo_demo/"+names[3]) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("promoted", func(t *testing.T) {
		stamp(10*time.Minute, 24*time.Hour)
		// The local cluster is a primary while the file says standby: critical.
		kv2 := map[string]string{}
		for k, v := range kv {
			kv2[k] = v
		}
		kv2["PG_DATA"], kv2["PG_HOST"], kv2["PG_PORT"] = primary.Data, primary.Socket, strconv.Itoa(primary.Port)
		writeConf(t, conf, kv2)
		code, out := otStatus(t, args...)
		if code != 2 || !strings.Contains(out, "is out of recovery but PROMOTED=no") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// Promoted as the file says: a warning (no standby any more), sync ages not judged.
		kv2["PROMOTED"], kv2["SYNCMODE"] = "yes", "off"
		os.Remove(sum)
		writeConf(t, conf, kv2)
		code, out = otStatus(t, append(args, "--json")...)
		var j struct{ Status, Role string }
		if err := json.Unmarshal([]byte(out), &j); err != nil || code != 1 || j.Status != "WARNING" || j.Role != "promoted" {
			t.Fatalf("exit %d, %v:\n%s", code, err, out)
		}
		writeConf(t, conf, kv)
	})

	t.Run("postgres-down", func(t *testing.T) {
		stamp(10*time.Minute, 24*time.Hour)
		standby.Stop(t)
		defer standby.Start()
		if code, out := otStatus(t, args...); code != 2 || !strings.Contains(out, "CRIT  postgres       PostgreSQL "+standby.Data+" is not running") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}

func TestDrift(t *testing.T) {
	prodlab.Require(t)
	dir := t.TempDir()
	prodProjects, standbyProjects := filepath.Join(dir, "prod-projects"), filepath.Join(dir, "projects")
	for _, d := range []string{"odoo-addons-a", "odoo-addons-b", "core-odoo", "unrelated"} {
		os.MkdirAll(filepath.Join(prodProjects, d), 0o755)
	}
	os.MkdirAll(filepath.Join(standbyProjects, "odoo-addons-a"), 0o755)
	prodConf, standbyConf := filepath.Join(dir, "prod-odoo.conf"), filepath.Join(dir, "odoo.conf")
	os.WriteFile(prodConf, []byte("[options]\nworkers = 4\n"), 0o644)
	os.WriteFile(standbyConf, []byte("[options]\nworkers = 2\n"), 0o644)
	p := prodlab.Start(t, prodlab.Options{Binds: map[string]string{standbyProjects: prodProjects, standbyConf: prodConf}})
	conf := filepath.Join(dir, "ot.conf")
	p.WriteConfig(t, conf, map[string]string{"PROJECTS_DIR": standbyProjects, "ODOO_CONF": standbyConf, "CONF_SYNC": "odoo", "APT_DENY": "*",
		"PIP": "/usr/bin/python3 -s -m pip", "REMOTE_PIP": "/usr/bin/python3 -s -m pip"})
	code, out := otStatus(t, "--config", conf, "--drift", "--skip", "postgres,cron", "--json")
	var j struct {
		Status string
		Drift  Drift
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 2 { // never synced: critical
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	kinds := map[string]DriftKind{}
	for _, k := range j.Drift.Kinds {
		kinds[k.Kind] = k
	}
	if k := kinds["projects"]; strings.Join(k.OnlyProduction, ",") != "odoo-addons-b" || len(k.OnlyStandby) != 0 || k.Error != "" {
		t.Errorf("projects: %+v", k)
	}
	if k := kinds["config"]; len(k.Differ) != 1 || !strings.HasPrefix(k.Differ[0], standbyConf+" (production sha256 ") || k.Error != "" {
		t.Errorf("config: %+v", k)
	}
	// Production shares this host's packages, which other tests may change
	// meanwhile: the probes must work; APT_DENY="*" filters every name.
	if k := kinds["apt"]; k.count() != 0 || k.Error != "" {
		t.Errorf("apt: %+v", k)
	}
	if k := kinds["pip"]; k.Error != "" {
		t.Errorf("pip: %+v", k)
	}
	_, out = otStatus(t, "--config", conf, "--drift", "--skip", "postgres,cron")
	if !strings.Contains(out, "projects: 1 only on production, 0 only on standby, 0 differ; config: 0 only on production, 0 only on standby, 1 differ") ||
		!strings.Contains(out, "  drift     projects only-production  odoo-addons-b\n") {
		t.Errorf("text output:\n%s", out)
	}
}
