package filestore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ot-redundancy/ot-redundancy/internal/core/summary"
	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// trashDir is the lab's FILESTORE_TRASH (the default: beside FILESTORE).
func (l *lab) trashDir() string { return l.standby + ".trash" }

// trashFolders lists the trash's folders.
func (l *lab) trashFolders(t testing.TB) []TrashFolder {
	t.Helper()
	f, err := Folders(l.trashDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (l *lab) syncState(t testing.TB) State {
	t.Helper()
	st, err := ReadState(filepath.Join(l.state, "lib"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// nextSecond waits until the clock's second changes: each run's trash
// folder is named by its start, to the second.
func nextSecond() {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
}

// Ransomware rewrites production's files in place, same names, other
// content: the standby keeps every original byte for byte, the run says
// how many, the state file too; production's copies are kept aside. A bit
// flip in one file is caught the same way; a clean production clears it.
func TestRansomware(t *testing.T) {
	l := newLab(t, nil)
	names := fill(t, l.prod, "db1", 0, 40, 2000)
	if r := l.run(t); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("first sync: %+v", r)
	}
	if st := l.syncState(t); st.Mismatches != 0 {
		t.Fatalf("clean production: state %+v", st)
	}
	orig := files(snapshot(t, l.standby))
	// Encrypted in place, and a new attachment that is already bad.
	for i, n := range names {
		if err := os.WriteFile(filepath.Join(l.prod, n), content(fmt.Sprintf("encrypted %d", i), 2100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad := casName("db1", []byte("what the name says"))
	prodlab.WriteFile(t, filepath.Join(l.prod, bad), "something else")
	good := fill(t, l.prod, "db1", 100, 1, 500)[0] // and a good new one

	for run := range 2 { // the next hourly run finds the same, and keeps the originals again
		nextSecond()
		r := l.run(t, "--cron")
		want := "production has 41 attachments whose content does not match their name ("
		if r.code != 0 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Fatalf("run %d: %+v; want exit 0 and one line %q", run, r, want)
		}
		after := files(snapshot(t, l.standby))
		for k, v := range orig {
			if after[k] != v {
				t.Errorf("run %d: %s changed on the standby: %q -> %q", run, k, v, after[k])
			}
		}
		if prodlab.Exists(filepath.Join(l.standby, bad)) || !prodlab.Exists(filepath.Join(l.standby, good)) {
			t.Errorf("run %d: the bad new file was kept, or the good one not", run)
		}
		if len(after) != len(orig)+1 {
			t.Errorf("run %d: the standby holds %d files, want %d", run, len(after), len(orig)+1)
		}
		if st := l.syncState(t); st.Mismatches != 41 || len(st.First) != firstNames {
			t.Errorf("run %d: state %+v, want 41 mismatches", run, st)
		}
		// Production's copies are in the run's rejected folder, whole.
		folders := l.trashFolders(t)
		last := folders[len(folders)-1]
		if !last.Rejected {
			t.Fatalf("run %d: no rejected folder: %+v", run, folders)
		}
		for _, n := range append(names, bad) {
			want, _ := os.ReadFile(filepath.Join(l.prod, n))
			got, err := os.ReadFile(filepath.Join(l.trashDir(), last.Name, n))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("run %d: production's copy of %s not kept aside: %v", run, n, err)
			}
		}
		// The standby's originals are back in place, not in the trash.
		if n, _ := countFiles(filepath.Join(l.trashDir(), strings.TrimSuffix(last.Name, rejectedSuffix))); n != 0 {
			t.Errorf("run %d: %d of the standby's files left in the trash", run, n)
		}
	}
	recs, err := summary.Records(filepath.Join(l.state, "runs.log"))
	if err != nil || len(recs) == 0 || !strings.Contains(recs[len(recs)-1].Warning, "41 attachments whose content does not match") {
		t.Errorf("run log: %+v %v", recs, err)
	}

	// Production cleaned up (restored from its backup): the state clears.
	for _, n := range names {
		os.Remove(filepath.Join(l.prod, n))
	}
	fill(t, l.prod, "db1", 0, 40, 2000)
	os.Remove(filepath.Join(l.prod, bad))
	if r := l.run(t); r.code != 0 || r.stderr != "" {
		t.Fatalf("clean again: %+v", r)
	}
	if st := l.syncState(t); st.Mismatches != 0 || len(st.First) != 0 {
		t.Errorf("clean production: state %+v", st)
	}

	// One bit flipped in one file, same size.
	orig = files(snapshot(t, l.standby))
	nextSecond()
	p := filepath.Join(l.prod, names[7])
	data, _ := os.ReadFile(p)
	data[100] ^= 0x04
	os.WriteFile(p, data, 0o644)
	r := l.run(t)
	if r.code != 0 || !strings.Contains(r.stderr, "production has 1 attachments whose content does not match their name ("+names[7]+")") {
		t.Errorf("bit flip: %+v", r)
	}
	sameTree(t, "bit flip", orig, files(snapshot(t, l.standby)))
	if st := l.syncState(t); st.Mismatches != 1 || len(st.First) != 1 || st.First[0] != names[7] {
		t.Errorf("bit flip: state %+v", st)
	}
}

// Standby files that production replaced by an empty directory or by a
// symlink count as deletions (MAX_DELETE_PERCENT), go to the trash, and can
// be restored.
func TestReplacedByOtherType(t *testing.T) {
	l := newLab(t, map[string]string{"MAX_DELETE_PERCENT": "3"})
	names := fill(t, l.prod, "db1", 0, 100, 100)
	if r := l.run(t); r.code != 0 {
		t.Fatalf("first sync: %+v", r)
	}
	orig := snapshot(t, l.standby)
	for _, n := range names[:2] {
		os.Remove(filepath.Join(l.prod, n))
		os.Mkdir(filepath.Join(l.prod, n), 0o755)
	}
	for _, n := range names[2:4] {
		os.Remove(filepath.Join(l.prod, n))
		os.Symlink(filepath.Base(names[50]), filepath.Join(l.prod, n)) // a safe link
	}
	nextSecond()
	r := l.run(t)
	if want := "refused to delete 4 of the standby's 100 files"; r.code != 8 || !strings.Contains(r.stderr, want) ||
		!strings.Contains(r.stderr, "0 new or changed files were copied, 4 replaced on production by another type were moved to the trash") {
		t.Fatalf("exit %d, stderr %q; want 8, %q and what was done", r.code, r.stderr, want)
	}
	folders := l.trashFolders(t)
	if len(folders) != 1 {
		t.Fatalf("trash folders %+v", folders)
	}
	stamp := folders[0].Name
	for _, n := range names[:4] {
		sum, _ := ContentName(n)
		if ok, err := Matches(filepath.Join(l.trashDir(), stamp, n), sum); !ok {
			t.Errorf("%s not in the trash: %v", n, err)
		}
	}
	if r := l.run(t, "--force"); r.code != 0 {
		t.Fatalf("--force: %+v", r)
	}
	// Production drops the directories and links: the next sync removes
	// them from the standby (the links into the trash), and the restore
	// brings the files back byte for byte.
	for _, n := range names[:4] {
		os.Remove(filepath.Join(l.prod, n))
	}
	nextSecond()
	if r := l.run(t, "--force"); r.code != 0 {
		t.Fatalf("after production dropped them: %+v", r)
	}
	if r := l.run(t, "--restore", stamp); r.code != 0 || !strings.Contains(r.stdout, "restored 4 files from "+filepath.Join(l.trashDir(), stamp)) {
		t.Fatalf("restore: %+v", r)
	}
	now := snapshot(t, l.standby)
	for _, n := range names[:4] {
		if files(now)["/"+n] != files(orig)["/"+n] {
			t.Errorf("%s not restored: %q, want %q", n, now["/"+n], orig["/"+n])
		}
	}
}

// A forced mass deletion goes through the trash; a dry-run restore
// changes nothing; the restore puts every file back byte for byte, drops
// what is already there identically and leaves (naming it) what differs.
func TestForcedDeletionRestore(t *testing.T) {
	l := newLab(t, nil)
	fill(t, l.prod, "db1", 0, 10, 100)
	extra := fill(t, l.standby, "db1", 10, 90, 300)
	fill(t, l.standby, "db1", 0, 10, 100)
	// The same files, also by their times: written across a second's
	// boundary, rsync would replace them (and trash the standby's copies).
	for rel := range files(snapshot(t, l.prod)) {
		fi, err := os.Stat(filepath.Join(l.prod, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(l.standby, rel), fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(l.standby, "db1", "checklist", "other"), 42, 0o600)
	orig := files(snapshot(t, l.standby))
	if r := l.run(t, "--force"); r.code != 0 {
		t.Fatalf("--force: %+v", r)
	}
	if n := len(files(snapshot(t, l.standby))); n != 10 {
		t.Fatalf("after --force the standby holds %d files, want 10", n)
	}
	folders := l.trashFolders(t)
	if len(folders) != 1 {
		t.Fatalf("trash: %+v", folders)
	}
	stamp := folders[0].Name
	if r := l.run(t, "--list-trash"); r.code != 0 || !strings.Contains(r.stdout, "\n"+stamp+"         91  the standby's files (restorable with --restore "+stamp+")") {
		t.Errorf("--list-trash: %+v", r)
	}
	// One of them is back in FILESTORE identically, one with other content.
	same, differ := extra[0], extra[1]
	fill(t, l.standby, "db1", 10, 1, 300)
	writeFile(t, filepath.Join(l.standby, differ), 10, 0o644)

	beforeStandby, beforeTrash := snapshot(t, l.standby), snapshot(t, l.trashDir())
	r := l.run(t, "--restore", "latest", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would restore 89 files from "+filepath.Join(l.trashDir(), stamp)+", drop 1 already in place, leave 1 that differ") ||
		!strings.Contains(r.stdout, "left in the trash, "+l.standby+" holds a different file: "+differ) ||
		!strings.Contains(r.stdout, "mv -n -- "+filepath.Join(l.trashDir(), stamp, extra[5])+" "+filepath.Join(l.standby, extra[5])) {
		t.Fatalf("dry run: %+v", r)
	}
	sameTree(t, "dry-run restore (standby)", beforeStandby, snapshot(t, l.standby))
	sameTree(t, "dry-run restore (trash)", beforeTrash, snapshot(t, l.trashDir()))

	r = l.run(t, "--restore", stamp)
	if r.code != 0 || !strings.Contains(r.stdout, "restored 89 files") || !strings.Contains(r.stdout, "the next sync moves to the trash again") {
		t.Fatalf("restore: %+v", r)
	}
	now := files(snapshot(t, l.standby))
	for k, v := range orig {
		if k == "/"+differ {
			continue
		}
		if now[k] != v {
			t.Errorf("%s not restored byte for byte: %q, want %q", k, now[k], v)
		}
	}
	if prodlab.Exists(filepath.Join(l.trashDir(), stamp, same)) || !prodlab.Exists(filepath.Join(l.trashDir(), stamp, differ)) {
		t.Errorf("the identical file stayed in the trash, or the differing one left it")
	}
	if n, _ := countFiles(filepath.Join(l.trashDir(), stamp)); n != 1 {
		t.Errorf("%d files left in the trash folder, want 1", n)
	}
	if r := l.run(t, "--restore", "2001-01-01T00-00-00Z"); r.code != 2 || !strings.Contains(r.stderr, "no trash folder") {
		t.Errorf("unknown stamp: %+v", r)
	}
}

// The sync prunes the trash's folders older than TRASH_DAYS, by their
// names, rejected copies too; other names are left alone.
func TestTrashPruning(t *testing.T) {
	l := newLab(t, map[string]string{"TRASH_DAYS": "30"})
	fill(t, l.prod, "db1", 0, 10, 100)
	now := time.Now().UTC()
	old := now.Add(-31 * 24 * time.Hour).Format(StampFormat)
	recent := now.Add(-29 * 24 * time.Hour).Format(StampFormat)
	for _, d := range []string{old, old + rejectedSuffix, recent, recent + rejectedSuffix, "notes"} {
		prodlab.WriteFile(t, filepath.Join(l.trashDir(), d, "db1", "ab", "f"), "x")
	}
	if r := l.run(t); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	for d, want := range map[string]bool{old: false, old + rejectedSuffix: false, recent: true, recent + rejectedSuffix: true, "notes": true} {
		if got := prodlab.Exists(filepath.Join(l.trashDir(), d)); got != want {
			t.Errorf("%s exists: %v, want %v", d, got, want)
		}
	}
}

// A trash on another file system would turn every move into a copy: the
// run refuses in one line and changes nothing.
func TestTrashOnOtherFileSystem(t *testing.T) {
	other := t.TempDir()
	if out, err := sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", other); err != nil {
		prodlab.Missing(t, "cannot mount a tmpfs: "+out)
	}
	t.Cleanup(func() { sh("umount", other) })
	trash := filepath.Join(other, "trash")
	l := newLab(t, map[string]string{"FILESTORE_TRASH": trash})
	fill(t, l.prod, "db1", 0, 10, 100)
	fill(t, l.standby, "db1", 5, 10, 100)
	before := snapshot(t, l.standby)
	r := l.run(t)
	want := Name + ": error: the filestore's trash " + trash + " cannot be used, nothing was changed: " + trash + " is not on the file system of " + l.standby
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "set FILESTORE_TRASH") {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
	sameTree(t, "refused trash", before, snapshot(t, l.standby))
	if n, _ := countFiles(trash); n != 0 {
		t.Errorf("%d files in the refused trash", n)
	}
}

func sh(argv ...string) (string, error) {
	out, err := osexec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// Files vanishing on production mid-transfer (rsync exit 24): success,
// one warning line on a terminal and in the run log; silence under --cron.
func TestVanished(t *testing.T) {
	l := newLab(t, map[string]string{"RSYNC_BWLIMIT": "1000"})
	vanish := func(run func() (int, string, string)) (int, string, string) {
		t.Helper()
		for i := range 4 {
			p := filepath.Join(l.prod, "db1", "big", fmt.Sprintf("f%d", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, content(fmt.Sprintf("big %d %d", i, time.Now().UnixNano()), 1<<20), 0o644)
		}
		done := make(chan struct{})
		var code int
		var stdout, stderr string
		go func() { code, stdout, stderr = run(); close(done) }()
		first := filepath.Join(l.standby, "db1", "big", "f0")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if fi, err := os.Stat(first); err == nil && fi.Size() == 1<<20 {
				data, _ := os.ReadFile(first)
				want, _ := os.ReadFile(filepath.Join(l.prod, "db1", "big", "f0"))
				if bytes.Equal(data, want) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the first file did not arrive")
			}
		}
		os.Remove(filepath.Join(l.prod, "db1", "big", "f3"))
		<-done
		return code, stdout, stderr
	}
	lastRecord := func() summary.Record {
		recs, err := summary.Records(filepath.Join(l.state, "runs.log"))
		if err != nil || len(recs) == 0 {
			t.Fatalf("run log: %v", err)
		}
		return recs[len(recs)-1]
	}
	const want = "some files vanished on production during the copy (rsync exit 24)"

	code, stdout, stderr := vanish(func() (int, string, string) {
		r := l.run(t, "--cron")
		return r.code, r.stdout, r.stderr
	})
	if code != 0 || stdout+stderr != "" {
		t.Errorf("--cron: exit %d, stdout %q, stderr %q; want 0 and silence", code, stdout, stderr)
	}
	if rec := lastRecord(); rec.Status != "ok" || !strings.Contains(rec.Warning, want) {
		t.Errorf("--cron: run log %+v", rec)
	}

	code, out, _ := vanish(func() (int, string, string) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Error(err)
			return -1, "", ""
		}
		defer ptmx.Close()
		cmd := l.command()
		cmd.Stdout, cmd.Stderr = tty, tty
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return -1, "", ""
		}
		tty.Close()
		b, _ := io.ReadAll(ptmx)
		cmd.Wait()
		return cmd.ProcessState.ExitCode(), string(b), ""
	})
	if code != 0 || strings.Count(out, want) != 1 || strings.Count(out, "warning:") != 1 {
		t.Errorf("terminal: exit %d, output %q; want 0 and one warning line %q", code, out, want)
	}
	if rec := lastRecord(); rec.Status != "ok" || !strings.Contains(rec.Warning, want) {
		t.Errorf("terminal: run log %+v", rec)
	}
}
