package enablestandby

import (
	"context"
	"fmt"
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
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// BenchmarkTimeToStreaming measures the time from command to streaming
// after a split brain, for a database of OT_BENCH_MB megabytes (default
// 300, made by pgbench -i), by rewind and by base backup. A's data
// directory, stopped after its own writes, is copied, so that ours and the
// bare tools start from the same state in the same run:
//   - ours: ot-enable-standby-mode --yes (--base-backup for the second),
//     built as the Makefile builds it, from its exec to the moment it saw
//     the WAL receiver stream (its report says when), with everything
//     before: preflight, pg_waldump's count, keeping the WAL, fencing;
//   - bare: CHECKPOINT on the source and pg_rewind -R (or pg_basebackup -R -X stream -c fast into a new
//     directory, swapped in), the copy's postgresql.conf put back, pg_ctl
//     start -w, then polling pg_stat_wal_receiver every 20 ms.
//
// Reported: the median of each in ms, and ours as a ratio of bare.
func BenchmarkTimeToStreaming(b *testing.B) {
	bin := buildCommand(b)
	mb := 300
	if v, err := strconv.Atoi(os.Getenv("OT_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	for _, method := range []string{"rewind", "basebackup"} {
		b.Run(method, func(b *testing.B) {
			var ours, bare []time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l, a2 := benchLab(b, mb)
				l.bin = bin
				b.StartTimer()
				runs := []func(){
					func() { ours = append(ours, l.oursToStreaming(b, method)) },
					func() { bare = append(bare, bareToStreaming(b, a2, l.b.pg, method)) },
				}
				for j := range runs {
					runs[(i+j)%len(runs)]()
				}
			}
			mo, mbare := median(ours), median(bare)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(float64(mb), "MB")
			b.ReportMetric(ms(mo), "ms-ours")
			b.ReportMetric(ms(mbare), "ms-bare")
			b.ReportMetric(float64(mo)/float64(mbare), "x-vs-bare")
		})
	}
}

// benchLab is a lab whose database holds about mb megabytes, after a
// split brain, A stopped; it returns a stopped copy of A for the bare tools.
func benchLab(b *testing.B, mb int) (*lab, *pglab.Cluster) {
	b.Helper()
	l := newLab(b, labOptions{checksums: true})
	scale := max(mb/15, 1) // pgbench: about 15 MB per scale unit
	if _, err := l.a.pg.Command(context.Background(), filepath.Join(l.a.pg.BinDir, "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", l.a.pg.Socket, "-p", strconv.Itoa(l.a.pg.Port), "erp"); err != nil {
		b.Fatal(err)
	}
	// A checkpoint after the load, as an idle production makes one every
	// checkpoint_timeout: pg_rewind reads A's WAL back to it.
	l.a.pg.Exec(b, "CHECKPOINT")
	l.b.waitCaughtUp(b)
	l.splitBrain(b)
	l.a.pg.Stop(b)
	b.Logf("database: %s", l.sql(b, l.b, "SELECT pg_size_pretty(pg_database_size('erp'))"))
	return l, l.a.pg.Copy(b, "a2")
}

var streamingRe = regexp.MustCompile(`streaming:\s+(\S+ \S+ \S+) \(`)

// oursToStreaming runs the command on A and returns the time from its
// exec to the streaming its report records.
func (l *lab) oursToStreaming(b *testing.B, method string) time.Duration {
	b.Helper()
	args := []string{"--yes"}
	if os.Getenv("OT_BENCH_VERBOSE") != "" {
		args = append(args, "--verbose")
	}
	if method == "basebackup" {
		args = append(args, "--base-backup")
	}
	res := l.run(b, l.a, prog, args...)
	if res.code != 0 || !strings.Contains(res.stdout, map[string]string{"rewind": "pg_rewind --target", "basebackup": "pg_basebackup --pgdata"}[method]) {
		b.Fatalf("ours:\n%s", res)
	}
	m := streamingRe.FindStringSubmatch(l.a.report(b))
	if m == nil {
		b.Fatal("no streaming time in the report")
	}
	at, err := time.ParseInLocation("2006-01-02 15:04:05.000 MST", m[1], time.Local)
	if err != nil {
		b.Fatal(err)
	}
	data := strings.TrimSpace(prodlab.ReadFile(b, filepath.Join(l.dir, "exec-time")))
	sec, err := strconv.ParseFloat(data, 64)
	if err != nil {
		b.Fatal(err)
	}
	return at.Sub(time.UnixMicro(int64(sec * 1e6)))
}

// bareToStreaming does by hand what an administrator would, on the copy.
func bareToStreaming(b *testing.B, c, source *pglab.Cluster, method string) time.Duration {
	b.Helper()
	conf := prodlab.ReadFile(b, filepath.Join(c.Data, "postgresql.conf"))
	src := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", source.Port)
	bin := func(name string) string { return filepath.Join(c.BinDir, name) }
	t0 := time.Now()
	switch method {
	case "rewind":
		// As pg_rewind's page says: a newly promoted source's control
		// file shows its timeline only after a checkpoint.
		source.Exec(b, "CHECKPOINT")
		if _, err := c.Command(context.Background(), bin("pg_rewind"), "-D", c.Data, "--source-server="+src, "-R"); err != nil {
			b.Fatal(err)
		}
	default:
		fresh := c.Data + ".new"
		if _, err := c.Command(context.Background(), bin("pg_basebackup"), "-D", fresh, "-R", "-X", "stream", "-c", "fast", "-d", src); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(c.Data, c.Data+".old"); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(fresh, c.Data); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.Data, "postgresql.conf"), []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	c.WaitStreaming(b)
	return time.Since(t0)
}

// buildCommand builds ot-enable-standby-mode as the Makefile does, so the
// time from exec is the real program's.
func buildCommand(b *testing.B) string {
	b.Helper()
	pglab.Require(b)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go" // where the Makefile looks too
	}
	bin := filepath.Join(b.TempDir(), prog)
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../../../cmd/"+prog)
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
