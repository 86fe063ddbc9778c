// Package summary keeps the two records of what ran: the original suite's
// summary file, one line per successful command in its exact format
// ("YYYY-MM-DD HH:MM:SS :  <command>"), and a JSON-lines run log that records
// every run, failed or not, so that failures leave a trace without stamping
// success.
package summary

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/bitfield/script"
	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
)

// Layout is the original's timestamp format (date '+%Y-%m-%d %H:%M:%S').
const Layout = "2006-01-02 15:04:05"

// Line formats one summary line.
func Line(t time.Time, command string) string {
	return t.Format(Layout) + " :  " + command + "\n"
}

// Append adds one line per command to the summary file in a single write,
// creating the file and its directory when missing.
func Append(path string, t time.Time, commands ...string) error {
	var b strings.Builder
	for _, c := range commands {
		b.WriteString(Line(t, c))
	}
	return appendFile(path, []byte(b.String()), 0o644)
}

// appendFile appends in one write, never through a symlink, to a regular
// file of our own (atomicfile.Append): /var/log/odoo belongs to odoo.
func appendFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Append(path, data, mode)
}

// lineRE is a summary line: the original's timestamp, " :  ", a command.
var lineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d :  \S`)

// Last reads the summary file and returns each command's last success.
// A missing file is an empty result; lines in another form (an operator's
// note, a line cut by a full disk) are skipped.
func Last(path string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return out, nil
	}
	lines, err := script.File(path).MatchRegexp(lineRE).Slice()
	if err != nil {
		return nil, err
	}
	for _, line := range lines {
		stamp, cmd, _ := strings.Cut(line, " :  ")
		t, err := time.ParseInLocation(Layout, stamp, time.Local)
		if err != nil {
			continue
		}
		cmd = strings.TrimSpace(cmd)
		if t.After(out[cmd]) {
			out[cmd] = t
		}
	}
	return out, nil
}

// Record is one run in the run log.
type Record struct {
	Time     time.Time `json:"time"`
	Command  string    `json:"command"`
	Status   string    `json:"status"` // ok, failed, refused, dry-run
	Duration float64   `json:"duration_s"`
	Exit     int       `json:"exit"`
	Error    string    `json:"error,omitempty"`
	Warning  string    `json:"warning,omitempty"` // what a run that succeeded warned of
	PID      int       `json:"pid"`
}

// Log appends a record to the JSON-lines run log.
func Log(path string, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return appendFile(path, append(data, '\n'), 0o640)
}

// Records reads the run log; lines that are not records are skipped.
func Records(path string) ([]Record, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Command != "" {
			out = append(out, r)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
