package prodlab

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bitfield/script"
)

// Mkdir creates dir and its parents (0755) and returns it.
func Mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// WriteFile writes content to path (0644), creating its directory.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	WriteFileMode(t, path, content, 0o644)
}

// WriteFileMode writes content to path with permissions mode (whatever
// the umask), creating its directory.
func WriteFileMode(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	Mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// ReadFile returns path's content.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Exists tells whether path names anything, a dangling symlink included.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Logins counts the ssh logins production's sshd accepted so far, from its
// log: how many connections a run opened.
func (p *Prod) Logins(t testing.TB) int {
	t.Helper()
	n, err := script.File(filepath.Join(p.Dir, "sshd.log")).Match("Accepted publickey for " + p.User).CountLines()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
