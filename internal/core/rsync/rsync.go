// Package rsync holds what the syncs share about driving rsync: reading its
// itemized output ("%i %n", on stdout or in a --log-file) and turning its
// exit codes into messages people can act on.
//
// Argv is built by each sync, since each needs different options; the
// options every pull from production should carry are in Safe.
package rsync

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Safe are the options for pulling untrusted files: no device or special
// files, no symlink pointing outside the tree, no setuid/setgid bit, an I/O
// timeout so a frozen remote rsync is noticed (exit 30), and file names
// escaped on output so every item is one line.
func Safe(ioTimeoutSeconds int) []string {
	return []string{"--no-devices", "--no-specials", "--safe-links", "--chmod=ug-s",
		fmt.Sprintf("--timeout=%d", ioTimeoutSeconds)}
}

// ItemFormat is the --out-format (or --log-file-format) that ParseItem reads.
const ItemFormat = "%i %n"

// Item is one line of itemized output: rsync's 11-character change code
// and the name relative to the transfer's root ("dir/" for directories).
type Item struct {
	Code string
	Name string
}

// ParseItem reads a "%i %n" line; ok is false for anything else (messages,
// statistics). A --log-file line's "YYYY/MM/DD HH:MM:SS [pid] " prefix is
// skipped.
func ParseItem(line string) (it Item, ok bool) {
	line = StripLogPrefix(line)
	if len(line) < 13 || line[11] != ' ' {
		return Item{}, false
	}
	code := line[:11]
	if strings.HasPrefix(code, "*deleting") {
		return Item{Code: code, Name: line[12:]}, true
	}
	if !strings.ContainsRune(".<>ch", rune(code[0])) || !strings.ContainsRune("fdLDS", rune(code[1])) {
		return Item{}, false
	}
	return Item{Code: code, Name: line[12:]}, true
}

// StripLogPrefix removes the newline and the "YYYY/MM/DD HH:MM:SS [pid] "
// that --log-file puts before every line.
func StripLogPrefix(line string) string {
	line = strings.TrimSuffix(line, "\n")
	if len(line) > 21 && line[4] == '/' && line[10] == ' ' && line[20] == '[' {
		if _, rest, found := strings.Cut(line[20:], "] "); found {
			return rest
		}
	}
	return line
}

// FileCounts reads the statistics line (--stats or --info=stats2)
// "Number of files: 1,234 (reg: 1,000, dir: 230, link: 4)": how many
// regular files and directories the sender's file list held.
func FileCounts(line string) (reg, dir int, ok bool) {
	rest, found := strings.CutPrefix(StripLogPrefix(line), "Number of files: ")
	if !found {
		return 0, 0, false
	}
	return field(rest, "reg"), field(rest, "dir"), true
}

// Stats are rsync's counts from --stats or --info=stats2.
type Stats struct {
	Counted        bool // the "Number of files" line was found
	Regs           int  // regular files in the sender's list
	NonDirs        int  // entries of any kind but directories in the sender's list
	CreatedNonDirs int  // of those, the ones the receiver did not have
	CreatedRegs    int  // of the regular files, the ones the receiver did not have
	Transferred    int  // regular files sent (new or changed)
}

// ParseStats reads rsync's statistics from its output.
func ParseStats(out string) Stats {
	var st Stats
	for _, line := range strings.Split(out, "\n") {
		line = StripLogPrefix(strings.TrimLeft(line, "\r"))
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:] // after a progress line
		}
		if reg, dir, ok := FileCounts(line); ok {
			st.Counted, st.Regs = true, reg
			st.NonDirs = number(strings.TrimPrefix(line, "Number of files: ")) - dir
		} else if rest, ok := strings.CutPrefix(line, "Number of created files: "); ok {
			st.CreatedNonDirs = number(rest) - field(rest, "dir")
			st.CreatedRegs = field(rest, "reg")
		} else if rest, ok := strings.CutPrefix(line, "Number of regular files transferred: "); ok {
			st.Transferred = number(rest)
		}
	}
	return st
}

// field reads "key: 1,234" out of "(reg: 1,234, dir: 5)".
func field(s, key string) int {
	if _, after, found := strings.Cut(s, key+": "); found {
		return number(after)
	}
	return 0
}

// number reads a leading number written with thousands separators.
func number(s string) int {
	n := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
		case c == ',' || c == '.':
		default:
			return n
		}
	}
	return n
}

// Deleting reports a deletion ("*deleting").
func (it Item) Deleting() bool { return strings.HasPrefix(it.Code, "*deleting") }

// Dir reports a directory.
func (it Item) Dir() bool {
	if it.Deleting() {
		return strings.HasSuffix(it.Name, "/")
	}
	return it.Code[1] == 'd'
}

// New reports an item the receiver did not have.
func (it Item) New() bool { return !it.Deleting() && strings.HasPrefix(it.Code[2:], "+++++++++") }

// Transferred reports content sent or created (a new or changed file, a
// link, a directory created); attribute-only updates are not transfers.
func (it Item) Transferred() bool {
	return !it.Deleting() && (it.Code[0] == '>' || it.Code[0] == '<' || it.Code[0] == 'c')
}

// Changed reports an existing item whose content or attributes change.
func (it Item) Changed() bool { return !it.Deleting() && !it.New() && !it.Unchanged() }

// Unchanged reports an item that -ii lists although nothing changes.
func (it Item) Unchanged() bool {
	return !it.Deleting() && strings.TrimSpace(it.Code[2:]) == "" && it.Code[0] == '.'
}

// Path is the item's name without the trailing "/" of a directory; the
// transfer's root is ".".
func (it Item) Path() string {
	if p := strings.TrimSuffix(it.Name, "/"); p != "" {
		return p
	}
	return "."
}

// Warning reports an exit code that means success with a caveat: 24, some
// source files vanished while rsync ran (normal on a live system).
func Warning(code int) bool { return code == 24 }

// Exit says in words what an rsync exit code means.
func Exit(code int) string {
	switch code {
	case 0:
		return "success"
	case 1:
		return "syntax or usage error (rsync exit 1)"
	case 2:
		return "protocol incompatibility between the two rsyncs (rsync exit 2)"
	case 3:
		return "errors selecting input/output files or directories (rsync exit 3)"
	case 5:
		return "error starting the remote rsync (rsync exit 5)"
	case 10:
		return "socket I/O error (rsync exit 10)"
	case 11:
		return "file I/O error, such as a full disk (rsync exit 11)"
	case 12:
		return "the data stream broke: connection lost or remote rsync died (rsync exit 12)"
	case 14:
		return "IPC error (rsync exit 14)"
	case 20:
		return "rsync was interrupted (rsync exit 20)"
	case 22:
		return "rsync ran out of memory (rsync exit 22)"
	case 23:
		return "some files could not be transferred: unreadable, missing or disk full (rsync exit 23)"
	case 24:
		return "some files vanished on the source while rsync read them (rsync exit 24)"
	case 25:
		return "the --max-delete limit stopped deletions (rsync exit 25)"
	case 30:
		return "no data for too long: the remote rsync or the link froze (rsync exit 30)"
	case 35:
		return "timed out waiting for the connection (rsync exit 35)"
	case 127:
		return "rsync is not installed on production (exit 127)"
	case 255:
		return "the ssh connection failed or dropped (rsync exit 255)"
	}
	return fmt.Sprintf("rsync exit %d", code)
}

// Explain describes a failed rsync step in one line: the cause (timeout,
// full disk, exit code) and the last line rsync printed on stderr.
func Explain(err error) string {
	var re *run.Error
	if !errors.As(err, &re) {
		return err.Error()
	}
	if re.TimedOut {
		return "stopped at its deadline"
	}
	if re.Stalled {
		return fmt.Sprintf("no progress for %s (STALL_TIMEOUT), stopped", re.Stall)
	}
	msg := Exit(re.ExitCode)
	if re.ExitCode < 0 && re.Err != nil {
		msg = re.Err.Error()
	}
	if strings.Contains(re.Stderr, "No space left on device") {
		msg = "the standby's disk is full (" + msg + ")"
	}
	// rsync ends with generic lines ("rsync error: ... at main.c(...)",
	// the --max-delete and "IO error ... skipping file deletion" notes)
	// that say less than the cause.
	if last := run.Cause(err, "rsync error:", "Deletions stopped due to --max-delete", "IO error encountered"); last != "" {
		msg += ": " + last
	}
	return msg
}
