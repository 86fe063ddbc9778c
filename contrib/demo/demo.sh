#!/bin/sh
# The failover rehearsal (`sudo make demo`): builds the programs into bin/,
# then runs contrib/demo, which plays production and standby on this one
# machine, runs the suite against them step by step and cleans up. Root only.
# Extra arguments go to the demo (-keep: wait for Enter before cleaning up).
set -eu
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
	echo "demo.sh: error: must be run as root; run sudo make demo" >&2
	exit 1
fi
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
if [ ! -x "$GO" ] && ! command -v "$GO" >/dev/null; then
	echo "demo.sh: error: go not found; install Go or set GO=/path/to/go" >&2
	exit 1
fi
echo "==> building the programs into bin/"
make --no-print-directory build GO="$GO"
exec "$GO" run ./contrib/demo -bin bin "$@"
