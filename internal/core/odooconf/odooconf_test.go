package odooconf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

func TestURL(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "odoo.conf")
	for _, tc := range []struct{ odooConf, odooURL, want string }{
		{"", "", "http://127.0.0.1:8069/web/health"}, // no odoo.conf
		{"[options]\nhttp_port = 8070\nhttp_interface = 0.0.0.0\n", "", "http://127.0.0.1:8070/web/health"},
		{"[options]\nxmlrpc_port = 8071\nxmlrpc_interface =\n", "", "http://127.0.0.1:8071/web/health"},
		{"[options]\nhttp_interface = 10.1.2.3\nxmlrpc_port = 9000\nhttp_port = 8072\n", "", "http://10.1.2.3:8072/web/health"},
		{"[options]\nhttp_interface = ::1\n", "", "http://[::1]:8069/web/health"},
		{"[options]\nhttp_port = 80; rm -rf /\n", "", "http://127.0.0.1:8069/web/health"},
		{"[options]\nhttp_port = 8070\n", "https://odoo.example.com/web/health", "https://odoo.example.com/web/health"},
	} {
		os.Remove(conf)
		if tc.odooConf != "" {
			os.WriteFile(conf, []byte(tc.odooConf), 0o644)
		}
		text := `ODOO_CONF="` + conf + `"` + "\n"
		if tc.odooURL != "" {
			text += `ODOO_URL="` + tc.odooURL + `"` + "\n"
		}
		cfg, err := config.Parse("ot.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if got := URL(cfg); got != tc.want {
			t.Errorf("odoo.conf %q, ODOO_URL %q: %s, want %s", tc.odooConf, tc.odooURL, got, tc.want)
		}
	}
}
