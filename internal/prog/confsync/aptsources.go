package confsync

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Production's apt sources are parsed, checked and written back in a
// canonical form: only what apt reads as a source reaches the standby,
// never a comment, an unknown field or an option that weakens apt's checks.

// aptSource is one source entry: a line of a .list file or an enabled
// stanza of a .sources file.
type aptSource struct {
	types, uris, suites, components []string
	opts                            []aptOption
	line                            int // where it starts, for messages
}

// aptOption is one option, in one-line form ("arch+=amd64,i386").
type aptOption struct {
	name   string // one-line name: arch, signed-by, ...
	op     string // "=", "+=" or "-="
	values []string
}

// aptOpt describes an option apt knows (sources.list(5)).
type aptOpt struct {
	name, field string // one-line name and deb822 field
	kind        optKind
	// weakens: a true value switches a security check off.
	weakens bool
}

type optKind int

const (
	optMulti optKind = iota // comma-separated list; += and -= allowed
	optBool                 // yes or no
	optValue                // one word
	optKeys                 // signed-by: keyring paths and fingerprints
)

// aptOpts are the options written back, in canonical order.
var aptOpts = []aptOpt{
	{"arch", "Architectures", optMulti, false},
	{"lang", "Languages", optMulti, false},
	{"target", "Targets", optMulti, false},
	{"pdiffs", "PDiffs", optBool, false},
	{"by-hash", "By-Hash", optValue, false},
	{"allow-insecure", "Allow-Insecure", optBool, true},
	{"allow-weak", "Allow-Weak", optBool, true},
	{"allow-downgrade-to-insecure", "Allow-Downgrade-To-Insecure", optBool, true},
	{"trusted", "Trusted", optBool, true},
	{"signed-by", "Signed-By", optKeys, false},
	{"check-valid-until", "Check-Valid-Until", optBool, false},
	{"valid-until-min", "Valid-Until-Min", optValue, false},
	{"valid-until-max", "Valid-Until-Max", optValue, false},
	{"check-date", "Check-Date", optBool, false},
	{"date-max-future", "Date-Max-Future", optValue, false},
	{"inrelease-path", "InRelease-Path", optValue, false},
	{"snapshot", "Snapshot", optValue, false},
}

func optByName(name string) (aptOpt, bool) {
	i := slices.IndexFunc(aptOpts, func(o aptOpt) bool { return o.name == name })
	if i < 0 {
		return aptOpt{}, false
	}
	return aptOpts[i], true
}

func optByField(field string) (o aptOpt, op string, ok bool) {
	for _, o := range aptOpts {
		switch {
		case strings.EqualFold(field, o.field):
			return o, "=", true
		case o.kind == optMulti && strings.EqualFold(field, o.field+"-Add"):
			return o, "+=", true
		case o.kind == optMulti && strings.EqualFold(field, o.field+"-Remove"):
			return o, "-=", true
		}
	}
	return aptOpt{}, "", false
}

// aptSchemes are the URI schemes a synced source may use: apt hands any
// other to a method of that name (ssh and rsh run commands, cdrom asks for
// media).
var aptSchemes = []string{"http", "https", "file", "mirror", "mirror+http", "mirror+https", "mirror+file", "tor+http", "tor+https"}

var (
	wordRe      = regexp.MustCompile(`^[A-Za-z0-9._+~:/@%=-]+$`)
	suiteRe     = regexp.MustCompile(`^[A-Za-z0-9._+~/-]+$|^[A-Za-z0-9._+~/-]*\$\(ARCH\)[A-Za-z0-9._+~/-]*$`)
	fprRe       = regexp.MustCompile(`^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})!?$`)
	inlineKeyRe = regexp.MustCompile(`^-----BEGIN PGP PUBLIC KEY BLOCK-----`)
)

// parseList reads a one-line-style file: "deb [opt=v,v opt=v] URI SUITE
// [COMPONENT...]"; a "#" anywhere starts a comment, as for apt.
func parseList(text string) ([]aptSource, error) {
	var out []aptSource
	for i, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		src, err := parseListLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		src.line = i + 1
		out = append(out, src)
	}
	return out, nil
}

func parseListLine(line string) (aptSource, error) {
	typ := strings.Fields(line)[0]
	rest := strings.TrimSpace(line[len(typ):])
	src := aptSource{types: []string{typ}}
	if strings.HasPrefix(rest, "[") {
		inside, after, ok := strings.Cut(rest[1:], "]")
		if !ok {
			return src, fmt.Errorf("options without a closing \"]\"")
		}
		for _, f := range strings.Fields(inside) {
			o, err := parseListOption(f)
			if err != nil {
				return src, err
			}
			src.opts = append(src.opts, o)
		}
		rest = after
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return src, fmt.Errorf("a source needs a URI and a suite")
	}
	src.uris, src.suites, src.components = f[:1], f[1:2], f[2:]
	return src, nil
}

func parseListOption(f string) (aptOption, error) {
	k, v, ok := strings.Cut(f, "=")
	if !ok {
		return aptOption{}, fmt.Errorf("option %q has no value", f)
	}
	op := "="
	switch {
	case strings.HasSuffix(k, "+"):
		k, op = strings.TrimSuffix(k, "+"), "+="
	case strings.HasSuffix(k, "-"):
		k, op = strings.TrimSuffix(k, "-"), "-="
	}
	o, known := optByName(strings.ToLower(k))
	if !known {
		return aptOption{}, fmt.Errorf("unknown option %q", k)
	}
	if op != "=" && o.kind != optMulti {
		return aptOption{}, fmt.Errorf("option %q takes no %s", k, op)
	}
	return aptOption{name: o.name, op: op, values: splitValues(v, ",")}, nil
}

func splitValues(v, seps string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(seps, r) || r == ' ' || r == '\t' || r == '\n' })
}

// deb822Field is one "Field: value" of a .sources stanza.
type deb822Field struct {
	name, value string
	line        int
}

// parseDeb822 reads a .sources file: stanzas of "Field: value" lines
// (continued on lines that start with a space or tab), separated by blank
// lines; "#" starts a comment line. Stanzas with "Enabled: no" are left
// out.
func parseDeb822(text string) ([]aptSource, error) {
	var out []aptSource
	var stanza []deb822Field
	flush := func() error {
		if len(stanza) == 0 {
			return nil
		}
		src, enabled, err := deb822Stanza(stanza)
		stanza = nil
		if enabled {
			out = append(out, src)
		}
		return err
	}
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case strings.TrimSpace(line) == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case line[0] == ' ' || line[0] == '\t':
			if len(stanza) == 0 {
				return nil, fmt.Errorf("line %d: a continuation line outside a field", i+1)
			}
			stanza[len(stanza)-1].value += "\n" + line
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: not a \"Field: value\" line", i+1)
			}
			stanza = append(stanza, deb822Field{strings.TrimSpace(k), v, i + 1})
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// deb822Stanza builds a source from one stanza; enabled is false for a
// stanza apt skips (and for one in error).
func deb822Stanza(fields []deb822Field) (src aptSource, enabled bool, err error) {
	src.line = fields[0].line
	enabled = true
	seen := map[string]bool{}
	for _, f := range fields {
		key := strings.ToLower(f.name)
		if seen[key] {
			return src, false, fmt.Errorf("line %d: field %s given twice", f.line, f.name)
		}
		seen[key] = true
		switch key {
		case "types":
			src.types = strings.Fields(f.value)
		case "uris":
			src.uris = strings.Fields(f.value)
		case "suites":
			src.suites = strings.Fields(f.value)
		case "components":
			src.components = strings.Fields(f.value)
		case "enabled":
			v := strings.TrimSpace(f.value)
			b, ok := aptBool(v)
			if !ok {
				return src, false, fmt.Errorf("line %d: Enabled is %q, not yes or no", f.line, v)
			}
			enabled = b
		default:
			if strings.HasPrefix(key, "x-") {
				continue // user fields, which apt ignores: not written back
			}
			o, op, ok := optByField(f.name)
			if !ok {
				return src, false, fmt.Errorf("line %d: unknown field %q", f.line, f.name)
			}
			vals := splitValues(f.value, ",")
			if o.kind == optKeys && inlineKeyRe.MatchString(strings.TrimSpace(f.value)) {
				vals = []string{inlineKey(f.value)}
			}
			src.opts = append(src.opts, aptOption{name: o.name, op: op, values: vals})
		}
	}
	if !enabled {
		return src, false, nil
	}
	if len(src.types) == 0 || len(src.uris) == 0 || len(src.suites) == 0 {
		return src, false, fmt.Errorf("line %d: a stanza needs Types, URIs and Suites", src.line)
	}
	return src, true, nil
}

// inlineKey turns a deb822 multi-line key back into armored text: each
// continuation line loses its leading space, and " ." is an empty line.
func inlineKey(value string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(value), "\n") {
		l = strings.TrimSpace(l)
		if l == "." {
			l = ""
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// aptBool reads a boolean as apt's StringToBool does.
func aptBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "yes", "true", "with", "on", "enable", "1":
		return true, true
	case "no", "false", "without", "off", "disable", "0":
		return false, true
	}
	return false, false
}

// check says why a source is refused (nil when it is not), given a check
// of each signed-by value; it also puts the options in canonical form.
func (src *aptSource) check(keyring func(value string) error) error {
	for _, t := range src.types {
		if t != "deb" && t != "deb-src" {
			return fmt.Errorf("type %q is not deb or deb-src", t)
		}
	}
	for _, u := range src.uris {
		if err := checkURI(u); err != nil {
			return err
		}
	}
	for _, s := range src.suites {
		if !suiteRe.MatchString(s) {
			return fmt.Errorf("suite %q holds unexpected characters", s)
		}
	}
	if len(src.components) == 0 && slices.ContainsFunc(src.suites, func(s string) bool { return !strings.HasSuffix(s, "/") }) {
		return fmt.Errorf("suite %q needs components (only a suite ending in \"/\" goes without)", src.suites[0])
	}
	for _, c := range src.components {
		if !wordRe.MatchString(c) {
			return fmt.Errorf("component %q holds unexpected characters", c)
		}
	}
	for i := range src.opts {
		if err := src.opts[i].check(keyring); err != nil {
			return err
		}
	}
	slices.SortStableFunc(src.opts, func(a, b aptOption) int {
		return slices.IndexFunc(aptOpts, func(o aptOpt) bool { return o.name == a.name }) -
			slices.IndexFunc(aptOpts, func(o aptOpt) bool { return o.name == b.name })
	})
	return nil
}

func checkURI(u string) error {
	p, err := url.Parse(u)
	if err != nil || hasControl(u) || strings.ContainsAny(u, " []\"'\\") {
		return fmt.Errorf("URI %q is not a plain URI", u)
	}
	if !slices.Contains(aptSchemes, strings.ToLower(p.Scheme)) {
		return fmt.Errorf("URI %q uses the %q method, which a synced source may not (allowed: %s)", u, p.Scheme, strings.Join(aptSchemes, " "))
	}
	return nil
}

func (o *aptOption) check(keyring func(string) error) error {
	d, _ := optByName(o.name)
	if len(o.values) == 0 {
		return fmt.Errorf("option %s has no value", o.name)
	}
	switch d.kind {
	case optBool:
		if len(o.values) != 1 {
			return fmt.Errorf("option %s takes yes or no", o.name)
		}
		b, ok := aptBool(o.values[0])
		if !ok {
			return fmt.Errorf("option %s=%s is not yes or no", o.name, o.values[0])
		}
		if b && d.weakens {
			return fmt.Errorf("%s=yes switches off apt's signature checks", o.name)
		}
		o.values = []string{map[bool]string{true: "yes", false: "no"}[b]}
	case optValue:
		if len(o.values) != 1 || !wordRe.MatchString(o.values[0]) {
			return fmt.Errorf("option %s holds unexpected characters", o.name)
		}
	case optMulti:
		for _, v := range o.values {
			if !wordRe.MatchString(v) {
				return fmt.Errorf("option %s value %q holds unexpected characters", o.name, v)
			}
		}
	case optKeys:
		for _, v := range o.values {
			if err := keyring(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// formatList writes sources in one-line style, one line per type, URI and
// suite.
func formatList(srcs []aptSource) string {
	var b strings.Builder
	for _, s := range srcs {
		var opts []string
		for _, o := range s.opts {
			opts = append(opts, o.name+o.op+strings.Join(o.values, ","))
		}
		for _, t := range s.types {
			for _, u := range s.uris {
				for _, suite := range s.suites {
					b.WriteString(t)
					if len(opts) > 0 {
						b.WriteString(" [" + strings.Join(opts, " ") + "]")
					}
					b.WriteString(" " + u + " " + suite)
					for _, c := range s.components {
						b.WriteString(" " + c)
					}
					b.WriteString("\n")
				}
			}
		}
	}
	return b.String()
}

// formatDeb822 writes sources as .sources stanzas.
func formatDeb822(srcs []aptSource) string {
	var b strings.Builder
	for i, s := range srcs {
		if i > 0 {
			b.WriteString("\n")
		}
		field := func(name string, values []string) {
			if len(values) > 0 {
				b.WriteString(name + ": " + strings.Join(values, " ") + "\n")
			}
		}
		field("Types", s.types)
		field("URIs", s.uris)
		field("Suites", s.suites)
		field("Components", s.components)
		for _, o := range s.opts {
			d, _ := optByName(o.name)
			name := d.field
			switch o.op {
			case "+=":
				name += "-Add"
			case "-=":
				name += "-Remove"
			}
			field(name, o.values)
		}
	}
	return b.String()
}
