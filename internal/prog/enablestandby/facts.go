package enablestandby

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// MinVersion is the oldest PostgreSQL this command rebuilds: pg_rewind
// writes the standby settings (-R) from 13 on.
const MinVersion = 13

// facts is what the preflight learnt; nothing has changed yet.
type facts struct {
	job     *job.Job // the run: its ssh connection, run log and summary line
	source  string
	port    int // production's PostgreSQL port
	slot    string
	prod    *production
	local   *machine
	creds   *credentials
	ask     asker
	odoo    odoo
	journal *journal // an earlier run's rebuild in progress, or nil
	kept    string   // the dated directory this rebuild keeps things in

	forkTLI int
	forkAt  pg.LSN
	ranges  []pg.Range // this machine's WAL after the fork
	lost    *lost      // what it wrote there (the preflight's count)
	walSize int64      // bytes of that WAL, kept before the rebuild

	method   method
	reason   string
	diverged bool     // this machine wrote (or, stopping, will write) after the fork
	doubts   []string // why this machine may still be production: refused unless --force
	refused  error    // a refusal --force does not override
	newData  string   // DATA.ot-basebackup
	now      time.Time
}

func (f *facts) close() {
	if f.local != nil && f.local.q != nil {
		f.local.q.Close()
	}
	f.creds.close()
	if f.job != nil && f.job.SSH != nil {
		f.job.SSH.Close()
	}
}

// inspect finds everything the decision, the plan and the report need,
// here and on production. It changes nothing (but for a journal's swap cut
// between its two renames, which it finishes).
func inspect(env *cli.Env, cfg *config.Config, c *CLI, j *job.Job) (*facts, error) {
	f := &facts{job: j, slot: cfg.Get(config.ReplicationSlot), port: cfg.Int(config.ProdPGPort), now: time.Now()}
	var err error
	if f.source, err = cfg.Source(); err != nil {
		return f, err
	}
	if f.journal, err = readJournal(cfg); err != nil {
		return f, err
	}
	if err := finishSwap(env, cfg, f.journal); err != nil {
		return f, err
	}
	cl, err := findCluster(env, cfg)
	if err != nil {
		return f, err
	}
	if f.creds, err = loadCredentials(cfg, f.source, f.port, cl); err != nil {
		return f, err
	}
	if err := f.connect(env, cfg); err != nil {
		return f, err
	}
	f.ask = asker{r: env.Runner, cl: cl, host: f.source, port: f.port, creds: f.creds}
	if f.prod, err = probeProduction(env.Ctx, f.ask, f.slot); err != nil {
		return f, err
	}
	if f.local, err = inspectLocal(env.Ctx, env.Runner, cl); err != nil {
		return f, err
	}
	f.odoo = inspectOdoo(env.Ctx, env.Runner, cfg.Words(config.OdooService), cfg.Get(config.OdooURL))
	f.kept = filepath.Join(cfg.Get(config.BackupDir), j.Start.Format("20060102-150405")+"-enable-standby")
	if f.journal != nil && f.journal.Data == cl.Data {
		f.kept = f.journal.Kept
	}
	f.newData = cl.Data + ".ot-basebackup"
	if err := f.diverge(env); err != nil {
		return f, err
	}
	f.decide(c)
	if err := f.probeRewind(env); err != nil {
		return f, err
	}
	f.checkSpace(cfg)
	return f, nil
}

// probeRewind asks pg_rewind itself, in a dry run, whether it can rewind
// a cluster found stopped: it needs this machine's WAL back to the last
// checkpoint before the fork, which checkpoints since may have recycled.
// A running cluster is asked once stopped, by the rewind step. Nor is it
// asked while production's control file lags its timeline (pg_rewind
// would find nothing to rewind): the rewind waits for that first.
func (f *facts) probeRewind(env *cli.Env) error {
	m, p := f.local, f.prod
	if f.method != methodRewind || m.cluster.Online || !m.control.CleanlyStopped() || p.checkpointTLI < p.tli {
		return nil
	}
	err := rewindDryRun(env.Ctx, env.Runner, m.cluster, f.ask.conninfo(false))
	if err == nil || env.Ctx.Err() != nil {
		return env.Ctx.Err()
	}
	f.method, f.reason = methodBaseBackup, "pg_rewind's dry run says it cannot: "+cli.Printable(run.Cause(err))
	return nil
}

// findCluster finds this machine's cluster and refuses one too old or
// stopped in a way this command cannot handle.
func findCluster(env *cli.Env, cfg *config.Config) (*pg.Cluster, error) {
	cl, err := pg.Find(env.Ctx, env.Runner, job.PG(cfg))
	if errors.Is(err, pg.ErrNotFound) {
		return nil, &cli.Error{Code: cli.ExitFailure, Msg: err.Error(), Err: err,
			Hint: "create the cluster (pg_createcluster on Debian), or set PG_CLUSTER, or PG_DATA, PG_BINDIR, PG_PORT and PG_HOST in " + cfg.Path}
	}
	if err != nil {
		return nil, err
	}
	if err := cl.CheckVersion(); err != nil {
		return nil, &cli.Error{Code: cli.ExitRefused, Msg: err.Error(), Err: err}
	}
	if cl.Major() < MinVersion {
		return nil, cli.Fail(cli.ExitRefused, fmt.Sprintf("PostgreSQL %s in %s is older than %d, whose pg_rewind cannot write a standby's settings", cl.Version, cl, MinVersion),
			"upgrade PostgreSQL, or make this machine a standby by hand (pg_basebackup -R)")
	}
	return cl, nil
}

// connect opens the run's ssh connection to production and refuses a
// SYNCSRC that is this very machine.
func (f *facts) connect(env *cli.Env, cfg *config.Config) error {
	target, err := job.Target(cfg)
	if err != nil {
		return err
	}
	conn, err := job.Dial(env.Ctx, env.Runner, target)
	if err != nil {
		return err
	}
	f.job.SSH = conn
	// The plan shows commands an operator can paste: plain ssh.
	env.Runner.Shown = conn.Plain
	return f.job.RefuseSelf()
}

// diverge finds where this machine parted from production and counts
// what it wrote since (a preview: the real count comes once it stopped).
func (f *facts) diverge(env *cli.Env) error {
	m, p := f.local, f.prod
	if m.control.SystemID != p.sysid || m.history == nil {
		return nil
	}
	tli, at, ok := pg.Fork(m.history, p.history)
	if !ok {
		return nil
	}
	f.forkTLI, f.forkAt = tli, at
	f.ranges = m.history.Since(tli, at)
	if len(f.ranges) == 0 || f.rebuildPending() {
		return nil
	}
	var err error
	f.lost, err = countLost(env.Ctx, env.Runner, m.cluster, m.control.SegmentSize, f.forkName(), f.ranges, nil)
	if err != nil {
		return err
	}
	if f.lost == nil {
		return nil
	}
	if files, size, err := walFiles(m.cluster.Data, f.ranges, m.control.SegmentSize, f.lost.End); err == nil {
		f.walSize, f.lost.Segments = size, len(files)
	}
	return nil
}

func (f *facts) forkName() string {
	return fmt.Sprintf("timeline %d at %s", f.forkTLI, f.forkAt)
}

// phase is the phase of an earlier run's rebuild of this data directory,
// "" when there is none.
func (f *facts) phase() string {
	if f.journal == nil || f.journal.Data != f.local.cluster.Data {
		return ""
	}
	return f.journal.Phase
}

// rebuildPending reports whether an earlier run's rewind or base backup
// was cut short: the data directory (half rewound) or the copy can no
// longer be trusted, and a new copy is the way on.
func (f *facts) rebuildPending() bool {
	return f.phase() == phaseRewinding || f.phase() == phaseBackingUp
}

// decide chooses the method and collects what --force overrides.
func (f *facts) decide(c *CLI) {
	m, p := f.local, f.prod
	s := situation{
		streaming:    m.streamsFrom(f.source, f.port),
		sameSystem:   m.control.SystemID == p.sysid,
		askedBackup:  c.BaseBackup,
		historyKnown: m.history != nil,
		forked:       f.forkTLI > 0,
		standby:      m.standby,
		// A running primary writes a shutdown checkpoint when it stops.
		diverged: f.lost.diverged() || (m.status != nil && !m.status.InRecovery),
	}
	switch f.phase() {
	case phaseRewinding:
		s.interrupted = "an earlier pg_rewind was cut short: the data directory can only be replaced"
	case phaseBackingUp:
		s.interrupted = "an earlier base backup was cut short: it is made again"
	case phaseSwapping:
		s.copyReady = exists(f.newData)
	case phaseSwapped:
		s.rebuilt = true
	}
	switch {
	case !m.control.Rewindable():
		s.rewindWhyNot = "this cluster has neither data checksums nor wal_log_hints"
	case !p.fpw:
		s.rewindWhyNot = "production runs with full_page_writes off"
	}
	f.diverged = s.diverged
	f.doubt(s.sameSystem)
	s.doubtful = len(f.doubts) > 0 && f.timelineDoubt()
	f.method, f.reason = choose(s)
	f.refuse()
}

// timelineDoubt: the timelines say this machine may be the newer one.
func (f *facts) timelineDoubt() bool {
	for _, d := range f.doubts {
		if strings.Contains(d, "timeline") {
			return true
		}
	}
	return false
}

// doubt collects the signs that this machine may still be (or be newer
// than) the production the world uses.
func (f *facts) doubt(sameSystem bool) {
	m, p := f.local, f.prod
	if f.odoo.up {
		f.doubts = append(f.doubts, "its Odoo answers at "+f.odoo.url)
	}
	if len(m.remote) > 0 {
		f.doubts = append(f.doubts, "its database has clients from elsewhere: "+strings.Join(limit(m.remote, 10), ", "))
	}
	if len(m.senders) > 0 {
		f.doubts = append(f.doubts, "standbys stream from it: "+strings.Join(limit(m.senders, 10), ", "))
	}
	if !sameSystem || m.history == nil || m.streamsFrom(f.source, f.port) {
		return
	}
	primary := m.status != nil && !m.status.InRecovery || !m.standby
	switch {
	case m.tli == p.tli && primary:
		f.doubts = append(f.doubts, fmt.Sprintf("both it and production run as primaries on timeline %d (one was promoted without a new timeline): which is newer cannot be told", p.tli))
	case f.forkTLI == p.tli && m.tli != p.tli:
		f.doubts = append(f.doubts, fmt.Sprintf("its timeline %d began after production's timeline %d: this machine was promoted after production was, and SYNCSRC may name the OLD production", m.tli, p.tli))
	}
}

func limit(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// refuse sets the refusals --force does not override.
func (f *facts) refuse() {
	m, p := f.local, f.prod
	switch {
	case p.inRecovery:
		f.refused = cli.Fail(cli.ExitRefused, fmt.Sprintf("production's PostgreSQL at %s:%d is a standby (in recovery), not a primary", p.host, p.port),
			"point SYNCSRC at the new production (the promoted machine); nothing was changed")
	case p.major() != m.cluster.Major():
		f.refused = cli.Fail(cli.ExitRefused, fmt.Sprintf("production runs PostgreSQL %d, this machine %d: a standby needs the same major version", p.major(), m.cluster.Major()),
			"install PostgreSQL "+fmt.Sprint(p.major())+" here and create its cluster; nothing was changed")
	case p.slotType == "logical":
		f.refused = cli.Fail(cli.ExitRefused, "REPLICATION_SLOT "+f.slot+" is a logical slot on production", "name another slot; nothing was changed")
	case p.slotActive && !f.local.streamsFrom(f.source, f.port):
		f.refused = cli.Fail(cli.ExitRefused, "REPLICATION_SLOT "+f.slot+" is in use on production by another standby", "name another slot, or find that standby; nothing was changed")
	case f.odoo.up && len(f.odoo.services) == 0:
		f.refused = cli.Fail(cli.ExitRefused, "Odoo answers at "+f.odoo.url+" but there is no service "+strings.Join(f.odoo.missing, ", ")+" here to stop",
			"stop what serves there (or set ODOO_SERVICE) and run again; nothing was changed")
	}
}

// checkSpace refuses a rebuild the disks cannot hold: a base backup
// beside the old data directory (kept until the new one streams), and
// the WAL kept in BACKUP_DIR.
func (f *facts) checkSpace(cfg *config.Config) {
	if f.refused != nil {
		return
	}
	if f.method == methodBaseBackup {
		need := f.prod.size + f.prod.size/10 + 64<<20
		dir := filepath.Dir(f.local.cluster.Data)
		if free, ok := freeBytes(dir); ok && free < need {
			f.refused = cli.Fail(cli.ExitRefused, fmt.Sprintf("a base backup of production needs about %s in %s (its databases and 10%%), which has %s free",
				bytesText(need), dir, bytesText(free)), "free space there (the old data directory stays until the new one streams); nothing was changed")
			return
		}
	}
	if f.lost.diverged() && f.method != methodNone {
		dir := cfg.Get(config.BackupDir)
		if free, ok := freeBytes(dir); ok && free < f.walSize+16<<20 {
			f.refused = cli.Fail(cli.ExitRefused, fmt.Sprintf("keeping this machine's WAL after the fork needs %s in %s, which has %s free",
				bytesText(f.walSize), dir, bytesText(free)), "free space there, or set BACKUP_DIR elsewhere; nothing was changed")
		}
	}
}

// freeBytes is the space PostgreSQL's user may fill (root's reserved
// blocks left out) on the file system holding path, or its nearest
// existing parent.
func freeBytes(path string) (int64, bool) {
	for p := path; ; p = filepath.Dir(p) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err == nil {
			return int64(st.Bavail) * st.Bsize, true
		}
		if p == "/" {
			return 0, false
		}
	}
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// finishSwap completes a swap an earlier run left between its two
// renames, when the data directory is missing: nothing else can be
// inspected before it is back. A dry run only says so.
func finishSwap(env *cli.Env, cfg *config.Config, j *journal) error {
	if j == nil || j.Phase != phaseSwapping || exists(j.Data) {
		return nil
	}
	copyDir := j.Data + ".ot-basebackup"
	if !exists(copyDir) {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("the data directory %s is missing and so is the copy that was to replace it (%s)", j.Data, copyDir),
			fmt.Sprintf("the old data directory is %s; see %s", j.Old, j.path))
	}
	if env.G.DryRun {
		return cli.Fail(cli.ExitFailure, fmt.Sprintf("an interrupted run left %s missing: its new copy waits at %s", j.Data, copyDir),
			"run "+prog+" without --dry-run: it finishes the swap first")
	}
	cl := &pg.Cluster{OSUser: cfg.Get(config.PGOSUser)}
	env.Printf("Finishing the swap an interrupted run began: %s -> %s\n", copyDir, j.Data)
	if _, err := env.Runner.Exec(env.Ctx, run.Step{Argv: cl.As("mv", "--no-target-directory", "--", copyDir, j.Data), Dir: "/"}); err != nil {
		return err
	}
	return j.set(phaseSwapped)
}

// warning is the question's preamble: what cannot be undone.
func (f *facts) warning() string {
	switch f.method {
	case methodReconfigure:
		return fmt.Sprintf("This machine's PostgreSQL will follow %s.", f.source)
	case methodRewind:
		if f.lost.diverged() {
			return fmt.Sprintf("This machine's PostgreSQL is rewound to production's: %s are thrown away (their WAL is kept in %s).", f.lost.summary(), f.kept)
		}
		return "This machine's PostgreSQL becomes a standby of " + f.source + "."
	default:
		s := "This machine's database is replaced by a copy of production's"
		if f.lost.diverged() {
			s += ": " + f.lost.summary() + " are thrown away (their WAL is kept in " + f.kept + ")"
		}
		return s + "."
	}
}

// print shows the preflight's findings.
func (f *facts) print(env *cli.Env) {
	p, m := f.prod, f.local
	env.Printf("Production %s: PostgreSQL %d.%d on %s:%d, %s, timeline %d, WAL at %s, system %s\n", f.source, p.version/10000, p.version%100,
		p.host, p.port, map[bool]string{true: "a STANDBY", false: "primary"}[p.inRecovery], p.tli, p.lsn, p.sysid)
	cl := m.cluster
	env.Printf("This machine: PostgreSQL %s (version %s, data %s)\n", cl, cl.Version, cl.Data)
	row(env, "state", m.stateText())
	row(env, "system", m.control.SystemID+map[bool]string{true: " (the same as production's)", false: " (NOT production's)"}[m.control.SystemID == p.sysid])
	row(env, "rewind possible", m.rewindText(p))
	if f.forkTLI > 0 && f.forkAt != pg.MaxLSN {
		row(env, "parted from production", f.forkName())
	}
	if len(f.ranges) > 0 && f.method != methodNone {
		row(env, "lost by the rebuild", f.lost.summary())
	}
	if l := f.journalLost(); l != nil && f.lost == nil {
		row(env, "lost (earlier run)", l.summary())
	}
	row(env, "Odoo", f.odooText())
	if f.journal != nil {
		row(env, "interrupted run", fmt.Sprintf("%s, phase %s (%s)", stamp(f.journal.Started), f.journal.Phase, f.journal.path))
	}
	row(env, "method", f.method.String()+": "+f.reason)
}

func (f *facts) journalLost() *lost {
	if f.journal == nil {
		return nil
	}
	return loadLost(f.journal.Kept)
}

func row(env *cli.Env, k, v string) { env.Printf("  %-24s %s\n", k+":", v) }

func (m *machine) stateText() string {
	switch {
	case m.status != nil && m.status.InRecovery:
		recv := "no WAL receiver"
		if m.status.ReceiverStatus != "" {
			recv = fmt.Sprintf("WAL receiver %s from %s:%d", m.status.ReceiverStatus, m.status.SenderHost, m.status.SenderPort)
		}
		return fmt.Sprintf("running as a standby on timeline %d, %s", m.tli, recv)
	case m.status != nil:
		return fmt.Sprintf("running as a PRIMARY on timeline %d", m.tli)
	case m.standby:
		return fmt.Sprintf("stopped (%s), a standby, timeline %d", m.control.State, m.tli)
	}
	return fmt.Sprintf("stopped (%s), timeline %d", m.control.State, m.tli)
}

func (m *machine) rewindText(p *production) string {
	var have []string
	if m.control.Checksums {
		have = append(have, "data checksums")
	}
	if m.control.WalLogHints {
		have = append(have, "wal_log_hints")
	}
	if len(have) == 0 {
		return "no: neither data checksums nor wal_log_hints"
	}
	if !p.fpw {
		return "no: production has full_page_writes off"
	}
	return "yes (" + strings.Join(have, ", ") + ")"
}

func (f *facts) odooText() string {
	o := f.odoo
	state := "does not answer at " + o.url
	if o.up {
		state = "ANSWERS at " + o.url
	}
	switch {
	case len(o.services) > 0:
		return strings.Join(o.services, ", ") + " " + state
	case len(o.missing) > 0:
		return "no service " + strings.Join(o.missing, ", ") + " here; " + state
	}
	return state
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// refusals stop the run before anything changes: the hard ones always,
// the doubts unless --force.
func (c *CLI) refusals(f *facts) error {
	if f.refused != nil {
		return f.refused
	}
	if len(f.doubts) > 0 && !c.Force && f.method != methodNone {
		return cli.Fail(cli.ExitRefused, "this machine may still be the production the world uses: "+strings.Join(f.doubts, "; "),
			"make sure nothing uses it (stop its Odoo, repoint clients), or run again with --force; nothing was changed")
	}
	return nil
}

func fileMode(path string) os.FileMode {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0o600
	}
	return fi.Mode().Perm()
}
