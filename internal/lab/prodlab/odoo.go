package prodlab

import "fmt"

// OdooInitScript is the init script of a fake Odoo service called name:
// start serves dir/www over HTTP on 127.0.0.1:port (python3's http.server,
// so dir/www/web/health answers as Odoo's health check does) under
// start-stop-daemon with dir/odoo.pid; it fails, as a broken addon makes
// Odoo fail, while dir/odoo-fails exists.
func OdooInitScript(name, dir string, port int) string {
	return fmt.Sprintf(`#!/bin/sh
### BEGIN INIT INFO
# Provides:          %[1]s
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: fake Odoo of the ot-redundancy tests
### END INIT INFO
PIDFILE=%[2]s/odoo.pid
case "$1" in
start)
	if [ -e %[2]s/odoo-fails ]; then echo "odoo: cannot start: broken addon" >&2; exit 1; fi
	exec start-stop-daemon --start --background --make-pidfile --pidfile "$PIDFILE" \
		--exec /usr/bin/python3 -- -m http.server --bind 127.0.0.1 --directory %[2]s/www %[3]d
	;;
stop)
	exec start-stop-daemon --stop --oknodo --remove-pidfile --pidfile "$PIDFILE"
	;;
status)
	exec start-stop-daemon --status --pidfile "$PIDFILE"
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 3
	;;
esac
`, name, dir, port)
}
