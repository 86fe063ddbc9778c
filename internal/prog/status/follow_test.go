package status

import (
	"strings"
	"testing"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
)

func TestFollowLevels(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name    string
		st      *filestore.FollowState
		standby bool
		syncOn  bool
		want    Level
		text    string
	}{
		{"never-ran", nil, true, true, OK, "never ran"}, // this host has no systemd
		{"late", &filestore.FollowState{PID: 999999999, State: filestore.Following, LastCycle: now.Add(-2 * time.Minute)}, true, true, Warning, "late (over 1m)"},
		{"far-too-late", &filestore.FollowState{PID: 999999999, State: filestore.Retrying, LastCycle: now.Add(-20 * time.Minute), LastError: "ssh: no route"}, true, true, Critical, "over 15m"},
		{"died", &filestore.FollowState{PID: 999999999, State: filestore.Following, LastCycle: now.Add(-10 * time.Second)}, true, true, Warning, "not running"},
		{"promoted", &filestore.FollowState{State: filestore.Stopped, LastCycle: now.Add(-time.Hour)}, false, false, OK, "not judged: promoted"},
		{"sync-off", &filestore.FollowState{State: filestore.Stopped, LastCycle: now.Add(-time.Hour)}, true, false, OK, "not judged: sync off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.st != nil {
				if err := filestore.WriteFollowState(dir, *c.st); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := config.Parse("/x.conf", []byte(`STATE_DIR="`+dir+`"`+"\nFOLLOW_INTERVAL=\"15\"\n"))
			if err != nil {
				t.Fatal(err)
			}
			r := &Report{Time: now, SyncOn: c.syncOn}
			(&CLI{}).follow(cfg, r, c.standby)
			ch := r.Checks[len(r.Checks)-1]
			if ch.Level != c.want || !strings.Contains(ch.Text, c.text) {
				t.Errorf("%s %q, want %s with %q", ch.Level, ch.Text, c.want, c.text)
			}
			var b strings.Builder
			followPerf(r, &b)
			if c.st != nil && !strings.Contains(b.String(), " follow_age=") {
				t.Errorf("perfdata %q", b.String())
			}
		})
	}
}
