package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/testlab"
)

func TestNameSet(t *testing.T) {
	set := newNameSet()
	for i := range 20000 {
		set.add(fmt.Appendf(nil, "db/%02x/file%d", i%256, i))
	}
	set.add([]byte("db/00/file0")) // a duplicate
	set.finish()
	if len(set.h) != 20000 {
		t.Errorf("%d hashes, want 20000", len(set.h))
	}
	for i := range 20000 {
		if p := fmt.Sprintf("db/%02x/file%d", i%256, i); !set.has(set.hash(p)) {
			t.Fatalf("%s not found", p)
		}
		if p := fmt.Sprintf("db/%02x/other%d", i%256, i); set.has(set.hash(p)) {
			t.Fatalf("%s found", p) // 20,000 false positives at 2^-64 each: never
		}
	}
	// The extremes of the index.
	for _, h := range []uint64{0, 1<<48 - 1, 1 << 48, ^uint64(0)} {
		s := &nameSet{h: []uint64{h}}
		s.finish()
		if !s.has(h) || s.has(h^1) {
			t.Errorf("hash %#x: has %v, neighbour %v", h, s.has(h), s.has(h^1))
		}
	}
	empty := newNameSet()
	empty.finish()
	if empty.has(0) || empty.has(^uint64(0)) {
		t.Errorf("the empty set has something")
	}
}

// tree makes files (names ending in /, folders) under a new root.
func tree(t *testing.T, paths ...string) string {
	root := t.TempDir()
	for _, p := range paths {
		if p[len(p)-1] == '/' {
			testlab.Mkdir(t, filepath.Join(root, p))
		} else {
			testlab.WriteFile(t, filepath.Join(root, p), "x")
		}
	}
	return root
}

func TestCompareAndRemove(t *testing.T) {
	root := tree(t, "db1/aa/keep", "db1/aa/gone", "db1/bb/", "db2/cc/gone", "db2/cc/deeper/gone", "db3/")
	set := newNameSet()
	c, err := compare(root, set, func() error {
		for _, p := range []string{"db1", "db1/aa", "db1/aa/keep", "db1/bb", "db3"} {
			set.add([]byte(p))
		}
		set.finish()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.files != 4 || c.extraFiles != 3 || c.extraDirs != 3 || c.overflow {
		t.Errorf("compared %+v", c)
	}
	var names []string
	for _, e := range c.extras {
		names = append(names, e.rel)
	}
	want := []string{"db1/aa/gone", "db2", "db2/cc", "db2/cc/deeper", "db2/cc/deeper/gone", "db2/cc/gone"}
	if !slices.Equal(names, want) {
		t.Errorf("extras %q, want %q", names, want)
	}
	if err := removeEntries(root, c.extras); err != nil {
		t.Fatal(err)
	}
	left := snapshotNames(t, root)
	if want := []string{"db1", "db1/aa", "db1/aa/keep", "db1/bb", "db3"}; !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
}

// More entries to delete than kept: the rest are counted, and flagged.
func TestCompareOverflow(t *testing.T) {
	defer func(n int) { maxKept = n }(maxKept)
	maxKept = 2
	root := tree(t, "a", "b", "c", "d")
	set := newNameSet()
	c, err := compare(root, set, func() error { set.add([]byte("a")); set.finish(); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if c.extraFiles != 3 || len(c.extras) != 2 || !c.overflow {
		t.Errorf("compared %+v", c)
	}
}

// A failed listing ends the walk (however far ahead it read) and is
// returned as is.
func TestCompareListingFails(t *testing.T) {
	defer func(n int) { walkAhead = n }(walkAhead)
	walkAhead = 1
	root := tree(t, "a", "b", "c", "d/e", "d/f")
	boom := errors.New("listing failed")
	_, err := compare(root, newNameSet(), func() error { return boom })
	if err != boom {
		t.Errorf("err = %v, want the listing's", err)
	}
	// A walk that fails is reported too.
	if _, err := compare(filepath.Join(root, "missing"), newNameSet(), func() error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("walk of a missing root: %v", err)
	}
}

func snapshotNames(t *testing.T, root string) []string {
	var names []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != root {
			names = append(names, p[len(root)+1:])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// remove, the second walk used when too many names were to be kept,
// deletes the same entries.
func TestRemoveWalk(t *testing.T) {
	root := tree(t, "db1/aa/keep", "db1/aa/gone", "db2/cc/gone", "db2/cc/deeper/gone")
	set := newNameSet()
	for _, p := range []string{"db1", "db1/aa", "db1/aa/keep"} {
		set.add([]byte(p))
	}
	set.finish()
	w, err := remove(root, set)
	if err != nil {
		t.Fatal(err)
	}
	if w.files != 4 || w.extraFiles != 3 || w.extraDirs != 3 {
		t.Errorf("walk %+v", w)
	}
	if left, want := snapshotNames(t, root), []string{"db1", "db1/aa", "db1/aa/keep"}; !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
}
