package status

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/ssh"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/aptsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/confsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/pipsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/projects"
)

// Drift is how production and the standby differ.
type Drift struct {
	Error string      `json:"error,omitempty"`
	Kinds []DriftKind `json:"kinds,omitempty"`
}

// DriftKind is one comparison: apt, pip, projects or config.
type DriftKind struct {
	Kind           string   `json:"kind"`
	Error          string   `json:"error,omitempty"`
	OnlyProduction []string `json:"only_production,omitempty"`
	OnlyStandby    []string `json:"only_standby,omitempty"`
	Differ         []string `json:"differ,omitempty"`
}

func (k DriftKind) count() int { return len(k.OnlyProduction) + len(k.OnlyStandby) + len(k.Differ) }

// drift compares production and the standby over one ssh connection. Each
// comparison is the sync's own read-only inventory, so a rule (APT_DENY,
// pip's names, PROJECTS_PATTERN, the conf-sync paths) has one owner and
// ot-status reports what the sync would change.
func (c *CLI) drift(env *cli.Env, cfg *config.Config, r *Report) {
	d := &Drift{}
	r.Drift = d
	target, err := job.Target(cfg)
	if err != nil {
		d.Error = err.Error()
		r.add("drift", Unknown, "cannot compare with production: "+err.Error())
		return
	}
	q := &run.Runner{Log: env.Log}
	conn, err := ssh.Dial(env.Ctx, q, target)
	if err != nil {
		msg, hint := ssh.Explain(target, err)
		d.Error = msg
		r.add("drift", Warning, "cannot compare with production: "+msg+"; "+hint)
		return
	}
	defer conn.Close()
	j := &job.Job{Env: env, Name: "ot-status", Cfg: cfg, SSH: conn, Runner: q, Start: time.Now()}
	// The inventories are slow (apt-mark, pip): all run at once, over the
	// one multiplexed connection.
	compares := []func(*job.Job) DriftKind{aptDrift, pipDrift, projectDrift}
	if len(confsync.Paths(cfg)) > 0 {
		compares = append(compares, configDrift)
	}
	d.Kinds = make([]DriftKind, len(compares))
	var wg sync.WaitGroup
	for i, compare := range compares {
		wg.Add(1)
		go func() { defer wg.Done(); d.Kinds[i] = compare(j) }()
	}
	wg.Wait()
	var parts []string
	for _, k := range d.Kinds {
		switch {
		case k.Error != "":
			parts = append(parts, k.Kind+": "+k.Error)
		case k.count() > 0:
			parts = append(parts, fmt.Sprintf("%s: %d only on production, %d only on standby, %d differ", k.Kind, len(k.OnlyProduction), len(k.OnlyStandby), len(k.Differ)))
		}
	}
	if len(parts) == 0 {
		r.add("drift", OK, "production and standby agree (apt, pip, projects, configuration)")
		return
	}
	r.add("drift", Warning, strings.Join(parts, "; ")+"; ot-sync-from-source aligns them")
}

func failed(kind string, err error) DriftKind {
	_, line := cli.Describe(err)
	return DriftKind{Kind: kind, Error: cli.Printable(line)}
}

// aptDrift: production's manual packages a sync would mark (and install),
// and the standby's manual packages production does not have; APT_DENY
// filters both, as the sync does.
func aptDrift(j *job.Job) DriftKind {
	inv, err := aptsync.Take(j, aptsync.Options{})
	if err != nil {
		return failed("apt", err)
	}
	k := DriftKind{Kind: "apt", OnlyProduction: inv.Plan.Mark}
	deny := j.Cfg.Words(config.AptDeny)
	for _, n := range inv.Standby {
		if !slices.Contains(inv.Production, n) && aptsync.Denied(n, deny) == "" {
			k.OnlyStandby = append(k.OnlyStandby, n)
		}
	}
	return k
}

// pipDrift: what a sync would install, what it leaves (other versions,
// production's direct installs), and what only the standby has.
func pipDrift(j *job.Job) DriftKind {
	inv, err := pipsync.Take(j, pipsync.Options{})
	if err != nil {
		return failed("pip", err)
	}
	k := DriftKind{Kind: "pip"}
	for _, d := range slices.Concat(inv.Plan.Install, inv.Plan.Direct) {
		k.OnlyProduction = append(k.OnlyProduction, cli.Printable(d.Name+"=="+d.Version))
	}
	for _, d := range inv.Plan.Differ {
		k.Differ = append(k.Differ, cli.Printable(fmt.Sprintf("%s (production %s, standby %s)", d[0].Name, d[0].Version, d[1].Version)))
	}
	prod := map[string]bool{}
	for _, d := range inv.Production {
		prod[pipsync.Normalize(d.Name)] = true
	}
	for _, d := range inv.Standby {
		if n := pipsync.Normalize(d.Name); !prod[n] && !pipsync.Skipped(n) {
			k.OnlyStandby = append(k.OnlyStandby, cli.Printable(d.Name+"=="+d.Version))
		}
	}
	slices.Sort(k.OnlyStandby)
	return k
}

// projectDrift: projects a sync would copy, and those it would move away.
func projectDrift(j *job.Job) DriftKind {
	inv, err := projects.Take(j)
	if err != nil {
		return failed("projects", err)
	}
	k := DriftKind{Kind: "projects", OnlyStandby: inv.Stale}
	for _, n := range inv.Production {
		if !slices.Contains(inv.Standby, n) {
			k.OnlyProduction = append(k.OnlyProduction, n)
		}
	}
	return k
}

// configDrift: what ot-conf-sync would add, remove and change, from its
// own read-only comparison (production's files as a sync would install
// them: apt sources in canonical form, checked as the sync checks them).
func configDrift(j *job.Job) DriftKind {
	d, err := confsync.Compare(j)
	if err != nil {
		return failed("config", err)
	}
	return DriftKind{Kind: "config", OnlyProduction: d.OnlyProduction, OnlyStandby: d.OnlyStandby, Differ: d.Differ}
}
