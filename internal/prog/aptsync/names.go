package aptsync

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/glob"
)

// Debian policy 5.6.1: lower-case letters, digits, '+', '-', '.'; at least
// two characters, starting with a letter or digit (so never with '-').
var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	archRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// ValidName reports whether s is a Debian package name, optionally
// qualified with ":arch" as apt-mark prints foreign packages.
func ValidName(s string) bool {
	name, arch, qualified := strings.Cut(s, ":")
	if !nameRE.MatchString(name) || len(s) > 200 {
		return false
	}
	return !qualified || archRE.MatchString(arch)
}

// ParseList reads apt-mark's output, one package per line, and returns the
// names; any line that is not a valid name makes it fail, naming the line.
func ParseList(out []byte) ([]string, error) {
	var names, bad []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if !ValidName(line) {
			bad = append(bad, fmt.Sprintf("%q", trunc(line)))
			continue
		}
		names = append(names, line)
	}
	if len(bad) > 0 {
		if len(bad) > 3 {
			bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
		}
		return nil, fmt.Errorf("%s: not a Debian package name", strings.Join(bad, ", "))
	}
	return names, nil
}

func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// normalize drops an architecture qualifier that names this machine's own
// architecture (or "all"), so that "foo:amd64" and "foo" are one package.
func normalize(name, native string) string {
	if n, arch, ok := strings.Cut(name, ":"); ok && (arch == native || arch == "all") {
		return n
	}
	return name
}

// Exact splits names (normalized) into those apt knows exactly and the
// rest. A name is exact when it is in known (the package names of apt's
// cache, apt-cache pkgnames) and its ":arch", if any, is one of this
// machine's foreign architectures (the native one and "all" are normalized
// away). Any other name must never reach apt-get, which reads a name it
// does not know as something else: a trailing '-' removes the package
// before it (openssh-server-), a trailing '+' installs it past APT_DENY,
// and '.' or '+' inside make a regular expression (zstd.).
func Exact(names []string, known, foreign map[string]bool) (ok, refused []string) {
	for _, n := range names {
		base, arch, qualified := strings.Cut(n, ":")
		if known[base] && (!qualified || foreign[arch]) {
			ok = append(ok, n)
		} else {
			refused = append(refused, n)
		}
	}
	return ok, refused
}

// Few names the first n of names, and how many more there are.
func Few(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// Denied returns the first deny pattern matching name (without its
// architecture), or "".
func Denied(name string, patterns []string) string {
	base, _, _ := strings.Cut(name, ":")
	return glob.Find(patterns, base)
}
