package confsync

import (
	"errors"
	"strings"
	"testing"
)

// acceptKeys is a signed-by check that accepts every value.
func acceptKeys(string) error { return nil }

// canonical parses a file of the given kind, checks every source and
// writes it back, as the apt set does.
func canonical(t *testing.T, name, text string, keys func(string) error) (string, error) {
	t.Helper()
	parse, format := parseList, formatList
	if strings.HasSuffix(name, ".sources") {
		parse, format = parseDeb822, formatDeb822
	}
	srcs, err := parse(text)
	if err != nil {
		return "", err
	}
	for i := range srcs {
		if err := srcs[i].check(keys); err != nil {
			return "", err
		}
	}
	return format(srcs), nil
}

func TestAptCanonicalList(t *testing.T) {
	text := `# Debian's installer writes comments like this one
deb http://deb.debian.org/debian/ bookworm main non-free-firmware
deb-src	http://deb.debian.org/debian/   bookworm main # trailing comment
#deb http://old bullseye main
deb [ signed-by=/usr/share/keyrings/pg.asc arch=amd64,arm64 ] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main
deb [trusted=no check-valid-until=false] file:/srv/repo ./
deb [arch+=i386] http://x.example/debian stable main
`
	want := `deb http://deb.debian.org/debian/ bookworm main non-free-firmware
deb-src http://deb.debian.org/debian/ bookworm main
deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/pg.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main
deb [trusted=no check-valid-until=no] file:/srv/repo ./
deb [arch+=i386] http://x.example/debian stable main
`
	got, err := canonical(t, "sources.list", text, acceptKeys)
	if err != nil || got != want {
		t.Fatalf("err %v, got:\n%s", err, got)
	}
	// Canonical text reads back to itself.
	if again, err := canonical(t, "sources.list", got, acceptKeys); err != nil || again != got {
		t.Fatalf("not stable: %v\n%s", err, again)
	}
}

func TestAptCanonicalDeb822(t *testing.T) {
	text := `# debian.sources
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
 contrib
signed-by: /usr/share/keyrings/debian-archive-keyring.gpg
X-Repolib-Name: Debian

Types: deb
URIs: http://old.example
Suites: bullseye
Components: main
Trusted: yes
Enabled: no

Types: deb
URIs: file:/srv/repo
Suites: ./
Architectures-Add: i386
`
	want := `Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: file:/srv/repo
Suites: ./
Architectures-Add: i386
`
	got, err := canonical(t, "debian.sources", text, acceptKeys)
	if err != nil || got != want {
		t.Fatalf("err %v, got:\n%s", err, got)
	}
	if again, err := canonical(t, "debian.sources", got, acceptKeys); err != nil || again != got {
		t.Fatalf("not stable: %v\n%s", err, again)
	}
}

// What a hostile production may write in a source, and what it gets.
func TestAptSourceRefused(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"a.list", "deb [trusted=yes] http://evil.example/ ./\n", "trusted=yes switches off apt's signature checks"},
		{"a.list", "deb [trusted=true] http://evil.example/ ./\n", "trusted=yes"},
		{"a.list", "deb [allow-insecure=yes] http://evil.example/ stable main\n", "allow-insecure=yes"},
		{"a.list", "deb [allow-weak=on] http://evil.example/ stable main\n", "allow-weak=yes"},
		{"a.list", "deb [allow-downgrade-to-insecure=1] http://evil.example/ stable main\n", "allow-downgrade-to-insecure=yes"},
		{"a.sources", "Types: deb\nURIs: http://evil.example/\nSuites: ./\nTrusted: yes\n", "trusted=yes"},
		{"a.sources", "Types: deb\nURIs: http://evil.example/\nSuites: ./\nAllow-Insecure: yes\n", "allow-insecure=yes"},
		{"a.list", "deb ssh://root@evil.example/srv stable main\n", `uses the "ssh" method`},
		{"a.list", "deb cdrom:[Debian]/ stable main\n", "not a plain URI"},
		{"a.list", "deb [foo=bar] http://x.example/ stable main\n", `unknown option "foo"`},
		{"a.sources", "Types: deb\nURIs: http://x.example/\nSuites: stable\nComponents: main\nAPT-Hook: x\n", `unknown field "APT-Hook"`},
		{"a.list", "rpm http://x.example/ stable main\n", `type "rpm"`},
		{"a.list", "deb http://x.example/ stable\n", "needs components"},
		{"a.list", "deb [arch=amd64\n", "closing"},
		{"a.list", "deb http://x.example/ sta`ble main\n", "unexpected characters"},
		{"a.sources", "Types: deb\nURIs: http://x.example/\n", "needs Types, URIs and Suites"},
		{"a.sources", "Types: deb\nTypes: deb-src\nURIs: http://x.example/\nSuites: ./\n", "given twice"},
	} {
		_, err := canonical(t, tc.name, tc.text, acceptKeys)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.text, err, tc.want)
		}
	}
}

// Every signed-by value goes through the keyring check, in both formats;
// fingerprints and inline keys arrive whole.
func TestAptSignedByValues(t *testing.T) {
	var seen []string
	keys := func(v string) error { seen = append(seen, v); return nil }
	canonical(t, "a.list", "deb [signed-by=/k/a.gpg,/k/b.gpg] http://x.example/ stable main\n", keys)
	canonical(t, "a.sources", "Types: deb\nURIs: http://x.example/\nSuites: ./\nSigned-By: /k/c.gpg\n 0123456789ABCDEF0123456789ABCDEF01234567!\n", keys)
	canonical(t, "b.sources", "Types: deb\nURIs: http://x.example/\nSuites: ./\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n QUJD\n -----END PGP PUBLIC KEY BLOCK-----\n", keys)
	want := []string{"/k/a.gpg", "/k/b.gpg", "/k/c.gpg", "0123456789ABCDEF0123456789ABCDEF01234567!",
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n-----END PGP PUBLIC KEY BLOCK-----\n"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", seen)
	}
	refused := errors.New("no such keyring")
	if _, err := canonical(t, "a.list", "deb [signed-by=/k/a.gpg] http://x.example/ stable main\n", func(string) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("keyring refusal lost: %v", err)
	}
}
