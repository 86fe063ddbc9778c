// Package run executes the external tools the suite drives (ssh, rsync,
// apt-get, pip, pg_ctl, ...). Commands are argv, never shell strings. Each
// runs in its own process group with a deadline, and the whole group is
// killed on timeout or when the program is interrupted, so no ssh or rsync is
// left behind.
//
// A Runner in dry-run mode prints every state-changing step, shell-quoted so
// it can be pasted, and runs none of them; read-only probes still run, so the
// preview is exact.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"
	"github.com/rs/zerolog"
)

// Step is one command of a plan.
type Step struct {
	What    string        // what it does and why, for people
	Argv    []string      // the exact command
	Changes bool          // true when it changes state: printed, not run, in a dry run
	Timeout time.Duration // wall-clock deadline; 0 means DefaultTimeout
	Env     []string      // extra KEY=value pairs
	Dir     string
	Stdin   io.Reader
	Stdout  io.Writer // where output streams; nil means captured only
	// StreamOnly sends the output to Stdout only and keeps none of it: for
	// output that grows with the data (a file list), where the caller
	// reads what it needs as it passes.
	StreamOnly bool
	Stderr     io.Writer // also streamed here when set; its tail is always kept
	// Detach leaves what the command started running after it exits (a
	// service's daemon): its group is not killed, and its output goes to a
	// file, so a daemon holding it open cannot stall the step.
	Detach bool
}

// DefaultTimeout bounds a step that does not set its own.
const DefaultTimeout = 10 * time.Minute

// Error is a failed command: its argv, the tail of its stderr and the cause.
type Error struct {
	Argv     []string
	Stderr   string
	ExitCode int // -1 when the command did not exit normally
	Err      error
	TimedOut bool
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(lastLine(s))
		b.WriteString(": ")
	}
	b.WriteString(shellquote.Join(e.Argv...))
	switch {
	case e.TimedOut:
		b.WriteString(": timed out")
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

// Runner runs steps. The zero value runs for real with a disabled logger.
type Runner struct {
	DryRun bool
	Out    io.Writer // where a dry run prints its steps (default stdout)
	Log    zerolog.Logger
	Env    []string // extra environment for every step
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
	env := ""
	if len(s.Env) > 0 {
		env = shellquote.Join(s.Env...) + " "
	}
	fmt.Fprintf(out, "%s%s\n", env, shellquote.Join(s.Argv...))
}

// Run runs a step and returns its standard output. In a dry run a step that
// changes state is printed and skipped (nil output, nil error).
func (r *Runner) Run(ctx context.Context, s Step) ([]byte, error) {
	if r.DryRun && s.Changes {
		r.Print(s)
		return nil, nil
	}
	return r.exec(ctx, s)
}

// Query runs a read-only command, even in a dry run, and returns its stdout.
func (r *Runner) Query(ctx context.Context, argv ...string) ([]byte, error) {
	return r.exec(ctx, Step{Argv: argv})
}

func (r *Runner) exec(ctx context.Context, s Step) ([]byte, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
	// Own process group, so the whole tree can be signalled; Pdeathsig so a
	// killed parent does not leave its children running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = s.Dir
	cmd.Env = append(append(os.Environ(), r.Env...), s.Env...)
	cmd.Stdin = s.Stdin
	if s.Detach {
		return r.execDetached(ctx, cmd, s)
	}
	var stdout bytes.Buffer
	switch {
	case s.Stdout != nil && s.StreamOnly:
		cmd.Stdout = s.Stdout
	case s.Stdout != nil:
		cmd.Stdout = io.MultiWriter(&stdout, s.Stdout)
	default:
		cmd.Stdout = &stdout
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
	if err == nil {
		err = cmd.Wait()
		// Whatever happened, nothing of the group may outlive the step.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	r.Log.Debug().Str("cmd", s.Argv[0]).Dur("took", time.Since(start)).Err(err).Msg("done")
	if err == nil {
		return stdout.Bytes(), nil
	}
	return stdout.Bytes(), r.failure(ctx, s, tail.String(), err)
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
	out, _ := os.ReadFile(f.Name())
	if err == nil {
		return out, nil
	}
	tail := &Tail{Max: 8 << 10}
	tail.Write(out)
	return out, r.failure(ctx, s, tail.String(), err)
}

func (r *Runner) failure(ctx context.Context, s Step, stderr string, err error) *Error {
	e := &Error{Argv: s.Argv, Stderr: stderr, ExitCode: -1, Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		e.ExitCode = exitErr.ExitCode()
	}
	if errors.Is(err, exec.ErrNotFound) {
		e.Err = fmt.Errorf("%s not found: install it or fix PATH", s.Argv[0])
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.TimedOut = true
	}
	return e
}

// Brief says why a command failed in a few words, for a message that
// already names the command: the last line of its stderr and its exit status.
func Brief(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	msg := fmt.Sprintf("exit status %d", e.ExitCode)
	if e.TimedOut {
		msg = "timed out"
	}
	if line := lastLine(strings.TrimSpace(e.Stderr)); line != "" {
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

// Tail is an io.Writer keeping only the last Max bytes written.
type Tail struct {
	Max int
	buf []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.Max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.Max:]...)
	}
	return len(p), nil
}

func (t *Tail) String() string { return string(t.buf) }
