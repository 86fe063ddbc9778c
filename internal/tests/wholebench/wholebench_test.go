// Package wholebench measures the programs as cron and the operator run
// them: the built binary, from exec to exit, against the bare tool doing the
// same work in the same run, alternating, medians. The in-process
// benchmarks of each package measure a program's body; these add what is
// around it (process start, configuration, the PostgreSQL guard, the lock,
// the ssh connection, the check that production is not this machine, the
// summary and run log).
package wholebench

import (
	"crypto/sha1"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// files is the filestore size: OT_BENCH_FILES, default 10,000 (the
// documented figures use 100,000).
func files(b testing.TB) int {
	n := 10000
	if v := os.Getenv("OT_BENCH_FILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("OT_BENCH_FILES=%q: want a number >= 100", v)
		}
	}
	return n
}

// lab is production's filestore, the standby's copy that the program keeps
// (FILESTORE) and a second copy that bare rsync keeps.
type lab struct {
	p             *prodlab.Prod
	prod, standby string
	bare          string
	conf, bin     string
	rng           *rand.Rand
	buf           []byte
	next          int
	live          []string
}

func newLab(b *testing.B) *lab {
	prodlab.Require(b, "ssh", "rsync")
	tmp := b.TempDir()
	os.Chmod(tmp, 0o755)
	l := &lab{prod: filepath.Join(tmp, "production"), standby: filepath.Join(tmp, "standby", "filestore"), bare: filepath.Join(tmp, "bare"),
		rng: rand.New(rand.NewPCG(1, 2)), buf: make([]byte, 64<<10)}
	for _, d := range []string{l.prod, l.standby, l.bare, filepath.Join(tmp, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for i := range l.buf {
		l.buf[i] = byte(l.rng.Uint32())
	}
	l.p = prodlab.Start(b, prodlab.Options{Binds: map[string]string{l.standby: l.prod}})
	l.conf = filepath.Join(tmp, "ot.conf")
	// PG_CLUSTER is left to find: the guard asks this host's PostgreSQL, as
	// it does on a standby.
	l.p.WriteConfig(b, l.conf, map[string]string{"FILESTORE": l.standby, "ODOO_USER": "daemon", "ODOO_GROUP": "daemon",
		"SUMMARYFILE": filepath.Join(tmp, "state", "summary.log"), "RUN_LOG": filepath.Join(tmp, "state", "runs.log"),
		"LOCK_FILE": filepath.Join(tmp, "state", "lock")})
	l.bin = build(b, "ot-attachments-sync")
	if v := os.Getenv("OT_BENCH_BIN"); v != "" {
		l.bin = v // another build of the program, to compare with
	}
	l.add(b, files(b))
	// First copies, untimed; then everything is on disk before timing.
	l.ours(b)
	l.bareRsync(b)
	syscall.Sync()
	return l
}

// build builds a program as the Makefile ships it.
func build(b *testing.B, name string) string {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(b.TempDir(), name)
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../../../cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}

// add creates n attachments on production, in Odoo's layout: the name is
// the SHA-1 of the content.
func (l *lab) add(b *testing.B, n int) {
	for range n {
		size := 1<<10 + l.rng.IntN(63<<10+1)
		off := l.rng.IntN(len(l.buf) - size + 1)
		data := append(l.buf[off:off+size:off+size], strconv.Itoa(l.next)...)
		l.next++
		sum := sha1.Sum(data)
		name := hex.EncodeToString(sum[:])
		rel := filepath.Join("bench", name[:2], name)
		p := filepath.Join(l.prod, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		l.live = append(l.live, rel)
	}
}

// remove deletes n random attachments from production.
func (l *lab) remove(b *testing.B, n int) {
	for range n {
		i := l.rng.IntN(len(l.live))
		if err := os.Remove(filepath.Join(l.prod, l.live[i])); err != nil {
			b.Fatal(err)
		}
		l.live[i] = l.live[len(l.live)-1]
		l.live = l.live[:len(l.live)-1]
	}
}

// ours runs ot-attachments-sync as cron runs it, exec to exit.
func (l *lab) ours(b *testing.B) time.Duration {
	cmd := exec.Command(l.bin, "--cron", "--config", l.conf)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("ot-attachments-sync: %v\n%s", err, out)
	}
	return d
}

// bareRsync is the reference: rsync -a --delete over a fresh ssh
// connection with the same options, from the same production.
func (l *lab) bareRsync(b *testing.B) time.Duration {
	cfg, err := config.Load(l.conf)
	if err != nil {
		b.Fatal(err)
	}
	t, err := job.Target(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rsh := shellquote.Join(append([]string{"ssh"}, t.Options("")...)...)
	cmd := exec.Command("rsync", "-a", "--delete", "-e", rsh, "--", t.Host+":"+l.standby+"/", l.bare+"/")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("bare rsync: %v\n%s", err, out)
	}
	return d
}

// BenchmarkAttachmentsSync compares ot-attachments-sync as cron runs it with
// bare `rsync -a --delete` over ssh, (unchanged) when nothing changed and
// (changed) after 1% new and 1% deleted attachments, alternating who goes
// first. Reported: the median wall time of each and their ratio, and the
// median of the iterations' ratios.
//
//	OT_BENCH_FILES=100000 go test -run '^$' -bench AttachmentsSync -benchtime 5x ./internal/tests/wholebench
//
// OT_BENCH_BIN names another build of the program to measure instead.
func BenchmarkAttachmentsSync(b *testing.B) {
	l := newLab(b)
	for _, changed := range []bool{false, true} {
		name := "unchanged"
		if changed {
			name = "changed"
		}
		b.Run(name, func(b *testing.B) {
			var ours, bare []time.Duration
			var ratios []float64
			for i := 0; b.Loop(); i++ {
				if changed {
					b.StopTimer()
					n := len(l.live) / 100
					l.add(b, n)
					l.remove(b, n)
					syscall.Sync()
					b.StartTimer()
				}
				var o, r time.Duration
				if i%2 == 0 {
					o, r = l.ours(b), l.bareRsync(b)
				} else {
					r, o = l.bareRsync(b), l.ours(b)
				}
				ours, bare = append(ours, o), append(bare, r)
				ratios = append(ratios, float64(o)/float64(r))
			}
			mo, mb := median(ours), median(bare)
			b.ReportMetric(float64(mo)/1e6, "ms-ours")
			b.ReportMetric(float64(mb)/1e6, "ms-rsync")
			b.ReportMetric(float64(mo)/float64(mb), "ratio")
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
		})
	}
	if os.Getenv("OT_BENCH_PHASES") != "" {
		// Where the fixed cost goes: the program's own account, -v.
		out, _ := exec.Command(l.bin, "--cron", "-v", "--log-format=json", "--config", l.conf).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, `"phase"`) {
				b.Log(line)
			}
		}
	}
	if out, err := exec.Command("diff", "-r", "-q", l.standby, l.bare).CombinedOutput(); err != nil && !strings.Contains(string(out), ".trash") {
		b.Errorf("the standby and bare rsync's copy differ: %v\n%s", err, out)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
