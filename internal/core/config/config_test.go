package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const original = `# ot-redundancy sync configuration
SYNCMODE="on"  # flipped by ot-enable-sync
SYNCSRC='prod.example.com'   # the production server

REMOTEODOO=odoo
SUMMARYFILE="/var/log/odoo/ot-redundancy-sync-timestamps.log"
`

func TestParseOriginal(t *testing.T) {
	c, err := Parse("f", []byte(original))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[Key]string{
		SyncMode: "on", SyncSrc: "prod.example.com", RemoteOdoo: "odoo",
		SSHPort: "22", Filestore: "/var/lib/odoo/.local/share/Odoo/filestore",
	} {
		if got := c.Get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if !c.SyncOn() {
		t.Error("SyncOn false for SYNCMODE=on")
	}
}

func TestParseCRLFAndExport(t *testing.T) {
	c, err := Parse("f", []byte("export SYNCMODE=\"on\"\r\nSYNCSRC=10.0.0.5\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Get(SyncSrc) != "10.0.0.5" || !c.SyncOn() {
		t.Fatalf("got %q %v", c.Get(SyncSrc), c.SyncOn())
	}
}

func TestNoExpansion(t *testing.T) {
	c, err := Parse("f", []byte(`FENCE_COMMAND="/usr/local/bin/fence \$HOST"`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Command(FenceCommand); len(got) != 2 || got[1] != "$HOST" {
		t.Fatalf("argv %q", got)
	}
}

func TestSyncModeOnlyExactlyOn(t *testing.T) {
	for _, v := range []string{"", "ON", "yes", "on "} {
		c, err := Parse("f", []byte("SYNCMODE="+Quote(v)))
		if err != nil {
			t.Fatal(err)
		}
		if c.SyncOn() {
			t.Errorf("SYNCMODE=%q counts as on", v)
		}
	}
	c, _ := Parse("f", nil)
	if c.SyncOn() {
		t.Error("missing SYNCMODE counts as on")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"SYNCSRC=\"-oProxyCommand=touch /tmp/x\"", "f:1: SYNCSRC: host \"-oProxyCommand=touch /tmp/x\" starts with '-'"},
		{"SYNCSRC=\"a b\"", "is not a host name"},
		{"SYNCSRC=\"x;y\"", "is not a host name"},
		{"SYNCSRC=\"$(id)\"", "is not a host name"},
		{"REMOTEODOO=\"-l\"", "is not a user name"},
		{"\nSYNCMOD=on", "f:2: unknown key SYNCMOD (did you mean SYNCMODE?)"},
		{"SYNCMODE=on\nSYNCMODE=off", "f:2: SYNCMODE is set again (first set on line 1)"},
		{"just words", "f:1: cannot parse"},
		{"SYNCSRC=\"x", "unterminated double quote"},
		{"SYNCSRC=a b", "quote values that hold spaces"},
		{"SSH_PORT=70000", "port number"},
		{"SUMMARYFILE=relative/path", "not an absolute path"},
		{"PROJECTS_PATTERN=\"*odoo* -x\"", "not a plain word"},
		{"NGINX_LOG_DIRS=\"/var/log/nginx logs\"", "NGINX_LOG_DIRS: \"logs\" is not an absolute path"},
		{"NGINX_LOG_DIRS=\"/var/log/nginx/../../etc\"", "contains '..'"},
		{"REPLICATION_SLOT=Standby", "not a replication slot name"},
		{"REPLICATION_SLOT=\"a'b\"", "not a replication slot name"},
		{"REPLICATION_SLOT=" + strings.Repeat("s", 64), "not a replication slot name"},
	}
	for _, tc := range cases {
		_, err := Parse("f", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.text, err, tc.want)
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("Parse(%q) error is not *config.Error", tc.text)
		}
	}
}

func TestSourceNotSet(t *testing.T) {
	for _, text := range []string{"", `SYNCSRC="NOT-SET"`, `SYNCSRC=""`} {
		c, err := Parse("f", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Source(); err == nil || !strings.Contains(err.Error(), "SYNCSRC is not set") {
			t.Errorf("%q: Source() = %v", text, err)
		}
	}
}

func TestSaveKeepsCommentsOrderModeAndIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ot.conf")
	if err := os.WriteFile(path, []byte(original), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(SyncMode, "off"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(Promoted, "yes"); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(SyncMode, Promoted); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := strings.Replace(original, `SYNCMODE="on"  #`, `SYNCMODE="off"  #`, 1) + "PROMOTED=\"yes\"\n"
	if string(got) != want {
		t.Fatalf("file after Save:\n%s\nwant:\n%s", got, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
	c2, err := Load(path)
	if err != nil || c2.SyncOn() || !c2.Promoted() {
		t.Fatalf("reload: %v on=%v promoted=%v", err, c2.SyncOn(), c2.Promoted())
	}
}

func TestSetRefusesBadValue(t *testing.T) {
	c, _ := Parse("f", nil)
	if err := c.Set(SyncSrc, "-oProxyCommand=x"); err == nil {
		t.Fatal("Set accepted an option-like host")
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{`plain`, `with "quotes"`, `dollar $HOME`, "back`tick`", `back\slash`} {
		_, got, _, ok, err := parseLine("FENCE_COMMAND=" + Quote(v))
		if err != nil || !ok || got != v {
			t.Errorf("round trip of %q gave %q (%v)", v, got, err)
		}
	}
}

func TestLoadRefusesWorldWritableAndMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ot.conf")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "file not found") {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(path, []byte(original), 0o600)
	os.Chmod(path, 0o666)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "writable by other users (mode 0666") {
		t.Fatalf("world-writable file: %v", err)
	}
	os.Chmod(path, 0o620)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "writable by other users (mode 0620") {
		t.Fatalf("group-writable file: %v", err)
	}
	if os.Geteuid() == 0 {
		// odoo's own file names commands root would run: refused, with the fix.
		os.Chmod(path, 0o600)
		os.Chown(path, 65534, 65534)
		_, err := Load(path)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "belongs to nobody (uid 65534), not root (mode 0600)") || ce.Hint != "chown root:root "+path+" && chmod 0600 "+path {
			t.Fatalf("a file of another user: %v", err)
		}
	}
	os.Chown(path, 0, 0)
	os.Chmod(path, 0o644)
	if _, err := Load(path); err != nil {
		t.Fatalf("root's 0644 file: %v", err)
	}
}

func TestTemplateParsesToDefaults(t *testing.T) {
	c, err := Parse("template", []byte(Template()))
	if err != nil {
		t.Fatal(err)
	}
	if c.SyncOn() || c.Get(SyncSrc) != NotSet {
		t.Fatalf("template: SYNCMODE on=%v SYNCSRC=%q", c.SyncOn(), c.Get(SyncSrc))
	}
	for _, k := range Defs {
		if err := Validate(k.Key, k.Default); err != nil {
			t.Errorf("default of %s invalid: %v", k.Name, err)
		}
		if !strings.Contains(Template(), k.Name+"=") {
			t.Errorf("template lacks %s", k.Name)
		}
	}
}

// The README's configuration table documents every key with its default.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Defs {
		d := k.Default
		if d == "" {
			d = "(empty)"
		}
		if row := "| `" + k.Name + "` | `" + d + "` |"; !strings.Contains(string(readme), row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
}

// Defs is indexed by Key: a key's entry is its own.
func TestDefsIndexedByKey(t *testing.T) {
	for i, d := range Defs {
		if int(d.Key) != i {
			t.Errorf("Defs[%d] is %s, whose Key is %d", i, d.Name, d.Key)
		}
	}
}

// REMOTE_PIP left empty is PIP: both machines have the same layout.
func TestRemotePipFollowsPip(t *testing.T) {
	c, err := Parse("f", []byte(`PIP="/opt/odoo-venv/bin/pip"`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Get(RemotePip); got != "/opt/odoo-venv/bin/pip" {
		t.Fatalf("REMOTE_PIP = %q", got)
	}
	c, _ = Parse("f", []byte(`PIP="/opt/odoo-venv/bin/pip"`+"\n"+`REMOTE_PIP="pip3"`+"\n"))
	if got := c.Get(RemotePip); got != "pip3" {
		t.Fatalf("REMOTE_PIP set: %q", got)
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"300": 300 * time.Second, "0": 0, "90s": 90 * time.Second, "5m": 5 * time.Minute,
		"2h": 2 * time.Hour, "2d": 48 * time.Hour, "1d12h": 36 * time.Hour, "1h30m": 90 * time.Minute,
	} {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "-5", "1.5h", "2w", "h", "5m2h", "1e3", " 5m"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c, err := Parse("f", []byte(`LOCK_WAIT="2d"`+"\n"))
	if err != nil || c.Duration(LockWait) != 48*time.Hour {
		t.Fatalf("LOCK_WAIT=2d: %v, %v", c.Duration(LockWait), err)
	}
	if _, err := Parse("f", []byte(`LOCK_WAIT="soon"`+"\n")); err == nil || !strings.Contains(err.Error(), `LOCK_WAIT: "soon" is not a duration`) {
		t.Fatalf("LOCK_WAIT=soon: %v", err)
	}
}
