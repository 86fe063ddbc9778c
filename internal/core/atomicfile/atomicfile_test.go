package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new content"), 0o640); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "new content" {
		t.Fatalf("content %q, %v", data, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary file left: %v", entries)
	}
}

func TestWriteFailsInMissingDirectory(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("no error for a missing directory")
	}
}

func TestWriteOwned(t *testing.T) {
	if os.Geteuid() != 0 {
		prodlab.Missing(t, "giving a file away needs root")
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteOwned(path, []byte("x"), 0o600, 1, 1); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1 || st.Gid != 1 {
		t.Errorf("owner %d:%d, want 1:1", st.Uid, st.Gid)
	}
}
