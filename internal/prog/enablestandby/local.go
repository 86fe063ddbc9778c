package enablestandby

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// machine is this machine's PostgreSQL, as the preflight found it.
type machine struct {
	cluster  *pg.Cluster
	control  *pg.Control
	q        *pg.Session // when it runs
	status   *pg.Status  // when it runs
	conninfo string      // primary_conninfo, when it runs
	slot     string      // primary_slot_name, when it runs
	remote   []string    // addresses of clients from elsewhere
	senders  []string    // addresses of standbys streaming from it
	standby  bool        // in recovery, or will be when started
	tli      int
	history  pg.History
	logFile  string // where pg_ctl start logs (not a Debian cluster)
}

// activitySQL reads the settings a standby follows and who uses the
// database: clients not on this machine (not over the socket, 127.0.0.1
// or ::1), and walsenders feeding standbys.
const activitySQL = `SELECT current_setting('primary_conninfo'), current_setting('primary_slot_name'),
 coalesce((SELECT string_agg(DISTINCT host(client_addr), ' ') FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND client_addr IS NOT NULL AND host(client_addr) NOT IN ('127.0.0.1', '::1') AND pid <> pg_backend_pid()), ''),
 coalesce((SELECT string_agg(DISTINCT coalesce(host(client_addr), 'local'), ' ') FROM pg_stat_activity WHERE backend_type = 'walsender'), '')`

// inspectLocal reads this machine's cluster: its control file, and when
// it runs, its state and who uses it. It changes nothing.
func inspectLocal(ctx context.Context, r *run.Runner, cl *pg.Cluster) (*machine, error) {
	m := &machine{cluster: cl}
	var err error
	if m.control, err = cl.ReadControl(ctx, r); err != nil {
		return nil, err
	}
	m.tli = m.control.TLI
	m.standby = cl.StandbySignal() || m.control.InRecovery()
	if cl.Online {
		if err := m.readRunning(ctx, r); err != nil {
			return m, err
		}
	}
	if m.history, err = readHistory(cl.Data, m.tli); err != nil {
		return m, err
	}
	m.logFile = logFile(cl)
	return m, nil
}

func (m *machine) readRunning(ctx context.Context, r *run.Runner) error {
	cl := m.cluster
	q, err := cl.Open(ctx, r)
	if err != nil {
		return err
	}
	m.q = q
	if m.status, err = pg.ReadStatus(ctx, q); err != nil {
		return err
	}
	m.standby = m.status.InRecovery
	m.tli = max(m.tli, m.status.Timeline)
	out, err := q.Query(ctx, activitySQL)
	if err != nil {
		return err
	}
	f := strings.Split(out, "|")
	if len(f) != 4 {
		return fmt.Errorf("PostgreSQL %s: unexpected answer %q", cl, truncate(out))
	}
	m.conninfo, m.slot = f[0], f[1]
	m.remote, m.senders = strings.Fields(f[2]), strings.Fields(f[3])
	return nil
}

// streamsFrom reports whether the running standby's WAL receiver streams
// from host:port.
func (m *machine) streamsFrom(host string, port int) bool {
	st := m.status
	return st != nil && st.InRecovery && st.ReceiverStatus == "streaming" && st.SenderHost == host && st.SenderPort == port
}

// readHistory reads this machine's history for timeline tli from its
// pg_wal (a file PostgreSQL wrote when the timeline began); nil when the
// file is missing, and then where it parted from production is unknown.
func readHistory(data string, tli int) (pg.History, error) {
	if tli <= 1 {
		return pg.History{{TLI: 1, End: pg.MaxLSN}}, nil
	}
	path := filepath.Join(data, "pg_wal", fmt.Sprintf("%08X.history", tli))
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading this machine's timeline history: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return pg.ParseHistory(tli, b)
}

// logFile is where a cluster that is not Debian's logs when pg_ctl starts
// it: where the running server logs now (its standard error), else
// DATA.log beside the data directory. A Debian cluster logs where
// pg_ctlcluster says.
func logFile(cl *pg.Cluster) string {
	if cl.Debian {
		return cl.LogFile
	}
	if b, err := os.ReadFile(filepath.Join(cl.Data, "postmaster.pid")); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
			if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); err == nil && filepath.IsAbs(p) && !strings.ContainsAny(p, "\n\x00") {
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
					return p
				}
			}
		}
	}
	return cl.Data + ".log"
}

// logTail returns the last line of the cluster's log that says why
// something failed, for an error message; "" when there is none.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	off := max(fi.Size()-16<<10, 0)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	lines := strings.Split(string(b[:n]), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "FATAL:") || strings.Contains(lines[i], "ERROR:") {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}
