package fullsync

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// relay is a TCP relay between the standby and production's sshd that
// delays every chunk by Delay in each direction, and counts connections.
// This kernel has no netem qdisc (and tc netem on loopback would delay
// every test at once): the relay adds latency to this lab's traffic only.
type relay struct {
	ln    net.Listener
	delay time.Duration
	conns atomic.Int64
}

func startRelay(tb testing.TB, target string, delay time.Duration) *relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &relay{ln: ln, delay: delay}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.conns.Add(1)
			go r.serve(c, target)
		}
	}()
	return r
}

func (r *relay) serve(c net.Conn, target string) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pipe(t, c) }()
	go func() { defer wg.Done(); r.pipe(c, t) }()
	wg.Wait()
}

// pipe copies src to dst, each chunk delivered r.delay after it was read.
func (r *relay) pipe(dst, src net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 4096)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(r.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// original does one full sync the original suite's way, over plain ssh and
// rsync, one connection per remote command and per project: the same
// remote listings, local probes and copies as ours.
func (l *lab) original(tb testing.TB, cfg *config.Config) {
	tb.Helper()
	target, err := job.Target(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	rsh := shellquote.Join(append([]string{"ssh"}, target.Options("")...)...)
	host := target.Host + ":"
	r := &run.Runner{Env: l.env}
	ctx := context.Background()
	do := func(argv ...string) string {
		out, err := r.Query(ctx, argv...)
		if err != nil {
			tb.Fatalf("original: %v", err)
		}
		return string(out)
	}
	rsync := func(src, dst string, extra ...string) {
		do(append(append([]string{"rsync", "-a", "-e", rsh}, extra...), "--", host+src, dst)...)
	}
	// conf: odoo.conf and the apt directory.
	rsync(l.odooConf, l.odooConf)
	rsync(l.kv["APT_DIR"]+"/", l.kv["APT_DIR"]+"/", "--delete")
	// apt: production's manual list; the local installed and manual sets.
	do(target.Command("apt-mark", "showmanual")...)
	do("apt-mark", "showmanual")
	do("dpkg-query", "-W")
	// pip: both lists.
	do(target.Command(append(strings.Fields(l.prodPip), "list", "--format=json")...)...)
	do(append(strings.Fields(l.pip), "list", "--format=json")...)
	// projects: list them, then one rsync each.
	for _, p := range strings.Fields(do(target.Command("ls", l.share)...)) {
		if strings.Contains(p, "odoo") && p != "core-odoo" {
			rsync(filepath.Join(l.share, p)+"/", filepath.Join(l.share, p)+"/", "--delete")
		}
	}
	// filestore.
	rsync(l.filestore+"/", l.filestore+"/", "--delete")
}

// change gives every run some work: a changed file in each of five projects
// and a new attachment.
func (l *lab) change(tb testing.TB, prodDir string, i int) {
	for p := range 5 {
		prodlab.WriteFile(tb, filepath.Join(prodDir, "share", fmt.Sprintf("odoo-addons-%02d", p), "mod", "changed.py"), fmt.Sprintf("# run %d\n", i))
	}
	prodlab.WriteFile(tb, filepath.Join(prodDir, "filestore", "db1", "cd", fmt.Sprintf("new-%d", i)), "attachment\n")
}

// BenchmarkFullSync: one full ot-sync-from-source over the lab with 50 ms
// of added round-trip latency (25 ms each way) and 30 projects, against the
// same work done the original's way. Both start from a synced standby (apt
// and pip packages installed by an untimed first run) with a few changed
// files to copy. Metrics: walls in ms and ssh connections, per sync.
func BenchmarkFullSync(b *testing.B) {
	l := newLab(b, 30)
	r := startRelay(b, net.JoinHostPort(l.prod.Addr, strconv.Itoa(l.prod.Port)), 25*time.Millisecond)
	// Trust production's host key at the relay's address too.
	kh, err := os.ReadFile(l.prod.KnownHosts)
	if err != nil {
		b.Fatal(err)
	}
	relayAddr := r.ln.Addr().(*net.TCPAddr)
	relayKH := filepath.Join(l.dir, "relay_known_hosts")
	key := strings.SplitN(strings.TrimSpace(string(kh)), " ", 2)[1]
	prodlab.WriteFile(b, relayKH, fmt.Sprintf("[%s]:%d %s\n", relayAddr.IP, relayAddr.Port, key))
	l.kv["SYNCSRC"] = relayAddr.IP.String()
	l.kv["SSH_PORT"] = strconv.Itoa(relayAddr.Port)
	l.kv["SSH_KNOWN_HOSTS"] = relayKH
	l.config(b, nil)
	cfg, err := config.Load(l.conf)
	if err != nil {
		b.Fatal(err)
	}
	prodDir := filepath.Join(l.dir, "prod")

	if code, _, _ := l.sync(b, false, l.opts); code != 0 { // installs apt and pip packages
		b.Fatalf("first sync: exit %d", code)
	}
	var ours, orig time.Duration
	var oursConns, origConns int64
	b.ResetTimer()
	for i := range b.N {
		l.change(b, prodDir, 2*i)
		n0, start := r.conns.Load(), time.Now()
		if code, _, _ := l.sync(b, false, l.opts); code != 0 {
			b.Fatalf("exit %d", code)
		}
		ours += time.Since(start)
		oursConns += r.conns.Load() - n0

		l.change(b, prodDir, 2*i+1)
		n0, start = r.conns.Load(), time.Now()
		l.original(b, cfg)
		orig += time.Since(start)
		origConns += r.conns.Load() - n0
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(ours.Milliseconds())/n, "ours-ms/op")
	b.ReportMetric(float64(orig.Milliseconds())/n, "orig-ms/op")
	b.ReportMetric(float64(oursConns)/n, "ours-ssh/op")
	b.ReportMetric(float64(origConns)/n, "orig-ssh/op")
	b.ReportMetric(float64(ours)/float64(orig), "wall-ratio")
}
