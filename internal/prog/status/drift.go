package status

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
	"github.com/ot-redundancy/ot-redundancy/internal/core/ssh"
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

// probe is a read-only command run on both sides; parse turns its output
// into name -> value (a version, a checksum, or "" for presence only).
type probe struct {
	kind   string
	local  []string
	remote []string
	parse  func(out string) map[string]string
	// partial output counts (find exits 1 when one of several paths is missing)
	partialOK bool
}

// drift compares production and the standby over one ssh connection.
func (c *CLI) drift(env *cli.Env, cfg *config.Config, r *Report) {
	d := &Drift{}
	r.Drift = d
	target, err := ssh.FromConfig(cfg)
	if err != nil {
		d.Error = err.Error()
		r.add("drift", Unknown, "cannot compare with production: "+err.Error())
		return
	}
	conn, err := ssh.Dial(env.Ctx, target)
	if err != nil {
		msg, hint := ssh.Explain(target, err)
		d.Error = msg
		r.add("drift", Warning, "cannot compare with production: "+msg+"; "+hint)
		return
	}
	defer conn.Close()
	q := &run.Runner{Log: env.Log}
	// The probes are slow (apt-mark, pip): all run at once, over the one
	// multiplexed connection.
	ps := probes(cfg)
	d.Kinds = make([]DriftKind, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); d.Kinds[i] = compare(env.Ctx, q, conn, p) }()
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

func compare(ctx context.Context, q *run.Runner, conn *ssh.Conn, p probe) DriftKind {
	k := DriftKind{Kind: p.kind}
	get := func(argv []string) (map[string]string, error) {
		out, err := q.Run(ctx, run.Step{Argv: argv, Dir: "/", Timeout: 2 * time.Minute})
		if err != nil && !(p.partialOK && run.ExitCode(err) == 1) {
			return nil, err
		}
		return p.parse(string(out)), nil
	}
	var prod map[string]string
	var perr error
	done := make(chan struct{})
	go func() { prod, perr = get(conn.Command(p.remote...)); close(done) }()
	local, err := get(p.local)
	<-done
	if perr != nil {
		k.Error = "on production: " + oneLine(perr.Error())
		return k
	}
	if err != nil {
		k.Error = "on the standby: " + oneLine(err.Error())
		return k
	}
	for name, v := range prod {
		lv, ok := local[name]
		switch {
		case !ok:
			k.OnlyProduction = append(k.OnlyProduction, show(name, v))
		case lv != v:
			k.Differ = append(k.Differ, fmt.Sprintf("%s (production %s, standby %s)", oneLine(name), short(v), short(lv)))
		}
	}
	for name, v := range local {
		if _, ok := prod[name]; !ok {
			k.OnlyStandby = append(k.OnlyStandby, show(name, v))
		}
	}
	slices.Sort(k.OnlyProduction)
	slices.Sort(k.OnlyStandby)
	slices.Sort(k.Differ)
	return k
}

func show(name, v string) string {
	if v == "" || len(v) == 64 { // presence only, or a checksum
		return oneLine(name)
	}
	return oneLine(name + "==" + v)
}

func short(v string) string {
	if len(v) == 64 {
		return "sha256 " + v[:12]
	}
	return oneLine(v)
}

func probes(cfg *config.Config) []probe {
	deny := cfg.Words(config.AptDeny)
	pip := func(argv []string) []string {
		return append(argv, "list", "--format=freeze", "--disable-pip-version-check")
	}
	var confPaths []string
	for _, set := range cfg.Words(config.ConfSync) {
		switch set {
		case "odoo":
			confPaths = append(confPaths, cfg.Get(config.OdooConf))
		case "nginx":
			confPaths = append(confPaths, filepath.Join(cfg.Get(config.NginxDir), "sites-available"), filepath.Join(cfg.Get(config.NginxDir), "sites-enabled"))
		case "apt":
			confPaths = append(confPaths, filepath.Join(cfg.Get(config.AptDir), "sources.list"), filepath.Join(cfg.Get(config.AptDir), "sources.list.d"))
		}
	}
	projDir := cfg.Get(config.ProjectsDir)
	list := []probe{
		{kind: "apt", local: []string{"apt-mark", "showmanual"}, remote: []string{"apt-mark", "showmanual"},
			parse: func(out string) map[string]string {
				m := map[string]string{}
				for _, f := range strings.Fields(out) {
					if !matchAny(deny, f) {
						m[f] = ""
					}
				}
				return m
			}},
		{kind: "pip", local: pip(cfg.Command(config.Pip)), remote: pip(cfg.Command(config.RemotePip)),
			parse: func(out string) map[string]string {
				m := map[string]string{}
				for _, l := range strings.Split(out, "\n") {
					name, ver, ok := strings.Cut(strings.TrimSpace(l), "==")
					if ok {
						m[strings.ReplaceAll(strings.ToLower(name), "_", "-")] = ver
					}
				}
				return m
			}},
		{kind: "projects", partialOK: true,
			local:  []string{"find", projDir, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", `%f\n`},
			remote: []string{"find", projDir, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", `%f\n`},
			parse: func(out string) map[string]string {
				m := map[string]string{}
				for _, n := range strings.Split(out, "\n") {
					if n != "" && matchAny(cfg.Words(config.ProjectsPattern), n) && !matchAny(cfg.Words(config.ProjectsExclude), n) {
						m[n] = ""
					}
				}
				return m
			}},
	}
	if len(confPaths) > 0 {
		sums := append(append([]string{"find", "-L"}, confPaths...), "-type", "f", "-exec", "sha256sum", "--", "{}", "+")
		list = append(list, probe{kind: "config", partialOK: true, local: sums, remote: sums,
			parse: func(out string) map[string]string {
				m := map[string]string{}
				for _, l := range strings.Split(out, "\n") {
					sum, file, ok := strings.Cut(l, "  ")
					if ok && len(sum) == 64 {
						m[file] = sum
					}
				}
				return m
			}})
	}
	return list
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
