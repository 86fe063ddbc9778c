package confsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/aptlab"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// The fingerprint read here is gpg's own, from a binary and an armored
// keyring alike.
func TestKeyringKeys(t *testing.T) {
	prodlab.Require(t, "gpg", "gpgconf")
	dir := t.TempDir()
	k := aptlab.NewKey(t, dir)
	for _, name := range []string{"k.gpg", "k.asc"} {
		p := filepath.Join(dir, name)
		k.Export(t, p)
		keys, err := keyringKeys([]byte(prodlab.ReadFile(t, p)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(keys) != 1 || keys[0].fingerprint != k.Fingerprint || keys[0].uid != "ot-redundancy test repository <tests@example.invalid>" {
			t.Errorf("%s: got %+v, want %s", name, keys, k.Fingerprint)
		}
	}
	for _, bad := range []string{"", "hello", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n", "\x99\x00\x05\x04"} {
		if _, err := keyringKeys([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A keyring is trusted only where nobody but root can change it.
func TestCheckRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		prodlab.Missing(t, "needs root (files owned by root and by others)")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "keyrings", "good.gpg")
	prodlab.WriteFile(t, good, "key")
	if err := checkRootOnly(good); err != nil {
		t.Errorf("root's 0644 file in root's 0755 directories: %v", err)
	}
	link := filepath.Join(dir, "keyrings", "link.gpg")
	os.Symlink(good, link)
	if err := checkRootOnly(link); err != nil {
		t.Errorf("link to a good file: %v", err)
	}
	writable := filepath.Join(dir, "keyrings", "writable.gpg")
	prodlab.WriteFileMode(t, writable, "key", 0o666)
	open := prodlab.Mkdir(t, filepath.Join(dir, "open"))
	os.Chmod(open, 0o777)
	inOpen := filepath.Join(open, "k.gpg")
	prodlab.WriteFile(t, inOpen, "key")
	owned := filepath.Join(dir, "keyrings", "daemon.gpg")
	prodlab.WriteFile(t, owned, "key")
	os.Chown(owned, 1, 1)
	badLink := filepath.Join(dir, "keyrings", "bad-link.gpg")
	os.Symlink(inOpen, badLink)
	for p, want := range map[string]string{
		writable:                       "is writable by group or others",
		inOpen:                         open + " is writable by group or others",
		owned:                          "belongs to uid 1",
		badLink:                        "writable by group or others",
		filepath.Join(dir, "none"):     "no such file",
		filepath.Join(dir, "keyrings"): "not a regular file",
	} {
		if err := checkRootOnly(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", p, err, want)
		}
	}
}
