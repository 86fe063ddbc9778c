package filestore

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// rsyncOut is what rsync 3.2-3.5 prints for the tree built in
// TestPendingFromRealRsync, split at awkward places as a pipe may deliver it.
const rsyncOut = "\r      1,234 100%  1.00MB/s  0:00:01 (xfr#1, to-chk=0/4)\rdelete_in_dir(.)\n" +
	"delete_in_dir(db)\n" +
	"delete_item(db/ee) mode=40755 flags=2\n" +
	"delete_item(db/bb) mode=40755 flags=2\n" +
	"delete_item(db/bb/cc/g2) mode=100644 flags=4\n" +
	"cannot delete non-empty directory: db/bb/cc\n" +
	"delete_item(db/bb/cc) mode=40755 flags=4\n" +
	"delete_item(db/bb/g1) mode=100644 flags=4\n" +
	"cannot delete non-empty directory: db/bb\n" +
	"delete_in_dir(db/aa)\n" +
	"delete_item(db/aa/we ird)\\#012 mode=1 \\#134#012) mode=100644 flags=2\n" +
	"\r    200,000   0%   21.19MB/s    0:00:00 (xfr#1, ir-chk=1006/1268)delete_item(db/aa/gone) mode=100644 flags=2\n" +
	"delete_item(db/xx) mode=100644 flags=8\n" +
	"\nNumber of files: 4 (reg: 1, dir: 3)\n"

func TestPendingReadsDeletionLines(t *testing.T) {
	var term bytes.Buffer
	p := newPending(&term)
	for b := []byte(rsyncOut); len(b) > 0; b = b[min(len(b), 7):] {
		p.Write(b[:min(len(b), 7)])
	}
	p.Close()
	var got []string
	for _, e := range p.entries {
		got = append(got, e.rel)
	}
	want := []string{"db/ee", "db/bb", "db/bb/cc/g2", "db/bb/cc", "db/bb/g1", "db/aa/we ird)\n mode=1 \\#012", "db/aa/gone"}
	if !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if p.files != 4 || p.dirs != 3 || p.bad != 0 || p.overflow {
		t.Errorf("files %d dirs %d bad %d overflow %v", p.files, p.dirs, p.bad, p.overflow)
	}
	// db/bb (named first, not empty) is the one entry rsync does not count.
	if !p.consistent(6) || p.consistent(7) || p.consistent(5) {
		t.Errorf("consistent: 6 %v, 7 %v, 5 %v", p.consistent(6), p.consistent(7), p.consistent(5))
	}
	// Progress lines end in \r; a message may follow one on the same line.
	if s := term.String(); !strings.Contains(s, "100%") || !strings.Contains(s, "(xfr#1, ir-chk=1006/1268)\n") || !strings.Contains(s, "Number of files: 4") || strings.Contains(s, "delete") {
		t.Errorf("terminal got %q", s)
	}
	if !strings.Contains(p.rest.String(), "Number of files: 4 (reg: 1, dir: 3)\n") {
		t.Errorf("statistics not kept: %q", p.rest.String())
	}
}

func TestPendingRefusesWhatItCannotRead(t *testing.T) {
	p := newPending(nil)
	for _, l := range []string{
		"delete_item(../etc/passwd) mode=100644 flags=2\n",
		"delete_item(/etc/passwd) mode=100644 flags=2\n",
		"delete_item(a//b) mode=100644 flags=2\n",
		"delete_item(a) mode=9 flags=2\n",
		"delete_item(a) flags=2\n",
	} {
		p.Write([]byte(l))
	}
	if p.bad != 5 || len(p.entries) != 0 || p.consistent(0) {
		t.Errorf("bad %d, entries %v", p.bad, p.entries)
	}
}

func TestPendingOverflow(t *testing.T) {
	defer func(n int) { maxKept = n }(maxKept)
	maxKept = 2
	p := newPending(nil)
	for range 3 {
		p.Write([]byte("delete_item(f) mode=100644 flags=2\n"))
	}
	if len(p.entries) != 2 || p.files != 3 || !p.overflow || p.consistent(3) {
		t.Errorf("entries %d files %d overflow %v", len(p.entries), p.files, p.overflow)
	}
}

func TestSkipped(t *testing.T) {
	n, ok := skipped("rsync: x\nDeletions stopped due to --max-delete limit (1,2 skipped)\nDeletions stopped due to --max-delete limit (12 skipped)\nrsync error: the --max-delete limit stopped deletions (code 25)\n")
	if n != 12 || !ok {
		t.Errorf("skipped = %d %v", n, ok)
	}
	if _, ok := skipped("rsync error: something else (code 23)\n"); ok {
		t.Errorf("skipped found a count where there is none")
	}
}

// TestPendingFromRealRsync runs this machine's rsync the way the sync does
// (locally, no ssh) and checks that its list is read whole, consistent
// with its count, and deleted exactly.
func TestPendingFromRealRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		prodlab.Missing(t, "rsync is not installed")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, f := range []string{"src/db/aa/f1", "dst/db/aa/gone", "dst/db/aa/we ird)\n mode=1 \\#012 é", "dst/db/bb/g1", "dst/db/bb/cc/g2", "dst/top"} {
		prodlab.WriteFile(t, filepath.Join(dir, f), "x")
	}
	for _, d := range []string{"dst/db/ee", "dst/db/bb/empty"} {
		prodlab.Mkdir(t, filepath.Join(dir, d))
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(src, "db/aa/f1"), filepath.Join(dst, "db/aa/f1")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	p := newPending(nil)
	cmd := exec.Command("rsync", append([]string{"-a"}, append(realPass(), src+"/", dst+"/")...)...)
	cmd.Stdout = p
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	p.Close()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 25 {
		t.Fatalf("rsync: %v\n%s", err, stderr.String())
	}
	held, ok := skipped(stderr.String())
	if !ok || !p.consistent(held) {
		t.Fatalf("held %d (%v), entries %+v", held, ok, p.entries)
	}
	if p.files != 5 || p.dirs != 4 {
		t.Errorf("files %d dirs %d: %+v", p.files, p.dirs, p.entries)
	}
	trash := NewTrash(filepath.Join(dir, "trash"), time.Now())
	if err := removeEntries(dst, trash, p.entries); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dst); !slices.Equal(got, []string{"db", "db/aa", "db/aa/f1"}) {
		t.Errorf("left %q", got)
	}
	// Every file went to the trash, none was unlinked.
	if got := tree(t, trash.Dir()); !slices.Equal(got, []string{"db", "db/aa", "db/aa/gone", "db/aa/we ird)\n mode=1 \\#012 é", "db/bb", "db/bb/cc", "db/bb/cc/g2", "db/bb/g1", "top"}) {
		t.Errorf("trash holds %q", got)
	}
}

func TestRemoveEntriesStaysInside(t *testing.T) {
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	prodlab.WriteFile(t, filepath.Join(outside, "precious"), "x")
	prodlab.WriteFile(t, filepath.Join(root, "gone"), "x")
	prodlab.WriteFile(t, filepath.Join(root, "now-a-dir", "new"), "x")
	os.Symlink(outside, filepath.Join(root, "link"))
	err := removeEntries(root, NewTrash(filepath.Join(dir, "trash"), time.Now()), []entry{
		{"gone", 0o100644},
		{"now-a-dir", 0o100644}, // production's directory took the file's place
		{"link/precious", 0o100644},
		{"missing", 0o100644},
	})
	if err == nil || !strings.Contains(err.Error(), "link/precious") {
		t.Errorf("a path through a symlink out of the tree: %v", err)
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"outside", "outside/precious", "root", "root/link", "root/now-a-dir", "root/now-a-dir/new", "trash", "trash/" + stampOf(t, dir), "trash/" + stampOf(t, dir) + "/gone"}) {
		t.Errorf("left %q", got)
	}
}

// stampOf is the one folder of dir's trash.
func stampOf(t *testing.T, dir string) string {
	t.Helper()
	f, err := Folders(filepath.Join(dir, "trash"))
	if err != nil || len(f) != 1 {
		t.Fatalf("trash folders %v %v", f, err)
	}
	return f[0].Name
}

func tree(t *testing.T, root string) (paths []string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p != root {
			paths = append(paths, p[len(root)+1:])
		}
		return nil
	})
	return paths
}

// FILESTORE moved to another disk and linked back is common: the deletion
// follows that link (as rsync does), and only that one.
func TestRemoveEntriesThroughLinkedRoot(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk2", "filestore")
	prodlab.WriteFile(t, filepath.Join(disk, "db1", "ab", "gone"), "x")
	prodlab.WriteFile(t, filepath.Join(disk, "db1", "ab", "kept"), "x")
	link := filepath.Join(dir, "filestore")
	if err := os.Symlink(disk, link); err != nil {
		t.Fatal(err)
	}
	if err := removeEntries(link, NewTrash(filepath.Join(dir, "disk2", "trash"), time.Now()), []entry{{"db1/ab/gone", 0o100644}}); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, disk); !slices.Equal(got, []string{"db1", "db1/ab", "db1/ab/kept"}) {
		t.Errorf("left %q", got)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link itself: %v %v", fi, err)
	}
}
