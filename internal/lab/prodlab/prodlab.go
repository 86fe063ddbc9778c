// Package prodlab starts a simulated production Odoo host on this machine for
// integration tests, and tears it down leaving the host as it found it.
//
// Production is the real /usr/sbin/sshd, started as pid 1 of new mount, UTS and
// PID namespaces. Before sshd is exec'd, a small shell script inside them makes
// every mount private, mounts its own /proc, bind-mounts copies of /etc/passwd,
// /etc/group and /etc/shadow that add the user odoo (so odoo exists only for
// production), a different /etc/machine-id, a private tmpfs on /run and on
// /home (with /home/odoo bound to Prod.Home), and every Options.Binds entry, so
// production sees its own content at the very paths where the standby (the host
// itself) keeps its copy. sshd listens on a random 127.x.y.z address and a free
// port, reads only our sshd_config (own host key, key-only login for odoo) and
// logs to a file in the lab directory, which is shown when the test fails.
//
// Stop kills sshd; as the PID namespace's init its death takes every session
// process with it (setsid or nohup do not escape), so the namespaces and their
// mounts vanish. Stop then removes the lab directory and any production path it
// had to create on the host, when still empty. Production paths should lie in
// the test's temporary directory: their ancestors there are made traversable
// for odoo.
package prodlab

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kballard/go-shellquote"
)

// sshdPath is the real OpenSSH server; sshd insists on an absolute path so
// that it can re-exec itself for each connection.
const sshdPath = "/usr/sbin/sshd"

// Require skips the test unless running as root with the named tools on PATH
// (plus sshd, unshare, nsenter, and working namespaces); with
// OT_REQUIRE_INTEGRATION=1 in the environment it fails the test instead.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		missing = append(missing, sshdPath)
	}
	for _, tool := range append([]string{"unshare", "nsenter", "mount", "ssh-keygen"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		// Containers may lack CAP_SYS_ADMIN: prove the namespaces Start needs work.
		if out, err := exec.Command("unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
			missing = append(missing, fmt.Sprintf("working namespaces: unshare --mount --uts --pid (%v: %s)", err, bytes.TrimSpace(out)))
		}
	}
	if len(missing) == 0 {
		return
	}
	Missing(t, "integration test needs "+strings.Join(missing, ", "))
}

// Missing skips a test that cannot run here, saying why; with
// OT_REQUIRE_INTEGRATION=1 (as CI sets) it fails it instead, so nothing is
// silently left untested.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("OT_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(why + " (OT_REQUIRE_INTEGRATION=1)")
		return // a testing.TB stand-in's Fatal may return
	}
	t.Skip(why)
}

// Options says what production looks like.
type Options struct {
	// Binds: production path -> host path (dir or file). Inside production's
	// mount namespace the host path is bind-mounted at the production path, so
	// production sees its own content at the same path the standby (the host
	// itself) uses for its copy. Missing production paths are created (mkdir -p
	// / touch) first, and removed again at Stop when still empty.
	Binds map[string]string
}

// Prod is one running simulated production host.
type Prod struct {
	Addr       string // a random 127.x.y.z loopback address (not 127.0.0.1), sshd listens only there
	Port       int    // a free port
	User       string // "odoo"
	Home       string // host dir that is /home/odoo inside production
	KeyFile    string // client private key (ed25519, 0600) authorised for odoo@production
	KnownHosts string // known_hosts file holding production's host key as "[Addr]:Port key"
	Dir        string // lab temp root, removed at cleanup
	PID        int    // sshd pid (its mount namespace is production's)

	t        testing.TB
	cmd      *exec.Cmd
	ns       string        // readlink of /proc/PID/ns/mnt once sshd runs
	nsHold   *os.File      // keeps that namespace, and so its inode number, alive until Stop is done
	created  []string      // host paths created for binds, parents first
	exited   chan struct{} // closed once sshd has been reaped
	logFile  string
	logShown bool // Start's failure message already holds the log
	once     sync.Once
}

// Start starts production and registers t.Cleanup(p.Stop).
func Start(t testing.TB, opt Options) *Prod {
	t.Helper()
	dir, err := os.MkdirTemp("", "testlab-")
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	p := &Prod{
		User:       "odoo",
		Dir:        dir,
		Home:       filepath.Join(dir, "home"),
		KeyFile:    filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		logFile:    filepath.Join(dir, "sshd.log"),
		t:          t,
	}
	t.Cleanup(p.remove)
	// odoo reads the authorized keys and traverses to its home: the lab root
	// must be reachable by others (MkdirTemp makes it 0700).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testlab: %v", err)
	}

	uid, gid := p.writeUserFiles(t)
	if err := os.Mkdir(p.Home, 0o755); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	if err := os.Chown(p.Home, uid, gid); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	keygen(t, hostKey)
	keygen(t, p.KeyFile)
	writeFile(t, filepath.Join(dir, "authorized_keys"), readPub(t, p.KeyFile)+"\n", 0o644)
	writeFile(t, filepath.Join(dir, "machine-id"), randomHex(t, 16)+"\n", 0o444)

	p.Addr, p.Port = freeAddr(t)
	writeFile(t, p.KnownHosts, fmt.Sprintf("[%s]:%d %s\n", p.Addr, p.Port, readPub(t, hostKey)), 0o644)
	config := filepath.Join(dir, "sshd_config")
	writeFile(t, config, p.sshdConfig(hostKey), 0o600)

	script := p.setupScript(t, opt.Binds, config)
	log, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	defer log.Close()
	// sh execs sshd, so the pid we start is sshd's, and it is the PID
	// namespace's init: when it dies, the kernel kills the whole namespace.
	p.cmd = exec.Command("/bin/sh", "-ec", script)
	p.cmd.Stdout = log
	p.cmd.Stderr = log
	p.cmd.Dir = "/" // hold no test directory busy
	// A killed test binary must not leave production behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testlab: start sshd: %v", err)
	}
	p.PID = p.cmd.Process.Pid
	exited := make(chan struct{})
	p.exited = exited
	go func() { p.cmd.Wait(); close(exited) }()

	addr := net.JoinHostPort(p.Addr, strconv.Itoa(p.Port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			p.logShown = true
			t.Fatalf("testlab: sshd exited before listening on %s: %s\nsshd log:\n%s", addr, p.cmd.ProcessState, p.readLog())
		default:
		}
		if time.Now().After(deadline) {
			p.logShown = true
			t.Fatalf("testlab: sshd not listening on %s after 5s: %v\nsshd log:\n%s", addr, err, p.readLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The kernel reuses a freed namespace's inode number at once, so a
	// concurrent lab started after this one died could carry the same
	// "mnt:[N]" and be killed by killNamespace: an open handle keeps the
	// namespace, and its number, ours until Stop has finished with it.
	hold, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", p.PID))
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	p.nsHold = hold
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.PID))
	self, err2 := os.Readlink("/proc/self/ns/mnt")
	if err != nil || err2 != nil || ns == self {
		t.Fatalf("testlab: sshd (pid %d) is not in a mount namespace of its own: %q vs %q (%v, %v)", p.PID, ns, self, err, err2)
	}
	p.ns = ns
	return p
}

// Stop kills sshd and everything in its namespace: production is down. It is
// idempotent. The lab directory stays until the test ends, since a test may
// still run syncs (which write their logs there) against the dead production.
func (p *Prod) Stop() {
	p.once.Do(func() {
		if p.cmd != nil && p.cmd.Process != nil {
			p.cmd.Process.Kill()
			<-p.exited
			if p.ns != "" {
				p.killNamespace() // what joined only the mount namespace
			}
		}
		if p.nsHold != nil {
			p.nsHold.Close()
		}
	})
}

// remove deletes the lab directory and the production paths Start created
// on the host when they are still empty; it runs when the test ends.
func (p *Prod) remove() {
	p.Stop()
	if p.t.Failed() && !p.logShown {
		p.t.Logf("testlab: production sshd log (%s:%d):\n%s", p.Addr, p.Port, p.readLog())
	}
	// Deepest first: a path is always longer than its parents.
	slices.SortFunc(p.created, func(a, b string) int { return len(b) - len(a) })
	for _, path := range p.created {
		if fi, err := os.Lstat(path); err == nil && (fi.IsDir() || fi.Mode().IsRegular() && fi.Size() == 0) {
			os.Remove(path) // a directory the standby filled stays
		}
	}
	os.RemoveAll(p.Dir)
}

// killNamespace kills every process left in production's mount namespace:
// session processes may have left sshd's process tree (setsid, nohup).
func (p *Prod) killNamespace() {
	var pids []int
	for range 200 {
		pids = nsPIDs(p.ns)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Errorf("testlab: processes %v still run in production's mount namespace after SIGKILL", pids)
}

// nsPIDs lists the processes whose mount namespace is ns. Zombies have no
// namespace any more and are not listed.
func nsPIDs(ns string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && link == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Exec runs argv as root inside production's namespaces (nsenter -t PID -m -u -p),
// fails the test on error and returns stdout.
func (p *Prod) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(p.PID), "-m", "-u", "-p", "--"}, argv...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = "/"
	if err := cmd.Run(); err != nil {
		t.Fatalf("testlab: on production: %s: %v\n%s", shellquote.Join(argv...), err, stderr.Bytes())
	}
	return stdout.String()
}

func (p *Prod) readLog() string {
	b, err := os.ReadFile(p.logFile)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func (p *Prod) sshdConfig(hostKey string) string {
	return fmt.Sprintf(`# testlab production: nothing of the host's /etc/ssh is read.
ListenAddress %s:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers odoo
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
# The lab lives under world-writable /tmp, which StrictModes refuses.
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, p.Addr, p.Port, hostKey, filepath.Join(p.Dir, "sshd.pid"), filepath.Join(p.Dir, "authorized_keys"))
}

// privateDirs are the directories production gets a tmpfs of its own on.
var privateDirs = []string{"/run", "/home"}

func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// setupScript returns the script that prepares production's mount namespace
// and execs sshd, and records which production paths it creates on the host.
func (p *Prod) setupScript(t testing.TB, binds map[string]string, config string) string {
	t.Helper()
	for _, d := range privateDirs {
		if under(p.Dir, d) {
			t.Fatalf("testlab: lab dir %s is under %s, which production hides; set TMPDIR elsewhere", p.Dir, d)
		}
	}
	var b strings.Builder
	line := func(argv ...string) { b.WriteString(shellquote.Join(argv...) + "\n") }
	// Mounts made below must never propagate to the host.
	line("mount", "--make-rprivate", "/")
	line("mount", "-t", "proc", "testlab-proc", "/proc")
	line("hostname", "testlab-production")
	for _, f := range []string{"passwd", "group", "shadow"} {
		line("mount", "--bind", filepath.Join(p.Dir, "etc", f), "/etc/"+f)
	}
	if _, err := os.Stat("/etc/machine-id"); err == nil {
		line("mount", "--bind", filepath.Join(p.Dir, "machine-id"), "/etc/machine-id")
	}
	// Logins must not land in the host's login records.
	for _, f := range []string{"/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog"} {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			own := filepath.Join(p.Dir, filepath.Base(f))
			writeFile(t, own, "", 0o600)
			line("mount", "--bind", own, f)
		}
	}
	for _, d := range privateDirs {
		line("mount", "-t", "tmpfs", "-o", "mode=0755", "testlab"+strings.ReplaceAll(d, "/", "-"), d)
	}
	line("mkdir", "-m", "0755", "/run/sshd", "/home/odoo")
	line("mkdir", "-m", "1777", "/run/lock")
	line("mount", "--bind", p.Home, "/home/odoo")

	prods := make([]string, 0, len(binds))
	for prod := range binds {
		prods = append(prods, prod)
	}
	slices.Sort(prods) // parents before children
	created := map[string]bool{}
	for _, prod := range prods {
		host := binds[prod]
		if !filepath.IsAbs(prod) || filepath.Clean(prod) != prod || !filepath.IsAbs(host) {
			t.Fatalf("testlab: bind %q -> %q: both paths must be absolute and clean", prod, host)
		}
		for _, d := range privateDirs {
			if under(host, d) {
				t.Fatalf("testlab: bind %q -> %q: host paths under %s are hidden inside production", prod, host, d)
			}
		}
		fi, err := os.Stat(host)
		if err != nil {
			t.Fatalf("testlab: bind %q -> %q: %v", prod, host, err)
		}
		if fi.IsDir() {
			line("mkdir", "-p", prod)
		} else {
			line("mkdir", "-p", filepath.Dir(prod))
			line("touch", prod)
		}
		line("mount", "--bind", host, prod)
		reachable(t, prod)
		reachable(t, host)
		for q := prod; !created[q]; q = filepath.Dir(q) {
			if _, err := os.Lstat(q); err == nil || slices.ContainsFunc(privateDirs, func(d string) bool { return under(q, d) }) {
				break
			}
			created[q] = true
			p.created = append(p.created, q)
		}
	}
	line("exec", sshdPath, "-D", "-e", "-f", config)
	return b.String()
}

// reachable lets odoo traverse the ancestors of path that lie in the temporary
// directory: t.TempDir makes them 0700, which would hide a bind from odoo.
func reachable(t testing.TB, path string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for q := filepath.Dir(path); under(q, tmp) && q != tmp; q = filepath.Dir(q) {
		fi, err := os.Stat(q)
		if err != nil {
			continue // created by the script, 0755
		}
		if fi.Mode().Perm()&0o011 != 0o011 {
			if err := os.Chmod(q, fi.Mode().Perm()|0o011); err != nil {
				t.Fatalf("testlab: %v", err)
			}
		}
	}
}

// writeUserFiles writes production's passwd, group and shadow into Dir/etc:
// the host's, with odoo (home /home/odoo, shell /bin/sh) added or replaced. An
// odoo user or group the host already has keeps its ids.
func (p *Prod) writeUserFiles(t testing.TB) (uid, gid int) {
	t.Helper()
	passwd, pUsed, pOdoo := readDB(t, "/etc/passwd", 2)
	group, gUsed, gOdoo := readDB(t, "/etc/group", 2)
	shadow, _, _ := readDB(t, "/etc/shadow", -1)
	uid, gid = -1, -1
	if pOdoo != nil {
		uid, _ = strconv.Atoi(pOdoo[2])
		gid, _ = strconv.Atoi(pOdoo[3])
	}
	if gOdoo != nil {
		gid, _ = strconv.Atoi(gOdoo[2])
	}
	if uid < 0 {
		uid = 2000
		for pUsed[uid] {
			uid++
		}
	}
	if gid < 0 {
		gid = uid
		for gUsed[gid] {
			gid++
		}
	}
	if gOdoo == nil {
		group = append(group, fmt.Sprintf("odoo:x:%d:", gid))
	} else {
		group = append(group, strings.Join(gOdoo, ":"))
	}
	passwd = append(passwd, fmt.Sprintf("odoo:x:%d:%d:Odoo (testlab production):/home/odoo:/bin/sh", uid, gid))
	// "*": no password, yet not locked ("!"), which sshd without PAM refuses.
	shadow = append(shadow, fmt.Sprintf("odoo:*:%d:0:99999:7:::", time.Now().Unix()/86400))
	etc := filepath.Join(p.Dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	writeFile(t, filepath.Join(etc, "passwd"), strings.Join(passwd, "\n")+"\n", 0o644)
	writeFile(t, filepath.Join(etc, "group"), strings.Join(group, "\n")+"\n", 0o644)
	writeFile(t, filepath.Join(etc, "shadow"), strings.Join(shadow, "\n")+"\n", 0o600)
	return uid, gid
}

// readDB reads a colon-separated user database, returning its lines without
// odoo's, the numeric ids found in field idField, and odoo's fields if any.
func readDB(t testing.TB, path string, idField int) (lines []string, used map[int]bool, odoo []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	defer f.Close()
	used = map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if fields[0] == "odoo" {
			odoo = fields
			continue
		}
		if idField >= 0 && len(fields) > idField {
			if id, err := strconv.Atoi(fields[idField]); err == nil {
				used[id] = true
			}
		}
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testlab: %s: %v", path, err)
	}
	return lines, used, odoo
}

// freeAddr picks a random 127.x.y.z address (x >= 1, so never 127.0.0.1) and a
// port free on it, so concurrent labs never meet.
func freeAddr(t testing.TB) (string, int) {
	t.Helper()
	var err error
	for range 20 {
		addr := fmt.Sprintf("127.%d.%d.%d", 1+randInt(t, 254), randInt(t, 256), 1+randInt(t, 254))
		var l net.Listener
		if l, err = net.Listen("tcp", addr+":0"); err == nil {
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			return addr, port
		}
	}
	t.Fatalf("testlab: no free loopback address and port: %v", err)
	return "", 0
}

func randInt(t testing.TB, n int64) int {
	t.Helper()
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	return int(v.Int64())
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	return fmt.Sprintf("%x", b)
}

func keygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "testlab", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("testlab: ssh-keygen %s: %v\n%s", path, err, out)
	}
}

// readPub returns "type base64" of path's public key, without the comment.
func readPub(t testing.TB, key string) string {
	t.Helper()
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		t.Fatalf("testlab: %s.pub: not a public key", key)
	}
	return f[0] + " " + f[1]
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	// WriteFile's mode is filtered by the umask and ignored for existing files.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("testlab: %v", err)
	}
}
