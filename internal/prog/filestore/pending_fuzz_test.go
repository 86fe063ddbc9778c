package filestore

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

// FuzzDeletionNames has this machine's rsync name a standby-only file,
// under pad to pad+15 bytes of standby-only directories (up to 4.4 KB,
// past PATH_MAX), in the C or the UTF-8 locale, and checks the reading of
// its deletion list: either the list is used (consistent with rsync's
// count) and names exactly the entries rsync would delete, or it is in
// doubt and the sync falls back to rsync's own deletion pass. A list that
// is used and names anything else would move the wrong files.
//
// go test -run '^$' -fuzz FuzzDeletionNames -fuzztime 2m ./internal/prog/filestore
func FuzzDeletionNames(f *testing.F) {
	if _, err := exec.LookPath("rsync"); err != nil {
		prodlab.Missing(f, "rsync is not installed")
	}
	long := func(s string, n int) []byte { return bytes.Repeat([]byte(s), n) }
	pads := []uint16{0, 1000, 2000, 4000, 3000}
	for i, name := range [][]byte{
		[]byte(`a\#134b`), []byte(`a\b`), []byte(`a\#101`), []byte(`\#`), []byte(`\#1`), []byte(`\#12`),
		[]byte(`\#123`), []byte(`\#777`), []byte(`\#400`), []byte(`\#089`), []byte(`\#134#134`), []byte(`x\`),
		[]byte(`#`), []byte(`\\#012`), []byte("\xff\xfe"), []byte("é"), []byte("nl\nx"), []byte("cr\rx"),
		[]byte("tab\tx"), []byte("x) mode=100644 flags=2"), []byte("delete_item(y) mode=1 flags=2"),
		long("a", 255), long("\n", 255), long("é", 127), long("\xe9", 255),
	} {
		f.Add(name, pads[i%len(pads)], i%2 == 1)
	}
	f.Fuzz(func(t *testing.T, name []byte, pad uint16, cLocale bool) {
		if len(name) == 0 || len(name) > 255 || bytes.ContainsAny(name, "/\x00") || string(name) == "." || string(name) == ".." {
			return // no file system takes that name
		}
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		prodlab.WriteFile(t, filepath.Join(src, "keep"), "x")
		prodlab.Mkdir(t, dst)
		// Created through a root, component by component: a path may be
		// longer than PATH_MAX.
		r, err := os.OpenRoot(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		// One rsync run (a tenth of a second, mostly its own waits) names
		// the file at window places in a row, in trees of their own.
		var want []string
		for k := range window {
			prefix := padding(int(pad)%4400+k, byte('A'+k))
			if prefix == "" && string(name) == "keep" {
				continue // production's file
			}
			for i := 0; i < len(prefix); i++ {
				if prefix[i] == '/' && !slices.Contains(want, prefix[:i]) {
					if err := r.Mkdir(prefix[:i], 0o755); err != nil {
						break // refused by the file system
					}
					want = append(want, prefix[:i])
				}
			}
			if err := r.WriteFile(prefix+string(name), []byte("x"), 0o644); err == nil {
				want = append(want, prefix+string(name))
			}
		}

		lang := "C.UTF-8"
		if cLocale {
			lang = "C"
		}
		p := newPending(nil)
		cmd := exec.Command("rsync", append(append([]string{"-a"}, realPass()...), arrivalFormat(), src+"/", dst+"/")...)
		cmd.Env = append(os.Environ(), "LC_ALL="+lang)
		var out, stderr bytes.Buffer
		cmd.Stdout = &tee{p, &out}
		cmd.Stderr = &stderr
		err = cmd.Run()
		p.Close()
		if ee, ok := err.(*exec.ExitError); !ok || (ee.ExitCode() != 25 && ee.ExitCode() != 24) {
			return // the transfer failed (or deleted nothing): no deletion at all
		}
		held, ok := skipped(stderr.String())
		if !ok || !p.consistent(held) {
			return // in doubt: rsync deletes in its second pass
		}
		var got []string
		for _, e := range p.entries {
			got = append(got, e.rel)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			var lines []string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.Contains(l, "delete_item(") && strings.Contains(l, `\`) {
					lines = append(lines, short(l))
				}
			}
			t.Fatalf("LC_ALL=%s, name %q under %d to %d bytes of directories: the list is used but reads\n%s\nwhere rsync deletes\n%s\nrsync printed:\n%s",
				lang, name, int(pad)%4400, int(pad)%4400+window-1, shortAll(minus(got, want)), shortAll(minus(want, got)), strings.Join(lines, "\n"))
		}
	})
}

// short writes runs of one byte as "a{200}", to keep a failure readable.
func short(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if j-i > 8 {
			fmt.Fprintf(&b, "%c{%d}", s[i], j-i)
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

func shortAll(names []string) string {
	var q []string
	for _, n := range names {
		q = append(q, strconv.Quote(short(n)))
	}
	return strings.Join(q, " ")
}

// window is how many places one input names its file at.
const window = 16

// padding is n bytes of nested directory names ending in '/' (none for 0),
// the first named with tag.
func padding(n int, tag byte) string {
	if n == 1 {
		n = 2
	}
	var b strings.Builder
	for c := tag; n > 0; c = 'a' + (c+1)%26 {
		l := min(n-1, 200)
		if n-(l+1) == 1 {
			l-- // leave room for one more "x/"
		}
		b.Write(bytes.Repeat([]byte{c}, l))
		b.WriteByte('/')
		n -= l + 1
	}
	return b.String()
}

// minus is what a holds that b does not.
func minus(a, b []string) (d []string) {
	for _, s := range a {
		if !slices.Contains(b, s) {
			d = append(d, s)
		}
	}
	return d
}

// tee writes to a pending and keeps a copy.
type tee struct {
	p   *pending
	out *bytes.Buffer
}

func (w *tee) Write(b []byte) (int, error) {
	w.out.Write(b)
	return w.p.Write(b)
}

// TestPendingDoubtsEscapesPastFirstKilobyte: a "\#ddd" far enough into
// rsync's line may be a name's own (FuzzDeletionNames found it), so the
// line is not used; before that, and without one, names read as always.
func TestPendingDoubtsEscapesPastFirstKilobyte(t *testing.T) {
	dirs := strings.Repeat("d/", 500)
	p := newPending(nil)
	for _, name := range []string{dirs[:900] + `x\#012`, dirs + `x\#101`, dirs + `x\#134#101`, dirs + `x\#12a`} {
		p.Write([]byte("delete_item(" + name + ") mode=100644 flags=2\n"))
	}
	var got []string
	for _, e := range p.entries {
		got = append(got, e.rel)
	}
	if want := []string{dirs[:900] + "x\n", dirs + `x\#12a`}; !slices.Equal(got, want) || p.bad != 2 || p.consistent(2) {
		t.Errorf("entries %q, bad %d", got, p.bad)
	}
}
