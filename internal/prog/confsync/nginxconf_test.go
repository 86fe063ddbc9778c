package confsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/lab/prodlab"
)

func TestNginxDirectives(t *testing.T) {
	text := `# a comment with access_log /etc/x;
server {
	listen 80; server_name "a b" 'c;d';
	location / { return 200 "x\"y"; }   # trailing access_log /etc/y;
	set $v "${host}x";
	access_log /var/log/nginx/a\ b.log;
	if ($x ~ "^(a)") { return 403; }
}
`
	got, err := directives(text)
	if err != nil {
		t.Fatal(err)
	}
	var flat []string
	for _, d := range got {
		flat = append(flat, strings.Join(d.args, "|"))
	}
	want := []string{"server", "listen|80", "server_name|a b|c;d", "location|/", `return|200|x"y`, "set|$v|${host}x", `access_log|/var/log/nginx/a\ b.log`, "if|($x|~|^(a)|)", "return|403"}
	if !slices.Equal(flat, want) {
		t.Fatalf("got %q", flat)
	}
	if got[6].line != 6 {
		t.Errorf("access_log on line %d", got[6].line)
	}
	for _, bad := range []string{"server {", "}", "a b", "a \"b", "a \"b\"c;", "server { a; } }", "x;\x00"} {
		if _, err := directives(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// directives returns every statement of text.
func directives(text string) ([]directive, error) {
	var out []directive
	err := nginxDirectives([]byte(text), func(d directive) bool { out = append(out, d); return true })
	return out, err
}

func testPolicy(t *testing.T) (nginxPolicy, string) {
	dir := t.TempDir()
	logs := prodlab.Mkdir(t, filepath.Join(dir, "log"))
	cache := prodlab.Mkdir(t, filepath.Join(dir, "cache"))
	// A link in the log directory that leads out of it.
	if err := os.Symlink("/etc/cron.d/x", filepath.Join(logs, "evil.log")); err != nil {
		t.Fatal(err)
	}
	return nginxPolicy{dir: "/etc/nginx", logDirs: []string{logs}, cacheDirs: []string{cache}, conf: "/etc/odoo/ot.conf"}, dir
}

func TestNginxPolicy(t *testing.T) {
	p, dir := testPolicy(t)
	ok := []string{
		"access_log DIR/log/odoo.log combined buffer=32k;",
		"access_log off; error_log stderr; error_log syslog:server=unix:/dev/log;",
		"error_log DIR/log/sub/error.log warn;",
		"proxy_cache_path DIR/cache/odoo levels=1:2 keys_zone=odoo:10m;",
		"client_body_temp_path DIR/cache/body 1 2;",
		"include snippets/ssl.conf; include /etc/nginx/conf.d/*.conf; include mime.types;",
		"proxy_store off;",
		"ssl_certificate_key /etc/ssl/private/odoo.key;",
		"server { location / { proxy_pass http://127.0.0.1:8069; } }",
	}
	for _, text := range ok {
		if r := p.check("site", []byte(strings.ReplaceAll(text, "DIR", dir))); r != nil {
			t.Errorf("%q refused: %v", text, r)
		}
	}
	refused := map[string]string{
		"access_log /etc/cron.d/x evil;":                          `access_log "/etc/cron.d/x" is outside DIR/log`,
		"server { error_log /root/.bashrc; }":                     `error_log "/root/.bashrc" is outside`,
		"access_log DIR/log/../../etc/x;":                         "is not a plain path",
		"access_log DIR/log//x;":                                  "is not a plain path",
		"access_log logs/access.log;":                             "is relative",
		"access_log DIR/log/$host.log;":                           "holds a variable",
		"access_log DIR/log/evil.log;":                            "is outside", // the link leads out
		"access_log DIR/log;":                                     "is outside", // the directory itself
		"access_log \"DIR/log/a\\nb\";":                           "holds a control character",
		"client_body_temp_path /etc;":                             `client_body_temp_path "/etc" is outside DIR/cache`,
		"fastcgi_cache_path /var/www keys_zone=z:1m;":             "fastcgi_cache_path",
		"keyval_zone zone=one:32k state=/etc/x;":                  "keyval_zone state",
		"load_module /tmp/evil.so;":                               `"load_module" loads a module`,
		"user root;":                                              `"user" changes the user`,
		"pid /etc/cron.d/x;":                                      `"pid"`,
		"env LD_PRELOAD=/tmp/x.so;":                               `"env"`,
		"perl_modules /tmp; perl_require evil.pm;":                `"perl_modules" runs code`,
		"location / { content_by_lua_block { os.execute('x') } }": `"content_by_lua_block" runs code`,
		"lua_package_cpath '/tmp/?.so';":                          `"lua_package_cpath" runs code`,
		"js_import /tmp/x.js;":                                    `"js_import" runs code`,
		"include /etc/shadow;":                                    `include "/etc/shadow" reads a file outside /etc/nginx`,
		"include ../shadow;":                                      "outside /etc/nginx",
		"include /etc/nginx/../shadow;":                           "outside /etc/nginx",
		"proxy_store on;":                                         `"proxy_store" makes nginx store`,
		"ssl_certificate_key engine:dynamic:/tmp/x;":              "loads an OpenSSL engine",
		"ssl_engine pkcs11;":                                      `"ssl_engine"`,
		"\"access_log\" /etc/cron.d/x;":                           "access_log", // quoting the name changes nothing
		"acce\\ss_log /etc/cron.d/x;":                             "",           // neither does an escape: nginx reads no such directive
		"server {":                                                "not nginx configuration",
	}
	for text, want := range refused {
		r := p.check("site", []byte(strings.ReplaceAll(text, "DIR", dir)))
		if want == "" {
			if r != nil {
				t.Errorf("%q refused: %v", text, r)
			}
			continue
		}
		if r == nil || !strings.Contains(r.Error(), strings.ReplaceAll(want, "DIR", dir)) {
			t.Errorf("%q: got %v, want %q", text, r, want)
		}
	}
}

// The tokenizer reads quoting, escapes and comments as nginx does: for
// each file, the log paths it finds are exactly the files nginx -t creates.
func TestNginxAgreesWithNginx(t *testing.T) {
	prodlab.Require(t, "nginx")
	dir := t.TempDir()
	run := prodlab.Mkdir(t, filepath.Join(dir, "run"))
	logs := prodlab.Mkdir(t, filepath.Join(dir, "logs"))
	for i, site := range []string{
		`access_log "L/a b.log";`,
		`access_log 'L/c;d.log' combined;`,
		`access_log L/e\"f.log;`,
		`access_log L/g#h.log; # access_log L/not-this.log;`,
		"access_log \"L/i\\\\j.log\";",
		`access_log L/k\ l.log;`,
		`server { listen 127.0.0.1:18071; location / { access_log "L/m\tn.log"; } }`,
		"access_log\tL/o.log\n;",
		`error_log L/p.log;`,
	} {
		site = strings.ReplaceAll(site, "L/", logs+"/")
		ds, err := directives(site)
		if err != nil {
			t.Fatalf("%q: %v", site, err)
		}
		var want []string
		for _, d := range ds {
			if logDirectives[d.args[0]] {
				want = append(want, filepath.Base(d.args[1]))
			}
		}
		os.RemoveAll(logs)
		prodlab.Mkdir(t, logs)
		conf := filepath.Join(dir, "nginx.conf")
		siteFile := filepath.Join(dir, "site")
		prodlab.WriteFile(t, siteFile, site)
		prodlab.WriteFile(t, conf, strings.ReplaceAll("pid RUN/pid; error_log RUN/error.log; events {} http { access_log RUN/access.log; client_body_temp_path RUN/b; proxy_temp_path RUN/p; fastcgi_temp_path RUN/f; uwsgi_temp_path RUN/u; scgi_temp_path RUN/s; include "+siteFile+"; }\n", "RUN", run))
		if out, err := exec.Command("nginx", "-t", "-q", "-e", "stderr", "-c", conf).CombinedOutput(); err != nil {
			t.Fatalf("case %d: nginx -t: %v\n%s", i, err, out)
		}
		var got []string
		entries, _ := os.ReadDir(logs)
		for _, e := range entries {
			got = append(got, e.Name())
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("case %d %q: nginx created %q, the tokenizer read %q", i, site, got, want)
		}
	}
}
