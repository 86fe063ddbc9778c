package pg

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Major is the cluster's major version as a number (15), 0 when unknown.
func (c *Cluster) Major() int {
	n, _ := strconv.Atoi(strings.SplitN(c.Version, ".", 2)[0])
	return n
}

// StopStep stops the server with a fast shutdown (clients disconnected,
// a shutdown checkpoint written): pg_ctlcluster on Debian, which goes
// through systemd where it runs; pg_ctl as the cluster's user elsewhere.
func (c *Cluster) StopStep(wait time.Duration) run.Step {
	argv := c.As(c.Bin("pg_ctl"), "stop", "-D", c.Data, "-m", "fast", "-w", "-t", seconds(wait))
	if c.Debian {
		argv = []string{"pg_ctlcluster", "-m", "fast", c.Version, c.Name, "stop"}
	}
	return run.Step{What: fmt.Sprintf("stop PostgreSQL %s (fast shutdown)", c), Argv: argv, Dir: "/", Timeout: wait + 30*time.Second}
}

// StartStep starts the server and waits until it accepts connections. A
// cluster that is not Debian's logs what it prints before its own logging
// starts to logFile. pg_ctl puts the server in a session of its own, so
// the step's end does not stop it.
func (c *Cluster) StartStep(wait time.Duration, logFile string) run.Step {
	argv := c.As(c.Bin("pg_ctl"), "start", "-D", c.Data, "-w", "-t", seconds(wait), "-l", logFile)
	if c.Debian {
		argv = []string{"pg_ctlcluster", c.Version, c.Name, "start"}
	}
	return run.Step{What: fmt.Sprintf("start PostgreSQL %s", c), Argv: argv, Dir: "/", Timeout: wait + 30*time.Second}
}

func seconds(d time.Duration) string { return strconv.Itoa(max(int(d.Seconds()), 1)) }

// ConnArgv is psql, as the cluster's user, connected with conninfo (a
// libpq connection string, see Conninfo) and running args.
func (c *Cluster) ConnArgv(conninfo string, args ...string) []string {
	return c.As(append([]string{c.Bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo}, args...)...)
}

// Conninfo builds a libpq connection string from key, value pairs, each
// value quoted as libpq reads it.
func Conninfo(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[i] + "=" + quoteConn(kv[i+1]))
	}
	return b.String()
}

// quoteConn quotes a connection-string value: single quotes, with ' and \
// escaped by a backslash.
func quoteConn(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// QuoteLiteral quotes s as an SQL string literal.
func QuoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ParseConninfo reads a libpq key=value connection string (as
// primary_conninfo holds it); it returns nil when s is not one.
func ParseConninfo(s string) map[string]string {
	m := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " '") {
			return nil
		}
		rest = strings.TrimLeft(rest, " ")
		var v strings.Builder
		if strings.HasPrefix(rest, "'") {
			i, closed := 1, false
			for ; i < len(rest); i++ {
				switch rest[i] {
				case '\\':
					if i+1 < len(rest) {
						i++
						v.WriteByte(rest[i])
					}
					continue
				case '\'':
					closed = true
				}
				if closed {
					break
				}
				v.WriteByte(rest[i])
			}
			if !closed {
				return nil
			}
			s = rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			v.WriteString(rest[:end])
			s = rest[end:]
		}
		m[k] = v.String()
	}
	return m
}
