package enablestandby

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// lost is what this machine wrote after it parted from production: what
// a rebuild throws away, the other half of a split brain. Counted by
// pg_waldump from this machine's own WAL.
type lost struct {
	Fork       string    `json:"fork"` // where the two parted: "timeline 1 at 0/30000A0"
	Records    int       `json:"records"`
	Commits    int       `json:"commits"`
	Aborts     int       `json:"aborts"`
	Changes    int       `json:"heap_changes"` // heap inserts, updates and deletes
	First      time.Time `json:"first_commit,omitzero"`
	Last       time.Time `json:"last_commit,omitzero"`
	Incomplete string    `json:"incomplete,omitempty"` // why the count may fall short
	Kept       string    `json:"kept,omitempty"`       // where its WAL is kept
	Segments   int       `json:"segments,omitempty"`
	End        pg.LSN    `json:"end,omitempty"` // the last record's position: where its WAL ends
}

// diverged reports whether this machine wrote anything after the fork.
func (l *lost) diverged() bool { return l != nil && (l.Records > 0 || l.Incomplete != "") }

// summary says it in one line.
func (l *lost) summary() string {
	if l == nil {
		return "nothing: this machine wrote nothing after it parted from production"
	}
	s := plural(l.Commits, "committed transaction")
	if l.Commits > 0 {
		s += fmt.Sprintf(" (%s to %s)", l.First.Local().Format("2006-01-02 15:04:05"), l.Last.Local().Format("2006-01-02 15:04:05 MST"))
	}
	s += ", " + plural(l.Changes, "heap row change") + ", " + plural(l.Records, "WAL record") + ", written after " + l.Fork
	if l.Incomplete != "" {
		s += "; AT LEAST: " + l.Incomplete
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// waldumpTime is how pg_waldump prints a commit's time, under TZ=UTC.
const waldumpTime = "2006-01-02 15:04:05.999999 MST"

// walCounter reads pg_waldump's output line by line as it streams,
// counting, and copies the transaction lines to commits when set.
type walCounter struct {
	l       *lost
	commits io.Writer
	buf     []byte
}

func (w *walCounter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 1<<20 { // no record line is that long
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// line counts one record: "rmgr: Transaction len (rec/tot): ..., desc:
// COMMIT 2026-12-05 08:41:00.950101 UTC; ...".
func (w *walCounter) line(s string) {
	rest, ok := strings.CutPrefix(s, "rmgr: ")
	if !ok {
		return
	}
	w.l.Records++
	if _, at, ok := strings.Cut(rest, ", lsn: "); ok {
		at, _, _ = strings.Cut(at, ",")
		if lsn, err := pg.ParseLSN(at); err == nil && lsn > w.l.End {
			w.l.End = lsn
		}
	}
	rmgr, _, _ := strings.Cut(rest, " ")
	_, desc, _ := strings.Cut(rest, "desc: ")
	op, arg, _ := strings.Cut(desc, " ")
	switch rmgr {
	case "Heap":
		switch op {
		case "INSERT", "UPDATE", "HOT_UPDATE", "DELETE":
			w.l.Changes++
		}
	case "Transaction":
		switch op {
		case "COMMIT", "COMMIT_PREPARED":
			w.l.Commits++
			if _, after, ok := strings.Cut(arg, ": "); ok && op == "COMMIT_PREPARED" {
				arg = after
			}
			stamp, _, _ := strings.Cut(arg, ";")
			if t, err := time.Parse(waldumpTime, strings.TrimSpace(stamp)); err == nil {
				if w.l.First.IsZero() || t.Before(w.l.First) {
					w.l.First = t
				}
				if t.After(w.l.Last) {
					w.l.Last = t
				}
			}
		case "ABORT", "ABORT_PREPARED":
			w.l.Aborts++
		default:
			return
		}
		if w.commits != nil {
			fmt.Fprintln(w.commits, s)
		}
	}
}

// countLost runs pg_waldump, as the cluster's user, over this machine's
// WAL after the fork; the transaction lines go to commits when set. Where
// this machine's own checkpoints already recycled the first segments, it
// counts from the oldest one left, and says so.
func countLost(ctx context.Context, r *run.Runner, cl *pg.Cluster, segSize int64, fork string, ranges []pg.Range, commits io.Writer) (*lost, error) {
	l := &lost{Fork: fork}
	w := &walCounter{l: l, commits: commits}
	dir := filepath.Join(cl.Data, "pg_wal")
	for _, rg := range ranges {
		start, ok := oldestKept(dir, rg, segSize)
		if !ok {
			l.incomplete(fmt.Sprintf("none of its WAL on timeline %d from %s is left", rg.TLI, rg.Start))
			continue
		}
		if start > rg.Start {
			l.incomplete(fmt.Sprintf("its WAL from %s to %s was already recycled by its own checkpoints", rg.Start, start))
		}
		args := []string{"env", "TZ=UTC", cl.Bin("pg_waldump"), "--path=" + dir, fmt.Sprintf("--timeline=%d", rg.TLI), "--start=" + start.String()}
		if rg.End != pg.MaxLSN {
			args = append(args, "--end="+rg.End.String())
		}
		_, err := r.Exec(ctx, run.Step{Argv: cl.As(args...), Dir: "/", Stdout: w, StreamOnly: true, Timeout: 24 * time.Hour})
		if err == nil || endOfWAL(run.Stderr(err)) {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		l.incomplete(fmt.Sprintf("pg_waldump could not read all of timeline %d from %s: %s", rg.TLI, start, run.Cause(err)))
	}
	if l.Records == 0 && l.Incomplete == "" {
		return nil, nil
	}
	return l, nil
}

func (l *lost) incomplete(why string) {
	if l.Incomplete == "" {
		l.Incomplete = why
	}
}

// oldestKept is where this machine's WAL of range rg starts in pg_wal:
// rg.Start, or the start of the oldest segment left after it.
func oldestKept(dir string, rg pg.Range, segSize int64) (pg.LSN, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	first, found := uint64(0), false
	for _, e := range entries {
		tli, seg, ok := pg.ParseSegmentName(e.Name(), segSize)
		if !ok || tli != rg.TLI || seg < rg.Start.Segment(segSize) || (rg.End != pg.MaxLSN && seg > rg.End.Segment(segSize)) {
			continue
		}
		if !found || seg < first {
			first, found = seg, true
		}
	}
	if !found {
		return 0, false
	}
	if first == rg.Start.Segment(segSize) {
		return rg.Start, true
	}
	return pg.LSN(first * uint64(segSize)), true
}

// endOfWAL reports whether pg_waldump stopped where this machine's WAL
// ends, which it reports as an error (a zeroed or recycled page).
func endOfWAL(stderr string) bool {
	for _, s := range []string{"invalid record length", "could not find a valid record after", "invalid magic number",
		"unexpected pageaddr", "incorrect prev-link", "invalid resource manager ID", "there is no contrecord flag"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// walFiles lists this machine's WAL files after the fork: the segments of
// each range (and their .partial copies) up to the segment holding end,
// the last record pg_waldump read, and the history files. Past end,
// pg_wal holds segments recycled under future names, not WAL.
func walFiles(data string, ranges []pg.Range, segSize int64, end pg.LSN) ([]string, int64, error) {
	dir := filepath.Join(data, "pg_wal")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var files []string
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !keepWALFile(e.Name(), ranges, segSize, end) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, filepath.Join(dir, e.Name()))
		total += fi.Size()
	}
	return files, total, nil
}

func keepWALFile(name string, ranges []pg.Range, segSize int64, end pg.LSN) bool {
	if strings.HasSuffix(name, ".history") {
		return true
	}
	tli, seg, ok := pg.ParseSegmentName(strings.TrimSuffix(name, ".partial"), segSize)
	if !ok {
		return false
	}
	for _, r := range ranges {
		last := r.End
		if last == pg.MaxLSN {
			last = end
		}
		if tli == r.TLI && seg >= r.Start.Segment(segSize) && seg <= last.Segment(segSize) {
			return true
		}
	}
	return false
}

// keepWAL copies the files into dest, which only root can read: a
// symbolic link planted in pg_wal is not followed.
func keepWAL(files []string, dest string) error {
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return err
	}
	for _, src := range files {
		if err := copyNoFollow(src, filepath.Join(dest, filepath.Base(src))); err != nil {
			return err
		}
	}
	return nil
}

func copyNoFollow(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lostFile is the count, kept with the WAL, so that a later run can
// report it after the WAL left the data directory.
const lostFile = "lost.json"

func (l *lost) save(dir string) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, lostFile), append(b, '\n'), 0o600)
}

func loadLost(dir string) *lost {
	b, err := os.ReadFile(filepath.Join(dir, lostFile))
	if err != nil {
		return nil
	}
	var l lost
	if json.Unmarshal(b, &l) != nil {
		return nil
	}
	return &l
}
