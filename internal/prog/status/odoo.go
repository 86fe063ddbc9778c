package status

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/pg"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// DBInfo is one Odoo database's attachments against the local filestore.
type DBInfo struct {
	Name         string   `json:"name"`
	Attachments  int      `json:"attachments"` // distinct stored files referenced
	Missing      int      `json:"missing"`
	MissingFiles []string `json:"missing_files,omitempty"`
	Invalid      int      `json:"invalid_names,omitempty"` // store_fname values that are not a relative path
	Verified     int      `json:"verified,omitempty"`      // files whose sha1 was checked
	Corrupt      []string `json:"corrupt_files,omitempty"`
}

var (
	// Database names we pass to psql and join to the filestore path: a name
	// with "=" would be read as a connection string.
	dbNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	// Odoo stores a file at <first two hex digits of its sha1>/<sha1>.
	storedRe = regexp.MustCompile(`^[0-9a-f]{2}/[0-9a-f]{40}$`)
)

// psqlOn is the cluster's psql command, pointed at database db.
func psqlOn(cl *pg.Cluster, db, sql string) []string {
	argv := cl.PsqlArgv(sql)
	for i := range argv[:len(argv)-1] {
		if argv[i] == "-d" {
			argv[i+1] = db
			break
		}
	}
	return argv
}

func query(ctx context.Context, q *run.Runner, argv []string) ([]string, error) {
	out, err := q.Exec(ctx, run.Step{Argv: argv, Dir: "/"})
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// attachments checks, for each Odoo database of the local cluster, that every
// file the database references is in the filestore: those missing are what
// a failover now would lose.
func (c *CLI) attachments(env *cli.Env, cfg *config.Config, cl *pg.Cluster, r *Report) {
	q := &run.Runner{Log: env.Log}
	ctx := env.Ctx
	dbs, err := query(ctx, q, cl.PsqlArgv("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY 1"))
	if err != nil {
		r.add("attachments", Unknown, "cannot list databases: "+err.Error())
		return
	}
	store := cfg.Get(config.Filestore)
	found := 0
	for _, db := range dbs {
		if !dbNameRe.MatchString(db) {
			r.add("db", Warning, fmt.Sprintf("database %q not checked: its name is not a plain file name", cli.Printable(db)))
			continue
		}
		has, err := query(ctx, q, psqlOn(cl, db, "SELECT to_regclass('public.ir_attachment') IS NOT NULL"))
		if err != nil {
			r.add("db "+db, Unknown, "cannot read: "+err.Error())
			continue
		}
		if len(has) != 1 || has[0] != "t" {
			continue // not an Odoo database
		}
		found++
		names, err := query(ctx, q, psqlOn(cl, db, "SELECT DISTINCT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL AND store_fname <> '' ORDER BY 1"))
		if err != nil {
			r.add("db "+db, Unknown, "cannot read ir_attachment: "+err.Error())
			continue
		}
		info := DBInfo{Name: db, Attachments: len(names)}
		dir := filepath.Join(store, db)
		for _, n := range names {
			if !filepath.IsLocal(n) {
				info.Invalid++
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				info.Missing++
				info.MissingFiles = append(info.MissingFiles, n)
			}
		}
		if c.VerifyFilestore {
			info.Verified, info.Corrupt = verify(dir)
		}
		r.Databases = append(r.Databases, info)
		r.add("db "+db, dbLevel(info), dbText(info, dir, c.VerifyFilestore))
	}
	if found == 0 {
		r.add("attachments", Warning, fmt.Sprintf("no Odoo database (with an ir_attachment table) on PostgreSQL %s", cl))
	}
}

func dbLevel(d DBInfo) Level {
	switch {
	case len(d.Corrupt) > 0:
		return Critical
	case d.Missing > 0 || d.Invalid > 0:
		return Warning
	}
	return OK
}

func dbText(d DBInfo, dir string, verified bool) string {
	var b strings.Builder
	if d.Missing == 0 {
		fmt.Fprintf(&b, "%d attachments, all in %s", d.Attachments, dir)
	} else {
		fmt.Fprintf(&b, "%d of %d attachments missing from %s: a failover now would lose them (--verbose lists them; ot-attachments-sync fetches them)", d.Missing, d.Attachments, dir)
	}
	if d.Invalid > 0 {
		fmt.Fprintf(&b, "; %d store_fname values are not relative paths", d.Invalid)
	}
	if verified {
		if len(d.Corrupt) > 0 {
			fmt.Fprintf(&b, "; %d of %d stored files do NOT match their sha1 name (corrupt or truncated)", len(d.Corrupt), d.Verified)
		} else {
			fmt.Fprintf(&b, "; %d stored files match their sha1", d.Verified)
		}
	}
	return b.String()
}

// verify hashes every content-addressed file under dir and returns how many
// it checked and those whose content does not match their name.
func verify(dir string) (int, []string) {
	n := 0
	var bad []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if !storedRe.MatchString(rel) {
			return nil
		}
		n++
		if sum, err := sha1File(path); err != nil || sum != filepath.Base(rel) {
			bad = append(bad, rel)
		}
		return nil
	})
	return n, bad
}

func sha1File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
