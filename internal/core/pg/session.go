package pg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Session is one psql process kept open for all of a run's queries:
// starting psql costs more than the queries a promotion needs, and the
// connection stays up across the promotion.
type Session struct {
	c      *Cluster
	cmd    *exec.Cmd
	in     io.WriteCloser
	outR   *os.File
	out    *bufio.Reader
	stderr *syncTail
	exited chan struct{} // closed when psql has exited and its stderr is read
	dead   error
}

// syncTail is a run.Tail safe to read while psql writes to it.
type syncTail struct {
	mu sync.Mutex
	t  run.Tail
}

func (s *syncTail) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.Write(p)
}

func (s *syncTail) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.String()
}

// marker ends each query's output; psql's ERROR and LAST_ERROR_MESSAGE
// variables follow it on the same line.
const marker = "__ot_redundancy_end_of_query__"

// Open starts psql as the cluster's user and checks that it connected.
func (c *Cluster) Open(ctx context.Context) (*Session, error) {
	argv := c.psql()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/" // the postgres user may not be able to enter our working directory
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s := &Session{c: c, cmd: cmd, stderr: &syncTail{t: run.Tail{Max: 4 << 10}}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	// Our own pipe, not StdoutPipe: Wait, run aside, must not close it
	// under a reader that has not yet read psql's last words.
	out, w, err := os.Pipe()
	if err != nil {
		s.in.Close()
		return nil, err
	}
	cmd.Stdout = w
	s.outR, s.out = out, bufio.NewReader(out)
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		s.in.Close()
		return nil, fmt.Errorf("starting psql for PostgreSQL %s: %w", c, err)
	}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	if _, err := s.Query(ctx, "SELECT 1"); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Query runs one SQL statement (or a DO block) and returns its rows
// ("|" between columns) without the final newline. A statement that runs past
// ctx's deadline kills the session.
func (s *Session) Query(ctx context.Context, sql string) (string, error) {
	if s.dead != nil {
		return "", s.dead
	}
	sql = strings.TrimRight(strings.TrimSpace(sql), ";")
	if strings.Contains(sql, "\n") {
		// psql would run each line on its own: keep the statement one line.
		sql = strings.Join(strings.Fields(sql), " ")
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := s.roundTrip(sql)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.dead = fmt.Errorf("querying PostgreSQL %s: %w", s.c, ctx.Err())
		return "", s.dead
	}
}

func (s *Session) roundTrip(sql string) (string, error) {
	if _, err := fmt.Fprintf(s.in, "%s;\n\\echo %s :ERROR :LAST_ERROR_MESSAGE\n", sql, marker); err != nil {
		return "", s.fail(err)
	}
	var lines []string
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			return "", s.fail(err)
		}
		line = strings.TrimSuffix(line, "\n")
		rest, ok := strings.CutPrefix(line, marker+" ")
		if !ok {
			lines = append(lines, line)
			continue
		}
		failed, msg, _ := strings.Cut(rest, " ")
		if failed == "true" {
			return "", fmt.Errorf("querying PostgreSQL %s: %s", s.c, msg)
		}
		return strings.Join(lines, "\n"), nil
	}
}

// fail marks the session dead: psql exited (the server went away) or
// cannot be written to.
func (s *Session) fail(err error) error {
	if errors.Is(err, io.EOF) {
		// psql is exiting: let it finish saying why.
		select {
		case <-s.exited:
		case <-time.After(2 * time.Second):
		}
	}
	msg := strings.TrimSpace(s.stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = err.Error()
	}
	s.dead = fmt.Errorf("querying PostgreSQL %s: psql stopped: %s", s.c, msg)
	return s.dead
}

// Close ends psql.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s.in.Close()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.outR.Close()
	return nil
}
