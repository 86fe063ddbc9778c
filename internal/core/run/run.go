// Package run executes the external tools the suite drives (ssh, rsync,
// apt-get, pip, pg_ctl, ...) and applies plans. Commands are argv, never
// shell strings. Each runs in its own process group with a deadline, and the
// whole group is killed on timeout or when the program is interrupted, so no
// ssh or rsync is left behind.
//
// A program reads what it needs first (Query: read-only probes, which run in
// a dry run too, so the preview is exact), then builds its plan, a list of
// Steps, and hands it to Apply. Apply is the one place where --dry-run
// matters: it prints the plan, shell-quoted so it can be pasted, or runs it.
// restic's prune is the model: a plan is computed, then executed, and a dry
// run is a property of the execution, not of the program.
//
// Every process the suite starts goes through here. bitfield/script, part
// of the requested stack, serves local read-only text work (the summary
// file, sha256sum listings, log assertions in tests) and nothing more: its
// Exec and Shell would start processes without our argv discipline,
// process groups, deadlines or output caps, so they are never used.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"
	"github.com/rs/zerolog"
)

// Step is one thing a plan does: an external command (Argv), or work done
// in this process (Do: a file written, a configuration rewritten, or a
// command whose output the program reads as it runs).
type Step struct {
	What string   // what it does and why, for people
	Argv []string // the command; for a Do step, the command Do runs, if any (printed)
	// Do, when set, is called instead of running Argv.
	Do func(ctx context.Context) error
	// Show is what a dry run prints for a step that runs no command: what
	// it would write. Printed as comments, so the plan stays pasteable.
	Show []string
	// Preview, when set, runs in a dry run after the step is printed: a
	// read-only probe that shows what the step would change (rsync -n,
	// apt-get -s, pip install --dry-run).
	Preview func(ctx context.Context) error

	Timeout time.Duration // wall-clock deadline; 0 means DefaultTimeout
	// Stall, when set, stops the command once its process group has made
	// no progress (bytes read or written, output) for that long: the step
	// fails with Error.Stalled (stall.go). Not for Detach steps.
	Stall  time.Duration
	Env    []string // extra KEY=value pairs
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer // where output streams; nil means captured only
	// StreamOnly sends the output to Stdout only and keeps none of it: for
	// output that grows with the data (a file list), where the caller
	// reads what it needs as it passes.
	StreamOnly bool
	Stderr     io.Writer // also streamed here when set; its tail is always kept
	// MaxOutput bounds the output kept in memory; 0 means MaxOutput.
	MaxOutput int
	// Detach leaves what the command started running after it exits (a
	// service's daemon): its group is not killed, and its output goes to a
	// file, so a daemon holding it open cannot stall the step.
	Detach bool
}

// DefaultTimeout bounds a step that does not set its own.
const DefaultTimeout = 10 * time.Minute

// MaxOutput bounds what one command's captured output may hold. Output
// comes from production too (listings, package lists, pip's JSON): a
// hostile or broken production must not make the standby's memory grow
// without bound (the OOM killer might pick the standby's PostgreSQL).
// Output that grows with the data is streamed instead (StreamOnly).
const MaxOutput = 16 << 20

// ErrOutputLimit is wrapped by the error of a command whose output passed
// its limit; the command was stopped.
var ErrOutputLimit = errors.New("output limit reached")

// Error is a failed command: its argv, the tail of its stderr and the cause.
type Error struct {
	Argv     []string
	Stderr   string
	ExitCode int // -1 when the command did not exit normally
	Err      error
	TimedOut bool
	// Stalled is a command stopped because it made no progress for Stall
	// (Step.Stall).
	Stalled bool
	Stall   time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := Cause(e); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	b.WriteString(shellquote.Join(e.Argv...))
	switch {
	case e.TimedOut:
		b.WriteString(": timed out")
	case e.Stalled:
		fmt.Fprintf(&b, ": stopped, no progress for %s", e.Stall)
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// NotFoundError is a command that is not installed. It wraps
// exec.ErrNotFound, so errors.Is(err, exec.ErrNotFound) holds.
type NotFoundError struct {
	Name string
	Err  error
}

func (e *NotFoundError) Error() string { return e.Name + " not found: install it or fix PATH" }
func (e *NotFoundError) Unwrap() error { return e.Err }

// Runner runs commands and applies plans. The zero value runs for real
// with a disabled logger.
type Runner struct {
	DryRun bool
	Out    io.Writer // where a dry run prints its plan (default stdout)
	Log    zerolog.Logger
	Env    []string // extra environment for every command
	// Shown rewrites an argv for printing: a command that uses the run's
	// private ssh master is shown as the plain command an operator can
	// paste (ssh.Conn.Plain).
	Shown func(argv []string) []string
}

// Apply runs a plan's steps in order and stops at the first that fails. In
// a dry run it prints each step (and runs its Preview) instead. A step with
// nothing to print (no What, Argv or Show) is silent in a dry run: a
// report, or a question only the real run asks.
func (r *Runner) Apply(ctx context.Context, steps ...Step) error {
	for _, s := range steps {
		if r.DryRun {
			r.Print(s)
			if s.Preview != nil {
				if err := s.Preview(ctx); err != nil {
					return err
				}
			}
			continue
		}
		var err error
		if s.Do != nil {
			err = s.Do(ctx)
		} else if len(s.Argv) > 0 {
			_, err = r.Exec(ctx, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Print writes a step the way a dry run shows it.
func (r *Runner) Print(s Step) {
	out := r.Out
	if out == nil {
		out = os.Stdout
	}
	if s.What != "" {
		fmt.Fprintf(out, "# %s\n", s.What)
	}
	if len(s.Argv) > 0 {
		env := ""
		if len(s.Env) > 0 {
			env = shellquote.Join(s.Env...) + " "
		}
		fmt.Fprintf(out, "%s%s\n", env, shellquote.Join(r.shown(s.Argv)...))
	}
	for _, l := range s.Show {
		fmt.Fprintf(out, "#   %s\n", l)
	}
}

func (r *Runner) shown(argv []string) []string {
	if r.Shown == nil {
		return argv
	}
	return r.Shown(argv)
}

// Query runs a read-only command, also in a dry run, and returns its stdout.
func (r *Runner) Query(ctx context.Context, argv ...string) ([]byte, error) {
	return r.Exec(ctx, Step{Argv: argv})
}

// Exec runs a step's command now, also in a dry run, and returns its
// stdout: for read-only probes that need a Step's options, and for the
// commands a Do step runs.
func (r *Runner) Exec(ctx context.Context, s Step) ([]byte, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if s.Detach {
		return r.execDetached(ctx, r.command(ctx, s), s)
	}
	// A stall cancels the step's context: the group gets SIGTERM, as at
	// its deadline, so rsync can remove its temporary file.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := r.command(ctx, s)
	limit := s.MaxOutput
	if limit <= 0 {
		limit = MaxOutput
	}
	stdout := &capped{max: limit, over: func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }}
	switch {
	case s.Stdout != nil && s.StreamOnly:
		cmd.Stdout = s.Stdout
	case s.Stdout != nil:
		cmd.Stdout = io.MultiWriter(stdout, s.Stdout)
	default:
		cmd.Stdout = stdout
	}
	var outBytes atomic.Int64
	if s.Stall > 0 {
		cmd.Stdout = counting{n: &outBytes, w: cmd.Stdout}
	}
	tail := &Tail{Max: 8 << 10}
	if s.Stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, s.Stderr)
	} else {
		cmd.Stderr = tail
	}

	start := time.Now()
	r.Log.Debug().Str("cmd", shellquote.Join(s.Argv...)).Msg("run")
	err := cmd.Start()
	var stalled atomic.Bool
	if err == nil {
		watched := func() {}
		if s.Stall > 0 {
			watching, done := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() {
				watchStall(watching, cmd.Process.Pid, s.Stall, &outBytes, func() { stalled.Store(true); stop() })
			})
			watched = func() { done(); wg.Wait() }
		}
		err = cmd.Wait()
		watched()
		// Whatever happened, nothing of the group may outlive the step.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	r.Log.Debug().Str("cmd", s.Argv[0]).Dur("took", time.Since(start)).Err(err).Msg("done")
	if stdout.exceeded() {
		err = fmt.Errorf("%w: more than %d MiB of output, stopped", ErrOutputLimit, limit>>20)
	}
	if stalled.Load() && err == nil {
		err = errors.New("no progress") // stopped, even if it then exited 0
	}
	if err == nil {
		return stdout.bytes(), nil
	}
	f := r.failure(ctx, s, tail.String(), err)
	if stalled.Load() {
		f.Stalled, f.Stall, f.TimedOut = true, s.Stall, false
	}
	return stdout.bytes(), f
}

// command prepares s's process: its own group, so the whole tree can be
// signalled; Pdeathsig, so a killed parent does not leave it running.
func (r *Runner) command(ctx context.Context, s Step) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = s.Dir
	cmd.Env = append(append(os.Environ(), r.Env...), s.Env...)
	cmd.Stdin = s.Stdin
	return cmd
}

// execDetached runs a Detach step: output to a temporary file, and the
// process group left alone once the command itself has exited.
func (r *Runner) execDetached(ctx context.Context, cmd *exec.Cmd, s Step) ([]byte, error) {
	f, err := os.CreateTemp("", "ot-run-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	r.Log.Debug().Str("cmd", shellquote.Join(s.Argv...)).Msg("run (detached)")
	err = cmd.Run()
	out := fileTail(f, 8<<10)
	if err == nil {
		return out, nil
	}
	return out, r.failure(ctx, s, string(out), err)
}

// fileTail returns the last n bytes of f.
func fileTail(f *os.File, n int64) []byte {
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(fi.Size()-n, 0)
	out := make([]byte, fi.Size()-off)
	got, _ := f.ReadAt(out, off)
	return out[:got]
}

func (r *Runner) failure(ctx context.Context, s Step, stderr string, err error) *Error {
	e := &Error{Argv: s.Argv, Stderr: stderr, ExitCode: -1, Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		e.ExitCode = exitErr.ExitCode()
	}
	if errors.Is(err, exec.ErrNotFound) {
		e.Err = &NotFoundError{Name: s.Argv[0], Err: err}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.TimedOut = true
	}
	return e
}

// capped keeps up to max bytes; past that it calls over once (which stops
// the command) and drops what it kept. It keeps the pieces as they come and
// joins them once at the end: a growing buffer would hold about twice the
// output while it grows.
type capped struct {
	parts [][]byte
	n     int
	max   int
	over  func()
	hit   bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.hit {
		return len(p), nil
	}
	if c.n+len(p) > c.max {
		c.hit, c.parts = true, nil
		c.over()
		return len(p), nil
	}
	c.parts = append(c.parts, bytes.Clone(p))
	c.n += len(p)
	return len(p), nil
}

func (c *capped) exceeded() bool { return c.hit }

func (c *capped) bytes() []byte { return bytes.Join(c.parts, nil) }

// Cause is the line of a failed command's stderr that says why: the last
// one that is not blank and holds none of noise (the generic lines a tool
// ends with, such as rsync's "rsync error: ... at main.c"), or "". Every
// message that explains a failure takes its cause from here.
func Cause(err error, noise ...string) string {
	lines := strings.Split(strings.TrimSpace(Stderr(err)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !slices.ContainsFunc(noise, func(n string) bool { return strings.Contains(l, n) }) {
			return l
		}
	}
	return ""
}

// Brief says why a command failed in a few words, for a message that
// already names the command: the last line of its stderr and its exit status.
func Brief(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	msg := fmt.Sprintf("exit status %d", e.ExitCode)
	switch {
	case e.TimedOut:
		msg = "timed out"
	case e.Stalled:
		msg = fmt.Sprintf("no progress for %s, stopped", e.Stall)
	case errors.Is(e.Err, ErrOutputLimit), errors.Is(e.Err, exec.ErrNotFound):
		msg = e.Err.Error()
	}
	if line := Cause(err); line != "" {
		msg = line + " (" + msg + ")"
	}
	return msg
}

// ExitCode returns the exit code of a failed command, or -1.
func ExitCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.ExitCode
	}
	return -1
}

// Stderr returns the kept tail of a failed command's stderr, or "".
func Stderr(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Stderr
	}
	return ""
}

// Tail is an io.Writer keeping only the last Max bytes written. It is safe
// for one writer and concurrent readers.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.Max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.Max:]...)
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
