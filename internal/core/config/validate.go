package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/kballard/go-shellquote"
)

var (
	hostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)
	userRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}\$?$`)
	// Paths end up in rsync -e strings and remote commands: keep them plain.
	pathRe = regexp.MustCompile(`^/[A-Za-z0-9._+@%=:,/-]*$`)
	wordRe = regexp.MustCompile(`^[A-Za-z0-9._+@%=:,/*?\[\]-]+$`)
	// PostgreSQL's own rule for replication slot names.
	slotRe = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
)

// ValidHost reports whether s is a host name or an IP address that cannot be
// mistaken for an option.
func ValidHost(s string) error {
	if s == "" {
		return fmt.Errorf("empty host")
	}
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("host %q starts with '-'", s)
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	if len(s) > 253 || !hostRe.MatchString(s) {
		return fmt.Errorf("%q is not a host name or IP address", s)
	}
	return nil
}

// ValidUser reports whether s is a POSIX user or group name.
func ValidUser(s string) error {
	if !userRe.MatchString(s) {
		return fmt.Errorf("%q is not a user name (lower-case letters, digits, '_' and '-', not starting with '-')", s)
	}
	return nil
}

// ValidPath reports whether s is an absolute path without shell, quote or
// control characters.
func ValidPath(s string) error {
	if !pathRe.MatchString(s) {
		return fmt.Errorf("%q is not an absolute path of plain characters", s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Errorf("%q contains '..'", s)
		}
	}
	return nil
}

// Validate checks value against the key's kind.
func Validate(key Key, value string) error {
	k := Defs[key]
	for _, r := range value {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s holds a control character", k.Name)
		}
	}
	bad := func(err error) error { return fmt.Errorf("%s: %v", k.Name, err) }
	switch k.Kind {
	case KindOnOff:
		// Anything but "on" means off; accept what the original accepted.
	case KindYesNo:
		if value != "yes" && value != "no" {
			return fmt.Errorf("%s must be yes or no, not %q", k.Name, value)
		}
	case KindHost:
		if value == NotSet || value == "" {
			return nil
		}
		if err := ValidHost(value); err != nil {
			return bad(err)
		}
	case KindUser:
		if err := ValidUser(value); err != nil {
			return bad(err)
		}
	case KindPort:
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s must be a port number (1-65535), not %q", k.Name, value)
		}
	case KindInt:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return fmt.Errorf("%s must be a whole number, not %q", k.Name, value)
		}
	case KindPercent:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 100 {
			return fmt.Errorf("%s must be a percentage (0-100), not %q", k.Name, value)
		}
	case KindPath:
		if value == "" && k.Default == "" {
			return nil
		}
		if err := ValidPath(value); err != nil {
			return bad(err)
		}
	case KindPaths:
		for _, p := range strings.Fields(value) {
			if err := ValidPath(p); err != nil {
				return bad(err)
			}
		}
	case KindWords:
		for _, w := range strings.Fields(value) {
			if strings.HasPrefix(w, "-") || !wordRe.MatchString(w) {
				return fmt.Errorf("%s: %q is not a plain word", k.Name, w)
			}
		}
	case KindCommand:
		argv, err := shellquote.Split(value)
		if err != nil {
			return fmt.Errorf("%s: %v", k.Name, err)
		}
		if len(argv) > 0 && strings.HasPrefix(argv[0], "-") {
			return fmt.Errorf("%s: command %q starts with '-'", k.Name, argv[0])
		}
	case KindDuration:
		if _, err := ParseDuration(value); err != nil {
			return fmt.Errorf("%s: %v", k.Name, err)
		}
	case KindSlot:
		if value != "" && !slotRe.MatchString(value) {
			return fmt.Errorf("%s: %q is not a replication slot name (lower-case letters, digits and '_', at most 63)", k.Name, value)
		}
	case KindURL:
		if value == "" && k.Default == "" {
			return nil
		}
		u, err := url.Parse(value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s must be an http:// or https:// URL, not %q", k.Name, value)
		}
	}
	return nil
}

// closest returns the known key nearest to name, for "did you mean".
func closest(name string) string {
	best, bestD := "", 4
	up := strings.ToUpper(name)
	for _, k := range Defs {
		if d := distance(up, k.Name); d < bestD {
			best, bestD = k.Name, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
