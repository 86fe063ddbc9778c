package promote

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/pglab"
)

// BenchmarkTimeToWritable measures, on identical streaming standbys whose
// primary was shut down, the time from start to a database that accepts a
// write:
//   - ours: ot-disable-standby-mode --yes, built as the Makefile builds it,
//     from its exec (after the test's mount namespace is set up) to its
//     write check: preflight, lock, config, pg_promote, wait, write check;
//   - pg_ctl: bare `pg_ctl promote -w`, then one write;
//   - restart: the original suite's way, remove standby.signal and restart
//     (which stays on the old timeline), then one write.
//
// Reported: the median of each in ms, and our median as a ratio of the
// other two.
func BenchmarkTimeToWritable(b *testing.B) {
	bin := buildCommand(b)
	var ours, bare, restart []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l := newLab(b, nil)
		l.bin = bin
		s2 := pglab.StartStandby(b, l.primary)
		s3 := pglab.StartStandby(b, l.primary)
		l.primary.Stop(b)
		b.StartTimer()

		// Each iteration starts with another of the three, so that none
		// always runs on the quietest machine.
		runs := []func(){
			func() {
				res := l.run(b, input{}, "--yes")
				if res.code != 0 {
					b.Fatalf("promotion failed:\n%s", res)
				}
				ours = append(ours, writableAt(b, l).Sub(execTime(b, l)))
			},
			func() {
				t0 := time.Now()
				if _, err := s2.Command(context.Background(), filepath.Join(s2.BinDir, "pg_ctl"), "promote", "-w", "-D", s2.Data); err != nil {
					b.Fatal(err)
				}
				waitWritable(b, s2)
				bare = append(bare, time.Since(t0))
			},
			func() {
				t0 := time.Now()
				if err := os.Remove(filepath.Join(s3.Data, "standby.signal")); err != nil {
					b.Fatal(err)
				}
				if _, err := s3.Command(context.Background(), filepath.Join(s3.BinDir, "pg_ctl"), "restart", "-w", "-m", "fast", "-D", s3.Data, "-l", s3.Log); err != nil {
					b.Fatal(err)
				}
				waitWritable(b, s3)
				restart = append(restart, time.Since(t0))
			},
		}
		for j := range runs {
			runs[(i+j)%len(runs)]()
		}
	}
	// Medians: on a shared machine one slow run must not decide the ratio.
	mo, mb, mr := median(ours), median(bare), median(restart)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(mo), "ms-ours")
	b.ReportMetric(ms(mb), "ms-pg_ctl-promote")
	b.ReportMetric(ms(mr), "ms-remove-signal-restart")
	b.ReportMetric(float64(mo)/float64(mb), "x-vs-pg_ctl-promote")
	b.ReportMetric(float64(mo)/float64(mr), "x-vs-remove-signal-restart")
}

// buildCommand builds ot-disable-standby-mode as the Makefile does, so the
// time from exec is the real program's.
func buildCommand(b *testing.B) string {
	b.Helper()
	pglab.Require(b)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go" // where the Makefile looks too
	}
	bin := filepath.Join(b.TempDir(), "ot-disable-standby-mode")
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../../../cmd/ot-disable-standby-mode")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the command: %v\n%s", err, out)
	}
	return bin
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

var writableRe = regexp.MustCompile(`writable:\s+(\S+ \S+ \S+) \(`)

// writableAt reads, from the report, when the database took its first write.
func writableAt(b *testing.B, l *lab) time.Time {
	b.Helper()
	reports := l.reports(b)
	if len(reports) != 1 {
		b.Fatalf("reports: %v", reports)
	}
	data, err := os.ReadFile(reports[0])
	if err != nil {
		b.Fatal(err)
	}
	m := writableRe.FindSubmatch(data)
	if m == nil {
		b.Fatalf("no writable time in the report:\n%s", data)
	}
	at, err := time.ParseInLocation("2006-01-02 15:04:05.000 MST", string(m[1]), time.Local)
	if err != nil {
		b.Fatal(err)
	}
	return at
}

// execTime reads when the lab's namespace script exec'd the command.
func execTime(b testing.TB, l *lab) time.Time {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(l.dir, "exec-time"))
	if err != nil {
		b.Fatal(err)
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.UnixMicro(int64(sec * 1e6))
}

// waitWritable runs the command's own write check until it passes.
func waitWritable(b *testing.B, c *pglab.Cluster) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := c.Psql(context.Background(), writeCheckSQL); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("not writable after a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
