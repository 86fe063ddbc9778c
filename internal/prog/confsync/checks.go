package confsync

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// nginxPath finds nginx, also where cron's PATH does not look.
func nginxPath() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// checkStep runs s after a set is installed; its failure restores the set
// and is reported as what failed, after syncing what.
func (s *syncer) checkStep(st run.Step, what string) *run.Step {
	st.Do = func(ctx context.Context) error {
		if _, err := s.j.Runner.Exec(ctx, st); err != nil {
			return fmt.Errorf("%s: %s", what, lastLine(err))
		}
		return nil
	}
	return &st
}

// nginxTest runs nginx -t on NGINX_DIR/nginx.conf, when nginx is installed.
// "-e stderr" keeps nginx from opening its compiled-in error log first.
func (s *syncer) nginxTest() *run.Step {
	j := s.j
	conf := filepath.Join(filepath.Clean(j.Cfg.Get(config.NginxDir)), "nginx.conf")
	nginx := nginxPath()
	if _, err := os.Stat(conf); nginx == "" || err != nil {
		j.Log.Debug().Str("conf", conf).Msg("nginx is not installed here: its configuration is not tested")
		return nil
	}
	return s.checkStep(run.Step{What: "test the new nginx configuration", Argv: []string{nginx, "-t", "-q", "-e", "stderr", "-c", conf}, Timeout: time.Minute},
		"nginx -t failed after syncing "+filepath.Dir(conf))
}

// aptUpdate runs apt-get update with the synced sources.
func (s *syncer) aptUpdate() *run.Step {
	j := s.j
	argv := []string{"apt-get", "-q", "update", "-o", "Dir::Etc=" + filepath.Clean(j.Cfg.Get(config.AptDir)) + "/"}
	for _, kv := range s.opts.AptConfig {
		argv = append(argv, "-o", kv)
	}
	return s.checkStep(run.Step{What: "read the package lists of the new apt sources", Argv: argv, Timeout: 10 * time.Minute, Env: []string{"LC_ALL=C"}},
		"apt-get update failed after syncing "+j.Cfg.Get(config.AptDir))
}

// nginxPrefix is the "2026/01/02 03:04:05 [emerg] 12#12: " of nginx's messages.
var nginxPrefix = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] \d+#\d+: `)

func lastLine(err error) string {
	// apt ends with a generic summary; nginx with "test failed".
	if l := run.Cause(err, "Some index files failed", "test failed"); l != "" {
		return nginxPrefix.ReplaceAllString(l, "")
	}
	return err.Error()
}

// osCodename reads VERSION_CODENAME from an os-release file.
func osCodename(path string) string {
	if path == "" {
		path = "/etc/os-release"
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_CODENAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// releases are Debian and Ubuntu code names. A suite names a release when
// its part before '-' or '/' is one ("bookworm-updates", "bookworm/updates",
// "bookworm-pgdg"). Suites like "stable" or "./" name none.
var releases = strings.Fields(`hamm slink potato woody sarge etch lenny squeeze wheezy jessie stretch
	buster bullseye bookworm trixie forky duke sid
	trusty xenial bionic cosmic disco eoan focal groovy hirsute impish jammy kinetic lunar mantic
	noble oracular plucky questing resolute`)

func suiteRelease(suite string) string {
	base, _, _ := strings.Cut(suite, "/")
	base, _, _ = strings.Cut(base, "-")
	if slices.Contains(releases, base) {
		return base
	}
	return ""
}

// odooWarn warns when the synced odoo.conf's db_host names production: a
// promoted standby would then write to the old production's database.
func (s *syncer) odooWarn(trees []*staged) {
	data, err := os.ReadFile(trees[0].copy)
	if err != nil {
		return
	}
	host := dbHost(string(data))
	if host == "" {
		return
	}
	if sameHost(s.j.Ctx, host, s.j.SSH.Host) {
		s.j.Log.Warn().Msgf("%s sets db_host = %s, which is production (%s): once this standby is promoted, Odoo would still use the old production's database; make db_host local (or empty) on the standby after promotion", trees[0].path, host, s.j.SSH.Host)
	}
}

// dbHost returns odoo.conf's db_host, or "" when unset or local.
func dbHost(text string) string {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != "db_host" {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(v) {
		case "", "false", "none", "localhost", "127.0.0.1", "::1":
			return ""
		}
		return v
	}
	return ""
}

// sameHost reports whether a and b name the same machine, by name or by an
// address they share.
func sameHost(ctx context.Context, a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs := func(h string) []string {
		if net.ParseIP(h) != nil {
			return []string{net.ParseIP(h).String()}
		}
		out, _ := net.DefaultResolver.LookupHost(ctx, h)
		return out
	}
	bs := addrs(b)
	for _, x := range addrs(a) {
		if slices.Contains(bs, x) {
			return true
		}
	}
	return false
}
