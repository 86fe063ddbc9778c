package pipsync

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// Local is how this standby's pip runs: PIP as root, or, when its
// virtualenv belongs to another user (ODOO_USER as a rule), as that user
// through setpriv. That user can change every file of the virtualenv,
// python and pip included, so root running them would run that user's
// code; and a package pip builds from source runs its own code, which
// must not run as root.
type Local struct {
	Pip  []string // PIP, as configured
	User string   // who runs it: "root" or the owner's name (or uid)
	// Owned is what made that user the owner: the virtualenv or the file.
	Owned  string
	prefix []string // setpriv ... --, or nil
	env    []string // the owner's HOME, USER and LOGNAME
}

// Standby returns how PIP runs on this machine. Only root can switch
// users; PIP not found is left for the command itself to report.
func Standby(pip []string) Local {
	l := Local{Pip: pip, User: "root"}
	if len(pip) == 0 || os.Geteuid() != 0 {
		return l
	}
	exe := pip[0]
	if !filepath.IsAbs(exe) {
		p, err := exec.LookPath(exe)
		if err != nil {
			return l
		}
		exe = p
	}
	uid, gid, owned := owner(exe)
	if uid == 0 {
		return l
	}
	l.Owned = owned
	name, home, group := strconv.FormatUint(uint64(uid), 10), "/", strconv.FormatUint(uint64(gid), 10)
	groups := "--clear-groups"
	if u, err := user.LookupId(name); err == nil {
		name, home, group, groups = u.Username, u.HomeDir, u.Gid, "--init-groups"
	}
	l.User = name
	// The environment is root's (proxies and PIP_* settings keep
	// working), but for who the process is: pip's cache and per-user
	// configuration are the owner's, never root's.
	l.prefix = []string{"setpriv", "--reuid=" + name, "--regid=" + group, groups, "--"}
	l.env = []string{"HOME=" + home, "USER=" + name, "LOGNAME=" + name}
	return l
}

// owner is the first non-root owner of PIP's virtualenv (the directory
// above the bin/ holding exe, when it has a pyvenv.cfg: the directory, its
// pyvenv.cfg, its bin/) or of exe itself (not followed: a venv's python
// links to the system's), with the primary group; uid 0 when all are root's.
func owner(exe string) (uid, gid uint32, owned string) {
	var paths []string
	venv := filepath.Dir(filepath.Dir(exe))
	if _, err := os.Lstat(filepath.Join(venv, "pyvenv.cfg")); err == nil {
		paths = append(paths, venv, filepath.Join(venv, "pyvenv.cfg"), filepath.Dir(exe))
	}
	for _, p := range append(paths, exe) {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			return st.Uid, st.Gid, p
		}
	}
	return 0, 0, ""
}

// Argv is PIP with args, as it runs.
func (l Local) Argv(args ...string) []string {
	return slices.Concat(l.prefix, l.Pip, args)
}

// Step runs PIP with args. Its working directory is "/": `python -m pip`
// imports from the working directory first, and a pip/ planted in one that
// others can write (/tmp) would run instead of pip.
func (l Local) Step(args ...string) run.Step {
	return run.Step{Argv: l.Argv(args...), Env: l.env, Dir: "/"}
}
