package pg

import (
	"strings"
)

// PassEntry is one line of a password file in libpq's .pgpass format,
// "hostname:port:database:username:password", where "*" in the first four
// fields matches anything and "\" escapes ":" and "\".
type PassEntry struct {
	Host, Port, DB, User, Password string
}

// ParsePgpass reads a password file. Like libpq, it skips comments and
// lines with fewer than five fields.
func ParsePgpass(data []byte) []PassEntry {
	var out []PassEntry
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := splitPgpass(line)
		if len(f) != 5 {
			continue
		}
		out = append(out, PassEntry{Host: f[0], Port: f[1], DB: f[2], User: f[3], Password: f[4]})
	}
	return out
}

// splitPgpass splits a line into its five fields, the password taking
// whatever follows the fourth ":".
func splitPgpass(line string) []string {
	var fields []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == ':' && len(fields) < 4:
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(fields, cur.String())
}

// For reports whether the entry applies to user on host:port, for some
// database.
func (e PassEntry) For(host, port, user string) bool {
	match := func(field, v string) bool { return field == "*" || field == v }
	return match(e.Host, host) && match(e.Port, port) && match(e.User, user)
}

// FormatPgpass writes entries in the password file format.
func FormatPgpass(entries []PassEntry) []byte {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(strings.Join([]string{esc.Replace(e.Host), esc.Replace(e.Port), esc.Replace(e.DB), esc.Replace(e.User), esc.Replace(e.Password)}, ":"))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
