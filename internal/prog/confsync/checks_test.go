package confsync

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestListSuites(t *testing.T) {
	text := `# comment
deb http://deb.debian.org/debian bookworm main contrib
deb-src http://deb.debian.org/debian bookworm-updates main
deb [arch=amd64 signed-by=/usr/share/keyrings/pg.gpg] http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main
deb [trusted=yes] file:/srv/repo ./
# deb http://old bullseye main
deb http://security.debian.org/debian-security bookworm-security main # trailing
`
	got := listSuites(text)
	want := []string{"bookworm", "bookworm-updates", "bookworm-pgdg", "./", "bookworm-security"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestDeb822Suites(t *testing.T) {
	text := "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
		"Types: deb\nURIs: http://old\nSuites: bullseye\nEnabled: no\n\n# Suites: buster\nTypes: deb\nSuites: trixie\n"
	got := deb822Suites(text)
	if !slices.Equal(got, []string{"bookworm", "bookworm-updates", "trixie"}) {
		t.Fatalf("got %q", got)
	}
}

func TestOtherRelease(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "sources.list"), []byte("deb http://deb.debian.org/debian bookworm main\ndeb http://x stable main\n"), 0o644)
	if r, _ := otherRelease(dir, "bookworm"); r != "" {
		t.Fatalf("same release refused: %q", r)
	}
	os.WriteFile(filepath.Join(dir, "sources.list.d", "pg.list"), []byte("deb http://apt.postgresql.org/pub/repos/apt bullseye-pgdg main\n"), 0o644)
	if r, f := otherRelease(dir, "bookworm"); r != "bullseye" || f != "pg.list" {
		t.Fatalf("got %q in %q", r, f)
	}
}

func TestOSCodename(t *testing.T) {
	p := filepath.Join(t.TempDir(), "os-release")
	os.WriteFile(p, []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n"), 0o644)
	if got := osCodename(p); got != "bookworm" {
		t.Fatal(got)
	}
}

func TestDBHost(t *testing.T) {
	for text, want := range map[string]string{
		"[options]\ndb_host = 10.0.0.5\n":   "10.0.0.5",
		"[options]\ndb_host=prod.example\n": "prod.example",
		"[options]\ndb_host = False\n":      "",
		"[options]\ndb_host = localhost\n":  "",
		"[options]\n; db_host = x\n":        "",
		"[options]\ndb_port = 5432\n":       "",
	} {
		if got := dbHost(text); got != want {
			t.Errorf("%q: got %q, want %q", text, got, want)
		}
	}
}

func TestLinkInside(t *testing.T) {
	roots := []string{"/etc/nginx"}
	for _, tc := range []struct {
		path, target string
		ok           bool
	}{
		{"/etc/nginx/sites-enabled/a", "/etc/nginx/sites-available/a", true},
		{"/etc/nginx/sites-enabled/a", "../sites-available/a", true},
		{"/etc/nginx/sites-enabled/a", "../../shadow", false},
		{"/etc/nginx/sites-enabled/a", "/etc/shadow", false},
		{"/etc/nginx/sites-enabled/a", "/etc/nginx-evil/x", false},
		{"/etc/nginx/sites-enabled/a", "/etc/nginx", false},
	} {
		if got := linkInside(tc.path, tc.target, roots); got != tc.ok {
			t.Errorf("%s -> %s: %v", tc.path, tc.target, got)
		}
	}
}
