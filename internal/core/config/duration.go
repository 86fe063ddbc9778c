package config

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// durationRE is a duration as admins write them: plain seconds ("300"),
// or numbers with units d, h, m, s, in that order ("2d", "1h30m", "90s").
var durationRE = regexp.MustCompile(`^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$`)

// ParseDuration reads a duration: plain seconds, or with units d, h, m, s
// ("2d", "1d12h", "5m"). Nothing else (no fractions, no sign).
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	m := durationRE.FindStringSubmatch(s)
	if s == "" || m == nil {
		return 0, fmt.Errorf("%q is not a duration (seconds, or like 90s, 5m, 2h, 2d, 1d12h)", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] != "" {
			n, err := strconv.Atoi(m[i+1])
			if err != nil || n > 1<<20 {
				return 0, fmt.Errorf("%q is too long a duration", s)
			}
			d += time.Duration(n) * unit
		}
	}
	return d, nil
}

// Duration returns a validated duration key.
func (c *Config) Duration(k Key) time.Duration {
	d, _ := ParseDuration(c.Get(k))
	return d
}
