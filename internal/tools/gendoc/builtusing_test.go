package main

import (
	"debug/buildinfo"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebNameAndVersion(t *testing.T) {
	for _, c := range []struct{ module, version, name, debVersion string }{
		{"github.com/alecthomas/kong", "v1.17.0", "golang-github-alecthomas-kong", "1.17.0"},
		{"github.com/Masterminds/semver/v3", "v3.5.0", "golang-github-masterminds-semver-v3", "3.5.0"},
		{"github.com/kballard/go-shellquote", "v0.0.0-20180428030007-95032a82bc51", "golang-github-kballard-go-shellquote", "0.0.0~git20180428.95032a8"},
		{"golang.org/x/sys", "v0.50.0", "golang-golang-x-sys", "0.50.0"},
		{"gopkg.in/yaml.v3", "v3.0.1", "golang-gopkg-yaml.v3", "3.0.1"},
		{"github.com/a/b_c", "v1.2.4-0.20191109021931-daa7c04131f5", "golang-github-a-b-c", "1.2.4~git20191109.daa7c04"},
		{"github.com/a/b", "v2.0.0-rc.1+incompatible", "golang-github-a-b", "2.0.0~rc.1"},
	} {
		if got := debName(c.module); got != c.name {
			t.Errorf("debName(%s) = %s, want %s", c.module, got, c.name)
		}
		if got := debVersion(c.version); got != c.debVersion {
			t.Errorf("debVersion(%s) = %s, want %s", c.version, got, c.debVersion)
		}
	}
}

// BuiltUsing reads a real Go binary: this test's own.
func TestBuiltUsing(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Deps) < 2 {
		t.Fatalf("the test binary links %d modules; the test needs two", len(info.Deps))
	}
	var all strings.Builder
	all.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: X\n\nFiles: std/*\nLicense: Y\n")
	for _, d := range info.Deps {
		all.WriteString("\nFiles: " + d.Path + "/*\nCopyright: someone\nLicense: Z\n")
	}
	dir := t.TempDir()
	full := filepath.Join(dir, "copyright")
	os.WriteFile(full, []byte(all.String()), 0o644)
	line, err := BuiltUsing(self, full)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "golang-1.") || strings.Count(line, ", ") != len(info.Deps) || !strings.Contains(line, debName(info.Deps[0].Path)+" (= ") {
		t.Errorf("Static-Built-Using: %s", line)
	}

	// A module without a paragraph fails the build, naming it.
	missing := info.Deps[1].Path
	partial := filepath.Join(dir, "partial")
	os.WriteFile(partial, []byte(strings.Replace(all.String(), "Files: "+missing+"/*\n", "Files: other/*\n", 1)), 0o644)
	if _, err := BuiltUsing(self, partial); err == nil || !strings.Contains(err.Error(), "Files: "+missing+"/*") {
		t.Errorf("copyright without %s: %v", missing, err)
	}
}

// debian/copyright: the project's licence is LICENSE, word for word, and
// every licence a Files paragraph names has its text.
func TestCopyright(t *testing.T) {
	data, err := os.ReadFile("../../../debian/copyright")
	if err != nil {
		t.Fatal(err)
	}
	license, err := os.ReadFile("../../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{} // standalone License paragraphs
	var used []string
	for _, para := range strings.Split(string(data), "\n\n") {
		lines := strings.Split(strings.TrimSpace(para), "\n")
		first := lines[0]
		if name, ok := strings.CutPrefix(first, "License: "); ok {
			var b strings.Builder
			for _, l := range lines[1:] {
				l = strings.TrimPrefix(l, " ")
				if l == "." {
					l = ""
				}
				b.WriteString(l + "\n")
			}
			texts[name] = b.String()
			continue
		}
		for _, l := range lines {
			if name, ok := strings.CutPrefix(l, "License: "); ok {
				used = append(used, name)
			}
		}
	}
	for _, name := range used {
		if texts[name] == "" {
			t.Errorf("debian/copyright names licence %s without its text", name)
		}
	}
	if !strings.HasSuffix(texts["AGPL-3+"], "\n\n"+string(license)) || !strings.Contains(texts["AGPL-3+"], "either version 3 of the License, or\n(at your option) any later version.") {
		t.Errorf("debian/copyright's AGPL-3+ text is not LICENSE's, or not \"or later\"")
	}
	if !strings.HasPrefix(string(license), "                    GNU AFFERO GENERAL PUBLIC LICENSE\n                       Version 3, 19 November 2007\n") {
		t.Errorf("LICENSE is not the AGPL version 3")
	}
}
