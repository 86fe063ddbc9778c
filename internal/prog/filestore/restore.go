package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Restoring from the trash: `ot-attachments-sync --restore STAMP` (or
// latest) puts the files of FILESTORE_TRASH/<STAMP>/ back into FILESTORE,
// each by rename, where nothing is at its place; a file FILESTORE already
// holds identically is dropped from the trash; one FILESTORE holds with
// other content stays in the trash and is named. It needs no production:
// it runs under the suite's lock, also with sync off, and --dry-run prints
// the plan. Production's rejected copies (<STAMP>.rejected) are never
// restored.
//
// A restored file that production still lacks is removed again (into the
// trash again) by the next sync: docs/filestore.md says what to do.

// restorePlan is what a restore will do.
type restorePlan struct {
	folder string   // the trash folder restored from
	put    []string // put back: nothing at their place in FILESTORE
	same   []string // FILESTORE holds them identically: dropped from the trash
	differ []string // FILESTORE holds other content there: left in the trash
}

// ListTrash prints the trash's folders with their file counts.
func ListTrash(env *cli.Env) error {
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	root := trashRoot(cfg.Get(config.FilestoreTrash), filepath.Clean(cfg.Get(config.Filestore)))
	folders, err := Folders(root)
	if err != nil {
		return cli.Fail(cli.ExitFailure, "cannot read the filestore's trash "+root+": "+err.Error(), "check FILESTORE_TRASH in "+cfg.Path)
	}
	if len(folders) == 0 {
		env.Printf("the filestore's trash %s is empty\n", root)
		return nil
	}
	env.Printf("%-22s %8s  %s\n", "STAMP", "FILES", "WHAT")
	for _, f := range folders {
		n, err := countFiles(filepath.Join(root, f.Name))
		if err != nil {
			return cli.Fail(cli.ExitFailure, "cannot read "+filepath.Join(root, f.Name)+": "+err.Error(), "check the trash's permissions")
		}
		what := "the standby's files (restorable with --restore " + f.Name + ")"
		if f.Rejected {
			what = "production's copies that did not match their name (never restored)"
		}
		env.Printf("%-22s %8d  %s\n", f.Name, n, what)
	}
	return nil
}

func countFiles(dir string) (n int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	return n, err
}

// Restore is --restore STAMP: plan, then run under the lock.
func Restore(env *cli.Env, stamp string) error {
	if err := env.RequireRoot(); err != nil {
		return err
	}
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	filestore := filepath.Clean(cfg.Get(config.Filestore))
	root := trashRoot(cfg.Get(config.FilestoreTrash), filestore)
	folder, err := trashFolder(root, stamp)
	if err != nil {
		return err
	}
	if !env.G.DryRun {
		l, err := lock.Acquire(env.Ctx, cfg.Get(config.LockFile), cfg.Duration(config.LockWait))
		if err != nil {
			return err
		}
		defer l.Release()
	}
	if fi, err := os.Stat(filestore); err != nil || !fi.IsDir() {
		return cli.Fail(cli.ExitFailure, "the standby's FILESTORE "+filestore+" is not a directory, nothing was restored", "fix FILESTORE in "+cfg.Path)
	}
	plan, err := planRestore(filestore, folder)
	if err != nil {
		return cli.Fail(cli.ExitFailure, "reading the trash folder "+folder+": "+err.Error()+", nothing was restored", "check the trash's permissions")
	}
	uid, gid := owner(cfg)
	mv := func(rel string) []string {
		return []string{"mv", "-n", "--", filepath.Join(folder, rel), filepath.Join(filestore, rel)}
	}
	var steps []run.Step
	var moved, dropped int
	var late []string // taken meanwhile: left in the trash
	if len(plan.put) > 0 {
		steps = append(steps, run.Step{
			What: fmt.Sprintf("put back %d files from the trash folder %s into %s (rename; nothing is at their place)", len(plan.put), folder, filestore),
			Show: shown(plan.put, mv),
			Do: func(context.Context) error {
				src, err := os.OpenRoot(folder)
				if err != nil {
					return err
				}
				defer src.Close()
				dst, err := os.OpenRoot(filestore)
				if err != nil {
					return err
				}
				defer dst.Close()
				for _, rel := range plan.put {
					if err := mkdirsOwned(dst, filepath.Dir(rel), uid, gid); err != nil {
						return cli.Fail(cli.ExitFailure, fmt.Sprintf("restoring %s: %v (%d files restored)", rel, err, moved), "fix the cause and run the restore again: it goes on where it stopped")
					}
					err := moveIn(src, dst, rel, 0o755)
					switch {
					case err == nil:
						moved++
					case errors.Is(err, fs.ErrExist):
						late = append(late, rel)
					default:
						return cli.Fail(cli.ExitFailure, fmt.Sprintf("restoring %s: %v (%d files restored)", rel, err, moved), "fix the cause and run the restore again: it goes on where it stopped")
					}
				}
				return nil
			},
		})
	}
	if len(plan.same) > 0 {
		steps = append(steps, run.Step{
			What: fmt.Sprintf("drop from the trash %d files that %s already holds identically", len(plan.same), filestore),
			Show: shown(plan.same, func(rel string) []string { return []string{"rm", "--", filepath.Join(folder, rel)} }),
			Do: func(context.Context) error {
				for _, rel := range plan.same {
					if err := os.Remove(filepath.Join(folder, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return cli.Fail(cli.ExitFailure, fmt.Sprintf("dropping %s from the trash: %v", rel, err), "fix the cause and run the restore again")
					}
					dropped++
				}
				return nil
			},
		})
	}
	steps = append(steps, run.Step{Do: func(context.Context) error { removeEmptyDirs(folder); return nil }})
	if err := env.Runner.Apply(env.Ctx, steps...); err != nil {
		return err
	}
	differ := append(plan.differ, late...)
	for _, rel := range differ {
		env.Printf("left in the trash, %s holds a different file: %s\n", filestore, cli.Printable(rel))
	}
	if env.G.DryRun {
		env.Printf("would restore %d files from %s, drop %d already in place, leave %d that differ\n", len(plan.put), folder, len(plan.same), len(differ))
		return nil
	}
	env.Printf("restored %d files from %s, dropped %d already in place, left %d that differ\n", moved, folder, dropped, len(differ))
	env.Printf("the next sync moves to the trash again every restored file production lacks: put them back on production first, or run ot-disable-sync\n")
	return nil
}

// shown is the dry run's list of commands, one per file.
func shown(rels []string, argv func(string) []string) []string {
	out := make([]string, len(rels))
	for i, rel := range rels {
		out[i] = shellquote.Join(argv(rel)...)
	}
	return out
}

// trashFolder finds the folder --restore names: a stamp, or "latest".
func trashFolder(root, stamp string) (string, error) {
	folders, err := Folders(root)
	if err != nil {
		return "", cli.Fail(cli.ExitFailure, "cannot read the filestore's trash "+root+": "+err.Error(), "check FILESTORE_TRASH")
	}
	var names []string
	for _, f := range folders {
		if f.Rejected {
			continue
		}
		names = append(names, f.Name)
		if f.Name == stamp || (stamp == "latest" && f.Name == folders[len(folders)-1].Name) {
			return filepath.Join(root, f.Name), nil
		}
	}
	if stamp == "latest" && len(names) > 0 {
		return filepath.Join(root, names[len(names)-1]), nil
	}
	if len(names) == 0 {
		return "", cli.Fail(cli.ExitUsage, "the filestore's trash "+root+" holds nothing to restore", "")
	}
	return "", cli.Fail(cli.ExitUsage, fmt.Sprintf("no trash folder %q in %s (it holds %s)", cli.Printable(stamp), root, strings.Join(names, ", ")), "run "+Name+" --list-trash")
}

// planRestore sorts the trash folder's files by what is at their place.
func planRestore(filestore, folder string) (restorePlan, error) {
	p := restorePlan{folder: folder}
	r, err := os.OpenRoot(filestore)
	if err != nil {
		return p, err
	}
	defer r.Close()
	err = filepath.WalkDir(folder, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(folder, path)
		if err != nil {
			return err
		}
		fi, err := r.Lstat(rel)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			p.put = append(p.put, rel)
		case err != nil:
			p.differ = append(p.differ, rel) // not reachable inside FILESTORE: left alone
		default:
			same, err := sameFile(r, rel, fi, path)
			if err != nil {
				return err
			}
			if same {
				p.same = append(p.same, rel)
			} else {
				p.differ = append(p.differ, rel)
			}
		}
		return nil
	})
	return p, err
}

// sameFile tells whether FILESTORE's rel (fi) holds what the trash's path
// holds: same type, and for files the same bytes, for links the same target.
func sameFile(r *os.Root, rel string, fi fs.FileInfo, path string) (bool, error) {
	tfi, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	switch {
	case tfi.Mode().Type() != fi.Mode().Type():
		return false, nil
	case tfi.Mode()&fs.ModeSymlink != 0:
		a, err1 := r.Readlink(rel)
		b, err2 := os.Readlink(path)
		return err1 == nil && err2 == nil && a == b, nil
	case !tfi.Mode().IsRegular() || tfi.Size() != fi.Size():
		return false, nil
	}
	f1, err := r.Open(rel)
	if err != nil {
		return false, nil
	}
	defer f1.Close()
	f2, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f2.Close()
	return sameContent(f1, f2)
}

func sameContent(a, b io.Reader) (bool, error) {
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF), nil
		}
	}
}

// owner is ODOO_USER:ODOO_GROUP's ids, for the folders a restore creates
// (-1: left as created).
func owner(cfg *config.Config) (uid, gid int) {
	uid, gid = -1, -1
	if u, err := user.Lookup(cfg.Get(config.OdooUser)); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
	}
	if g, err := user.LookupGroup(cfg.Get(config.OdooGroup)); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid
}

// mkdirsOwned creates dir's missing folders inside r, owned by uid:gid as
// the sync would have made them.
func mkdirsOwned(r *os.Root, dir string, uid, gid int) error {
	if dir == "." || dir == "" {
		return nil
	}
	if fi, err := r.Lstat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := mkdirsOwned(r, filepath.Dir(dir), uid, gid); err != nil {
		return err
	}
	if err := r.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return r.Lchown(dir, uid, gid)
}

// removeEmptyDirs removes dir's empty folders, dir too when it ends empty.
func removeEmptyDirs(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir) // fails unless empty
}
