package projects

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"

	"github.com/ot-redundancy/ot-redundancy/internal/core/glob"
)

// nameRe is what a project name from production may look like: a plain
// directory name, never an option, a path, whitespace or a shell character.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+@-]{0,254}$`)

// ValidName reports whether name is safe to use as a project directory.
func ValidName(name string) error {
	if !nameRe.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%q is not a plain directory name (letters, digits, '.', '_', '+', '@', '-', not starting with '-' or '.')", name)
	}
	return nil
}

// Matcher says which directory names are addon projects.
type Matcher struct {
	Include []string // glob patterns (PROJECTS_PATTERN)
	Exclude []string // glob patterns (PROJECTS_EXCLUDE)
}

// Match reports whether name matches an include pattern and no exclude one.
func (m Matcher) Match(name string) bool {
	return glob.Any(m.Include, name) && !glob.Any(m.Exclude, name)
}

// errPartial is a listing that does not end where a record ends.
var errPartial = errors.New("listing cut short (no final NUL)")

// ParseListing reads find's "-printf '%f\0'" output: the projects it names
// (matching m, sorted), or an error when the output is partial or a
// matching name is not a plain directory name. Names that do not match are
// ignored: they are never touched.
func ParseListing(out []byte, m Matcher) ([]string, error) {
	if len(out) == 0 {
		return nil, nil
	}
	if out[len(out)-1] != 0 {
		return nil, errPartial
	}
	var names []string
	for _, b := range bytes.Split(out[:len(out)-1], []byte{0}) {
		name := string(b)
		if !m.Match(name) {
			continue
		}
		if err := ValidName(name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Local lists the standby's projects in dir: real directories (not
// symlinks) whose names match m and are plain.
func Local(dir string, m Matcher) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && m.Match(e.Name()) && ValidName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Stale returns the names in local that are not in remote (both sorted).
func Stale(local, remote []string) []string {
	var stale []string
	for _, n := range local {
		if _, found := slices.BinarySearch(remote, n); !found {
			stale = append(stale, n)
		}
	}
	return stale
}
