// Package confsync is ot-conf-sync: it copies a selection of configuration
// from production (CONF_SYNC: odoo, nginx, apt) to the same paths here.
//
// Production may be hostile: each set is first fetched into a private
// staging folder over the run's one ssh connection and checked there
// (symlinks must stay inside the set, production's copy must not be empty,
// nginx sites must not make nginx's root master write outside the allowed
// directories or load code, apt sources are only sources, rewritten in
// canonical form, signed by keys this machine has, for this machine's
// release). Only a set that differs is installed: the standby's
// current copy is kept under BACKUP_DIR/<timestamp>/<path> first, then one
// local rsync per path makes it equal to the staged copy. nginx -t (when
// nginx is installed) and apt-get update check the result; when they fail
// the set is restored from the backup and the command fails.
package confsync

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/job"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
)

// Name is the command's name, as stamped in the summary file.
const Name = "ot-conf-sync"

// Options tune a sync; the zero value is the default.
type Options struct {
	Quiet bool // print no summary lines (cron)
	// AptConfig holds extra apt settings "Key=Value", passed as "-o
	// Key=Value" to apt-get update. Tests give apt private lists and cache
	// directories with it (Dir::State::Lists, Dir::Cache); APT_DIR is
	// always passed as Dir::Etc.
	AptConfig []string
	// OSRelease names this machine's release (VERSION_CODENAME); "" means
	// /etc/os-release.
	OSRelease string
}

// CLI is ot-conf-sync's command line.
type CLI struct {
	cli.Globals
	job.Flags
}

// Main is the program.
func Main(args []string) int {
	return cli.Main(Name, "Copy configuration from production (CONF_SYNC: odoo.conf, nginx sites-available and sites-enabled, apt's package sources), keeping what it replaces under BACKUP_DIR. Production's files are checked first: an nginx site that would make nginx write outside NGINX_LOG_DIRS or NGINX_CACHE_DIRS or load code, and an apt source that weakens apt's signature checks or needs a key this machine lacks, are refused (exit 8). nginx -t and apt-get update check the result, and a failed check restores the previous files.", args, &CLI{})
}

// Run runs the sync as a job (root, lock, ssh master, summary line).
func (c *CLI) Run(env *cli.Env) error {
	return job.Sync(env, Name, c.Flags, func(j *job.Job) error {
		return Sync(j, Options{Quiet: c.Cron})
	})
}

// Sets are the configuration sets CONF_SYNC may name, in the order synced.
var Sets = []string{"odoo", "nginx", "apt"}

// Sync copies every configured set. A failing set does not stop the others
// (they are independent, and the standby should lose as little as it can),
// as in ot-sync-from-source; the run fails if any set failed.
func Sync(j *job.Job, opts Options) error {
	names, err := setNames(j)
	if err != nil {
		return err
	}
	s, err := newSyncer(j, opts)
	if err != nil {
		return err
	}
	defer os.RemoveAll(s.stage)
	var failed []string
	var errs []error
	for _, name := range Sets {
		if !slices.Contains(names, name) {
			continue
		}
		set, err := s.set(name)
		if err == nil {
			err = s.sync(set)
		}
		if err == nil {
			continue
		}
		if j.Ctx.Err() != nil {
			return err
		}
		failed, errs = append(failed, name), append(errs, err)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	code, _ := cli.Describe(errs[0]) // the sets' common exit status, else 1
	for i, err := range errs {
		c, line := cli.Describe(err)
		fmt.Fprintf(j.Stderr, "%s: error: %s: %s\n", Name, failed[i], line)
		if c != code {
			code = cli.ExitFailure
		}
	}
	return cli.Fail(code, fmt.Sprintf("%d configuration sets failed: %s", len(errs), strings.Join(failed, ", ")), "see the errors above, fix them and run "+Name+" again")
}

// setNames are the sets CONF_SYNC names.
func setNames(j *job.Job) ([]string, error) {
	names := j.Cfg.Words(config.ConfSync)
	for _, n := range names {
		if !slices.Contains(Sets, n) {
			return nil, cli.Fail(cli.ExitConfig, fmt.Sprintf("CONF_SYNC in %s names %q", j.Cfg.Path, n), "use some of: "+strings.Join(Sets, " "))
		}
	}
	return names, nil
}

// newSyncer prepares a run: its private staging folder (the caller removes
// it), backup folder and the suite's own files.
func newSyncer(j *job.Job, opts Options) (*syncer, error) {
	stage, err := os.MkdirTemp("", "ot-conf-sync-")
	if err != nil {
		return nil, err
	}
	return &syncer{j: j, opts: opts, stage: stage, backup: j.Backup(), own: ownFiles(j)}, nil
}

// Drift is how production's configuration, as a sync would install it,
// differs from the standby's: paths on the standby.
type Drift struct {
	OnlyProduction, OnlyStandby, Differ []string
}

// Compare is the read-only half of a sync, for ot-status --drift: each
// configured set is fetched, checked and compared as a sync would, and
// nothing here is changed. A set a sync would refuse is the error.
func Compare(j *job.Job) (Drift, error) {
	var d Drift
	names, err := setNames(j)
	if err != nil {
		return d, err
	}
	s, err := newSyncer(j, Options{Quiet: true})
	if err != nil {
		return d, err
	}
	defer os.RemoveAll(s.stage)
	for _, name := range Sets {
		if !slices.Contains(names, name) {
			continue
		}
		set, err := s.set(name)
		if err != nil {
			return d, err
		}
		trees, err := s.inventory(set)
		if err != nil {
			return d, err
		}
		for _, st := range trees {
			d.add(st)
		}
	}
	return d, nil
}

// add sorts a tree's itemized changes into d.
func (d *Drift) add(st *staged) {
	for _, l := range st.changes.Lines {
		it, ok := rsync.ParseItem(l)
		if !ok || it.Dir() {
			continue
		}
		path, copy := st.path, st.copy
		if st.dir {
			path, copy = filepath.Join(st.path, it.Name), filepath.Join(st.copy, it.Name)
		}
		switch {
		case it.Deleting():
			d.OnlyStandby = append(d.OnlyStandby, cli.Printable(path))
		case it.New():
			d.OnlyProduction = append(d.OnlyProduction, cli.Printable(path))
		default:
			d.Differ = append(d.Differ, fmt.Sprintf("%s (production %s, standby %s)", cli.Printable(path), describe(copy), describe(path)))
		}
	}
}

// describe names a file's content briefly: its sha256's first 12 digits,
// or a symlink's target.
func describe(p string) string {
	if target, err := os.Readlink(p); err == nil {
		return "symlink to " + cli.Printable(target)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "unreadable"
	}
	return fmt.Sprintf("sha256 %x", sha256.Sum256(data))[:len("sha256 ")+12]
}

// Paths are the paths the configured sets copy, the same on both machines:
// files and directories, and glob patterns for the apt sources.
func Paths(cfg *config.Config) []string {
	var paths []string
	for _, set := range cfg.Words(config.ConfSync) {
		switch set {
		case "odoo":
			paths = append(paths, cfg.Get(config.OdooConf))
		case "nginx":
			dir := filepath.Clean(cfg.Get(config.NginxDir))
			paths = append(paths, filepath.Join(dir, "sites-available"), filepath.Join(dir, "sites-enabled"))
		case "apt":
			dir := filepath.Clean(cfg.Get(config.AptDir))
			for _, p := range aptPaths {
				paths = append(paths, filepath.Join(dir, p))
			}
		}
	}
	return paths
}

// ownFiles are the suite's own files, never synced from production.
func ownFiles(j *job.Job) []string {
	own := []string{j.Cfg.Path, j.Cfg.Get(config.SSHKnownHosts), j.Cfg.Get(config.SSHIdentity), "/etc/odoo/ot-redundancy-sync.conf"}
	for i, p := range own {
		if abs, err := filepath.Abs(p); err == nil {
			own[i] = abs
		}
	}
	return own
}

// set describes one configuration set.
func (s *syncer) set(name string) (set, error) {
	cfg := s.j.Cfg
	switch name {
	case "odoo":
		conf := filepath.Clean(cfg.Get(config.OdooConf))
		if slices.Contains(s.own, conf) {
			return set{}, cli.Fail(cli.ExitConfig, "ODOO_CONF "+conf+" is the suite's own file, which is never synced", "point ODOO_CONF at Odoo's configuration file")
		}
		chown, chmod := odooOwner(conf, cfg.Get(config.OdooUser), cfg.Get(config.OdooGroup))
		return set{name: name, trees: []tree{{path: conf, chown: chown, chmod: chmod, follow: true}}, after: s.odooWarn}, nil
	case "nginx":
		dir := filepath.Clean(cfg.Get(config.NginxDir))
		t := func(sub string) tree {
			return tree{path: filepath.Join(dir, sub), dir: true, chown: "root:root", chmod: etcChmod, links: []string{dir}}
		}
		return set{name: name, trees: []tree{t("sites-available"), t("sites-enabled")}, prepare: s.nginxPrepare, check: s.nginxTest}, nil
	default: // apt
		dir := filepath.Clean(cfg.Get(config.AptDir))
		return set{name: name, trees: []tree{{path: dir, dir: true, chown: "root:root", chmod: etcChmod, follow: true, filter: aptFilter}},
			prepare: s.aptPrepare, check: s.aptUpdate}, nil
	}
}

// etcChmod: production's modes, minus setuid/setgid and group/other write.
const etcChmod = "ug-s,go-w"

// odooOwner keeps the standby's owner and mode of odoo.conf; a new one is
// ODOO_USER:ODOO_GROUP, mode 0640 (it holds database passwords).
func odooOwner(conf, user, group string) (chown, chmod string) {
	chown, chmod = user+":"+group, "F640"
	if fi, err := os.Stat(conf); err == nil {
		if u, g, ok := owner(fi); ok {
			chown = u + ":" + g
		}
		chmod = fmt.Sprintf("F%o", fi.Mode().Perm())
	}
	return chown, chmod
}
