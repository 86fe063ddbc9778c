package configure

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestFingerprintIsSshKeygens(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		prodlab.Missing(t, "no ssh-keygen")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	f := strings.Fields(string(pub))
	out, err := exec.Command("ssh-keygen", "-lf", key+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := (HostKey{Type: f[0], Blob: f[1]}).Fingerprint(), strings.Fields(string(out))[1]; got != want {
		t.Fatalf("fingerprint %s, ssh-keygen says %s", got, want)
	}
}

func TestTrustReplacesOnlyThatHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "known_hosts")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	old := "# kept\nother.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n[prod]:2222 ssh-rsa AAAAB3NzaC1yc2E=\nprod,10.0.0.5 ssh-ed25519 AAAA\n"
	os.WriteFile(path, []byte(old), 0o600)
	key := HostKey{Type: "ssh-ed25519", Blob: "AAAAC3NzaC1lZDI1NTE5AAAAIB=="}
	if err := Trust(path, KnownHostsName("prod", 2222), key); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "# kept\nother.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\nprod,10.0.0.5 ssh-ed25519 AAAA\n[prod]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB==\n"
	if string(data) != want {
		t.Fatalf("known_hosts:\n%s\nwant:\n%s", data, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	got, err := Trusted(path, "[prod]:2222")
	if err != nil || len(got) != 1 || got[0] != key {
		t.Fatalf("Trusted: %v %v", got, err)
	}
	// ssh-keyscan output for another name, or junk, is never taken.
	if keys := parseKnownHosts([]byte("# prod:22 SSH-2.0-OpenSSH\nevil ssh-ed25519 AAAA\nprod ssh-ed25519 !!notbase64\nprod bogus-type AAAA\n"), "prod"); len(keys) != 0 {
		t.Fatalf("parsed %v", keys)
	}
}
