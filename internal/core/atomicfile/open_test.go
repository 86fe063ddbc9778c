package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A symlink, a hard link or someone else's file at the path is refused and
// the file it points at is not touched.
func TestAppendRefusesPlantedFiles(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "bashrc")
	if err := os.WriteFile(victim, []byte("original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "symlink.log")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hardlink.log")
	if err := os.Link(victim, hard); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "dir.log")
	os.Mkdir(fifo, 0o755)
	for path, want := range map[string]string{link: "symbolic link", hard: "hard links", fifo: ""} {
		err := Append(path, []byte("x\n"), 0o644)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it refused (%s)", path, err, want)
		}
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs.log")
		os.WriteFile(theirs, nil, 0o666)
		os.Chown(theirs, 65534, 65534)
		if err := Append(theirs, []byte("x\n"), 0o644); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("a file of another user: %v", err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "original\n" {
		t.Fatalf("the victim changed: %q", b)
	}
	ok := filepath.Join(dir, "ok.log")
	if err := Append(ok, []byte("a\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Append(ok, []byte("b\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ok); string(b) != "a\nb\n" {
		t.Fatalf("appended %q", b)
	}
}

// Two reports within the same second: the second gets its own name, the
// first is untouched.
func TestCreateNewTakenName(t *testing.T) {
	dir := t.TempDir()
	first, err := CreateNew(dir, "report-1.txt", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := CreateNew(dir, "report-1.txt", []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if second != filepath.Join(dir, "report-1-2.txt") {
		t.Fatalf("second report written to %s, want report-1-2.txt", second)
	}
	for path, want := range map[string]string{first: "one", second: "two"} {
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("%s holds %q, want %q", path, got, want)
		}
	}
}
