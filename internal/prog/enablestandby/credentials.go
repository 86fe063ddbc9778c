package enablestandby

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
)

// credentials are the replication role and its password. The password
// lives in REPLICATION_PASSFILE, readable by root only; PostgreSQL's tools
// run as its own user, who reads a copy of the lines for production only:
// a temporary one for this run's own connections, and the one the standby
// keeps (written by a step) beside its data directory. The password never
// appears on a command line, in the environment or in a log: libpq reads it
// from the file named by passfile=.
type credentials struct {
	user    string
	entries []pg.PassEntry // REPLICATION_PASSFILE's lines for production
	probe   string         // this run's temporary copy
	dir     string         // its directory, removed at the end
	target  string         // the copy the standby keeps
}

// maxPassfile bounds REPLICATION_PASSFILE: a few lines.
const maxPassfile = 64 << 10

// loadCredentials reads REPLICATION_PASSFILE and keeps its lines for
// host:port and REPLICATION_USER (any database: streaming uses
// "replication", pg_rewind and our checks "postgres").
func loadCredentials(cfg *config.Config, host string, port int, cl *pg.Cluster) (*credentials, error) {
	path, who := cfg.Get(config.ReplicationPassfile), cfg.Get(config.ReplicationUser)
	fail := func(msg, hint string) error {
		return &cli.Error{Code: cli.ExitConfig, Msg: "REPLICATION_PASSFILE " + path + ": " + msg, Hint: hint}
	}
	create := fmt.Sprintf("create it, owned by root with mode 0600, holding the line %s:%d:*:%s:PASSWORD", host, port, who)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fail("file not found", create)
	}
	if err != nil {
		return nil, fail(err.Error(), create)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || st == nil || st.Uid != 0 || fi.Mode().Perm()&0o077 != 0 {
		return nil, fail(fmt.Sprintf("must be a file owned by root that no one else can read (it is %s, owner uid %d)", fi.Mode(), owner(st)),
			"chown root:root "+path+" && chmod 0600 "+path)
	}
	if fi.Size() > maxPassfile {
		return nil, fail("larger than 64 KiB", "keep only the replication role's lines in it")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fail(err.Error(), create)
	}
	c := &credentials{user: who}
	for _, e := range pg.ParsePgpass(data) {
		if e.For(host, strconv.Itoa(port), who) {
			c.entries = append(c.entries, e)
		}
	}
	if len(c.entries) == 0 {
		return nil, fail(fmt.Sprintf("no line for %s:%d and user %s", host, port, who), "add the line "+fmt.Sprintf("%s:%d:*:%s:PASSWORD", host, port, who))
	}
	c.target = filepath.Join(filepath.Dir(cl.Data), "ot-redundancy-replication.pgpass")
	return c, c.writeProbe(cl.OSUser)
}

func owner(st *syscall.Stat_t) int {
	if st == nil {
		return -1
	}
	return int(st.Uid)
}

// writeProbe writes the temporary copy in a private directory, then
// hands both to PostgreSQL's user: nobody else can touch them meanwhile.
func (c *credentials) writeProbe(osUser string) error {
	dir, err := os.MkdirTemp("", "ot-enable-standby-")
	if err != nil {
		return err
	}
	c.dir = dir
	c.probe = filepath.Join(dir, "pgpass")
	if err := os.WriteFile(c.probe, c.lines(), 0o600); err != nil {
		return err
	}
	if os.Geteuid() != 0 || osUser == "" || osUser == "root" {
		return nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return fmt.Errorf("PG_OSUSER %s: %w", osUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(c.probe, uid, gid); err != nil {
		return err
	}
	return os.Chown(dir, uid, gid)
}

// lines is what the copies hold.
func (c *credentials) lines() []byte { return pg.FormatPgpass(c.entries) }

// close removes the temporary copy.
func (c *credentials) close() {
	if c != nil && c.dir != "" {
		os.RemoveAll(c.dir)
	}
}
