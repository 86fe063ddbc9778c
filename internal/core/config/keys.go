package config

// Kind says how a key's value is validated when the file is read.
type Kind int

const (
	KindString   Kind = iota // free text without control characters
	KindOnOff                // "on" or "off" (anything but exactly "on" is off)
	KindYesNo                // "yes" or "no"
	KindHost                 // host name or IP address, or NOT-SET
	KindUser                 // POSIX user or group name
	KindPort                 // 1..65535
	KindInt                  // non-negative integer
	KindPath                 // absolute path without shell or control characters
	KindCommand              // a command line, split like a shell would (no expansion)
	KindWords                // space-separated words (patterns, names)
	KindURL                  // http:// or https:// URL
	KindPercent              // 0..100
	KindDuration             // seconds, or with units: 90s, 5m, 2h, 2d, 1d12h
	KindPaths                // space-separated absolute paths, each as KindPath
	KindSlot                 // a replication slot name (lower-case letters, digits, '_'), or empty
)

// Key names one configuration key. Keys are constants of this type, not
// strings, so that a misspelt key fails to compile instead of at run time.
type Key int

// The keys, in the order the packaged configuration file shows them. The
// first four are the original suite's.
const (
	SyncMode               Key = iota // SYNCMODE
	SyncSrc                           // SYNCSRC
	RemoteOdoo                        // REMOTEODOO
	SummaryFile                       // SUMMARYFILE
	RunLog                            // RUN_LOG
	LockFile                          // LOCK_FILE
	LockWait                          // LOCK_WAIT
	SSHPort                           // SSH_PORT
	SSHIdentity                       // SSH_IDENTITY
	SSHKnownHosts                     // SSH_KNOWN_HOSTS
	SSHConnectTimeout                 // SSH_CONNECT_TIMEOUT
	RsyncBwlimit                      // RSYNC_BWLIMIT
	RemoteNice                        // REMOTE_NICE
	OdooUser                          // ODOO_USER
	OdooGroup                         // ODOO_GROUP
	Filestore                         // FILESTORE
	FilestoreTimeout                  // FILESTORE_TIMEOUT
	MaxDeletePercent                  // MAX_DELETE_PERCENT
	FilestoreTrash                    // FILESTORE_TRASH
	TrashDays                         // TRASH_DAYS
	StallTimeout                      // STALL_TIMEOUT
	FollowInterval                    // FOLLOW_INTERVAL
	StateDir                          // STATE_DIR
	ProjectsDir                       // PROJECTS_DIR
	ProjectsPattern                   // PROJECTS_PATTERN
	ProjectsExclude                   // PROJECTS_EXCLUDE
	BackupDir                         // BACKUP_DIR
	ConfSync                          // CONF_SYNC
	OdooConf                          // ODOO_CONF
	NginxDir                          // NGINX_DIR
	NginxLogDirs                      // NGINX_LOG_DIRS
	NginxCacheDirs                    // NGINX_CACHE_DIRS
	AptDir                            // APT_DIR
	AptDeny                           // APT_DENY
	Pip                               // PIP
	RemotePip                         // REMOTE_PIP
	PipAlignVersions                  // PIP_ALIGN_VERSIONS
	PipBreakSystemPackages            // PIP_BREAK_SYSTEM_PACKAGES
	PipAllowSdist                     // PIP_ALLOW_SDIST
	Promoted                          // PROMOTED
	OdooService                       // ODOO_SERVICE
	OdooURL                           // ODOO_URL
	OdooTimeout                       // ODOO_TIMEOUT
	PGCluster                         // PG_CLUSTER
	PGData                            // PG_DATA
	PGBinDir                          // PG_BINDIR
	PGPort                            // PG_PORT
	PGHost                            // PG_HOST
	PGOSUser                          // PG_OSUSER
	PromoteTimeout                    // PROMOTE_TIMEOUT
	ProdPGPort                        // PROD_PG_PORT
	FenceCommand                      // FENCE_COMMAND
	ReportDir                         // REPORT_DIR
	ReplicationUser                   // REPLICATION_USER
	ReplicationPassfile               // REPLICATION_PASSFILE
	ReplicationSlot                   // REPLICATION_SLOT
	StreamTimeout                     // STREAM_TIMEOUT
)

// Def documents one configuration key. The table below is the single
// source of the README's configuration table, the packaged file and its
// manual page.
type Def struct {
	Key     Key
	Name    string
	Default string
	Kind    Kind
	Doc     string
}

// Defs lists every key the suite understands, indexed by Key.
var Defs = [...]Def{
	{SyncMode, "SYNCMODE", "off", KindOnOff, "Syncing runs only when this is exactly \"on\" (ot-enable-sync / ot-disable-sync flip it)."},
	{SyncSrc, "SYNCSRC", "NOT-SET", KindHost, "Production server: host name or IP address (set by ot-configure)."},
	{RemoteOdoo, "REMOTEODOO", "odoo", KindUser, "User on production that the standby logs in as over ssh."},
	{SummaryFile, "SUMMARYFILE", "/var/log/odoo/ot-redundancy-sync-timestamps.log", KindPath, "Summary log: one line per successful command, \"YYYY-MM-DD HH:MM:SS :  <command>\"."},
	{RunLog, "RUN_LOG", "/var/log/odoo/ot-redundancy-runs.log", KindPath, "Every run, failed or not, as one JSON object per line."},
	{LockFile, "LOCK_FILE", "/run/ot-redundancy/lock", KindPath, "Lock shared by every sync and by promotion (mode 0600, in a directory only root writes)."},
	{LockWait, "LOCK_WAIT", "300", KindDuration, "How long a run waits for another run's lock before giving up (seconds, or 5m, 2h, 1d)."},
	{SSHPort, "SSH_PORT", "22", KindPort, "Production's ssh port."},
	{SSHIdentity, "SSH_IDENTITY", "/root/.ssh/id_ed25519", KindPath, "Private key used to log in to production."},
	{SSHKnownHosts, "SSH_KNOWN_HOSTS", "/etc/odoo/ot-redundancy-known_hosts", KindPath, "Production's host key, trusted by ot-configure; nothing else is trusted."},
	{SSHConnectTimeout, "SSH_CONNECT_TIMEOUT", "10", KindDuration, "How long to wait for production's ssh to answer (seconds, or 30s, 1m)."},
	{RsyncBwlimit, "RSYNC_BWLIMIT", "0", KindInt, "Bandwidth limit of every transfer from production, in KiB/s (rsync --bwlimit); 0: none."},
	{RemoteNice, "REMOTE_NICE", "nice -n 19 ionice -c 2 -n 7", KindCommand, "Command production's rsync runs under, to spare production's CPU and disks; empty: none."},
	{OdooUser, "ODOO_USER", "odoo", KindUser, "Local owner of synced Odoo files."},
	{OdooGroup, "ODOO_GROUP", "odoo", KindUser, "Local group of synced Odoo files."},
	{Filestore, "FILESTORE", "/var/lib/odoo/.local/share/Odoo/filestore", KindPath, "Odoo filestore, the same path on both machines."},
	{FilestoreTimeout, "FILESTORE_TIMEOUT", "3300", KindDuration, "How long one filestore transfer may run before it is stopped (seconds, or 55m, 2h); the next run resumes it."},
	{MaxDeletePercent, "MAX_DELETE_PERCENT", "5", KindPercent, "A filestore sync that would delete more than this share of the standby's files is refused (--force overrides)."},
	{FilestoreTrash, "FILESTORE_TRASH", "", KindPath, "Where the filestore sync moves what it removes or replaces (dated folders, kept TRASH_DAYS); on the filestore's file system. Empty: FILESTORE with .trash appended."},
	{TrashDays, "TRASH_DAYS", "30", KindInt, "Days a file stays in FILESTORE_TRASH before the filestore sync prunes it (ot-attachments-sync --restore brings files back)."},
	{StallTimeout, "STALL_TIMEOUT", "120", KindDuration, "A transfer that moves no data for this long (a frozen production, a dead link) is stopped (seconds, or 2m)."},
	{FollowInterval, "FOLLOW_INTERVAL", "15", KindDuration, "How often ot-attachments-sync --follow looks for new attachments on production (seconds, or 30s, 1m)."},
	{StateDir, "STATE_DIR", "/var/lib/ot-redundancy", KindPath, "Where the suite keeps what it knows between runs: the filestore's mismatches, the follower's state."},
	{ProjectsDir, "PROJECTS_DIR", "/usr/share", KindPath, "Directory holding the addon projects, on both machines."},
	{ProjectsPattern, "PROJECTS_PATTERN", "*odoo*", KindWords, "Glob patterns naming addon project directories in PROJECTS_DIR."},
	{ProjectsExclude, "PROJECTS_EXCLUDE", "core-odoo", KindWords, "Glob patterns of project directories never synced (Odoo itself)."},
	{BackupDir, "BACKUP_DIR", "/var/backups/ot-redundancy", KindPath, "Where files a sync overwrites or removes are kept first, in timestamped folders."},
	{ConfSync, "CONF_SYNC", "odoo nginx apt", KindWords, "Configuration sets ot-conf-sync copies: odoo, nginx, apt."},
	{OdooConf, "ODOO_CONF", "/etc/odoo/odoo.conf", KindPath, "Odoo's configuration file, the same path on both machines."},
	{NginxDir, "NGINX_DIR", "/etc/nginx", KindPath, "nginx configuration directory (sites-available and sites-enabled are synced)."},
	{NginxLogDirs, "NGINX_LOG_DIRS", "/var/log/nginx", KindPaths, "Directories where production's nginx sites may have nginx write logs (access_log, error_log); a site logging elsewhere is refused."},
	{NginxCacheDirs, "NGINX_CACHE_DIRS", "/var/cache/nginx /var/lib/nginx", KindPaths, "Directories where production's nginx sites may have nginx create cache and temporary directories (*_cache_path, *_temp_path)."},
	{AptDir, "APT_DIR", "/etc/apt", KindPath, "apt configuration directory (only the package sources are synced: sources.list, sources.list.d/*.list and *.sources)."},
	{AptDeny, "APT_DENY", "linux-image-* linux-headers-* linux-modules-* linux-signed-* firmware-* *-firmware intel-microcode amd64-microcode open-vm-tools* qemu-guest-agent virtualbox-guest-* hyperv-daemons xe-guest-utilities", KindWords, "Glob patterns of packages ot-apt-sync never installs."},
	{Pip, "PIP", "pip3", KindCommand, "pip on the standby (a venv's pip when Odoo runs in a venv)."},
	{RemotePip, "REMOTE_PIP", "", KindCommand, "pip on production; empty: the same as PIP (both machines have the same layout)."},
	{PipAlignVersions, "PIP_ALIGN_VERSIONS", "no", KindYesNo, "Also move packages installed at another version to production's version."},
	{PipBreakSystemPackages, "PIP_BREAK_SYSTEM_PACKAGES", "no", KindYesNo, "Allow installing into an externally managed (PEP 668) Python."},
	{PipAllowSdist, "PIP_ALLOW_SDIST", "no", KindYesNo, "Let ot-pip-sync build packages from source (sdist) when no wheel fits; the build runs the package's code as PIP's owner."},
	{Promoted, "PROMOTED", "no", KindYesNo, "Set by ot-disable-standby-mode: this machine is production now and never syncs again."},
	{OdooService, "ODOO_SERVICE", "odoo", KindWords, "Odoo's service name on the standby."},
	{OdooURL, "ODOO_URL", "", KindURL, "URL that must answer after promotion (/web/login before Odoo 15); empty: /web/health at odoo.conf's http_interface and http_port (xmlrpc_* before Odoo 11; 0.0.0.0 or none means 127.0.0.1), else http://127.0.0.1:8069."},
	{OdooTimeout, "ODOO_TIMEOUT", "120", KindDuration, "How long to wait for Odoo to answer after promotion (seconds, or 2m)."},
	{PGCluster, "PG_CLUSTER", "", KindWords, "Local PostgreSQL cluster as VERSION/NAME (found with pg_lsclusters when empty)."},
	{PGData, "PG_DATA", "", KindPath, "Local PostgreSQL data directory, when not a Debian cluster."},
	{PGBinDir, "PG_BINDIR", "", KindPath, "Directory of pg_ctl and psql, when not a Debian cluster."},
	{PGPort, "PG_PORT", "5432", KindPort, "Local PostgreSQL port, when not a Debian cluster."},
	{PGHost, "PG_HOST", "/var/run/postgresql", KindPath, "Local PostgreSQL socket directory, when not a Debian cluster."},
	{PGOSUser, "PG_OSUSER", "postgres", KindUser, "Operating-system user that runs PostgreSQL tools."},
	{PromoteTimeout, "PROMOTE_TIMEOUT", "60", KindDuration, "How long to wait for PostgreSQL to leave recovery (seconds, or 1m)."},
	{ProdPGPort, "PROD_PG_PORT", "5432", KindPort, "Production's PostgreSQL port, probed to tell whether production still runs."},
	{FenceCommand, "FENCE_COMMAND", "", KindCommand, "Command run before promotion to power production off; failure aborts unless --force."},
	{ReportDir, "REPORT_DIR", "/var/log/ot-redundancy", KindPath, "Where ot-disable-standby-mode and ot-enable-standby-mode write their reports (created root-only, mode 0700)."},
	{ReplicationUser, "REPLICATION_USER", "replicator", KindUser, "Role on production's PostgreSQL that the standby replicates (and rewinds) as."},
	{ReplicationPassfile, "REPLICATION_PASSFILE", "/etc/odoo/ot-redundancy-replication.pgpass", KindPath, "Root-only file in .pgpass format holding REPLICATION_USER's password for production."},
	{ReplicationSlot, "REPLICATION_SLOT", "", KindSlot, "Physical replication slot on production for this standby; empty: none (production keeps WAL for an absent standby only with a slot)."},
	{StreamTimeout, "STREAM_TIMEOUT", "300", KindDuration, "How long ot-enable-standby-mode waits for the new standby to stream from production and catch up (seconds, or 5m)."},
}

// Name is the key as the file spells it.
func (k Key) Name() string { return Defs[k].Name }

// String is the key's name, for messages.
func (k Key) String() string { return Defs[k].Name }

// Default is the value a key has when the file does not set it.
func (k Key) Default() string { return Defs[k].Default }

// lookup finds a key by the name the file spells.
func lookup(name string) (Def, bool) {
	for _, d := range Defs {
		if d.Name == name {
			return d, true
		}
	}
	return Def{}, false
}
