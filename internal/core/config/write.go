package config

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Quote renders a value the way the original suite wrote them: in double
// quotes, with the characters a shell treats specially inside them escaped.
func Quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}

// Save writes the given keys of c back to its file: lines that set them are
// rewritten in place, comments and order kept; missing keys are appended.
// The file is replaced atomically (temp file, fsync, rename) with its owner
// and mode kept.
func (c *Config) Save(keys ...Key) error {
	old, err := os.ReadFile(c.Path)
	if err != nil {
		return &Error{Path: c.Path, Msg: err.Error()}
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		return &Error{Path: c.Path, Msg: err.Error()}
	}
	values := map[string]string{}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i], values[k.Name()] = k.Name(), c.Get(k)
	}
	out := Rewrite(old, names, func(name string) string { return values[name] })
	if err := writeAtomic(c.Path, out, fi); err != nil {
		return &Error{Path: c.Path, Msg: "cannot write: " + err.Error()}
	}
	return nil
}

// SaveStep is Save as a plan's step: a dry run shows the lines it would
// write.
func (c *Config) SaveStep(keys ...Key) run.Step {
	show := make([]string, len(keys))
	for i, k := range keys {
		show[i] = k.Name() + "=" + Quote(c.Get(k))
	}
	return run.Step{What: "set in " + c.Path, Show: show, Do: func(context.Context) error { return c.Save(keys...) }}
}

// Rewrite returns data with each key in keys set to get(key).
func Rewrite(data []byte, keys []string, get func(string) string) []byte {
	done := map[string]bool{}
	var out bytes.Buffer
	crlf := bytes.Contains(data, []byte("\r\n"))
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		key, _, tail, ok, err := parseLine(line)
		if ok && err == nil && slices.Contains(keys, key) && !done[key] {
			indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			prefix := ""
			if strings.HasPrefix(strings.TrimSpace(line), "export ") {
				prefix = "export "
			}
			line = indent + prefix + key + "=" + Quote(get(key)) + strings.TrimRight(tail, " \t")
			done[key] = true
		}
		out.WriteString(line + nl)
	}
	for _, k := range keys {
		if !done[k] {
			out.WriteString(k + "=" + Quote(get(k)) + nl)
		}
	}
	return out.Bytes()
}

func writeAtomic(path string, data []byte, fi os.FileInfo) error {
	uid, gid := -1, -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	return atomicfile.WriteOwned(path, data, fi.Mode().Perm(), uid, gid)
}

// Template returns the default configuration file the package installs:
// the original's four keys set, every other key shown as a comment with its
// default and meaning.
func Template() string {
	var b strings.Builder
	b.WriteString("# ot-redundancy configuration (read by every ot-* program; see ot-configure).\n")
	b.WriteString("# Shell-style KEY=\"value\" lines; nothing is expanded. Unset keys take the\n")
	b.WriteString("# defaults shown in the comments.\n\n")
	for _, k := range Defs {
		fmt.Fprintf(&b, "# %s\n", k.Doc)
		switch k.Key {
		case SyncMode, SyncSrc, RemoteOdoo, SummaryFile:
			fmt.Fprintf(&b, "%s=%s\n\n", k.Name, Quote(k.Default))
		default:
			fmt.Fprintf(&b, "#%s=%s\n\n", k.Name, Quote(k.Default))
		}
	}
	return b.String()
}
