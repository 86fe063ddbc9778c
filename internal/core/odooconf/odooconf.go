// Package odooconf reads what the suite needs from Odoo's own configuration
// file (ODOO_CONF, odoo.conf): where Odoo answers, so that ODOO_URL need not
// be set when both machines have the same layout.
package odooconf

import (
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/bitfield/script"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

// optionRE is an http_* or xmlrpc_* line of odoo.conf's [options].
var optionRE = regexp.MustCompile(`^\s*(http|xmlrpc)_(interface|port)\s*=\s*(.*?)\s*$`)

// URL is ODOO_URL when it is set; else /web/health at odoo.conf's
// http_interface and http_port (xmlrpc_* before Odoo 11), where 0.0.0.0, ::
// or nothing means this machine (127.0.0.1); else 127.0.0.1:8069.
func URL(cfg *config.Config) string {
	if u := cfg.Get(config.OdooURL); u != "" {
		return u
	}
	host, port := "127.0.0.1", "8069"
	if _, err := os.Stat(cfg.Get(config.OdooConf)); err == nil {
		lines, _ := script.File(cfg.Get(config.OdooConf)).MatchRegexp(optionRE).Slice()
		opts := map[string]string{}
		for _, l := range lines {
			m := optionRE.FindStringSubmatch(l)
			opts[m[1]+"_"+m[2]] = m[3]
		}
		if h := first(opts["http_interface"], opts["xmlrpc_interface"]); h != "" && h != "0.0.0.0" && h != "::" && validHost(h) {
			host = h
		}
		if p := first(opts["http_port"], opts["xmlrpc_port"]); p != "" {
			if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
				port = p
			}
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/web/health"
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// validHost keeps odoo.conf's interface to an address or a plain name.
func validHost(h string) bool {
	return net.ParseIP(h) != nil || config.ValidHost(h) == nil && !strings.Contains(h, "/")
}
