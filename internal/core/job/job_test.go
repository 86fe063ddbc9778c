package job

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func env(conf string, dry bool) *cli.Env {
	return &cli.Env{
		Prog: "ot-test", Ctx: context.Background(), Stdout: io.Discard, Stderr: io.Discard,
		Log: zerolog.Nop(), Runner: &run.Runner{DryRun: dry, Out: io.Discard}, G: &cli.Globals{Config: conf, DryRun: dry},
	}
}

func setup(t *testing.T, extra map[string]string) (*prodlab.Prod, string) {
	prodlab.Require(t)
	p := prodlab.Start(t, prodlab.Options{})
	conf := filepath.Join(t.TempDir(), "ot.conf")
	p.WriteConfig(t, conf, extra)
	return p, conf
}

func code(err error) int { c, _ := cli.Describe(err); return c }

func TestSyncRunsBodyOverSSHAndStampsOnSuccess(t *testing.T) {
	_, conf := setup(t, nil)
	var who string
	err := Sync(env(conf, false), "ot-test-sync", Flags{}, func(j *Job) error {
		out, err := j.Remote(j.Ctx, "id", "-un")
		who = strings.TrimSpace(string(out))
		return err
	})
	if err != nil || who != "odoo" {
		t.Fatalf("err %v, remote user %q", err, who)
	}
	cfg, _ := env(conf, false).Config()
	last, _ := summary.Last(cfg.Get(config.SummaryFile))
	if _, ok := last["ot-test-sync"]; !ok || len(last) != 1 {
		t.Fatalf("summary %v", last)
	}
}

func TestFailedBodyStampsNothingButIsRecorded(t *testing.T) {
	_, conf := setup(t, nil)
	err := Sync(env(conf, false), "ot-test-sync", Flags{}, func(j *Job) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("no error")
	}
	cfg, _ := env(conf, false).Config()
	if _, err := os.Stat(cfg.Get(config.SummaryFile)); !os.IsNotExist(err) {
		t.Fatal("summary written for a failed run")
	}
	recs, _ := summary.Records(cfg.Get(config.RunLog))
	if len(recs) != 1 || recs[0].Status != "failed" || recs[0].Error != "boom" {
		t.Fatalf("run log %+v", recs)
	}
}

func TestRefusals(t *testing.T) {
	_, off := setup(t, map[string]string{"SYNCMODE": "off"})
	called := false
	body := func(j *Job) error { called = true; return nil }
	if err := Sync(env(off, false), "x", Flags{}, body); code(err) != cli.ExitDisabled {
		t.Errorf("sync off: %v", err)
	}
	var silent cli.Silent
	if err := Sync(env(off, false), "x", Flags{Cron: true}, body); !errors.As(err, &silent) || silent.Code != 0 {
		t.Errorf("sync off under --cron: %v", err)
	}
	if called {
		t.Fatal("body ran while sync is off")
	}
	// A dry run may preview while sync is off.
	if err := Sync(env(off, true), "x", Flags{}, body); err != nil || !called {
		t.Errorf("dry run while off: %v", err)
	}

	_, promoted := setup(t, map[string]string{"PROMOTED": "yes"})
	called = false
	for _, dry := range []bool{false, true} {
		if err := Sync(env(promoted, dry), "x", Flags{}, body); code(err) != cli.ExitPromoted {
			t.Errorf("promoted (dry %v): %v", dry, err)
		}
	}
	if err := Sync(env(promoted, false), "x", Flags{Cron: true}, body); !errors.As(err, &silent) {
		t.Errorf("promoted under --cron: %v", err)
	}
	if called {
		t.Fatal("body ran on a promoted machine")
	}
}

func TestLockHeldNamesHolder(t *testing.T) {
	_, conf := setup(t, map[string]string{"LOCK_WAIT": "1"})
	cfg, _ := env(conf, false).Config()
	l, err := lock.Acquire(context.Background(), cfg.Get(config.LockFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	start := time.Now()
	err = Sync(env(conf, false), "x", Flags{}, func(*Job) error { return nil })
	if code(err) != cli.ExitLocked || !strings.Contains(err.Error(), "pid ") || time.Since(start) < time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	// Under --cron the run steps aside silently, and the run log says why.
	err = Sync(env(conf, false), "x", Flags{Cron: true}, func(*Job) error { t.Error("body ran"); return nil })
	var silent cli.Silent
	if !errors.As(err, &silent) || silent.Code != 0 {
		t.Fatalf("cron: %v", err)
	}
	recs, _ := summary.Records(cfg.Get(config.RunLog))
	if len(recs) != 2 || recs[1].Status != "skipped" || !strings.Contains(recs[1].Error, "held by pid") {
		t.Fatalf("run log %+v", recs)
	}
}

// A promotion that happens while a sync waits for the lock stops the sync;
// without a wait, PostgreSQL is asked once, and the cluster pg_lsclusters
// found is kept for this boot: the next run starts no Perl at all.
func TestGuardAgainAfterWaiting(t *testing.T) {
	_, conf := setup(t, map[string]string{"LOCK_WAIT": "10"})
	cfg, _ := env(conf, false).Config()
	// Count the real pg_lsclusters's runs through a wrapper first on PATH.
	real, err := exec.LookPath("pg_lsclusters")
	if err != nil {
		prodlab.Missing(t, "pg_lsclusters is not installed")
	}
	bin, runs := t.TempDir(), filepath.Join(t.TempDir(), "runs")
	prodlab.WriteFile(t, filepath.Join(bin, "pg_lsclusters"), "#!/bin/sh\necho >>"+runs+"\nexec "+real+" \"$@\"\n")
	os.Chmod(filepath.Join(bin, "pg_lsclusters"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	os.Remove(PG(cfg).Cache) // a cache of this boot: the next run writes it again
	for range 2 {
		if err := Sync(env(conf, false), "x", Flags{}, func(*Job) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(prodlab.ReadFile(t, runs), "\n"); n != 1 {
		t.Errorf("pg_lsclusters ran %d times in two runs without a wait, want 1", n)
	}

	l, err := lock.Acquire(context.Background(), cfg.Get(config.LockFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		data, _ := os.ReadFile(conf)
		os.WriteFile(conf, append(data, "PROMOTED=yes\n"...), 0o644)
		l.Release()
	}()
	err = Sync(env(conf, false), "x", Flags{}, func(*Job) error { t.Error("body ran after the promotion"); return nil })
	if code(err) != cli.ExitPromoted {
		t.Fatalf("promoted while waiting: %v", err)
	}
}

// When production shows this machine's token, SYNCSRC is this very machine.
func TestRefusesSelf(t *testing.T) {
	prodlab.Require(t)
	tok, err := localToken()
	if err != nil {
		t.Fatal(err)
	}
	// The lab hides the host's /run; show production a copy of our token,
	// as the same machine reached over the network would.
	same := t.TempDir()
	os.WriteFile(filepath.Join(same, "machine-token"), []byte(tok+"\n"), 0o644)
	p := prodlab.Start(t, prodlab.Options{Binds: map[string]string{"/run/ot-redundancy": same}})
	conf := filepath.Join(t.TempDir(), "ot.conf")
	p.WriteConfig(t, conf, nil)
	// The answer rides on the first command a sync makes: a remote
	// command, or rsync (through --rsync-path).
	// odoo may write its home: without the check, the commands would leave the marker.
	marker, seen := "/home/odoo/ran", filepath.Join(p.Home, "ran")
	for name, first := range map[string]func(j *Job) error{
		"remote": func(j *Job) error { _, err := j.Remote(j.Ctx, "touch", marker); return err },
		"rsync": func(j *Job) error {
			_, err := j.Runner.Exec(j.Ctx, run.Step{Argv: []string{"rsync", "-e", j.SSH.RsyncShell(),
				"--rsync-path=" + j.SSH.RsyncPath("touch "+marker+"; "), "--", j.SSH.Spec("/etc/hostname"), t.TempDir() + "/"}})
			return &cli.Error{Code: cli.ExitFailure, Msg: "rsync failed", Err: err}
		},
	} {
		err = Sync(env(conf, false), "x", Flags{}, func(j *Job) error {
			if err := first(j); err != nil {
				return err
			}
			t.Errorf("%s: the body went on", name)
			return nil
		})
		if code(err) != cli.ExitRefused || !strings.Contains(err.Error(), "is this very machine") || prodlab.Exists(seen) {
			t.Fatalf("%s: %v (the command ran: %v)", name, err, prodlab.Exists(seen))
		}
	}
}

func TestUnwritableSummaryFails(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	os.WriteFile(blocker, nil, 0o644)
	_, conf := setup(t, map[string]string{"SUMMARYFILE": filepath.Join(blocker, "ts.log")})
	err := Sync(env(conf, false), "x", Flags{}, func(*Job) error { return nil })
	if code(err) != cli.ExitFailure || !strings.Contains(err.Error(), "cannot write the summary file") {
		t.Fatalf("%v", err)
	}
}

// Every transfer from production runs production's rsync under REMOTE_NICE
// after the self check, at RSYNC_BWLIMIT: the options are one function's,
// and production's rsync really runs under them (a wrapper on production,
// named in REMOTE_NICE after nice, records its niceness and runs rsync).
func TestRsyncFrom(t *testing.T) {
	prodlab.Require(t)
	p := prodlab.Start(t, prodlab.Options{})
	prodlab.WriteFileMode(t, filepath.Join(p.Home, "wrap"), "#!/bin/sh\nnice > \"$HOME/niceness\"\nexec \"$@\"\n", 0o755)
	prodlab.WriteFile(t, filepath.Join(p.Home, "x"), "data\n")
	conf := filepath.Join(t.TempDir(), "ot.conf")
	p.WriteConfig(t, conf, map[string]string{"RSYNC_BWLIMIT": "5000", "REMOTE_NICE": "nice -n 7 /home/odoo/wrap"})
	dst := t.TempDir()
	err := Sync(env(conf, false), "x", Flags{}, func(j *Job) error {
		o := j.RsyncFrom("")
		if o[len(o)-1] != "--bwlimit=5000" || !strings.HasSuffix(o[2], "exec nice -n 7 /home/odoo/wrap rsync") || !strings.Contains(o[2], selfMark) {
			t.Errorf("options %q", o)
		}
		_, err := j.Runner.Exec(j.Ctx, run.Step{Argv: append(append([]string{"rsync"}, o...), "--", j.SSH.Spec("x"), dst+"/")})
		return err
	})
	if err != nil || prodlab.ReadFile(t, filepath.Join(dst, "x")) != "data\n" || strings.TrimSpace(prodlab.ReadFile(t, filepath.Join(p.Home, "niceness"))) != "7" {
		t.Fatalf("err %v", err)
	}
}
