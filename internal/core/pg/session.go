package pg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Session is one psql process kept open for all of a run's queries:
// starting psql costs more than the queries a promotion needs, and the
// connection stays up across the promotion.
type Session struct {
	c    *Cluster
	p    *run.Proc
	out  *bufio.Reader
	dead error
}

// marker ends each query's output; psql's ERROR and LAST_ERROR_MESSAGE
// variables follow it on the same line.
const marker = "__ot_redundancy_end_of_query__"

// Open starts psql as the cluster's user through r and checks that it
// connected.
func (c *Cluster) Open(ctx context.Context, r *run.Runner) (*Session, error) {
	// Dir "/": the postgres user may not be able to enter our working directory.
	p, err := r.Start(ctx, c.psql(), run.StartOptions{Dir: "/", Stdin: true, Stdout: true})
	if err != nil {
		return nil, fmt.Errorf("starting psql for PostgreSQL %s: %w", c, err)
	}
	s := &Session{c: c, p: p, out: bufio.NewReader(p.Stdout())}
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
		s.p.Kill()
		s.dead = fmt.Errorf("querying PostgreSQL %s: %w", s.c, ctx.Err())
		return "", s.dead
	}
}

func (s *Session) roundTrip(sql string) (string, error) {
	if _, err := fmt.Fprintf(s.p.Stdin(), "%s;\n\\echo %s :ERROR :LAST_ERROR_MESSAGE\n", sql, marker); err != nil {
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
		case <-s.p.Done():
		case <-time.After(2 * time.Second):
		}
	}
	msg := strings.TrimSpace(s.p.Stderr())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = err.Error()
	}
	s.dead = fmt.Errorf("querying PostgreSQL %s: psql stopped: %s", s.c, msg)
	return s.dead
}

// Close ends psql: end of input, then up to 5 s to exit.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s.p.Stop(5 * time.Second)
	return nil
}
