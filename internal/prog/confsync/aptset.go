package confsync

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kballard/go-shellquote"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/rsync"
)

// The apt set copies package sources only. apt.conf.d (whose hooks such as
// APT::Update::Pre-Invoke run as root), preferences, auth.conf and the
// trusted keys stay the standby's own.

// aptFilter selects what of APT_DIR the apt set syncs: the files apt reads
// sources from. Everything else is left alone (and never deleted).
var aptFilter = []string{"+ /sources.list", "+ /sources.list.d/", "+ /sources.list.d/*.list", "+ /sources.list.d/*.sources", "- *"}

// aptPaths are the patterns of what the apt set syncs, under APT_DIR.
var aptPaths = []string{"sources.list", "sources.list.d/*.list", "sources.list.d/*.sources"}

// aptName is a sources.list.d file name apt reads (apt ignores others).
var aptName = regexp.MustCompile(`^[A-Za-z0-9_.-]+\.(list|sources)$`)

// aptSources are the staged source files, relative to APT_DIR.
func aptSources(dir string) []string {
	var files []string
	if fi, err := os.Lstat(filepath.Join(dir, "sources.list")); err == nil && fi.Mode().IsRegular() {
		files = append(files, "sources.list")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sources.list.d"))
	for _, e := range entries {
		if e.Type().IsRegular() && aptName.MatchString(e.Name()) {
			files = append(files, "sources.list.d/"+e.Name())
		}
	}
	return files
}

// aptPrepare checks production's staged sources and rewrites each in
// canonical form; anything of the staging that apt would not read as a
// source is dropped (and reported).
func (s *syncer) aptPrepare(trees []*staged) error {
	st := trees[0]
	dropped := s.aptDrop(st.copy)
	files := aptSources(st.copy)
	if len(files) == 0 && len(aptSources(st.path)) > 0 {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("production's %s on %s holds no package sources: the standby's are kept", st.path, s.j.SSH.Host), "check production; "+st.path+" was not changed")
	}
	local := osCodename(s.opts.OSRelease)
	if local == "" {
		s.j.Log.Warn().Msg("this machine's release is unknown (no VERSION_CODENAME in /etc/os-release): production's apt sources are not checked against it")
	}
	for _, rel := range files {
		if err := s.aptFile(st, rel, local); err != nil {
			return err
		}
	}
	s.aptReport(st, dropped)
	return nil
}

// aptDrop removes from the staged APT_DIR what apt would not read as a
// source (another file type, a name apt ignores) and returns their names.
func (s *syncer) aptDrop(dir string) []string {
	var dropped []string
	entries, _ := os.ReadDir(filepath.Join(dir, "sources.list.d"))
	for _, e := range entries {
		if !e.Type().IsRegular() || !aptName.MatchString(e.Name()) {
			os.RemoveAll(filepath.Join(dir, "sources.list.d", e.Name()))
			dropped = append(dropped, "sources.list.d/"+cli.Printable(e.Name()))
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "sources.list")); err == nil && !fi.Mode().IsRegular() {
		os.RemoveAll(filepath.Join(dir, "sources.list"))
		dropped = append(dropped, "sources.list")
	}
	return dropped
}

// aptFile checks one staged source file and writes it back canonical.
func (s *syncer) aptFile(st *staged, rel, release string) error {
	p := filepath.Join(st.copy, rel)
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	refuse := func(where, why, hint string) error {
		return cli.Fail(cli.ExitRefused, fmt.Sprintf("production's apt source %s refused: %s", where, why), hint+"; "+st.path+" was not changed")
	}
	parse := parseList
	if strings.HasSuffix(rel, ".sources") {
		parse = parseDeb822
	}
	srcs, err := parse(string(data))
	if err != nil {
		return refuse(filepath.Join(st.path, rel), cli.Printable(err.Error()), "fix it on production")
	}
	for i := range srcs {
		where := fmt.Sprintf("%s:%d", filepath.Join(st.path, rel), srcs[i].line)
		if err := srcs[i].check(func(v string) error { return s.aptKeyring(v) }); err != nil {
			var ke *keyError
			if errors.As(err, &ke) {
				return cli.Fail(cli.ExitRefused, fmt.Sprintf("production's apt source %s refused: %s", where, ke.why), ke.hint+"; "+st.path+" was not changed")
			}
			return refuse(where, cli.Printable(err.Error()), "fix it on production, or take apt out of CONF_SYNC")
		}
		if release == "" {
			continue
		}
		for _, suite := range srcs[i].suites {
			if r := suiteRelease(suite); r != "" && r != release {
				return cli.Fail(cli.ExitRefused, fmt.Sprintf("production's apt sources name release %q (%s), this machine runs %q", r, filepath.Base(rel), release), "upgrade one machine so both run the same release; "+st.path+" was not changed")
			}
		}
	}
	text := formatList(srcs)
	if strings.HasSuffix(rel, ".sources") {
		text = formatDeb822(srcs)
	}
	return os.WriteFile(p, []byte(text), 0o644)
}

// keyError is a signed-by keyring the standby cannot use as it is.
type keyError struct{ why, hint string }

func (e *keyError) Error() string { return e.why }

// aptKeyring checks one signed-by value: a fingerprint (of a key the
// standby trusts already), or a keyring file this machine has and only
// root can change. A key this machine lacks is the operator's to add.
func (s *syncer) aptKeyring(v string) error {
	if fprRe.MatchString(v) {
		return nil
	}
	if inlineKeyRe.MatchString(v) {
		keys, err := keyringKeys([]byte(v))
		if err != nil {
			return fmt.Errorf("signed-by holds a key block that cannot be read: %v", err)
		}
		return &keyError{why: "it embeds a new key in Signed-By: " + keyList(keys),
			hint: "keys are added by the operator: on production, move that key to a keyring file under /etc/apt/keyrings and name the file in Signed-By; ot-conf-sync then shows how to add it here"}
	}
	if config.ValidPath(v) != nil || filepath.Clean(v) != v {
		return fmt.Errorf("signed-by %q is neither a fingerprint nor a plain absolute path", v)
	}
	err := checkRootOnly(v)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return &keyError{why: fmt.Sprintf("its keyring %s cannot be trusted here: %v", v, err),
			hint: "make the keyring and its directories root's and writable by root only (chown root:root, chmod go-w), or fix the source on production"}
	}
	return s.newKeyring(v)
}

// newKeyring fetches production's copy of a keyring this machine lacks
// (read-only, into the staging folder) and refuses with its keys and the
// command that adds it.
func (s *syncer) newKeyring(path string) error {
	j := s.j
	tmp, err := os.MkdirTemp(s.stage, "keyring-")
	if err != nil {
		return err
	}
	dst := filepath.Join(tmp, "keyring")
	argv := []string{"rsync", "--copy-links", "--no-devices", "--no-specials", "--timeout=300", "--max-size=" + maxFile, "--info=skip1"}
	argv = append(append(argv, j.RsyncFrom("")...), "--", j.SSH.Spec(path), dst)
	out, err := j.Runner.Query(j.Ctx, argv...)
	var data []byte
	if err == nil {
		data, err = os.ReadFile(dst)
	}
	if err != nil {
		return &keyError{why: fmt.Sprintf("its keyring %s exists on neither machine (%s)", path, rsync.Explain(err)),
			hint: "fix the source on production"}
	}
	if strings.Contains(string(out), "is over max-size") {
		return &keyError{why: fmt.Sprintf("its keyring %s is larger than %siB on production", path, strings.ToUpper(maxFile)), hint: "check it on production"}
	}
	keys, err := keyringKeys(data)
	if err != nil {
		return &keyError{why: fmt.Sprintf("production's keyring %s cannot be read: %v", path, err), hint: "check it on production"}
	}
	add := []string{"rsync", "--copy-links", "--mkpath", "--chown=root:root", "--chmod=D755,F644",
		"-e", shellquote.Join(append([]string{"ssh"}, j.SSH.Target.Options("")...)...), "--", j.SSH.Spec(path), path}
	return &keyError{
		why:  fmt.Sprintf("its keyring %s is not on this machine; production's holds %s", path, keyList(keys)),
		hint: "a new key is yours to approve: if that fingerprint is the publisher's, add the keyring and run again: " + shellquote.Join(add...),
	}
}

func keyList(keys []openpgpKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, "key "+k.String())
	}
	return strings.Join(s, ", ")
}

// aptReport says what of production's APT_DIR differs from the standby's
// and is not copied: everything but the sources (an rsync -n listing, which
// reads both sides and writes nothing), and source files apt would ignore.
func (s *syncer) aptReport(st *staged, dropped []string) {
	if s.opts.Quiet {
		return
	}
	j := s.j
	argv := append([]string{"rsync", "-n", "-rlc", "--no-devices", "--no-specials", "--timeout=300", "--out-format=" + rsync.ItemFormat}, j.RsyncFrom("")...)
	for _, own := range s.own {
		if strings.HasPrefix(own, st.path+"/") {
			argv = append(argv, "--filter=- /"+strings.TrimPrefix(own, st.path+"/"))
		}
	}
	for _, rule := range aptFilter {
		if r, ok := strings.CutPrefix(rule, "+ "); ok && !strings.HasSuffix(r, "/") {
			argv = append(argv, "--filter=- "+r)
		}
	}
	argv = append(argv, "--", j.SSH.Spec(st.path+"/"), st.path+"/")
	out, err := j.Runner.Query(j.Ctx, argv...)
	if err != nil {
		j.Log.Debug().Err(err).Msg("cannot list what of production's apt configuration is not copied")
		return
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if it, ok := rsync.ParseItem(l); ok && !it.Dir() && (it.New() || it.Transferred()) {
			names = append(names, cli.Printable(it.Name))
		}
	}
	if len(names) > 0 {
		j.Log.Debug().Strs("files", names).Msg("production's apt configuration not copied")
		s.printf("apt: not copied, as apt's own settings, pins, credentials and keys never are (review them by hand): %s\n", shortList(names, 10))
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		s.printf("apt: not copied, as apt reads no sources from them: %s\n", shortList(dropped, 10))
	}
}

// shortList names the first n of names, and how many more there are.
func shortList(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
