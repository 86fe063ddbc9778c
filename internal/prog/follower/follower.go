// Package follower starts and stops the filestore follower
// (ot-attachments-sync --follow) as steps of a program's plan: ot-enable-sync,
// ot-configure and ot-enable-standby-mode start it when they turn sync on;
// ot-disable-sync and ot-disable-standby-mode stop it.
//
// Where systemd is the init system the follower is the packaged unit
// ot-attachments-follow.service: started with `systemctl enable --now`,
// stopped with `systemctl disable --now`, so that it comes back after a
// reboot while sync is on, and never once it was disabled.
//
// Without systemd nothing is started: a long-running process needs a
// supervisor to restart it and to start it at boot, and this suite installs
// none. The plan says so, and the hourly cron job goes on syncing the
// filestore as before; an operator who wants the follower runs
// `ot-attachments-sync --follow --cron` under the supervisor of their init
// system. Stopping works everywhere: a follower found through its state
// file (STATE_DIR/follow.json) is sent SIGTERM, but only when its process
// really is a follower of ours (its /proc/PID/cmdline and owner), never an
// unrelated process that reused the PID.
package follower

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
)

// Unit is the follower's systemd unit, shipped by the package.
const Unit = "ot-attachments-follow.service"

// Command is what the unit runs (after /usr/bin/).
const Command = "ot-attachments-sync --follow --cron"

// DefaultConfig is the configuration file the unit's follower reads.
const DefaultConfig = "/etc/odoo/ot-redundancy-sync.conf"

// StopWait bounds the wait for a signalled follower to exit: it ends the
// cycle in progress (an rsync of a few buckets) and writes its state.
const StopWait = 30 * time.Second

// Host is where the follower would run.
type Host struct {
	Systemd bool // systemd is the init system (/run/systemd/system exists)
	Unit    bool // the follower's unit is installed (systemd knows it)
}

// Detect looks at this machine; read-only, so it runs in a dry run too.
func Detect(ctx context.Context, r *run.Runner) Host {
	h := Host{Systemd: isDir("/run/systemd/system")}
	if !h.Systemd {
		return h
	}
	out, err := r.Exec(ctx, run.Step{Argv: []string{"systemctl", "show", "--property=LoadState", "--value", "--", Unit},
		Timeout: 30 * time.Second})
	state := strings.TrimSpace(string(out))
	h.Unit = err == nil && state != "" && state != "not-found"
	return h
}

// Printf is where a step says what it did (cli.Env.Printf).
type Printf func(format string, args ...any)

// unitConfig reports whether cfg is the file the unit's follower reads:
// a program run with another --config must not start or stop it.
func unitConfig(cfg *config.Config) bool {
	p, err := filepath.Abs(cfg.Path)
	return err == nil && filepath.Clean(p) == DefaultConfig
}

// StartSteps start the follower where systemd runs its unit; elsewhere
// they only say that it was not started, and why.
func StartSteps(h Host, cfg *config.Config, printf Printf) []run.Step {
	switch {
	case h.Systemd && h.Unit && unitConfig(cfg):
		return []run.Step{{
			What: "enable and start the filestore follower (" + Unit + ": " + Command + "), now and at boot",
			Argv: []string{"systemctl", "enable", "--now", "--", Unit},
		}}
	case h.Systemd && h.Unit:
		return []run.Step{note(printf, "the filestore follower is not started: "+Unit+" reads "+DefaultConfig+", not "+cfg.Path,
			"to follow with this file, run: ot-attachments-sync --config "+cfg.Path+" --follow --cron")}
	case h.Systemd:
		return []run.Step{note(printf, "the filestore follower is not started: "+Unit+" is not installed (reinstall the ot-redundancy package)",
			"the hourly filestore sync goes on")}
	default:
		return []run.Step{note(printf, "the filestore follower is not started: without systemd nothing would supervise it",
			"the hourly filestore sync (cron) goes on; to follow continuously, run "+Command+" under your init system's supervisor")}
	}
}

// note is a step that only tells: shown as comments in a dry run, printed
// in a real one.
func note(printf Printf, what, detail string) run.Step {
	return run.Step{What: what, Show: []string{detail}, Do: func(context.Context) error {
		if printf != nil {
			printf("note: %s; %s\n", what, detail)
		}
		return nil
	}}
}

// StopSteps stop the follower and keep it from starting again: the unit is
// disabled and stopped where systemd runs it; a follower still running
// after that (started by hand, or without systemd) gets SIGTERM, if its
// process is really ours, and is waited for up to StopWait.
func StopSteps(h Host, cfg *config.Config) []run.Step {
	var steps []run.Step
	if h.Systemd && h.Unit && unitConfig(cfg) {
		steps = append(steps, run.Step{
			What: "disable and stop the filestore follower (" + Unit + "): it must not start again",
			Argv: []string{"systemctl", "disable", "--now", "--", Unit},
			// systemctl waits for the unit's TimeoutStopSec (30 s).
			Timeout: 2 * time.Minute,
		})
	}
	dir := cfg.Get(config.StateDir)
	pid := Running(dir)
	if pid == 0 {
		return steps
	}
	what := fmt.Sprintf("stop the filestore follower, pid %d (SIGTERM; wait up to %s for it to exit)", pid, StopWait)
	if len(steps) > 0 {
		what = fmt.Sprintf("stop the filestore follower pid %d if it still runs (started by hand): SIGTERM, wait up to %s", pid, StopWait)
	}
	steps = append(steps, run.Step{
		What: what,
		Argv: []string{"kill", "-TERM", strconv.Itoa(pid)},
		// Read again when the step runs: the follower may have exited, or
		// another started, since the plan was made.
		Do: func(ctx context.Context) error { return Stop(ctx, dir, StopWait) },
	})
	return steps
}

// Running returns the PID of the follower that the state file in dir names
// when that process runs and is a follower of ours, else 0.
func Running(dir string) int {
	st, ok, err := filestore.ReadFollowState(dir)
	if err != nil || !ok || st.State == filestore.Stopped || st.PID <= 0 {
		return 0
	}
	if !IsFollower(st.PID) {
		return 0
	}
	return st.PID
}

// Stop sends SIGTERM to the running follower named in dir's state file, if
// any, and waits up to wait for it to exit.
func Stop(ctx context.Context, dir string, wait time.Duration) error {
	pid := Running(dir)
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stopping the filestore follower (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(wait)
	for IsFollower(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the filestore follower (pid %d) did not exit within %s of SIGTERM; stop it by hand (kill %d)", pid, wait, pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Programs are the names the follower runs under: the command, the
// manual's other spelling, and the multi-call binary called by its name.
var programs = []string{"ot-attachments-sync", "ot-attachment-sync"}

// IsFollower reports whether pid is a live follower of ours: its command
// line is ot-attachments-sync (under either name, or through the
// multi-call binary) with --follow, it belongs to root or to this
// process's user, and it is not a zombie. A PID reused by another program,
// or a process a local user named like ours, is not.
func IsFollower(pid int) bool {
	if pid <= 1 || pid == os.Getpid() {
		return false
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil || !FollowerCmdline(cmdline) {
		return false
	}
	status, err := os.ReadFile(filepath.Join(proc, "status"))
	if err != nil {
		return false
	}
	uid, state := -1, ""
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch {
		case k == "Uid" && len(f) > 0:
			uid, _ = strconv.Atoi(f[0])
		case k == "State" && len(f) > 0:
			state = f[0]
		}
	}
	if state == "Z" || state == "X" {
		return false
	}
	return uid == 0 || uid == os.Geteuid()
}

// FollowerCmdline reports whether a /proc/PID/cmdline (NUL-separated argv)
// is ot-attachments-sync --follow.
func FollowerCmdline(cmdline []byte) bool {
	argv := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	if len(argv) == 0 {
		return false
	}
	name := filepath.Base(argv[0])
	args := argv[1:]
	if name == "ot-redundancy" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	if !slices.Contains(programs, name) {
		return false
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--follow" || a == "--follow=true" {
			return true
		}
	}
	return false
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Window is where a failover's loss of attachments starts: production's
// attachments stored after From may be missing on the standby. From is the
// follower's last completed cycle (what it covered), or the last filestore
// sync in the summary file (lastSync) when that is later or the follower
// never completed a cycle; zero when neither ever happened.
type Window struct {
	From     time.Time
	Follower bool   // From is the follower's
	Ran      bool   // the follower ever ran (its state file exists)
	State    string // the follower's last state, when it ran
	Err      error  // the state file could not be read
}

// LossWindow reads the follower's state in dir and compares it with the
// last filestore sync.
func LossWindow(dir string, lastSync time.Time) Window {
	st, ok, err := filestore.ReadFollowState(dir)
	w := Window{From: lastSync, Ran: ok, State: st.State, Err: err}
	if ok && err == nil && !st.Covered.IsZero() && !st.Covered.Before(lastSync) {
		w.From, w.Follower = st.Covered, true
	}
	return w
}

// Text says the window in a sentence, with stamp formatting the times.
func (w Window) Text(stamp func(time.Time) string) string {
	var s string
	switch {
	case w.From.IsZero():
		s = "unknown: neither the follower nor a filestore sync ever completed; any attachment may be missing"
	case w.Follower:
		s = "attachments stored on production after " + stamp(w.From) + " may be missing (the follower's last completed cycle)"
	case w.Ran:
		s = "attachments stored on production after " + stamp(w.From) + " may be missing (the last ot-attachments-sync in the summary file; the follower's last cycle is older, or it completed none)"
	default:
		s = "attachments stored on production after " + stamp(w.From) + " may be missing (the last ot-attachments-sync in the summary file; the follower never ran)"
	}
	if w.Err != nil {
		s += "; the follower's state could not be read: " + w.Err.Error()
	}
	return s
}
