// Package aptlab builds what apt tests need, offline and without touching
// the host's apt configuration: tiny .deb packages in a local file://
// repository, private lists and cache directories for apt-get, dpkg status
// fixtures for the simulated production, and a cleanup that purges what a
// test installed on the host.
package aptlab

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Pkg is one tiny package.
type Pkg struct {
	Name    string
	Version string
	Arch    string // "all" when empty
	// Files are installed besides its README: absolute path -> content
	// (directories on the way are part of the package too, as dpkg-deb
	// records them).
	Files map[string]string
}

func (p Pkg) arch() string {
	if p.Arch == "" {
		return "all"
	}
	return p.Arch
}

func (p Pkg) control() string {
	return fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: ot-redundancy tests <tests@example.invalid>\nSection: misc\nPriority: optional\nInstalled-Size: 1\nDescription: ot-redundancy test package\n", p.Name, p.Version, p.arch())
}

// Deb builds p into dir and returns the .deb's path.
func Deb(t testing.TB, dir string, p Pkg) string {
	t.Helper()
	mkdir(t, dir)
	root := filepath.Join(t.TempDir(), p.Name)
	mkdir(t, filepath.Join(root, "DEBIAN"))
	doc := filepath.Join(root, "usr", "share", "doc", p.Name)
	mkdir(t, doc)
	write(t, filepath.Join(root, "DEBIAN", "control"), p.control())
	write(t, filepath.Join(doc, "README"), "ot-redundancy test package "+p.Name+" "+p.Version+"\n")
	for path, content := range p.Files {
		if !filepath.IsAbs(path) {
			t.Fatalf("apttest: %s: file %q is not absolute", p.Name, path)
		}
		mkdir(t, filepath.Dir(filepath.Join(root, path)))
		write(t, filepath.Join(root, path), content)
	}
	deb := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", p.Name, p.Version, p.arch()))
	cmd(t, "", "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb)
	return deb
}

// Repo builds pkgs into dir (created, world-readable so apt's _apt user can
// read it) with a Packages index, and returns its sources.list line.
func Repo(t testing.TB, dir string, pkgs ...Pkg) string {
	t.Helper()
	mkdir(t, dir)
	for _, p := range pkgs {
		Deb(t, dir, p)
	}
	index := cmd(t, dir, "dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	write(t, filepath.Join(dir, "Packages"), index)
	return "deb [trusted=yes] file:" + dir + " ./\n"
}

// Private creates private lists and cache directories for apt under dir and
// returns the apt settings that use them (for aptsync.Options.Config): a
// test's apt-get update never touches the host's lists.
func Private(t testing.TB, dir string) []string {
	t.Helper()
	lists := filepath.Join(dir, "lists")
	cache := filepath.Join(dir, "cache")
	mkdir(t, filepath.Join(lists, "partial"))
	mkdir(t, filepath.Join(cache, "archives", "partial"))
	return []string{"Dir::State::Lists=" + lists, "Dir::Cache=" + cache}
}

// Status returns a dpkg status file listing pkgs as installed.
func Status(pkgs ...Pkg) string {
	var b strings.Builder
	for i, p := range pkgs {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(strings.Replace(p.control(), "\nVersion:", "\nStatus: install ok installed\nVersion:", 1))
	}
	return b.String()
}

// Installed returns the host's installed version of name, or "".
func Installed(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", name).Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) == 2 && strings.HasPrefix(f[0], "ii") {
		return f[1]
	}
	return ""
}

// Manual returns the host's manual packages.
func Manual(t testing.TB) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	for _, n := range strings.Fields(cmd(t, "", "apt-mark", "showmanual")) {
		m[n] = true
	}
	return m
}

// PurgeAtCleanup makes sure none of names is installed on the host when the
// test ends; each must not be installed when it starts.
func PurgeAtCleanup(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if v := Installed(t, n); v != "" {
			t.Fatalf("apttest: %s %s is already installed on this host; purge it first", n, v)
		}
	}
	t.Cleanup(func() {
		var present []string
		for _, n := range names {
			// Anything but "not installed" (config files left count).
			if out, _ := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", n).Output(); len(out) >= 2 && out[1] != 'n' {
				present = append(present, n)
			}
		}
		if len(present) == 0 {
			return
		}
		if out, err := dpkg(append([]string{"--purge", "--"}, present...)...); err != nil {
			t.Errorf("apttest: purge %v: %v\n%s", present, err, out)
		}
	})
}

// Install installs p on the host with dpkg -i, and purges it when the test
// ends (it must not be installed when it starts).
func Install(t testing.TB, p Pkg) {
	t.Helper()
	PurgeAtCleanup(t, p.Name)
	deb := Deb(t, t.TempDir(), p)
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("apttest: dpkg -i %s: %v\n%s", deb, err, out)
	}
}

// dpkg runs dpkg with args, waiting while other tests hold its lock.
func dpkg(args ...string) ([]byte, error) {
	for range 60 {
		c := exec.Command("dpkg", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			return out, err
		}
		sleep()
	}
	return nil, fmt.Errorf("dpkg %s: the dpkg lock stayed busy", strings.Join(args, " "))
}

// State is the host's dpkg state: "name:arch" -> "status version" of every
// package but other tests' lab packages (all named "ot..."), which may
// come and go meanwhile; packages named prefix... are kept.
func State(t testing.TB, prefix string) map[string]string {
	t.Helper()
	m := map[string]string{}
	out := cmd(t, "", "dpkg-query", "-W", "-f", "${Package}:${Architecture} ${db:Status-Abbrev} ${Version}\n")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		key, val, _ := strings.Cut(line, " ")
		if strings.HasPrefix(key, "ot") && !strings.HasPrefix(key, prefix) {
			continue
		}
		m[key] = val
	}
	return m
}

func mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir is 0700: apt's _apt user and production's odoo must read it.
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o005 == 0o005 {
			continue
		}
		if strings.HasPrefix(d, os.TempDir()) && d != filepath.Clean(os.TempDir()) {
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cmd(t testing.TB, dir string, argv ...string) string {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = dir
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("apttest: %s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out)
}

func sleep() { time.Sleep(time.Second) }

// HookFreeEnv returns "APT_CONFIG=FILE" for the environment of a test's
// apt-get: FILE clears the host's update and dpkg hooks (appstream,
// packagekit, ...), which would otherwise refresh the host's own caches
// from a test's private lists.
func HookFreeEnv(t testing.TB, dir string) string {
	t.Helper()
	mkdir(t, dir)
	conf := filepath.Join(dir, "apt-hook-free.conf")
	write(t, conf, "#clear APT::Update::Post-Invoke;\n#clear APT::Update::Post-Invoke-Success;\n#clear DPkg::Post-Invoke;\n")
	return "APT_CONFIG=" + conf
}

// ProductionBinds makes a production dpkg and apt state in dir — status
// holding pkgs, extended_states marking auto as automatically installed —
// and returns the testlab binds that show it to production. Whole
// directories are bound, not files: the host's dpkg replaces its status file
// by rename, and a rename over a file mounted in another namespace detaches
// that mount, so production would suddenly see the host's packages.
func ProductionBinds(t testing.TB, dir string, pkgs []Pkg, auto []string) map[string]string {
	dpkg, lib, cache := filepath.Join(dir, "prod-dpkg"), filepath.Join(dir, "prod-apt-lib"), filepath.Join(dir, "prod-apt-cache")
	mkdir(t, filepath.Join(dpkg, "updates"))
	mkdir(t, lib)
	mkdir(t, cache) // not the host's package cache
	write(t, filepath.Join(dpkg, "status"), Status(pkgs...))
	if arch, err := os.ReadFile("/var/lib/dpkg/arch"); err == nil {
		write(t, filepath.Join(dpkg, "arch"), string(arch))
	}
	var ext strings.Builder
	for _, n := range auto {
		ext.WriteString("Package: " + n + "\nArchitecture: all\nAuto-Installed: 1\n\n")
	}
	write(t, filepath.Join(lib, "extended_states"), ext.String())
	return map[string]string{"/var/lib/dpkg": dpkg, "/var/lib/apt": lib, "/var/cache/apt": cache}
}

// Key is an OpenPGP signing key made for one test, in its own GnuPG home.
type Key struct {
	Home        string // GnuPG home (the secret key)
	Fingerprint string
}

// NewKey makes an ed25519 signing key in dir/gnupg; its gpg-agent is
// stopped when the test ends.
func NewKey(t testing.TB, dir string) Key {
	t.Helper()
	home := filepath.Join(dir, "gnupg")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	cmd(t, "", "gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key", "ot-redundancy test repository <tests@example.invalid>", "ed25519", "sign", "never")
	for _, l := range strings.Split(cmd(t, "", "gpg", "--batch", "--homedir", home, "--with-colons", "--list-keys"), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			return Key{Home: home, Fingerprint: f[9]}
		}
	}
	t.Fatalf("apttest: no fingerprint for the key in %s", home)
	return Key{}
}

// Export writes the public key to path (binary, or armored when path ends
// in .asc), world-readable as apt's _apt user needs.
func (k Key) Export(t testing.TB, path string) {
	t.Helper()
	args := []string{"gpg", "--batch", "--homedir", k.Home, "--export"}
	if strings.HasSuffix(path, ".asc") {
		args = append(args, "--armor")
	}
	mkdir(t, filepath.Dir(path))
	write(t, path, cmd(t, "", append(args, k.Fingerprint)...))
}

// SignedRepo is Repo with an InRelease file signed by k: apt verifies it
// against the keyring named in the returned sources.list line.
func SignedRepo(t testing.TB, dir string, k Key, keyring string, pkgs ...Pkg) string {
	t.Helper()
	Repo(t, dir, pkgs...)
	index, err := os.ReadFile(filepath.Join(dir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	release := fmt.Sprintf("Origin: ot-redundancy tests\nLabel: ot-redundancy tests\nDate: %s\nSHA256:\n %x %d Packages\n",
		time.Now().UTC().Format(time.RFC1123Z), sha256.Sum256(index), len(index))
	write(t, filepath.Join(dir, "Release"), release)
	cmd(t, dir, "gpg", "--batch", "--homedir", k.Home, "--yes", "--local-user", k.Fingerprint, "--clearsign", "-o", "InRelease", "Release")
	return "deb [signed-by=" + keyring + "] file:" + dir + " ./\n"
}
