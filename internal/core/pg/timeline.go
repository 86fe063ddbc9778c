package pg

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// LSN is a position in the write-ahead log.
type LSN uint64

// MaxLSN stands for "not ended": the end of a timeline still in use.
const MaxLSN = LSN(math.MaxUint64)

// ParseLSN reads PostgreSQL's "X/Y" notation (two hexadecimal halves).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("%q is not a WAL position", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a WAL position", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string {
	if l == MaxLSN {
		return "end"
	}
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff)
}

// Segment is the number of the WAL segment holding l, for segments of
// size bytes.
func (l LSN) Segment(size int64) uint64 { return uint64(l) / uint64(size) }

// SegmentName is the file name of WAL segment seg on timeline tli.
func SegmentName(tli int, seg uint64, size int64) string {
	perID := uint64(0x100000000) / uint64(size)
	return fmt.Sprintf("%08X%08X%08X", tli, seg/perID, seg%perID)
}

// ParseSegmentName reads a WAL segment file name; ok is false for any
// other name (history files, .partial, .ready).
func ParseSegmentName(name string, size int64) (tli int, seg uint64, ok bool) {
	if len(name) != 24 {
		return 0, 0, false
	}
	t, err1 := strconv.ParseUint(name[:8], 16, 32)
	hi, err2 := strconv.ParseUint(name[8:16], 16, 32)
	lo, err3 := strconv.ParseUint(name[16:], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	perID := uint64(0x100000000) / uint64(size)
	return int(t), hi*perID + lo, true
}

// Timeline is one step of a timeline's ancestry: timeline TLI, which
// ended at End (MaxLSN for the timeline in use).
type Timeline struct {
	TLI int
	End LSN
}

// History is a timeline's ancestry, oldest first, the timeline itself
// last (with End MaxLSN): what its history file says, plus itself.
type History []Timeline

// maxHistory bounds a history file: each switch adds one short line.
const maxHistory = 1 << 20

// ParseHistory reads timeline tli's history file (lines "parentTLI
// switchpoint reason", tab-separated; # comments) into its History. The
// file may come from production: anything but that form is refused.
func ParseHistory(tli int, data []byte) (History, error) {
	if len(data) > maxHistory {
		return nil, fmt.Errorf("timeline %d history: more than %d bytes", tli, maxHistory)
	}
	var h History
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline %d history: unexpected line %q", tli, truncate(line))
		}
		parent, err := strconv.Atoi(f[0])
		if err != nil || parent < 1 || (len(h) > 0 && parent <= h[len(h)-1].TLI) || parent >= tli {
			return nil, fmt.Errorf("timeline %d history: unexpected timeline in %q", tli, truncate(line))
		}
		end, err := ParseLSN(f[1])
		if err != nil || (len(h) > 0 && end < h[len(h)-1].End) {
			return nil, fmt.Errorf("timeline %d history: unexpected switch point in %q", tli, truncate(line))
		}
		h = append(h, Timeline{TLI: parent, End: end})
	}
	return append(h, Timeline{TLI: tli, End: MaxLSN}), nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Current is the history's own timeline.
func (h History) Current() int { return h[len(h)-1].TLI }

// Fork finds where two histories part, as pg_rewind does: the last
// timeline both share, and the point where the first of them left it. ok
// is false when they share no timeline.
func Fork(a, b History) (tli int, at LSN, ok bool) {
	i := 0
	for i < len(a) && i < len(b) && a[i].TLI == b[i].TLI {
		i++
	}
	if i == 0 {
		return 0, 0, false
	}
	return a[i-1].TLI, min(a[i-1].End, b[i-1].End), true
}

// Range is a stretch of WAL on one timeline, [Start, End).
type Range struct {
	TLI        int
	Start, End LSN // End is MaxLSN when the stretch runs to the end of the WAL
}

// Since returns the stretches of WAL that h holds after at on timeline
// tli (a fork point): on tli from at, then on each later timeline of h.
func (h History) Since(tli int, at LSN) []Range {
	var out []Range
	for i, t := range h {
		switch {
		case t.TLI < tli:
			continue
		case t.TLI == tli:
			if t.End > at {
				out = append(out, Range{TLI: t.TLI, Start: at, End: t.End})
			}
		default:
			out = append(out, Range{TLI: t.TLI, Start: h[i-1].End, End: t.End})
		}
	}
	return out
}
