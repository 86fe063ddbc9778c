package filestore

// Benchmarks of follow mode (ot-attachments-sync --follow) against the
// lab's production, on this one machine.
//
//	OT_REQUIRE_INTEGRATION=1 go test -count=1 -timeout 60m -run '^$' -bench FollowRPO -benchtime 1x ./internal/prog/filestore
//	OT_BENCH_FILES=1000000 OT_REQUIRE_INTEGRATION=1 go test -count=1 -timeout 60m -run '^$' -bench FollowIdleCycle -benchtime 5x ./internal/prog/filestore
//
// BenchmarkFollowRPO: how long a new attachment takes to reach the
// standby, the follower's memory and its CPU between cycles.
// BenchmarkFollowIdleCycle: what one idle cycle costs production, against
// the floor (an ssh session that runs true) and a walk (rsync -an).

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// clockTick is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// envDuration reads a duration from the environment: a Go duration (90s,
// 5m) or plain seconds.
func envDuration(b testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a duration (90s, 5m) or seconds", name, v)
	}
	return d
}

// envInt reads a positive number from the environment.
func envInt(b testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// procTimes reads utime+stime and cutime+cstime (reaped children) of pid.
func procTimes(pid int) (self, children time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis (field 3, state, is f[0]).
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	var t [4]int64
	for k := range t {
		t[k], _ = strconv.ParseInt(f[11+k], 10, 64) // fields 14-17
	}
	return time.Duration(t[0]+t[1]) * clockTick, time.Duration(t[2]+t[3]) * clockTick, nil
}

// schedCPU is pid's CPU time to the nanosecond: the sum of its threads'
// run times (/proc/<pid>/task/*/schedstat); threads that exited are not
// counted.
func schedCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(data))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// parentPID is field 4 of /proc/<pid>/stat.
func parentPID(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// sshMaster finds the follower's ssh master: its child ssh started with
// ControlMaster=yes.
func sshMaster(follower int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != follower {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("ControlMaster=yes")) {
			return pid
		}
	}
	return 0
}

// percentile is the nearest-rank p-th percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// waitCycles waits until the follower's state file counts at least n
// completed cycles, polling often so that the caller runs right after the
// cycle's end.
func waitCycles(b testing.TB, dir string, n int64, timeout time.Duration, log string) FollowState {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, ok, err := ReadFollowState(dir)
		if ok && err == nil && st.Cycles >= n {
			return st
		}
		if ok && st.State == Stopped || time.Now().After(deadline) {
			logs, _ := os.ReadFile(log)
			b.Fatalf("the follower did not complete cycle %d (state %+v, %v); its log:\n%s", n, st, err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rpoWriter stores attachments on production at a steady rate, as Odoo
// names them (<db>/<xx>/<sha1 of content>): each written to a temporary
// file in its bucket, then renamed into place, which changes the bucket
// directory's mtime. A poller stats the standby's copies of the files
// not yet arrived and records each one's creation-to-arrival time.
type rpoWriter struct {
	prod, standby string
	dbs           []string
	rng           *rand.Rand
	buf           []byte
	n             int // files written

	mu      sync.Mutex
	pending map[string]time.Time // rel -> when it became visible on production
	lat     []time.Duration
}

func newRPOWriter(prod, standby string, dbs []string) *rpoWriter {
	w := &rpoWriter{prod: prod, standby: standby, dbs: dbs, rng: rand.New(rand.NewPCG(14, 1)), pending: map[string]time.Time{}}
	w.buf = make([]byte, 64<<10)
	for i := range w.buf {
		w.buf[i] = byte(w.rng.Uint32())
	}
	return w
}

// write stores one new attachment of 1-64 KiB and returns its name.
func (w *rpoWriter) write(b testing.TB) (string, time.Time) {
	w.n++
	size := 1<<10 + w.rng.IntN(63<<10+1)
	off := w.rng.IntN(len(w.buf) - size + 1)
	data := append([]byte(fmt.Sprintf("follow bench %d\n", w.n)), w.buf[off:off+size]...)
	rel := casName(w.dbs[w.rng.IntN(len(w.dbs))], data)
	dir := filepath.Join(w.prod, filepath.Dir(rel))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		b.Fatal(err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(w.prod, rel))
	}
	if err != nil {
		b.Fatal(err)
	}
	return rel, time.Now()
}

// run writes rate files a second for d, watching the standby every 200 ms,
// then waits up to drain for the last ones; it returns how many never
// arrived and when the last file was written.
func (w *rpoWriter) run(b testing.TB, rate int, d, drain time.Duration) (missing int, last time.Time) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the poller
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			w.mu.Lock()
			for rel, created := range w.pending {
				if _, err := os.Lstat(filepath.Join(w.standby, rel)); err == nil {
					w.lat = append(w.lat, time.Since(created))
					delete(w.pending, rel)
				}
			}
			w.mu.Unlock()
		}
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	end := time.Now().Add(d)
	for now := range tick.C {
		if now.After(end) {
			break
		}
		rel, created := w.write(b)
		last = created
		w.mu.Lock()
		w.pending[rel] = created
		w.mu.Unlock()
	}
	tick.Stop()
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		n := len(w.pending)
		w.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	<-done
	w.mu.Lock()
	defer w.mu.Unlock()
	missing = len(w.pending)
	clear(w.pending)
	return missing, last
}

// BenchmarkFollowRPO starts the follower (ot-attachments-sync --follow, the
// built program) against the lab's production, at FOLLOW_INTERVAL's
// default or OT_BENCH_FOLLOW_INTERVAL, lets its first cycle copy a filestore
// of 3,000 attachments in three databases, then writes
// OT_BENCH_FOLLOW_RATE attachments a second (default 5) for
// OT_BENCH_FOLLOW_DURATION (default 5m) into random buckets of the three
// databases. It reports the creation-to-arrival time of each file on the
// standby (p50_s, p99_s, max_s; the standby is polled every 200 ms, which
// adds up to 0.2 s), how many arrived (count) and did not (missing), the
// follower's peak resident memory (rss_MiB, VmHWM: its ssh and rsync
// children not counted), and its CPU time per cycle, wait included, over
// OT_BENCH_FOLLOW_IDLE_CYCLES (default 6) cycles with nothing to copy:
// the follower itself (idle_cpu_ms), the processes it started and reaped
// (idle_child_cpu_ms: the listings' ssh clients) and its ssh master
// (idle_master_cpu_ms). The standby's PostgreSQL is a data directory that
// says "running, in recovery", which the guard reads at every cycle, as
// it reads a real standby's once its cluster is cached; the nopg_* figures
// are the same idle cycles with the lab's PG_CLUSTER naming no cluster,
// where the guard starts pg_lsclusters at every cycle.
func BenchmarkFollowRPO(b *testing.B) {
	duration := envDuration(b, "OT_BENCH_FOLLOW_DURATION", 5*time.Minute)
	rate := envInt(b, "OT_BENCH_FOLLOW_RATE", 5)
	idle := envInt(b, "OT_BENCH_FOLLOW_IDLE_CYCLES", 6)
	l := newLab(b, nil)
	stateDir := filepath.Join(l.state, "lib")
	// A standby's PostgreSQL, as the guard sees it at each cycle once the
	// cluster is known: running (postmaster.pid names a live process, this
	// one) and in recovery (standby.signal).
	pgData := filepath.Join(l.state, "pgdata")
	os.MkdirAll(pgData, 0o700)
	for name, data := range map[string]string{"PG_VERSION": "15\n", "postmaster.pid": strconv.Itoa(os.Getpid()) + "\n", "standby.signal": ""} {
		if err := os.WriteFile(filepath.Join(pgData, name), []byte(data), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	l.extra = map[string]string{"PG_DATA": pgData}
	if os.Getenv("OT_BENCH_FOLLOW_INTERVAL") != "" {
		d := envDuration(b, "OT_BENCH_FOLLOW_INTERVAL", 0)
		if d < time.Second {
			b.Fatalf("OT_BENCH_FOLLOW_INTERVAL=%s: FOLLOW_INTERVAL counts whole seconds", d)
		}
		l.extra["FOLLOW_INTERVAL"] = strconv.Itoa(int(d.Seconds()))
	}
	withPG := maps.Clone(l.extra)
	l.p.WriteConfig(b, l.conf, l.config())
	cfg, err := config.Load(l.conf)
	if err != nil {
		b.Fatal(err)
	}
	interval := cfg.Duration(config.FollowInterval)
	dbs := []string{"db1", "db2", "db3"}
	for _, db := range dbs {
		fill(b, l.prod, db, 0, 1000, 4096)
	}

	logFile := filepath.Join(l.state, "follow.log")
	logf, err := os.Create(logFile)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := l.command("--follow")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	defer stop()
	cycleWait := 3*interval + time.Minute
	waitCycles(b, stateDir, 1, cycleWait, logFile) // the first cycle copies everything

	w := newRPOWriter(l.prod, l.standby, dbs)
	missing := 0
	var last time.Time
	for b.Loop() {
		m, t := w.run(b, rate, duration, 3*interval+2*time.Minute)
		missing += m
		last = t
	}
	b.StopTimer()

	// Idle: no writer. Once a cycle has started after the last write's
	// bucket left the window, every cycle lists nothing new.
	for time.Since(last) < interval+2*followMargin*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	st, _, _ := ReadFollowState(stateDir)
	waitCycles(b, stateDir, st.Cycles+2, cycleWait, logFile)
	master := sshMaster(pid)
	standbyIdle := l.idleCost(b, stateDir, pid, master, idle, cycleWait, logFile)
	// The same without a PostgreSQL cluster the guard can find (the lab's
	// own configuration, PG_CLUSTER naming none): nothing is cached, so
	// every cycle's guard asks pg_lsclusters.
	l.extra = maps.Clone(withPG)
	delete(l.extra, "PG_DATA")
	l.p.WriteConfig(b, l.conf, l.config())
	st, _, _ = ReadFollowState(stateDir)
	waitCycles(b, stateDir, st.Cycles+1, cycleWait, logFile)
	noCluster := l.idleCost(b, stateDir, pid, master, idle, cycleWait, logFile)
	rss := vmHWM(pid)
	stop()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		logs, _ := os.ReadFile(logFile)
		b.Errorf("the follower exited %d after SIGTERM; its log:\n%s", code, logs)
	}
	if logs, _ := os.ReadFile(logFile); len(logs) > 0 && os.Getenv("OT_BENCH_VERBOSE") != "" {
		b.Logf("the follower's log:\n%s", logs)
	}

	lat := slices.Clone(w.lat)
	slices.Sort(lat)
	st, _, _ = ReadFollowState(stateDir)
	b.Logf("interval %s, %d files written at %d/s in %s, %d arrived, %d missing; follower's state %+v",
		interval, w.n, rate, duration, len(lat), missing, st)
	if missing > 0 {
		b.Errorf("%d of %d files never arrived", missing, w.n)
	}
	b.ReportMetric(interval.Seconds(), "interval_s")
	b.ReportMetric(percentile(lat, 50).Seconds(), "p50_s")
	b.ReportMetric(percentile(lat, 99).Seconds(), "p99_s")
	b.ReportMetric(percentile(lat, 100).Seconds(), "max_s")
	b.ReportMetric(float64(len(lat)), "count")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(float64(rss)/1024, "rss_MiB")
	b.ReportMetric(standbyIdle.self, "idle_cpu_ms/cycle")
	b.ReportMetric(standbyIdle.children, "idle_child_cpu_ms/cycle")
	b.ReportMetric(standbyIdle.master, "idle_master_cpu_ms/cycle")
	b.ReportMetric(noCluster.self, "nopg_idle_cpu_ms/cycle")
	b.ReportMetric(noCluster.children, "nopg_idle_child_cpu_ms/cycle")
}

// idleCPU is the follower's CPU time per idle cycle, in milliseconds.
type idleCPU struct{ self, children, master float64 }

// idleCost measures the follower's CPU time over n cycles, from the end of
// one cycle to the end of the nth after it: the follower itself (its
// threads' run times), the children it reaped (the listing's ssh client,
// any process the guard ran; in 10 ms ticks), its ssh master.
func (l *lab) idleCost(b testing.TB, stateDir string, pid, master, n int, cycleWait time.Duration, logFile string) idleCPU {
	st, _, _ := ReadFollowState(stateDir)
	st0 := waitCycles(b, stateDir, st.Cycles+1, cycleWait, logFile)
	s0, m0 := schedCPU(pid), schedCPU(master)
	_, c0, err := procTimes(pid)
	if err != nil {
		b.Fatal(err)
	}
	st1 := waitCycles(b, stateDir, st0.Cycles+int64(n), time.Duration(n)*cycleWait, logFile)
	s1, m1 := schedCPU(pid), schedCPU(master)
	_, c1, _ := procTimes(pid)
	if st1.Copied != st0.Copied {
		b.Logf("the idle cycles copied %d files", st1.Copied-st0.Copied)
	}
	cycles := float64(st1.Cycles - st0.Cycles)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / cycles }
	return idleCPU{ms(s1 - s0), ms(c1 - c0), ms(m1 - m0)}
}

// followBenchFiles is OT_BENCH_FILES for the idle cycle, default 100,000.
func followBenchFiles(b testing.TB) int {
	n := envInt(b, "OT_BENCH_FILES", 100000)
	if n < 1000 {
		b.Fatalf("OT_BENCH_FILES=%d: want at least 1000", n)
	}
	return n
}

// followDBs are the databases of the idle cycle's filestore.
var followDBs = []string{"db1", "db2", "db3", "db4"}

// followStore returns a production filestore of n content-addressed files
// spread over followDBs and their 256 buckets each, its directories dated a
// day back. It is built once, into /var/tmp/ot-bench-follow-<n> (kept for
// the next run: remove it by hand), by a pool of writers.
func followStore(b testing.TB, n int) string {
	b.Helper()
	root := fmt.Sprintf("/var/tmp/ot-bench-follow-%d", n)
	if fi, err := os.Stat(root); err == nil && fi.IsDir() {
		b.Logf("reusing %s", root)
		return root
	}
	tmp, err := os.MkdirTemp("/var/tmp", fmt.Sprintf("ot-bench-follow-%d.building-", n))
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp) // left only when the build failed
	start := time.Now()
	var dirs []string
	for _, db := range followDBs {
		for x := range 256 {
			d := filepath.Join(tmp, db, fmt.Sprintf("%02x", x))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			dirs = append(dirs, d)
		}
	}
	work := make(chan int, 1024)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 4 * runtime.NumCPU() {
		wg.Go(func() {
			for i := range work {
				data := content("ot-bench-follow "+strconv.Itoa(i), 100+i%400)
				p := filepath.Join(tmp, casName(followDBs[i%len(followDBs)], data))
				if err := os.WriteFile(p, data, 0o644); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	// Nothing changed lately: an idle cycle's window holds no bucket.
	old := time.Now().Add(-24 * time.Hour)
	for _, db := range followDBs {
		dirs = append(dirs, filepath.Join(tmp, db))
	}
	for _, d := range append(dirs, tmp) {
		os.Chtimes(d, old, old)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	if err := os.Rename(tmp, root); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s: %d files in %s", root, n, time.Since(start).Round(time.Millisecond))
	return root
}

// followJob is the job the follower runs on: the lab's configuration and
// a connection dialled as the follower dials it (Redial: the master, and
// the check that production is not this machine before every command).
func followJob(b testing.TB, l *lab) *job.Job {
	j := l.offlineJob(b)
	if err := j.Redial(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(j.Hangup)
	return j
}

// prodCPU is the CPU time of every process in production's mount
// namespace, with their reaped children: sshd and the sessions it ran.
func prodCPU(b testing.TB, ns string) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err != nil || link != ns {
			continue
		}
		self, children, err := procTimes(pid)
		if err == nil {
			total += self + children
		}
	}
	return total
}

var ssBytes = regexp.MustCompile(`bytes_(sent|received):(\d+)`)

// linkBytes is the TCP payload sent and received so far on the connections
// to addr:port (the ssh master's), from ss; -1 when ss cannot tell.
func linkBytes(addr string, port int) int64 {
	out, err := exec.Command("ss", "-tinH", "dst", fmt.Sprintf("%s:%d", addr, port)).Output()
	if err != nil {
		return -1
	}
	var n int64
	found := false
	for _, m := range ssBytes.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseInt(m[2], 10, 64)
		n += v
		found = true
	}
	if !found {
		return -1
	}
	return n
}

// remoteCost is what a batch of commands cost.
type remoteCost struct {
	runs      int
	cpu       time.Duration // production, every process (sshd included)
	cmdCPU    time.Duration // the command alone, as its shell's times reports it
	bytes     int64         // over the ssh connection, both ways
	stdout    int64
	wall      time.Duration
	noBytes   bool
	lastOut   []byte
	cmdCPURun int
}

func (c remoteCost) per(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000 / float64(c.runs)
}

// measure runs argv reps times, stdin on its standard input, in a row and adds their cost to c.
func (c *remoteCost) measure(b testing.TB, l *lab, ns string, reps int, argv []string, stdin []byte) {
	b.Helper()
	bytes0, cpu0, start := linkBytes(l.p.Addr, l.p.Port), prodCPU(b, ns), time.Now()
	for range reps {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s: %v\n%s", shellquote.Join(argv...), err, run.Stderr(err))
		}
		c.stdout += int64(len(out))
		c.lastOut = out
	}
	c.wall += time.Since(start)
	c.cpu += prodCPU(b, ns) - cpu0
	if bytes1 := linkBytes(l.p.Addr, l.p.Port); bytes0 >= 0 && bytes1 >= 0 {
		c.bytes += bytes1 - bytes0
	} else {
		c.noBytes = true
	}
	c.runs += reps
}

var timesLine = regexp.MustCompile(`(\d+)m(\d+\.\d+)s (\d+)m(\d+\.\d+)s\n$`)

// measureTimes runs remote (production's side of an ssh argv) reps times,
// wrapped so that bash reports its child's CPU time (times: user and
// system, to the millisecond), and adds them to c.cmdCPU.
func (c *remoteCost) measureTimes(b testing.TB, argv []string, reps int) {
	b.Helper()
	w := slices.Clone(argv)
	w[len(w)-1] = shellquote.Join("bash", "-c", `sh -c "$1"; times`, "bash", argv[len(argv)-1])
	for range reps {
		out, err := exec.Command(w[0], w[1:]...).Output()
		m := timesLine.FindStringSubmatch(string(out))
		if err != nil || m == nil {
			b.Fatalf("%s: %v: no times in %q", shellquote.Join(w...), err, out[max(0, len(out)-80):])
		}
		for _, k := range []int{1, 3} {
			mins, _ := strconv.Atoi(m[k])
			secs, _ := strconv.ParseFloat(m[k+1], 64)
			c.cmdCPU += time.Duration(mins)*time.Minute + time.Duration(secs*float64(time.Second))
		}
	}
	c.cmdCPURun += reps
}

// BenchmarkFollowIdleCycle measures what one idle cycle of the follower
// costs production, at OT_BENCH_FILES files (default 100,000) in four
// databases of 256 buckets: the listing command, built by the follower's
// own listArgv for a window of one FOLLOW_INTERVAL plus its margin, run
// over the follower's kind of connection (its ssh master, its check of
// production's token). Compared in the same run with the floor, bare
// `ssh host true` over the same master, and with a walk, bare `rsync -an`
// of the whole filestore over it. For contrast, a busy cycle's transfer:
// the follower's rsync, as a dry run, of OT_BENCH_BUSY_BUCKETS changed
// buckets (default 75: 5 new files a second over 15 s), which lists each
// bucket whole (busy_*). Each iteration runs OT_BENCH_REPS (default 20)
// listings and as many floors in a row, one rsync -an, one busy transfer. It
// reports per command: production's CPU time (*_cpu_ms: every process of
// production's namespace with its reaped children, so sshd's work is
// counted; read from /proc in 10 ms ticks, hence the batches), the
// listing's own CPU as its shell reports it (list_cmd_cpu_ms), the bytes
// over the ssh connection both ways (*_bytes, TCP payload, from ss), the
// listing's output (list_out_B), the wall time (*_ms), and the ratios.
// The directories are dated a day back: the listing returns the databases
// only, as an idle cycle's does; the page cache is warm (one untimed run
// of each first), as it is for a cycle every few seconds.
func BenchmarkFollowIdleCycle(b *testing.B) {
	n := followBenchFiles(b)
	reps := envInt(b, "OT_BENCH_REPS", 20)
	prodlab.Require(b, "ssh", "rsync", "ss", "bash")
	store := followStore(b, n)

	tmp := b.TempDir()
	os.Chmod(tmp, 0o755)
	l := &lab{standby: filepath.Join(tmp, "standby", "filestore"), prod: store, state: filepath.Join(tmp, "state")}
	for _, d := range []string{l.standby, l.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	l.start(b)
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", l.p.PID))
	if err != nil {
		b.Fatal(err)
	}
	j := followJob(b, l)
	f := &follower{j: j}
	f.configure()
	interval := j.Cfg.Duration(config.FollowInterval)
	window := int64(interval/time.Second) + followMargin
	listArgv := func() []string { return f.listArgv(time.Now().Unix() - window) }

	shell, err := shellquote.Split(j.SSH.RsyncShell())
	if err != nil {
		b.Fatal(err)
	}
	trueArgv := append(shell, "--", j.SSH.Host, "true")
	rsyncArgv := []string{"rsync", "-an", "-e", j.SSH.RsyncShell(), "--", j.SSH.Spec(l.standby + "/"), l.standby + "/"}

	// A busy cycle: the follower's transfer (dry run) of busy buckets,
	// each listed whole on both sides, as many as a cycle at 5 new files a
	// second and the default interval finds changed.
	busyN := envInt(b, "OT_BENCH_BUSY_BUCKETS", 75)
	rng := rand.New(rand.NewPCG(14, 2))
	var busyList []byte
	for _, k := range rng.Perm(len(followDBs) * 256)[:min(busyN, len(followDBs)*256)] {
		busyList = fmt.Appendf(busyList, "%s/%02x\x00", followDBs[k/256], k%256)
	}
	busyArgv := slices.Insert(f.rsyncArgv(), 1, "-n")

	var list, floor, walk, busy remoteCost
	steps := []func(reps int){
		func(reps int) { list.measure(b, l, ns, reps, listArgv(), nil) },
		func(reps int) { list.measureTimes(b, listArgv(), reps) },
		func(reps int) { floor.measure(b, l, ns, reps, trueArgv, nil) },
		func(int) { walk.measure(b, l, ns, 1, rsyncArgv, nil) },
		func(int) { busy.measure(b, l, ns, 1, busyArgv, busyList) },
	}
	for _, s := range steps { // warm up
		s(1)
	}
	_, dbs, buckets, err := parseListing(list.lastOut)
	if err != nil || len(dbs) != len(followDBs) || len(buckets) != 0 {
		b.Fatalf("an idle listing gave %d databases, %d buckets (%v); want %d and 0: %q", len(dbs), len(buckets), err, len(followDBs), list.lastOut)
	}
	list, floor, walk, busy = remoteCost{}, remoteCost{}, remoteCost{}, remoteCost{}
	for i := 0; b.Loop(); i++ {
		order := slices.Clone(steps)
		if i%2 == 1 { // neither always goes first
			slices.Reverse(order)
		}
		for _, s := range order {
			s(reps)
		}
	}
	b.StopTimer()

	b.ReportMetric(float64(n), "files")
	b.ReportMetric(float64(len(followDBs)*256), "buckets")
	b.ReportMetric(list.per(list.cpu), "list_cpu_ms")
	b.ReportMetric(float64(list.cmdCPU.Microseconds())/1000/float64(list.cmdCPURun), "list_cmd_cpu_ms")
	b.ReportMetric(float64(list.stdout)/float64(list.runs), "list_out_B")
	b.ReportMetric(list.per(list.wall), "list_ms")
	b.ReportMetric(floor.per(floor.cpu), "true_cpu_ms")
	b.ReportMetric(floor.per(floor.wall), "true_ms")
	b.ReportMetric(walk.per(walk.cpu), "rsync_cpu_ms")
	b.ReportMetric(walk.per(walk.wall), "rsync_ms")
	b.ReportMetric(busy.per(busy.cpu), "busy_cpu_ms")
	b.ReportMetric(busy.per(busy.wall), "busy_ms")
	b.ReportMetric(float64(list.cpu)/float64(list.runs)/(float64(floor.cpu)/float64(floor.runs)), "list/true_cpu")
	b.ReportMetric(float64(list.cpu)/float64(list.runs)/(float64(walk.cpu)/float64(walk.runs)), "list/rsync_cpu")
	if !list.noBytes && !floor.noBytes && !walk.noBytes && !busy.noBytes {
		lb, tb, wb := float64(list.bytes)/float64(list.runs), float64(floor.bytes)/float64(floor.runs), float64(walk.bytes)/float64(walk.runs)
		b.ReportMetric(lb, "list_bytes")
		b.ReportMetric(tb, "true_bytes")
		b.ReportMetric(wb, "rsync_bytes")
		b.ReportMetric(float64(busy.bytes)/float64(busy.runs), "busy_bytes")
		b.ReportMetric(lb/tb, "list/true_bytes")
		b.ReportMetric(lb/wb, "list/rsync_bytes")
	} else {
		b.Logf("ss could not count the connection's bytes")
	}
}
