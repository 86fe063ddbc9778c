package pg

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
)

// cached is what Options.Cache keeps: the cluster chosen, and what it was
// chosen for (the options, and postgresql-common's configuration root).
type cached struct {
	For     Options
	Root    string
	Cluster Cluster
}

// fromCache returns the cached cluster when it was chosen for the same
// options and its data directory still holds the same version; its state
// (running or not) is read anew. Only root uses the cache: it must read the
// data directory, and only root may trust the file.
func fromCache(o Options) *Cluster {
	if o.Cache == "" || os.Geteuid() != 0 {
		return nil
	}
	data, err := os.ReadFile(o.Cache)
	if err != nil {
		return nil
	}
	var c cached
	if json.Unmarshal(data, &c) != nil || c.For != o || c.Root != os.Getenv("PG_CLUSTER_CONF_ROOT") || !c.Cluster.Debian {
		return nil
	}
	v, err := os.ReadFile(filepath.Join(c.Cluster.Data, "PG_VERSION"))
	if err != nil || strings.TrimSpace(string(v)) != c.Cluster.Version {
		return nil
	}
	cl := c.Cluster
	cl.Online = running(cl.Data)
	return &cl
}

// toCache keeps the cluster for the next run; a failure only costs the
// next run a pg_lsclusters.
func toCache(o Options, c *Cluster) {
	if o.Cache == "" || os.Geteuid() != 0 {
		return
	}
	data, err := json.Marshal(cached{For: o, Root: os.Getenv("PG_CLUSTER_CONF_ROOT"), Cluster: *c})
	if err != nil || os.MkdirAll(filepath.Dir(o.Cache), 0o755) != nil {
		return
	}
	atomicfile.Write(o.Cache, data, 0o600)
}
