package confsync

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSuiteRelease(t *testing.T) {
	for suite, want := range map[string]string{
		"bookworm": "bookworm", "bookworm-updates": "bookworm", "bookworm/updates": "bookworm",
		"bullseye-pgdg": "bullseye", "stable": "", "./": "", "noble-security": "noble",
	} {
		if got := suiteRelease(suite); got != want {
			t.Errorf("%q: got %q, want %q", suite, got, want)
		}
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
