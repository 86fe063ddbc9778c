// Package glob matches names against the configuration's shell patterns
// (APT_DENY, PROJECTS_PATTERN, PROJECTS_EXCLUDE): one matcher, so a rule
// reads the same in a sync and in ot-status --drift.
package glob

import "path"

// Find returns the first of patterns that name matches, or "". A
// malformed pattern matches nothing (the configuration validates them).
func Find(patterns []string, name string) string {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return p
		}
	}
	return ""
}

// Any reports whether name matches one of patterns.
func Any(patterns []string, name string) bool { return Find(patterns, name) != "" }
