package run

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"
)

// Proc is a long-running command a program talks to while it runs: the
// ssh master connection, a psql session. Like a step, it runs in its own
// process group, is logged, and cannot outlive this process.
type Proc struct {
	argv   []string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *os.File // read end of the command's stdout, when asked for
	stderr *Tail
	done   chan struct{} // closed once the command has exited
	err    error         // Wait's result, once done
}

// StartOptions say what a Proc's streams are.
type StartOptions struct {
	Dir    string
	Stdin  bool // give the command a pipe to write to (Proc.Stdin)
	Stdout bool // read the command's stdout (Proc.Stdout); else discarded
}

// Start starts argv and returns at once. ctx bounds only the start: the
// process lives until Stop or Kill (or until it exits), so that a deadline
// meant for one query cannot end a connection shared by the whole run.
func (r *Runner) Start(ctx context.Context, argv []string, o StartOptions) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), r.Env...)
	p := &Proc{argv: argv, cmd: cmd, stderr: &Tail{Max: 8 << 10}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	var err error
	if o.Stdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	var w *os.File
	if o.Stdout {
		// Our own pipe, not StdoutPipe: Wait, run aside, must not close it
		// under a reader that has not yet read the command's last words.
		if p.stdout, w, err = os.Pipe(); err != nil {
			return nil, err
		}
		cmd.Stdout = w
	}
	r.Log.Debug().Str("cmd", shellquote.Join(argv...)).Msg("start")
	err = cmd.Start()
	if w != nil {
		w.Close()
	}
	if err != nil {
		if p.stdout != nil {
			p.stdout.Close()
		}
		f := &Error{Argv: argv, ExitCode: -1, Err: err}
		if errors.Is(err, exec.ErrNotFound) {
			f.Err = &NotFoundError{Name: argv[0], Err: err}
		}
		return nil, f
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Stdin is the pipe to the command's standard input (StartOptions.Stdin).
func (p *Proc) Stdin() io.WriteCloser { return p.stdin }

// Stdout is the command's standard output (StartOptions.Stdout).
func (p *Proc) Stdout() *os.File { return p.stdout }

// Done is closed once the command has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stderr is the tail of what the command wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Err describes how the command ended (call after Done), as an *Error.
func (p *Proc) Err(cause error) error {
	code := -1
	if p.cmd.ProcessState != nil {
		code = p.cmd.ProcessState.ExitCode()
	}
	if cause == nil {
		cause = p.err
	}
	return &Error{Argv: p.argv, Stderr: p.Stderr(), ExitCode: code, Err: cause}
}

// Kill ends the whole process group now and waits for the command.
func (p *Proc) Kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.closeStdout()
}

// Stop closes the command's stdin (psql ends at end of input) and gives it
// grace to exit on its own, then kills the group.
func (p *Proc) Stop(grace time.Duration) {
	if p.stdin != nil {
		p.stdin.Close()
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// Nothing of the group may outlive it.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.closeStdout()
}

func (p *Proc) closeStdout() {
	if p.stdout != nil {
		p.stdout.Close()
	}
}
