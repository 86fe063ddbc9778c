package confsync

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

// nginx's master runs as root and, even under nginx -t, opens every log
// file and creates (and chowns to its worker user) every temporary and
// cache directory its configuration names. Production's sites are read
// here first, with nginx's own tokenizer rules, and refused when they name
// such a path outside the allowed directories or load code.

// directive is one nginx statement: its words, unquoted as nginx does.
type directive struct {
	args []string // args[0] is the name
	line int
}

// errNginxSyntax wraps what keeps a file from being read as nginx
// configuration.
var errNginxSyntax = errors.New("not nginx configuration")

// nginxDirectives calls visit with every statement of an nginx
// configuration file, in order, block openers included (their words before
// "{"), until visit returns false; a syntax error is found only as far as
// the statements before it were visited (a refused Lua block's body is
// never read as nginx syntax). It follows
// ngx_conf_read_token in src/core/ngx_conf_file.c: words split on
// whitespace, ";" and "{"; "#" starts a comment only where a word could
// start; single and double quotes; backslash escapes; "${" inside a
// variable. Every statement nginx would see is seen here, so a check of
// the names cannot be walked around by quoting or escaping.
func nginxDirectives(data []byte, visit func(directive) bool) error {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return fmt.Errorf("%w: a NUL byte on line %d", errNginxSyntax, 1+bytes.Count(data[:i], []byte("\n")))
	}
	t := &nginxTokenizer{data: data, line: 1}
	depth := 0
	for {
		args, end, line, err := t.statement()
		if err != nil {
			return err
		}
		switch end {
		case endFile:
			if depth > 0 {
				return fmt.Errorf("%w: unexpected end of file, expecting \"}\" (line %d)", errNginxSyntax, t.line)
			}
			return nil
		case endBlockDone:
			if depth == 0 {
				return fmt.Errorf("%w: unexpected \"}\" on line %d", errNginxSyntax, line)
			}
			depth--
			continue
		case endBlockStart:
			depth++
		}
		if !visit(directive{args: args, line: line}) {
			return nil
		}
	}
}

type tokenEnd int

const (
	endStatement  tokenEnd = iota // ";"
	endBlockStart                 // "{"
	endBlockDone                  // "}"
	endFile
)

type nginxTokenizer struct {
	data []byte
	pos  int
	line int
}

// statement reads words up to the next ";", "{" or "}" (or the end).
func (t *nginxTokenizer) statement() (args []string, end tokenEnd, line int, err error) {
	var (
		needSpace, quoted, sQuoted, dQuoted, sharp, variable bool
		lastSpace                                            = true
		start                                                int
	)
	line = t.line
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format+" on line %d", append([]any{errNginxSyntax}, append(a, t.line)...)...)
	}
	for {
		if t.pos >= len(t.data) {
			if len(args) > 0 || !lastSpace {
				return nil, 0, line, fail("unexpected end of file, expecting \";\" or \"}\"")
			}
			return nil, endFile, line, nil
		}
		ch := t.data[t.pos]
		t.pos++
		if ch == '\n' {
			t.line++
			sharp = false
		}
		if sharp {
			continue
		}
		if quoted {
			quoted = false
			continue
		}
		if needSpace {
			switch ch {
			case ' ', '\t', '\r', '\n':
				lastSpace, needSpace = true, false
				continue
			case ';':
				return args, endStatement, line, nil
			case '{':
				return args, endBlockStart, line, nil
			case ')':
				lastSpace, needSpace = true, false
			default:
				return nil, 0, line, fail("unexpected %q", ch)
			}
		}
		if lastSpace {
			start = t.pos - 1
			if len(args) == 0 {
				line = t.line
			}
			switch ch {
			case ' ', '\t', '\r', '\n':
				continue
			case ';', '{':
				if len(args) == 0 {
					return nil, 0, line, fail("unexpected %q", ch)
				}
				if ch == '{' {
					return args, endBlockStart, line, nil
				}
				return args, endStatement, line, nil
			case '}':
				if len(args) != 0 {
					return nil, 0, line, fail("unexpected \"}\"")
				}
				return nil, endBlockDone, line, nil
			case '#':
				sharp = true
				continue
			case '\\':
				quoted, lastSpace = true, false
				continue
			case '"':
				start++
				dQuoted, lastSpace = true, false
				continue
			case '\'':
				start++
				sQuoted, lastSpace = true, false
				continue
			case '$':
				variable, lastSpace = true, false
				continue
			default:
				lastSpace = false
			}
			continue
		}
		if ch == '{' && variable {
			continue
		}
		variable = false
		if ch == '\\' {
			quoted = true
			continue
		}
		if ch == '$' {
			variable = true
			continue
		}
		found := false
		switch {
		case dQuoted:
			if ch == '"' {
				dQuoted, needSpace, found = false, true, true
			}
		case sQuoted:
			if ch == '\'' {
				sQuoted, needSpace, found = false, true, true
			}
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ';' || ch == '{':
			lastSpace, found = true, true
		}
		if !found {
			continue
		}
		args = append(args, unescape(t.data[start:t.pos-1]))
		switch ch {
		case ';':
			return args, endStatement, line, nil
		case '{':
			return args, endBlockStart, line, nil
		}
	}
}

// unescape makes a word the way nginx does: \" \' \\ lose the backslash,
// \t \r \n become the control character, any other backslash stays.
func unescape(src []byte) string {
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		if src[i] == '\\' && i+1 < len(src) {
			switch src[i+1] {
			case '"', '\'', '\\':
				i++
			case 't':
				b.WriteByte('\t')
				i++
				continue
			case 'r':
				b.WriteByte('\r')
				i++
				continue
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			}
		}
		b.WriteByte(src[i])
	}
	return b.String()
}

// nginxPolicy says what production's nginx sites may name.
type nginxPolicy struct {
	dir       string   // NGINX_DIR: include must stay inside
	logDirs   []string // NGINX_LOG_DIRS
	cacheDirs []string // NGINX_CACHE_DIRS
	conf      string   // the configuration file naming the keys, for hints
}

// refusedNames are directives that load code into nginx or change what its
// root master is (user, environment, pid and lock files, core dumps).
var refusedNames = map[string]string{
	"load_module":               "loads a module (code) into nginx",
	"user":                      "changes the user nginx's workers run as",
	"pid":                       "makes nginx's root master write its pid file there",
	"lock_file":                 "makes nginx's root master create its lock file there",
	"env":                       "changes the environment of nginx's processes",
	"working_directory":         "changes nginx's working directory (core dumps)",
	"worker_rlimit_core":        "changes nginx's core dump limit",
	"google_perftools_profiles": "makes nginx write profiles there",
	"debug_points":              "makes nginx stop or dump core on internal errors",
	"daemon":                    "changes how nginx's master runs",
	"master_process":            "changes how nginx's master runs",
	"ssl_engine":                "loads an OpenSSL engine (code) into nginx",
	"xslt_stylesheet":           "loads an XSLT program, which can write files",
}

// refusedPrefixes are modules whose directives run code: embedded Perl,
// njs, Lua (OpenResty), mruby, wasm, and the RTMP module's exec.
var refusedPrefixes = []string{"perl", "js_", "mruby_", "wasm_", "exec"}

// logDirectives write files where they point, opened by the root master.
var logDirectives = map[string]bool{"access_log": true, "error_log": true}

// refusal is why production's file is refused, and what to do.
type refusal struct {
	where string // file:line
	why   string
	hint  string
}

func (r *refusal) Error() string { return r.where + ": " + r.why }

// codeHint is what to do about a directive that is never synced.
const codeHint = "remove it from production's sites, or take nginx out of CONF_SYNC and set the standby's nginx up by hand"

// check returns why file (its path relative to the synced tree) is
// refused, or nil.
func (p nginxPolicy) check(file string, data []byte) *refusal {
	var r *refusal
	err := nginxDirectives(data, func(d directive) bool {
		if why, hint := p.refuse(d.args); why != "" {
			r = &refusal{where: fmt.Sprintf("%s:%d", file, d.line), why: why, hint: hint}
		}
		return r == nil
	})
	if err != nil {
		return &refusal{where: file, why: err.Error(), hint: "nginx would not read it either: fix it on production"}
	}
	return r
}

// refuse returns why a statement is refused and what to do, or "".
func (p nginxPolicy) refuse(args []string) (why, hint string) {
	name := args[0]
	arg := ""
	if len(args) > 1 {
		arg = args[1]
	}
	if why, ok := refusedNames[name]; ok {
		return fmt.Sprintf("%q %s", name, why), codeHint
	}
	for _, pre := range refusedPrefixes {
		if strings.HasPrefix(name, pre) {
			return fmt.Sprintf("%q runs code inside nginx", name), codeHint
		}
	}
	if strings.Contains(name, "lua") {
		return fmt.Sprintf("%q runs code inside nginx", name), codeHint
	}
	switch {
	case name == "include":
		return p.include(arg)
	case logDirectives[name]:
		return p.logPath(name, arg)
	case strings.HasSuffix(name, "_temp_path"), strings.HasSuffix(name, "_cache_path"), name == "state_path":
		return p.cachePath(name, arg)
	case strings.HasSuffix(name, "_store") && arg != "off":
		return fmt.Sprintf("%q makes nginx store responses as files wherever it points", name), "use \"off\" on production, or " + codeHint
	case strings.HasSuffix(name, "ssl_certificate_key") && (strings.HasPrefix(arg, "engine:") || strings.HasPrefix(arg, "store:")):
		return fmt.Sprintf("%s %q loads an OpenSSL engine or store (code) into nginx", name, arg), codeHint
	case name == "keyval_zone":
		for _, a := range args[1:] {
			if v, ok := strings.CutPrefix(a, "state="); ok {
				return p.cachePath(name+" state", v)
			}
		}
	}
	return "", ""
}

// logPath checks where access_log or error_log writes.
func (p nginxPolicy) logPath(name, path string) (why, hint string) {
	switch {
	case path == "off" || path == "stderr",
		strings.HasPrefix(path, "syslog:"), strings.HasPrefix(path, "memory:"):
		return "", ""
	}
	if why := p.outside(path, p.logDirs); why != "" {
		return fmt.Sprintf("%s %q %s, and nginx opens it as root, even under nginx -t", name, path, why),
			fmt.Sprintf("log under %s on production, or add the directory to NGINX_LOG_DIRS in %s", strings.Join(p.logDirs, " "), p.conf)
	}
	return "", ""
}

// cachePath checks a directory nginx creates and gives to its workers.
func (p nginxPolicy) cachePath(name, path string) (why, hint string) {
	if why := p.outside(path, p.cacheDirs); why != "" {
		return fmt.Sprintf("%s %q %s, and nginx creates it as root and gives it to its worker user, even under nginx -t", name, path, why),
			fmt.Sprintf("use a directory below %s on production, or add one to NGINX_CACHE_DIRS in %s", strings.Join(p.cacheDirs, " "), p.conf)
	}
	return "", ""
}

// include checks that an include stays inside NGINX_DIR (relative names
// are relative to it, as nginx reads them).
func (p nginxPolicy) include(path string) (why, hint string) {
	full := path
	if !filepath.IsAbs(full) {
		full = filepath.Join(p.dir, full)
	}
	if path == "" || hasControl(path) || hasDotDot(path) || !strings.HasPrefix(filepath.Clean(full), p.dir+"/") {
		return fmt.Sprintf("include %q reads a file outside %s, which is neither synced nor checked", path, p.dir),
			"include files from " + p.dir + " only on production"
	}
	return "", ""
}

// outside says why path is not a plain absolute path strictly below one of
// dirs, on the names and after following the symlinks that exist here;
// "" when it is.
func (p nginxPolicy) outside(path string, dirs []string) string {
	switch {
	case path == "":
		return "is empty"
	case !filepath.IsAbs(path):
		return "is relative (to nginx's prefix, outside the allowed directories)"
	case hasControl(path):
		return "holds a control character"
	case strings.Contains(path, "$"):
		return "holds a variable, so where it writes is not known before a request"
	case hasDotDot(path) || filepath.Clean(path) != path:
		return "is not a plain path"
	}
	for _, d := range dirs {
		if strings.HasPrefix(path, d+"/") && resolvedBelow(path, d) {
			return ""
		}
	}
	return "is outside " + strings.Join(dirs, " ")
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func hasDotDot(p string) bool {
	return p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../")
}

// resolvedBelow reports whether path, with the symlinks of its existing
// part followed, still lies strictly below dir (also followed): a link
// planted in a log directory must not lead root elsewhere.
func resolvedBelow(path, dir string) bool {
	rdir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		rdir = dir
	}
	existing, rest := path, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return false
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	r, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return false
	}
	return strings.HasPrefix(filepath.Join(r, rest), rdir+"/")
}

// nginxPrepare checks every file of production's staged sites before any
// of them can reach the place nginx reads (nginx -t included).
func (s *syncer) nginxPrepare(trees []*staged) error {
	cfg := s.j.Cfg
	p := nginxPolicy{
		dir:       filepath.Clean(cfg.Get(config.NginxDir)),
		logDirs:   cleanAll(cfg.Words(config.NginxLogDirs)),
		cacheDirs: cleanAll(cfg.Words(config.NginxCacheDirs)),
		conf:      cfg.Path,
	}
	for _, st := range trees {
		err := filepath.WalkDir(st.copy, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(st.copy, path)
			if r := p.check(cli.Printable(filepath.Join(st.path, rel)), data); r != nil {
				return cli.Fail(cli.ExitRefused, "production's nginx site "+r.where+" refused: "+cli.Printable(r.why), r.hint+"; "+p.dir+" was not changed")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func cleanAll(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Clean(p)
	}
	return out
}
