package job

import (
	"context"
	"os/exec"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/config"
)

// LocalPrimary reports whether a local Debian PostgreSQL cluster is online
// and out of recovery, with the cluster's name. pg_lsclusters says
// "online,recovery" for a standby. No cluster found means no evidence: the
// suite then trusts PROMOTED in the configuration.
func LocalPrimary(ctx context.Context, cfg *config.Config) (bool, string, error) {
	out, err := exec.CommandContext(ctx, "pg_lsclusters", "--no-header").Output()
	if err != nil {
		return false, "", err
	}
	want := cfg.Get("PG_CLUSTER")
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		name := f[0] + "/" + f[1]
		if want != "" && name != want {
			continue
		}
		if f[3] == "online" {
			return true, name, nil
		}
	}
	return false, "", nil
}
