// Package config reads and writes the suite's configuration file,
// /etc/odoo/ot-redundancy-sync.conf, in the original suite's shell-style
// format (KEY="value" lines and comments) without ever running a shell.
//
// Every value is validated when the file is read, so that a value that could
// become an option or a shell word (a host "-oProxyCommand=...", "a b",
// "$(id)") stops the program before any process starts.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kballard/go-shellquote"
)

// NotSet is the placeholder the original package shipped for SYNCSRC.
const NotSet = "NOT-SET"

// Error is a problem with the configuration file, located by file and line.
type Error struct {
	Path string
	Line int // 0 when the problem is not tied to one line
	Msg  string
	Hint string
}

func (e *Error) Error() string {
	loc := e.Path
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.Path, e.Line)
	}
	return fmt.Sprintf("config %s: %s", loc, e.Msg)
}

// Config holds the values of one configuration file. Keys absent from the
// file take their defaults from Defs.
type Config struct {
	Path   string
	values map[Key]string
	lines  map[Key]int // key -> line number where it was set
}

// Load reads and validates path.
func Load(path string) (*Config, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	// One open: what is checked is what is read, even if the file is
	// replaced meanwhile.
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &Error{Path: path, Msg: "file not found", Hint: "run ot-configure, or point --config/OT_CONFIG at the file"}
	}
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	if err := checkOwnership(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	if len(data) > maxSize {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("is larger than %d KiB: not a configuration file", maxSize>>10), Hint: "check --config/OT_CONFIG"}
	}
	return Parse(path, data)
}

// maxSize bounds the configuration file: a few KiB in practice.
const maxSize = 1 << 20

// checkOwnership refuses a file that anyone but root could have written, as
// sshd and sudo do: its values name commands root runs (FENCE_COMMAND, PIP)
// and paths root writes. A user who is not root may also read a file of
// their own (ot-status run by a monitoring user, the tests).
func checkOwnership(path string, fi os.FileInfo) error {
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return &Error{Path: path, Msg: fmt.Sprintf("belongs to %s, not root (mode %04o): root runs what it names", owner(st.Uid), mode),
			Hint: "chown root:root " + path + " && chmod 0600 " + path}
	}
	if mode&0o022 != 0 {
		return &Error{Path: path, Msg: fmt.Sprintf("is writable by other users (mode %04o, owner %s): root runs what it names", mode, owner(st.Uid)),
			Hint: "chmod go-w " + path}
	}
	return nil
}

// owner names a uid for a message: "odoo (uid 105)".
func owner(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

// Parse reads configuration text; path is used in messages only.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{Path: path, values: map[Key]string{}, lines: map[Key]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		key, val, _, ok, err := parseLine(sc.Text())
		if err != nil {
			return nil, &Error{Path: path, Line: n, Msg: err.Error(), Hint: "fix that line"}
		}
		if !ok {
			continue
		}
		d, known := lookup(key)
		if !known {
			msg := fmt.Sprintf("unknown key %s", key)
			if s := closest(key); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			return nil, &Error{Path: path, Line: n, Msg: msg, Hint: "fix or remove that line"}
		}
		if prev, dup := c.lines[d.Key]; dup {
			return nil, &Error{Path: path, Line: n, Msg: fmt.Sprintf("%s is set again (first set on line %d)", key, prev), Hint: "remove one of them"}
		}
		if err := Validate(d.Key, val); err != nil {
			return nil, &Error{Path: path, Line: n, Msg: err.Error(), Hint: "fix the value (ot-configure writes valid ones)"}
		}
		c.values[d.Key] = val
		c.lines[d.Key] = n
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	return c, nil
}

// parseLine returns the key and value of an assignment line; ok is false for
// blank lines and comments, and tail is what follows the value (spaces and a
// comment). Quoting follows the shell closely enough for the files the
// original suite wrote, but nothing is expanded: "$x" stays "$x".
func parseLine(line string) (key, val, tail string, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	s := strings.TrimSpace(line)
	if s == "" || strings.HasPrefix(s, "#") {
		return "", "", "", false, nil
	}
	s = strings.TrimPrefix(s, "export ")
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return "", "", "", false, fmt.Errorf("cannot parse %q: expected KEY=\"value\"", trunc(s))
	}
	key = s[:eq]
	if !isKeyName(key) {
		return "", "", "", false, fmt.Errorf("cannot parse %q: %q is not a key name", trunc(s), key)
	}
	rest := s[eq+1:]
	var b strings.Builder
	i := 0
	for i < len(rest) {
		ch := rest[i]
		switch {
		case ch == '"':
			j := i + 1
			closed := false
			for j < len(rest) {
				if rest[j] == '\\' && j+1 < len(rest) && strings.IndexByte("\"\\$`", rest[j+1]) >= 0 {
					b.WriteByte(rest[j+1])
					j += 2
					continue
				}
				if rest[j] == '"' {
					closed = true
					break
				}
				b.WriteByte(rest[j])
				j++
			}
			if !closed {
				return "", "", "", false, fmt.Errorf("unterminated double quote in the value of %s", key)
			}
			i = j + 1
		case ch == '\'':
			j := strings.IndexByte(rest[i+1:], '\'')
			if j < 0 {
				return "", "", "", false, fmt.Errorf("unterminated single quote in the value of %s", key)
			}
			b.WriteString(rest[i+1 : i+1+j])
			i += j + 2
		case ch == ' ' || ch == '\t':
			after := strings.TrimSpace(rest[i:])
			if after != "" && !strings.HasPrefix(after, "#") {
				return "", "", "", false, fmt.Errorf("unexpected %q after the value of %s: quote values that hold spaces", trunc(after), key)
			}
			tail = rest[i:]
			i = len(rest)
		case ch == '\\' && i+1 < len(rest):
			b.WriteByte(rest[i+1])
			i += 2
		default:
			b.WriteByte(ch)
			i++
		}
	}
	return key, b.String(), tail, true, nil
}

func isKeyName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Get returns a key's value, or its default when the file does not set it.
// REMOTE_PIP left empty is PIP: both machines have the same layout.
func (c *Config) Get(k Key) string {
	v, ok := c.values[k]
	if !ok {
		v = k.Default()
	}
	if k == RemotePip && v == "" {
		return c.Get(Pip)
	}
	return v
}

// IsSet reports whether the file sets the key.
func (c *Config) IsSet(k Key) bool { _, ok := c.values[k]; return ok }

// Int returns a validated integer key.
func (c *Config) Int(k Key) int {
	n, _ := strconv.Atoi(c.Get(k))
	return n
}

// Yes reports whether a yes/no key is yes.
func (c *Config) Yes(k Key) bool { return c.Get(k) == "yes" }

// Words returns a space-separated key as a list.
func (c *Config) Words(k Key) []string { return strings.Fields(c.Get(k)) }

// Command returns a command key split into argv (no expansion happens).
func (c *Config) Command(k Key) []string {
	argv, _ := shellquote.Split(c.Get(k))
	return argv
}

// SyncOn reports whether SYNCMODE is exactly "on". The original synced when
// the key was missing or empty; we do not.
func (c *Config) SyncOn() bool { return c.Get(SyncMode) == "on" }

// Promoted reports whether ot-disable-standby-mode marked this machine.
func (c *Config) Promoted() bool { return c.Yes(Promoted) }

// Source returns production's host, or an error telling to run ot-configure.
func (c *Config) Source() (string, error) {
	s := c.Get(SyncSrc)
	if s == "" || s == NotSet {
		return "", &Error{Path: c.Path, Line: c.lines[SyncSrc], Msg: "SYNCSRC is not set", Hint: "run ot-configure"}
	}
	return s, nil
}

// Set validates value and stores it; Save writes it to disk.
func (c *Config) Set(k Key, value string) error {
	if err := Validate(k, value); err != nil {
		return &Error{Path: c.Path, Msg: err.Error()}
	}
	c.values[k] = value
	return nil
}

// Values returns every key's effective value, in table order.
func (c *Config) Values() [][2]string {
	out := make([][2]string, 0, len(Defs))
	for _, d := range Defs {
		out = append(out, [2]string{d.Name, c.Get(d.Key)})
	}
	return out
}
