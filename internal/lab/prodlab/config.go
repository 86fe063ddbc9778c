package prodlab

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// SummaryFile is where WriteConfig's configuration keeps the summary log.
func (p *Prod) SummaryFile() string {
	return filepath.Join(p.Dir, "log", "ot-redundancy-sync-timestamps.log")
}

// WriteConfig writes an ot-redundancy configuration file at path (mode 0600)
// that syncs from this production host and keeps every file the suite writes
// (summary, run log, lock, backups, reports) under p.Dir; extra keys override
// or add. Values are written as KEY="value"; a value that would need escaping
// fails the test, so no test depends on the parser's escape rules by accident.
func (p *Prod) WriteConfig(t testing.TB, path string, extra map[string]string) {
	t.Helper()
	kv := map[string]string{
		"SYNCMODE":            "on",
		"SYNCSRC":             p.Addr,
		"REMOTEODOO":          p.User,
		"SSH_PORT":            strconv.Itoa(p.Port),
		"SSH_IDENTITY":        p.KeyFile,
		"SSH_KNOWN_HOSTS":     p.KnownHosts,
		"SSH_CONNECT_TIMEOUT": "5",
		"SUMMARYFILE":         p.SummaryFile(),
		"RUN_LOG":             filepath.Join(p.Dir, "log", "ot-redundancy-runs.log"),
		"LOCK_FILE":           filepath.Join(p.Dir, "ot-redundancy.lock"),
		"BACKUP_DIR":          filepath.Join(p.Dir, "backups"),
		"REPORT_DIR":          filepath.Join(p.Dir, "log"),
	}
	maps.Copy(kv, extra)
	var b strings.Builder
	b.WriteString("# written by testlab for a test\n")
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		v := kv[k]
		if strings.ContainsAny(v, "\"\\$`\n\r") {
			t.Fatalf("testlab: config value %s=%q needs escaping; write such a file by hand", k, v)
		}
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, v)
	}
	if err := os.MkdirAll(filepath.Join(p.Dir, "log"), 0o755); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	writeFile(t, path, b.String(), 0o600)
}
