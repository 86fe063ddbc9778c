package projects

import (
	"context"
	"errors"
	"path/filepath"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Packaged returns which of the standby's project directories (names in
// dir) a Debian package owns, name -> the packages as dpkg-query -S names
// them. apt installs, updates and removes those: a sync never copies into
// them, moves or deletes them, whatever production has.
func Packaged(ctx context.Context, r *run.Runner, dir string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	argv := []string{"dpkg-query", "-S", "--"}
	for _, n := range names {
		// An absolute path without wildcards (names and PROJECTS_DIR are
		// plain) is matched exactly, never as a pattern.
		argv = append(argv, filepath.Join(dir, n))
	}
	out, err := r.Query(ctx, argv...)
	// dpkg-query exits 1 when some path belongs to no package; what it
	// printed for the others counts.
	if err != nil && (run.ExitCode(err) != 1 || errors.Is(err, run.ErrOutputLimit)) {
		return nil, cli.Fail(cli.ExitFailure, "cannot ask dpkg which projects in "+dir+" belong to Debian packages: "+run.Brief(err), "check dpkg here; nothing was changed")
	}
	return ParseOwners(out, dir, names), nil
}

// ParseOwners reads dpkg-query -S output ("pkg1, pkg2: /path", or
// "diversion by pkg from: /path") for the directories dir/name.
func ParseOwners(out []byte, dir string, names []string) map[string]string {
	owners := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		i := strings.LastIndex(line, ": ")
		if i < 0 {
			continue
		}
		pkgs, path := line[:i], line[i+2:]
		if filepath.Dir(path) != dir {
			continue
		}
		name := filepath.Base(path)
		for _, n := range names {
			if n != name {
				continue
			}
			if owners[n] != "" {
				pkgs = owners[n] + ", " + pkgs
			}
			owners[n] = pkgs
		}
	}
	return owners
}
