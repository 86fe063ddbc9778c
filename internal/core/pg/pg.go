// Package pg finds the standby's local PostgreSQL cluster, reads its
// replication status and promotes it with PostgreSQL's own mechanism.
//
// Every tool runs as the PostgreSQL user (PG_OSUSER) through setpriv, with
// an argv, never a shell string.
package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// MinVersion is the oldest PostgreSQL the suite supports (pg_promote came in 12).
const MinVersion = "12"

// ErrNotFound is returned by Find when there is no local cluster to act on.
var ErrNotFound = errors.New("no local PostgreSQL cluster found")

// Cluster is the local PostgreSQL cluster.
type Cluster struct {
	Version string // major version, "15"
	Name    string // Debian cluster name; "" when configured by PG_DATA
	Data    string // data directory
	BinDir  string // directory of psql and pg_ctl
	Host    string // unix socket directory
	Port    int
	OSUser  string
	Online  bool // the server runs
	Debian  bool // managed by postgresql-common (pg_ctlcluster)
	// ConfigDir and LogFile are a Debian cluster's (pg_lsclusters): its
	// postgresql.conf lives outside the data directory.
	ConfigDir string
	LogFile   string
}

// String names the cluster for people: "15/main" or its data directory.
func (c *Cluster) String() string {
	if c.Debian {
		return c.Version + "/" + c.Name
	}
	return c.Data
}

// Options say where the local cluster is (job builds them from the
// configuration's PG_* keys).
type Options struct {
	Cluster string // a Debian cluster, "VERSION/NAME"; "" picks one
	Data    string // a data directory, when not a Debian cluster
	BinDir  string // its tools' directory ("" derives it from the version)
	Host    string // its socket directory
	Port    int
	OSUser  string // the user that runs PostgreSQL's tools
	// Cache, when set, is a root-only file that keeps the Debian cluster
	// Find chose, for this boot (it belongs in /run): pg_lsclusters is a
	// Perl start, about 0.1 s, that every hourly sync used to pay.
	Cache string
}

// Find locates the local cluster: Data when set, else the Debian cluster
// named by Cluster, else the Debian cluster in recovery (or the only one).
func Find(ctx context.Context, r *run.Runner, o Options) (*Cluster, error) {
	if o.Data != "" {
		return fromDataDir(o)
	}
	if c := fromCache(o); c != nil {
		return c, nil
	}
	c, err := lsclusters(ctx, r, o)
	if err == nil {
		toCache(o, c)
	}
	return c, err
}

// lsclusters asks postgresql-common for the clusters and picks one.
func lsclusters(ctx context.Context, r *run.Runner, o Options) (*Cluster, error) {
	if _, err := exec.LookPath("pg_lsclusters"); err != nil {
		return nil, fmt.Errorf("%w: pg_lsclusters is missing and PG_DATA is not set", ErrNotFound)
	}
	var list []DebianCluster
	out, err := r.Query(ctx, "pg_lsclusters", "--json")
	if err == nil {
		list, err = ParseClusters(out)
	} else {
		// postgresql-common before --json: the text table, sockets in PG_HOST.
		out, err = r.Query(ctx, "pg_lsclusters", "--no-header")
		if err == nil {
			list, err = ParseClustersText(out, o.Host)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing PostgreSQL clusters: %w", err)
	}
	c, err := Choose(list, o.Cluster)
	if err != nil {
		return nil, err
	}
	c.OSUser = o.OSUser
	return c, nil
}

// ParseClusters reads the output of `pg_lsclusters --json`.
func ParseClusters(out []byte) ([]DebianCluster, error) {
	var list []DebianCluster
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("reading pg_lsclusters --json output: %v", err)
	}
	return list, nil
}

// ParseClustersText reads the output of `pg_lsclusters --no-header`:
// version, name, port, status ("online,recovery"), owner, data, log.
func ParseClustersText(out []byte, socketDir string) ([]DebianCluster, error) {
	var list []DebianCluster
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return nil, fmt.Errorf("unexpected pg_lsclusters line %q", line)
		}
		d := DebianCluster{Version: json.Number(f[0]), Cluster: f[1], Port: json.Number(f[2]), PGData: f[5], SocketDir: socketDir}
		for _, s := range strings.Split(f[3], ",") {
			switch s {
			case "online":
				d.Running = 1
			case "recovery":
				d.Recovery = 1
			}
		}
		list = append(list, d)
	}
	return list, nil
}

// DebianCluster is one entry of `pg_lsclusters --json`.
type DebianCluster struct {
	Version   json.Number `json:"version"`
	Cluster   string      `json:"cluster"`
	Port      json.Number `json:"port"`
	Running   int         `json:"running"`
	Recovery  int         `json:"recovery"` // standby.signal (or recovery.conf) present
	PGData    string      `json:"pgdata"`
	SocketDir string      `json:"socketdir"`
	ConfigDir string      `json:"configdir"`
	LogFile   string      `json:"logfile"`
}

// Choose picks the cluster to act on: the one named "VERSION/NAME" when name
// is set, else the only one in recovery, else the only one.
func Choose(list []DebianCluster, name string) (*Cluster, error) {
	var pick []DebianCluster
	switch {
	case name != "":
		for _, d := range list {
			if d.Version.String()+"/"+d.Cluster == name {
				pick = append(pick, d)
			}
		}
		if len(pick) == 0 {
			return nil, fmt.Errorf("%w: PG_CLUSTER=%s is not in pg_lsclusters", ErrNotFound, name)
		}
	case len(list) == 1:
		pick = list
	default:
		for _, d := range list {
			if d.Recovery != 0 {
				pick = append(pick, d)
			}
		}
		if len(pick) != 1 {
			names := make([]string, len(list))
			for i, d := range list {
				names[i] = d.Version.String() + "/" + d.Cluster
			}
			if len(list) == 0 {
				return nil, fmt.Errorf("%w: pg_lsclusters lists no cluster", ErrNotFound)
			}
			return nil, fmt.Errorf("%w: cannot tell which of %s is the standby; set PG_CLUSTER", ErrNotFound, strings.Join(names, ", "))
		}
	}
	d := pick[0]
	port, err := strconv.Atoi(d.Port.String())
	if err != nil {
		return nil, fmt.Errorf("pg_lsclusters: cluster %s/%s has no port", d.Version, d.Cluster)
	}
	host := d.SocketDir
	if host == "" {
		host = "/var/run/postgresql"
	}
	return &Cluster{Version: d.Version.String(), Name: d.Cluster, Data: d.PGData, Port: port, Host: host,
		BinDir: "/usr/lib/postgresql/" + d.Version.String() + "/bin", Online: d.Running != 0, Debian: true,
		ConfigDir: d.ConfigDir, LogFile: d.LogFile}, nil
}

func fromDataDir(o Options) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(o.Data, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("%w: PG_DATA=%s is not a PostgreSQL data directory (%v)", ErrNotFound, o.Data, err)
	}
	c := &Cluster{Version: strings.TrimSpace(string(b)), Data: o.Data, BinDir: o.BinDir,
		Host: o.Host, Port: o.Port, OSUser: o.OSUser}
	if c.BinDir == "" {
		c.BinDir = "/usr/lib/postgresql/" + c.Version + "/bin"
	}
	c.Online = running(o.Data)
	return c, nil
}

// running tells whether the postmaster of data runs, the way pg_ctl status
// does: postmaster.pid names a live process.
func running(data string) bool {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}

// CheckVersion refuses a cluster older than MinVersion.
func (c *Cluster) CheckVersion() error {
	v, err := semver.NewVersion(c.Version)
	if err != nil {
		return fmt.Errorf("PostgreSQL cluster %s: cannot read version %q", c, c.Version)
	}
	if v.LessThan(semver.MustParse(MinVersion)) {
		return fmt.Errorf("PostgreSQL %s in %s is older than %s; upgrade PostgreSQL or promote by hand", c.Version, c, MinVersion)
	}
	return nil
}

// Bin is the path of one of the cluster's programs.
func (c *Cluster) Bin(name string) string { return filepath.Join(c.BinDir, name) }

// As prefixes argv with setpriv when this process is root and the
// cluster's user is someone else. setpriv, unlike runuser, opens no PAM
// session: that costs about 60 ms a command, and promotion is timed.
// --reset-env: psql must not see root's PG* variables.
func (c *Cluster) As(argv ...string) []string {
	if os.Geteuid() != 0 || c.OSUser == "" || c.OSUser == "root" {
		return argv
	}
	return append([]string{"setpriv", "--reuid=" + c.OSUser, "--regid=" + c.OSUser, "--init-groups", "--reset-env", "--"}, argv...)
}

// PsqlArgv returns the command that runs sql on database postgres, printing
// rows unaligned, "|"-separated, without headers.
func (c *Cluster) PsqlArgv(sql string) []string {
	return c.psql("-v", "ON_ERROR_STOP=1", "-c", sql)
}

// psql is psql connected to database postgres as the cluster's user,
// printing rows unaligned without headers, reading no ~/.psqlrc.
func (c *Cluster) psql(args ...string) []string {
	return c.As(append([]string{c.Bin("psql"), "-X", "-q", "-A", "-t",
		"-h", c.Host, "-p", strconv.Itoa(c.Port), "-d", "postgres"}, args...)...)
}

// Querier runs SQL and returns its rows, one per line, columns separated by "|".
type Querier interface {
	Query(ctx context.Context, sql string) (string, error)
}

// Via returns a Querier that starts one psql per query through r.
func (c *Cluster) Via(r *run.Runner) Querier { return oneShot{c, r} }

type oneShot struct {
	c *Cluster
	r *run.Runner
}

// Query runs read-only SQL (also in a dry run) and returns its output
// without the final newline.
func (o oneShot) Query(ctx context.Context, sql string) (string, error) {
	// Dir "/": the postgres user may not be able to enter our working directory.
	out, err := o.r.Exec(ctx, run.Step{Argv: o.c.PsqlArgv(sql), Dir: "/", Timeout: 30 * time.Second})
	if err != nil {
		return "", fmt.Errorf("querying PostgreSQL %s: %w", o.c, err)
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// Status is what a standby tells about its replication.
type Status struct {
	InRecovery     bool
	ReplayPaused   bool
	LastReplay     time.Time     // commit time of the last replayed transaction; zero if none
	Lag            time.Duration // now minus LastReplay; 0 when LastReplay is zero
	Timeline       int
	ReceiverStatus string // pg_stat_wal_receiver.status ("streaming", ...); "" without a receiver
	SenderHost     string
	SenderPort     int
	ReceiveLSN     string
	ReplayLSN      string
	Now            time.Time // the server's clock when asked
}

// statusSQL asks everything in one round trip. The timeline comes from the
// current WAL file on a primary (it changes at promotion, unlike the
// checkpoint's), from the last checkpoint in recovery.
const statusSQL = `SELECT pg_is_in_recovery(),
 CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
 coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, ''),
 CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
 coalesce((SELECT status FROM pg_stat_wal_receiver), ''),
 coalesce((SELECT sender_host FROM pg_stat_wal_receiver), ''),
 coalesce((SELECT sender_port::text FROM pg_stat_wal_receiver), ''),
 coalesce(pg_last_wal_receive_lsn()::text, ''),
 coalesce(pg_last_wal_replay_lsn()::text, ''),
 extract(epoch FROM now())::text`

// ReadStatus reads the cluster's replication status.
func ReadStatus(ctx context.Context, q Querier) (*Status, error) {
	out, err := q.Query(ctx, statusSQL)
	if err != nil {
		return nil, err
	}
	return parseStatus(out)
}

func parseStatus(out string) (*Status, error) {
	f := strings.Split(out, "|")
	if len(f) != 10 {
		return nil, fmt.Errorf("unexpected status from PostgreSQL: %q", out)
	}
	s := &Status{InRecovery: f[0] == "t", ReplayPaused: f[1] == "t", ReceiverStatus: f[4], SenderHost: f[5],
		ReceiveLSN: f[7], ReplayLSN: f[8]}
	s.Timeline, _ = strconv.Atoi(f[3])
	s.SenderPort, _ = strconv.Atoi(f[6])
	s.Now = epoch(f[9])
	if f[2] != "" {
		s.LastReplay = epoch(f[2])
		s.Lag = max(s.Now.Sub(s.LastReplay), 0)
	}
	return s, nil
}

func epoch(s string) time.Time {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(int64(f * 1e6)).UTC()
}

// PromoteSQL asks PostgreSQL to promote itself. With wait > 0 it returns
// "t" once recovery ended within wait (PostgreSQL checks every 100 ms);
// with wait 0 it only signals, and the caller watches pg_is_in_recovery().
func PromoteSQL(wait time.Duration) string {
	if wait <= 0 {
		return "SELECT pg_promote(false)"
	}
	return fmt.Sprintf("SELECT pg_promote(true, %d)", max(int(wait.Seconds()), 1))
}

// PromoteCtlStep promotes with pg_ctlcluster (Debian) or pg_ctl: the
// fallback when SQL cannot be used.
func (c *Cluster) PromoteCtlStep(wait time.Duration) run.Step {
	argv := c.As(c.Bin("pg_ctl"), "promote", "-w", "-t", strconv.Itoa(max(int(wait.Seconds()), 1)), "-D", c.Data)
	if c.Debian {
		argv = []string{"pg_ctlcluster", c.Version, c.Name, "promote"}
	}
	return run.Step{What: fmt.Sprintf("promote PostgreSQL %s to primary (%s promote)", c, c.CtlTool()),
		Argv: argv, Dir: "/", Timeout: wait + 30*time.Second}
}

// CtlTool names the program that controls the cluster's server.
func (c *Cluster) CtlTool() string {
	if c.Debian {
		return "pg_ctlcluster"
	}
	return "pg_ctl"
}

// LocalIsPrimary reports whether the local cluster runs out of recovery,
// that is, this machine serves as production, and names the cluster. No
// cluster found, or a stopped one, is (false, "", nil): the PROMOTED key
// guards those cases.
//
// Root reads the answer in the data directory: PostgreSQL (12 and later)
// stays in recovery exactly while standby.signal or recovery.signal is
// there, and removes it when recovery ends. That costs no process; without
// root the running server is asked (pg_is_in_recovery()).
func LocalIsPrimary(ctx context.Context, r *run.Runner, o Options) (bool, string, error) {
	c, err := Find(ctx, r, o)
	if errors.Is(err, ErrNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if !c.Online {
		return false, "", nil
	}
	if recovering, ok := signalled(c.Data); ok {
		return !recovering, c.String(), nil
	}
	out, err := c.Via(r).Query(ctx, "SELECT pg_is_in_recovery()")
	if err != nil {
		return false, "", err
	}
	return out == "f", c.String(), nil
}

// signalled reports whether a recovery signal file is in data; ok is false
// when the directory cannot be read (not root).
func signalled(data string) (recovering, ok bool) {
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		return false, false
	}
	for _, f := range []string{"standby.signal", "recovery.signal"} {
		if _, err := os.Stat(filepath.Join(data, f)); err == nil {
			return true, true
		}
	}
	return false, true
}
