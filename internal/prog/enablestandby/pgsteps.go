package enablestandby

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// confFiles are the configuration files PostgreSQL keeps in the data
// directory when it is not a Debian cluster: pg_rewind and pg_basebackup
// bring production's, and this machine keeps its own (its port, its
// memory, its clients).
var confFiles = []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}

// rebuildTimeout bounds a rewind or a base backup: as long as copying a
// large database may take; Ctrl-C stops it sooner.
const rebuildTimeout = 7 * 24 * time.Hour

// toolConninfo is how pg_rewind and pg_basebackup reach production: with
// the password file the standby keeps, so that the primary_conninfo their
// -R writes names it too (and holds no password).
func (r *rejoin) toolConninfo() string {
	f := r.f
	return pg.Conninfo("host", f.source, "port", strconv.Itoa(f.port), "user", f.creds.user, "dbname", "postgres",
		"passfile", f.creds.target, "connect_timeout", "10")
}

// passfileStep writes the copy of the replication password the standby
// keeps: PostgreSQL's user reads it, nobody else.
func (r *rejoin) passfileStep() run.Step {
	t := r.f.creds.target
	return run.Step{What: "give PostgreSQL's user the replication password: " + t + " (mode 0600)",
		Argv: r.cl.As(installArgv(t, 0o600)...),
		Show: []string{fmt.Sprintf("then %s fills it with REPLICATION_PASSFILE's lines for %s:%d, user %s (not shown)",
			ddArgv(t)[0], r.f.source, r.f.port, r.f.creds.user)},
		Do: func(ctx context.Context) error { return r.asUser(ctx, t, 0o600, r.f.creds.lines()) }}
}

// slotStep creates the replication slot on production, reserving WAL from
// now on, so that nothing this standby needs is recycled there.
func (r *rejoin) slotStep() run.Step {
	sql := "SELECT pg_create_physical_replication_slot(" + pg.QuoteLiteral(r.f.slot) + ", true)"
	return run.Step{What: fmt.Sprintf("create the replication slot %s on production (WAL is kept there for this standby from now on)", r.f.slot),
		Argv: r.cl.ConnArgv(r.f.ask.conninfo(false), "-c", sql),
		Do: func(ctx context.Context) error {
			_, err := r.f.ask.ask(ctx, false, sql)
			return err
		}}
}

// stopStep stops this machine's PostgreSQL; the rebuild starts here, so
// the journal does too.
func (r *rejoin) stopStep() run.Step {
	s := r.cl.StopStep(r.wait)
	s.Do = func(ctx context.Context) error {
		if err := r.journal.set(phaseStarted); err != nil {
			return err
		}
		r.rep.stopped = time.Now()
		_, err := r.env.Runner.Exec(ctx, s)
		return err
	}
	return s
}

// keepStep counts, now that PostgreSQL stopped, what this machine wrote
// after the fork, lists its transactions and keeps its WAL.
func (r *rejoin) keepStep() run.Step {
	f := r.f
	dir := filepath.Join(r.journal.Kept, "diverged-wal")
	return run.Step{What: fmt.Sprintf("keep the WAL this machine wrote after it parted from production (%s) in %s, and list its transactions",
		f.forkName(), r.journal.Kept),
		Do: func(ctx context.Context) error { return r.keep(ctx, dir) }}
}

func (r *rejoin) keep(ctx context.Context, dir string) error {
	f := r.f
	if err := r.journal.set(phaseStarted); err != nil {
		return err
	}
	if err := os.MkdirAll(r.journal.Kept, 0o700); err != nil {
		return err
	}
	list, err := os.OpenFile(filepath.Join(r.journal.Kept, "diverged-commits.txt"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer list.Close()
	l, err := countLost(ctx, r.env.Runner, r.cl, f.local.control.SegmentSize, f.forkName(), f.ranges, list)
	if err != nil {
		return err
	}
	if l == nil {
		l = &lost{Fork: f.forkName()}
	}
	files, _, err := walFiles(r.cl.Data, f.ranges, f.local.control.SegmentSize, l.End)
	if err != nil {
		return err
	}
	if err := keepWAL(files, dir); err != nil {
		return fmt.Errorf("keeping the WAL in %s: %w", dir, err)
	}
	l.Kept, l.Segments = dir, len(files)
	r.rep.lost = l
	if err := os.WriteFile(filepath.Join(r.journal.Kept, "README"), []byte(keptReadme(l, f.forkTLI)), 0o600); err != nil {
		return err
	}
	return l.save(r.journal.Kept)
}

func keptReadme(l *lost, tli int) string {
	return fmt.Sprintf(`What ot-enable-standby-mode kept when it made this machine a standby.

This machine parted from production at %s. What it wrote after that is
not in production's database: %s.

diverged-wal/          its WAL from there on (and the timeline history files)
diverged-commits.txt   every transaction's commit or abort in it, as pg_waldump prints it
postgresql/            this machine's own configuration files, as they were

Read the WAL with, for example:
  pg_waldump --path=diverged-wal --timeline=%d --start=%s
`, l.Fork, l.summary(), tli, forkLSN(l.Fork))
}

// forkLSN takes the position back out of "timeline N at X/Y".
func forkLSN(fork string) string {
	var tli int
	var at string
	fmt.Sscanf(fork, "timeline %d at %s", &tli, &at)
	return at
}

// saveConfStep keeps this machine's own configuration files (those in the
// data directory) before pg_rewind or pg_basebackup bring production's;
// a copy an earlier run of this rebuild kept is kept as it is. The copy
// is made aside and renamed whole: a run cut short leaves none, never half.
func (r *rejoin) saveConfStep() run.Step {
	dir := filepath.Join(r.journal.Kept, "postgresql")
	return run.Step{What: "keep this machine's PostgreSQL configuration files from " + r.cl.Data + " in " + dir,
		Do: func(context.Context) error {
			if exists(dir) {
				return nil
			}
			tmp := dir + ".part"
			if err := os.RemoveAll(tmp); err != nil {
				return err
			}
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				return err
			}
			for _, name := range confFiles {
				if err := saveConf(filepath.Join(r.cl.Data, name), filepath.Join(tmp, name)); err != nil {
					return err
				}
			}
			return os.Rename(tmp, dir)
		}}
}

// saveConf copies one configuration file, with its mode, if it is there.
func saveConf(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := copyNoFollow(src, dst); err != nil {
		return err
	}
	return os.Chmod(dst, fi.Mode().Perm())
}

// restoreConfStep puts this machine's configuration files into data (the
// rewound directory, or the new copy), as PostgreSQL's user; the journal
// then moves to phase.
func (r *rejoin) restoreConfStep(data, phase string) run.Step {
	dir := filepath.Join(r.journal.Kept, "postgresql")
	return run.Step{What: "put this machine's PostgreSQL configuration files back into " + data,
		Do: func(ctx context.Context) error {
			entries, err := os.ReadDir(dir)
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					return err
				}
				if err := r.asUser(ctx, filepath.Join(data, e.Name()), fileMode(filepath.Join(dir, e.Name())), b); err != nil {
					return err
				}
			}
			return r.journal.set(phase)
		}}
}

// rewindStep rewinds this machine's data directory to production's
// timeline with pg_rewind, whose -R writes standby.signal and a
// primary_conninfo pointing at production. The journal says "rewinding"
// while it runs: cut short, it leaves a directory only a copy can replace.
func (r *rejoin) rewindStep() run.Step {
	cl := r.cl
	s := run.Step{What: fmt.Sprintf("rewind PostgreSQL %s to production's timeline %d (pg_rewind; -R makes it a standby of production)", cl, r.f.prod.tli),
		Argv: cl.As(rewindArgv(cl, r.toolConninfo(), "--write-recovery-conf")...), Dir: "/", Timeout: rebuildTimeout}
	s.Do = func(ctx context.Context) error {
		if err := r.journal.set(phaseRewinding); err != nil {
			return err
		}
		r.rep.rebuildStart = time.Now()
		var said bytes.Buffer
		one := s
		one.Stderr = &said
		if _, err := r.env.Runner.Exec(ctx, one); err != nil {
			return r.rewindFailed(err, said.String())
		}
		r.rep.rebuildEnd = time.Now()
		if r.f.diverged && strings.Contains(said.String(), "no rewind required") {
			// pg_rewind changed no data file: the directory can be trusted.
			if err := r.journal.set(phaseStarted); err != nil {
				return err
			}
			return cli.Fail(cli.ExitFailure, "pg_rewind found nothing to rewind, although this machine wrote WAL after it parted from production: production's control file does not show its new timeline yet",
				"run CHECKPOINT on production, then run "+prog+" again")
		}
		return nil
	}
	return s
}

// earlyRewindFailures are how pg_rewind fails before its point of no
// return, having changed nothing: it could not connect, or could not read
// this machine's WAL back to the checkpoint before the fork (recycled).
var earlyRewindFailures = []string{"could not connect to server", "connection to server", "could not find previous WAL record",
	"could not read WAL record", "could not find common ancestor", "from different systems", "must be shut down cleanly",
	"needs to use either data checksums"}

// rewindFailed says what a failed pg_rewind left. Only a failure pg_rewind
// names as one before it changes anything leaves a data directory that can
// be trusted; any other may have left it half rewound.
func (r *rejoin) rewindFailed(err error, said string) error {
	for _, early := range earlyRewindFailures {
		if strings.Contains(said, early) {
			if jerr := r.journal.set(phaseStarted); jerr != nil {
				return jerr
			}
			return &cli.Error{Code: cli.ExitFailure, Err: err,
				Msg:  "pg_rewind cannot rewind " + r.cl.Data + ": " + cli.Printable(run.Cause(err)),
				Hint: "nothing was rewound; run " + prog + " again: pg_rewind's dry run then chooses a base backup"}
		}
	}
	return fmt.Errorf("%w; %s may be half rewound: run %s again, it makes a base backup instead", err, r.cl.Data, prog)
}

// rewindArgv is pg_rewind's command line, as the cluster's user runs it.
func rewindArgv(cl *pg.Cluster, source string, extra ...string) []string {
	args := []string{cl.Bin("pg_rewind"), "--target-pgdata=" + cl.Data, "--source-server=" + source}
	if cl.Debian && cl.ConfigDir != "" && cl.Major() >= 15 {
		// A crashed cluster is recovered first, in single-user mode, which
		// needs postgresql.conf: a Debian cluster keeps it elsewhere.
		args = append(args, "--config-file="+filepath.Join(cl.ConfigDir, "postgresql.conf"))
	}
	return append(args, extra...)
}

// rewindDryRun runs pg_rewind --dry-run, which does everything but change
// the target: it fails when pg_rewind would.
func rewindDryRun(ctx context.Context, r *run.Runner, cl *pg.Cluster, source string) error {
	_, err := r.Exec(ctx, run.Step{Argv: cl.As(rewindArgv(cl, source, "--dry-run")...), Dir: "/", Timeout: rebuildTimeout})
	return err
}

// checkpointStep waits until production's control file records its
// timeline: after a promotion that takes its first checkpoint, and
// pg_rewind reads the timeline there (before PostgreSQL 16). It asks for
// the checkpoint (allowed to superusers and, from 15 on, members of
// pg_checkpoint), else waits for the one the promotion started.
func (r *rejoin) checkpointStep() run.Step {
	p := r.f.prod
	sql := "CHECKPOINT"
	return run.Step{What: fmt.Sprintf("wait until production's last checkpoint is on its timeline %d (CHECKPOINT there when %s may; up to %s)", p.tli, p.user, r.wait),
		Argv: r.cl.ConnArgv(r.f.ask.conninfo(false), "-c", sql),
		Do: func(ctx context.Context) error {
			if _, err := r.f.ask.ask(ctx, false, sql); err != nil {
				r.env.Log.Debug().Err(err).Msg("CHECKPOINT on production refused; waiting for its own")
			}
			deadline := time.Now().Add(r.wait)
			for {
				tli, err := r.f.ask.checkpointTimeline(ctx)
				if err != nil {
					return err
				}
				if tli >= p.tli {
					return nil
				}
				if time.Now().After(deadline) {
					return cli.Fail(cli.ExitFailure, fmt.Sprintf("production's last checkpoint is still on timeline %d after %s", tli, r.wait),
						"run CHECKPOINT on production (or grant pg_checkpoint to "+p.user+"), then run "+prog+" again")
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		}}
}

// baseBackupStep copies production's database into a new data directory
// beside this one: fast checkpoint (now, not at production's next),
// WAL streamed alongside, -R writing standby.signal and primary_conninfo.
func (r *rejoin) baseBackupStep() run.Step {
	cl, f := r.cl, r.f
	args := []string{cl.Bin("pg_basebackup"), "--pgdata=" + f.newData, "--dbname=" + r.toolConninfo(), "--write-recovery-conf",
		"--wal-method=stream", "--checkpoint=fast"}
	if f.slot != "" {
		args = append(args, "--slot="+f.slot)
	}
	s := run.Step{What: fmt.Sprintf("copy production's database (about %s) into %s (pg_basebackup -R)", bytesText(f.prod.size), f.newData),
		Argv: cl.As(args...), Dir: "/", Timeout: rebuildTimeout}
	s.Do = func(ctx context.Context) error {
		if err := r.journal.set(phaseBackingUp); err != nil {
			return err
		}
		r.rep.rebuildStart = time.Now()
		if _, err := r.env.Runner.Exec(ctx, s); err != nil {
			return err
		}
		r.rep.rebuildEnd = time.Now()
		return nil
	}
	return s
}

// swapStep puts the new copy in place: the old data directory moves to
// DATA.ot-old-TIME, kept until the new one streams. The journal records
// the swap before it, so a run cut between the two renames is finished by
// the next.
func (r *rejoin) swapStep() run.Step {
	cl, data := r.cl, r.cl.Data
	old := r.journal.Old
	if old == "" {
		old = data + ".ot-old-" + r.rep.start.Format("20060102-150405")
	}
	mv := func(from, to string) []string { return cl.As("mv", "--no-target-directory", "--", from, to) }
	return run.Step{What: fmt.Sprintf("put the copy in place: %s becomes %s, the copy becomes %s", data, old, data),
		Argv: mv(data, old), Show: []string{"then: " + joinArgv(mv(r.f.newData, data))},
		Do: func(ctx context.Context) error {
			r.journal.Old, r.journal.Keep = old, r.journal.Keep || r.c.KeepOldData
			if err := r.journal.set(phaseSwapping); err != nil {
				return err
			}
			if exists(data) {
				if _, err := r.env.Runner.Exec(ctx, run.Step{Argv: mv(data, old), Dir: "/"}); err != nil {
					return err
				}
			}
			if _, err := r.env.Runner.Exec(ctx, run.Step{Argv: mv(r.f.newData, data), Dir: "/"}); err != nil {
				return err
			}
			r.rep.oldData = old
			return r.journal.set(phaseSwapped)
		}}
}

// removeStep removes a directory as PostgreSQL's user.
func (r *rejoin) removeStep(what, dir string) run.Step {
	return run.Step{What: what + ": " + dir, Argv: r.cl.As("rm", "-rf", "--one-file-system", "--", dir), Dir: "/"}
}

// startStep starts this machine's PostgreSQL, a standby now.
func (r *rejoin) startStep() run.Step {
	s := r.cl.StartStep(r.wait, r.f.local.logFile)
	s.What = fmt.Sprintf("start PostgreSQL %s as a standby", r.cl)
	s.Do = func(ctx context.Context) error {
		if _, err := r.env.Runner.Exec(ctx, s); err != nil {
			if tail := logTail(r.f.local.logFile); tail != "" {
				return fmt.Errorf("%w; its log says: %s", err, tail)
			}
			return err
		}
		r.rep.started = time.Now()
		return nil
	}
	return s
}

// oldDataStep removes the data directory a base backup replaced, once
// the new one streams (unless kept). The journal stays until the report
// is written: a later run still finds what this rebuild kept.
func (r *rejoin) oldDataStep() run.Step {
	return run.Step{What: "remove the old data directory the copy replaced (kept with --keep-old-data)",
		Do: func(ctx context.Context) error {
			j := r.journal
			if j.Old == "" || !exists(j.Old) {
				return nil
			}
			r.rep.oldData = j.Old
			if j.Keep || r.c.KeepOldData {
				r.rep.oldKept = true
				return nil
			}
			_, err := r.env.Runner.Exec(ctx, r.removeStep("", j.Old))
			return err
		}}
}

func joinArgv(argv []string) string { return shellquote.Join(argv...) }
