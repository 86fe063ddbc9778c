package filestore

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// The transfer pass runs with --delete --max-delete=0 --debug=del2: rsync's
// own generator, comparing the standby against the file list it has just
// transferred, decides every deletion --delete would make, deletes none of
// them (the limit is 0), and names each on stdout:
//
//	delete_item(db1/ff/stale) mode=100644 flags=2
//
// That line (rsync's delete.c, unchanged since 3.1) is how this program
// learns what to delete without a second listing of production or a walk
// of the standby. Names are escaped as in all of rsync's messages (a
// control byte, a non-printable byte or a backslash that would start an
// escape becomes \#ooo), so every entry is one line; a name's own "\#ddd"
// past the first kilobyte of the line may be left as is (see unescape),
// and such a line is not used. At the end rsync reports how many deletions
// it skipped; the list is used only when it accounts for exactly that
// number (see consistent), otherwise rsync applies the deletions itself in
// a second pass.

// entry is one standby path rsync would delete, relative to FILESTORE.
type entry struct {
	rel  string
	mode uint32 // the st_mode rsync saw
}

func (e entry) dir() bool { return e.mode&syscall.S_IFMT == syscall.S_IFDIR }

// maxKept bounds how many entries are kept, so our memory stays bounded
// whatever the number of deletions (about 100 bytes each); beyond it rsync
// deletes (see Sync).
var maxKept = 1 << 16

// maxLine bounds a line of rsync's output kept while it is incomplete:
// longer than any path rsync can print.
const maxLine = 64 << 10

// Flags rsync prints on a delete_item line (rsync.h): the entry's own
// deletion has only these; the others mark a deletion that makes room for
// production's entry of another type, which rsync performs at once (it is
// not limited by --max-delete) and which is not pending.
const delOwnFlags = 1 | 2 | 4 // DEL_NO_UID_WRITE | DEL_RECURSE | DEL_DIR_IS_EMPTY

var (
	deleteLine  = regexp.MustCompile(`^delete_item\((.*)\) mode=([0-7]+) flags=([0-9]+)$`)
	skippedLine = regexp.MustCompile(`Deletions stopped due to --max-delete limit \(([0-9]+) skipped\)`)
)

// pending reads the transfer's stdout as it streams: the deletion lines
// become entries, rsync's other debug lines are dropped, and the rest
// (progress, statistics) goes to the terminal when there is one, its tail
// kept for the statistics.
type pending struct {
	term    io.Writer // a person's terminal, or nil
	rest    run.Tail  // the end of everything that is not a debug line
	partial []byte    // the current line, not yet ended

	entries     []entry // the first maxKept entries
	files, dirs int     // entries named, kept or not
	overflow    bool    // more than maxKept: entries is incomplete
	bad         int     // delete_item lines that did not read as one

	arrivals // what the transfer brought (arrivals.go)
}

func newPending(term io.Writer) *pending {
	return &pending{term: term, rest: run.Tail{Max: 16 << 10}}
}

// Write splits rsync's output at line ends; progress lines end in '\r'.
func (p *pending) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			p.partial = append(p.partial, b...)
			if len(p.partial) > maxLine {
				p.line(p.partial)
				p.partial = p.partial[:0]
			}
			break
		}
		p.partial = append(p.partial, b[:i+1]...)
		p.line(p.partial)
		p.partial = p.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

// Close passes on a last line without its end.
func (p *pending) Close() {
	if len(p.partial) > 0 {
		p.line(p.partial)
		p.partial = nil
	}
}

// rsync's messages about deletions: the list, its walk of the standby,
// and the consequence of the limit.
var (
	itemMark = []byte("delete_item(")
	delMarks = [][]byte{itemMark, []byte("delete_in_dir("), []byte("cannot delete non-empty directory: ")}
	marks    = append(delMarks, arrivalBytes) // and what arrived (arrivals.go)
)

func (p *pending) line(b []byte) {
	// A progress line has no end of its own: the next message may follow
	// it on the same line (the generator writes them, the receiver the
	// progress), so a message is found wherever it starts.
	at := -1
	for _, m := range marks {
		if i := bytes.Index(b, m); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	if at < 0 {
		p.other(b)
		return
	}
	p.other(b[:at])
	switch {
	case bytes.HasPrefix(b[at:], itemMark):
		p.add(strings.TrimSuffix(string(b[at:]), "\n"))
	case bytes.HasPrefix(b[at:], arrivalBytes):
		p.arrived(strings.TrimSuffix(string(b[at:]), "\n"))
	}
}

// other is output that is not about deletions: statistics and progress.
func (p *pending) other(b []byte) {
	if len(b) == 0 {
		return
	}
	p.rest.Write(b)
	if p.term != nil {
		p.term.Write(b)
	}
}

func (p *pending) add(line string) {
	m := deleteLine.FindStringSubmatch(line)
	if m == nil {
		p.bad++
		return
	}
	mode, err1 := strconv.ParseUint(m[2], 8, 32)
	flags, err2 := strconv.Atoi(m[3])
	rel, exact := unescape(m[1], len(itemMark))
	if err1 != nil || err2 != nil || !exact || !local(rel) {
		p.bad++
		return
	}
	if flags&^delOwnFlags != 0 {
		return // made room for production's entry: done already
	}
	e := entry{rel, uint32(mode)}
	if e.dir() {
		p.dirs++
	} else {
		p.files++
	}
	if len(p.entries) < maxKept {
		p.entries = append(p.entries, e)
	} else {
		p.overflow = true
	}
}

// unescape undoes rsync's escaping of names in messages: \#ooo is the byte
// with that octal value; at is where s starts in rsync's message. rsync
// escapes a name's own backslash when it starts "\#" and three digits, but
// it writes each message in pieces of about 1 KiB (log.c, rwrite: the check
// of the locale's character set, through a 1,024-byte buffer) and looks for
// the three digits in the same piece only: a name's "\#ddd" that straddles
// a piece's end is printed as is. A file named "x\#012" then reads as "x\n"
// (a file named "x\n" is printed "x\#012" anywhere). rsync 3.5 cuts every
// 1,023 bytes: a "\#ddd" starting at bytes 1,019 to 1,022 of a message
// comes out as is, then at 2,042 to 2,045, and so on. So the reading is
// exact only while every "\#ddd" starts before exactEscapes; beyond, exact
// is false and the caller does not act on the name.
func unescape(s string, at int) (name string, exact bool) {
	if !strings.Contains(s, `\#`) {
		return s, true
	}
	var b strings.Builder
	exact = true
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 < len(s) && s[i+1] == '#' && digit(s[i+2]) && digit(s[i+3]) && digit(s[i+4]) && at+i >= exactEscapes {
			exact = false
		}
		if s[i] == '\\' && i+4 < len(s) && s[i+1] == '#' && octal(s[i+2]) && octal(s[i+3]) && octal(s[i+4]) {
			b.WriteByte((s[i+2]-'0')<<6 | (s[i+3]-'0')<<3 | (s[i+4] - '0'))
			i += 4
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), exact
}

// exactEscapes is where in rsync's message a "\#ddd" may no longer be its
// escape: rsync's 1 KiB piece less the sequence's length, with room for a
// build that fills a little less of its buffer than rsync 3.5.
const exactEscapes = 1024 - 64

func digit(c byte) bool { return c >= '0' && c <= '9' }

func octal(c byte) bool { return c >= '0' && c <= '7' }

// local tells whether rel is a clean path inside the tree: rsync prints
// paths relative to FILESTORE, and anything else is not acted on.
func local(rel string) bool {
	return rel != "" && rel != "." && !strings.HasPrefix(rel, "/") && path.Clean(rel) == rel &&
		rel != ".." && !strings.HasPrefix(rel, "../")
}

// skipped reads rsync's count of the deletions --max-delete held back,
// from the end of its stderr; ok is false when the line is not there.
func skipped(stderr string) (n int, ok bool) {
	m := skippedLine.FindAllStringSubmatch(stderr, -1)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[len(m)-1][1])
	return n, err == nil
}

// consistent tells whether the entries are all rsync held back, exactly:
// rsync counts one skipped deletion per entry it names, except a directory
// that it names first, at the top of what is to go, and that is not empty
// (it names the contents, whose skipping leaves the directory non-empty,
// and does not count the directory itself).
func (p *pending) consistent(skipped int) bool {
	if p.overflow || p.bad > 0 {
		return false
	}
	hasChild := map[string]bool{}
	for _, e := range p.entries {
		if e.dir() {
			hasChild[e.rel] = false
		}
	}
	for _, e := range p.entries {
		if _, ok := hasChild[path.Dir(e.rel)]; ok {
			hasChild[path.Dir(e.rel)] = true
		}
	}
	uncounted := 0
	for d, full := range hasChild {
		if _, nested := hasChild[path.Dir(d)]; full && !nested {
			uncounted++
		}
	}
	return len(p.entries)-uncounted == skipped
}

// firstOf is errs as one error that names the first and counts the rest:
// a thousand failed unlinks make one readable line.
func firstOf(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
}
