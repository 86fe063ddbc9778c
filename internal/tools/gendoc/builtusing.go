package main

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// StdFiles is debian/copyright's Files pattern for the Go standard library
// and runtime, which every Go binary links in.
const StdFiles = "std/*"

// BuiltUsing returns the Static-Built-Using field for the Go binary bin, as
// dh_golang computes it for Debian's own Go packages: every module linked
// in, and the Go toolchain (its standard library and runtime). The modules
// come from the Go module proxy, checked against go.sum, not from Debian
// packages, so each is named the way Debian's Go team names a module's
// source package (dh-make-golang: github.com/alecthomas/kong is
// golang-github-alecthomas-kong) at the module's own version.
//
// It fails when copyrightPath has no Files paragraph "MODULE/*" for a
// module (or StdFiles for the standard library): a new dependency cannot
// reach the package without its licence.
func BuiltUsing(bin, copyrightPath string) (string, error) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", err
	}
	text, err := os.ReadFile(copyrightPath)
	if err != nil {
		return "", err
	}
	covered := filesPatterns(string(text))
	var missing []string
	if !covered[StdFiles] {
		missing = append(missing, "Files: "+StdFiles+" (the Go standard library)")
	}
	goVersion := strings.TrimPrefix(strings.Fields(info.GoVersion)[0], "go")
	major := goVersion
	if parts := strings.SplitN(goVersion, ".", 3); len(parts) >= 2 {
		major = parts[0] + "." + parts[1]
	}
	fields := []string{fmt.Sprintf("golang-%s (= %s)", major, debVersion(goVersion))}
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if !covered[d.Path+"/*"] {
			missing = append(missing, "Files: "+d.Path+"/*")
		}
		fields = append(fields, fmt.Sprintf("%s (= %s)", debName(d.Path), debVersion(d.Version)))
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s links in code that %s does not cover; add a paragraph with its copyright and licence for each of: %s",
			bin, copyrightPath, strings.Join(missing, "; "))
	}
	slices.Sort(fields[1:])
	return strings.Join(fields, ", "), nil
}

// filesPatterns returns every pattern of the Files fields of a
// machine-readable debian/copyright.
func filesPatterns(text string) map[string]bool {
	pats := map[string]bool{}
	inFiles := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "Files:"):
			inFiles = true
			line = strings.TrimPrefix(line, "Files:")
		case inFiles && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
		default:
			inFiles = false
			continue
		}
		for _, p := range strings.Fields(line) {
			pats[p] = true
		}
	}
	return pats
}

// debName names a Go module the way Debian's Go team names the source
// package holding it: "golang-", the host without its top-level domain,
// then the path, lower case, "/" and "_" as "-".
func debName(module string) string {
	host, path, _ := strings.Cut(module, "/")
	if i := strings.LastIndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	name := "golang-" + strings.ReplaceAll(host, ".", "-")
	if path != "" {
		name += "-" + path
	}
	return strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(name))
}

// pseudo is a Go pseudo-version's tail: a timestamp and a commit.
var pseudo = regexp.MustCompile(`^(.*?)-(?:[0-9A-Za-z.]*\.)?(\d{8})\d{6}-([0-9a-f]{12})$`)

// debVersion turns a Go module version into a Debian one: "v1.17.0" is
// 1.17.0, a pre-release "v1.2.0-rc.1" is 1.2.0~rc.1 (sorts before 1.2.0),
// and a pseudo-version "v0.0.0-20180428030007-95032a82bc51" is
// 0.0.0~git20180428.95032a8, as Debian writes snapshots.
func debVersion(v string) string {
	v = strings.TrimSuffix(strings.TrimPrefix(v, "v"), "+incompatible")
	if m := pseudo.FindStringSubmatch(v); m != nil {
		return m[1] + "~git" + m[2] + "." + m[3][:7]
	}
	return strings.Replace(v, "-", "~", 1)
}
