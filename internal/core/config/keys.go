package config

// Kind says how a key's value is validated when the file is read.
type Kind int

const (
	KindString  Kind = iota // free text without control characters
	KindOnOff               // "on" or "off" (anything but exactly "on" is off)
	KindYesNo               // "yes" or "no"
	KindHost                // host name or IP address, or NOT-SET
	KindUser                // POSIX user or group name
	KindPort                // 1..65535
	KindInt                 // non-negative integer
	KindPath                // absolute path without shell or control characters
	KindCommand             // a command line, split like a shell would (no expansion)
	KindWords               // space-separated words (patterns, names)
	KindURL                 // http:// or https:// URL
	KindPercent             // 0..100
)

// Key documents one configuration key. The table below is the single
// source of the README's configuration table and of the packaged file.
type Key struct {
	Name    string
	Default string
	Kind    Kind
	Doc     string
}

// Keys lists every key the suite understands, in the order the packaged
// configuration file shows them. The first four are the original suite's.
var Keys = []Key{
	{"SYNCMODE", "off", KindOnOff, "Syncing runs only when this is exactly \"on\" (ot-enable-sync / ot-disable-sync flip it)."},
	{"SYNCSRC", "NOT-SET", KindHost, "Production server: host name or IP address (set by ot-configure)."},
	{"REMOTEODOO", "odoo", KindUser, "User on production that the standby logs in as over ssh."},
	{"SUMMARYFILE", "/var/log/odoo/ot-redundancy-sync-timestamps.log", KindPath, "Summary log: one line per successful command, \"YYYY-MM-DD HH:MM:SS :  <command>\"."},
	{"RUN_LOG", "/var/log/odoo/ot-redundancy-runs.log", KindPath, "Every run, failed or not, as one JSON object per line."},
	{"LOCK_FILE", "/run/lock/ot-redundancy.lock", KindPath, "Lock shared by every sync and by promotion."},
	{"LOCK_WAIT", "300", KindInt, "Seconds a run waits for another run's lock before giving up."},
	{"SSH_PORT", "22", KindPort, "Production's ssh port."},
	{"SSH_IDENTITY", "/root/.ssh/id_ed25519", KindPath, "Private key used to log in to production."},
	{"SSH_KNOWN_HOSTS", "/etc/odoo/ot-redundancy-known_hosts", KindPath, "Production's host key, trusted by ot-configure; nothing else is trusted."},
	{"SSH_CONNECT_TIMEOUT", "10", KindInt, "Seconds to wait for production's ssh to answer."},
	{"ODOO_USER", "odoo", KindUser, "Local owner of synced Odoo files."},
	{"ODOO_GROUP", "odoo", KindUser, "Local group of synced Odoo files."},
	{"FILESTORE", "/var/lib/odoo/.local/share/Odoo/filestore", KindPath, "Odoo filestore, the same path on both machines."},
	{"FILESTORE_TIMEOUT", "3300", KindInt, "Seconds one filestore transfer may run before it is stopped; the next run resumes it."},
	{"MAX_DELETE_PERCENT", "5", KindPercent, "A filestore sync that would delete more than this share of the standby's files is refused (--force overrides)."},
	{"PROJECTS_DIR", "/usr/share", KindPath, "Directory holding the addon projects, on both machines."},
	{"PROJECTS_PATTERN", "*odoo*", KindWords, "Glob patterns naming addon project directories in PROJECTS_DIR."},
	{"PROJECTS_EXCLUDE", "core-odoo", KindWords, "Glob patterns of project directories never synced (Odoo itself)."},
	{"BACKUP_DIR", "/var/backups/ot-redundancy", KindPath, "Where files a sync overwrites or removes are kept first, in timestamped folders."},
	{"CONF_SYNC", "odoo nginx apt", KindWords, "Configuration sets ot-conf-sync copies: odoo, nginx, apt."},
	{"ODOO_CONF", "/etc/odoo/odoo.conf", KindPath, "Odoo's configuration file, the same path on both machines."},
	{"NGINX_DIR", "/etc/nginx", KindPath, "nginx configuration directory (sites-available and sites-enabled are synced)."},
	{"APT_DIR", "/etc/apt", KindPath, "apt configuration directory (sources and keys are synced)."},
	{"APT_DENY", "linux-image-* linux-headers-* linux-modules-* linux-signed-* firmware-* *-firmware intel-microcode amd64-microcode open-vm-tools* qemu-guest-agent virtualbox-guest-* hyperv-daemons xe-guest-utilities", KindWords, "Glob patterns of packages ot-apt-sync never installs."},
	{"PIP", "pip3", KindCommand, "pip on the standby (a venv's pip when Odoo runs in a venv)."},
	{"REMOTE_PIP", "pip3", KindCommand, "pip on production."},
	{"PIP_ALIGN_VERSIONS", "no", KindYesNo, "Also move packages installed at another version to production's version."},
	{"PIP_BREAK_SYSTEM_PACKAGES", "no", KindYesNo, "Allow installing into an externally managed (PEP 668) Python."},
	{"PROMOTED", "no", KindYesNo, "Set by ot-disable-standby-mode: this machine is production now and never syncs again."},
	{"ODOO_SERVICE", "odoo", KindWords, "Odoo's service name on the standby."},
	{"ODOO_URL", "http://127.0.0.1:8069/web/health", KindURL, "URL that must answer after promotion (/web/login before Odoo 15)."},
	{"ODOO_TIMEOUT", "120", KindInt, "Seconds to wait for Odoo to answer after promotion."},
	{"PG_CLUSTER", "", KindWords, "Local PostgreSQL cluster as VERSION/NAME (found with pg_lsclusters when empty)."},
	{"PG_DATA", "", KindPath, "Local PostgreSQL data directory, when not a Debian cluster."},
	{"PG_BINDIR", "", KindPath, "Directory of pg_ctl and psql, when not a Debian cluster."},
	{"PG_PORT", "5432", KindPort, "Local PostgreSQL port, when not a Debian cluster."},
	{"PG_HOST", "/var/run/postgresql", KindPath, "Local PostgreSQL socket directory, when not a Debian cluster."},
	{"PG_OSUSER", "postgres", KindUser, "Operating-system user that runs PostgreSQL tools."},
	{"PROMOTE_TIMEOUT", "60", KindInt, "Seconds to wait for PostgreSQL to leave recovery."},
	{"PROD_PG_PORT", "5432", KindPort, "Production's PostgreSQL port, probed to tell whether production still runs."},
	{"FENCE_COMMAND", "", KindCommand, "Command run before promotion to power production off; failure aborts unless --force."},
	{"REPORT_DIR", "/var/log/odoo", KindPath, "Where ot-disable-standby-mode writes its recovery report."},
}

// Default returns the default of a known key, or "" for an unknown one.
func Default(name string) string {
	for _, k := range Keys {
		if k.Name == name {
			return k.Default
		}
	}
	return ""
}

func lookup(name string) (Key, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}
