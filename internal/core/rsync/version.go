package rsync

import (
	"context"
	"fmt"
	"regexp"

	"github.com/Masterminds/semver/v3"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// MinVersion is the oldest local rsync the suite runs. Our rsync receives
// files from production as root, and rsync before 3.4.0 lets a malicious
// sender read memory and write outside the destination (CVE-2024-12084 to
// -12088, fixed in 3.4.0).
const MinVersion = "3.4.0"

var versionRE = regexp.MustCompile(`(?m)^rsync\s+version\s+v?(\d+\.\d+\.\d+)`)

// Version reads the version from `rsync --version` output ("rsync  version
// 3.4.1  protocol version 32").
func Version(out []byte) (*semver.Version, error) {
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("cannot read rsync's version from %q", firstLine(out))
	}
	return semver.NewVersion(string(m[1]))
}

// CheckLocal refuses this machine's rsync when it is older than MinVersion
// (or missing): one line naming the version found.
func CheckLocal(ctx context.Context, r *run.Runner) error {
	out, err := r.Query(ctx, "rsync", "--version")
	if err != nil {
		return fmt.Errorf("rsync does not run on this standby: %s; install rsync %s or later", run.Brief(err), MinVersion)
	}
	v, err := Version(out)
	if err != nil {
		return err
	}
	if v.LessThan(semver.MustParse(MinVersion)) {
		return fmt.Errorf("this standby's rsync is version %s, older than %s: it receives production's files as root, and older versions let a hostile sender write outside the destination (CVE-2024-12084 to -12088); upgrade rsync (Debian 12: bookworm-security)", v, MinVersion)
	}
	return nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
