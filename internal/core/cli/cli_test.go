package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/core/lock"
)

func TestDescribe(t *testing.T) {
	cases := []struct {
		err  error
		code int
		line string
	}{
		{Fail(ExitRefused, "would delete 90% of the filestore", "use --force if intended"), ExitRefused, "would delete 90% of the filestore; use --force if intended"},
		{&config.Error{Path: "/etc/x.conf", Line: 3, Msg: "unknown key FOO", Hint: "fix or remove that line"}, ExitConfig, "config /etc/x.conf:3: unknown key FOO; fix or remove that line"},
		{&lock.HeldError{Path: "/run/lock/ot.lock", PID: 42}, ExitLocked, "lock /run/lock/ot.lock is held by pid 42; wait for it to finish (ot-status shows it), or raise LOCK_WAIT"},
		{fmt.Errorf("wrapped: %w", Fail(ExitPromoted, "promoted", "")), ExitPromoted, "promoted"},
		{errors.New("plain"), ExitFailure, "plain"},
	}
	for _, c := range cases {
		code, line := Describe(c.err)
		if code != c.code || line != c.line {
			t.Errorf("Describe(%v) = %d %q, want %d %q", c.err, code, line, c.code, c.line)
		}
	}
}

func TestReportInterruptedAndSilent(t *testing.T) {
	var b strings.Builder
	if Report("p", &b, nil, Silent{Code: 0}, false) != 0 || b.Len() != 0 {
		t.Fatal("silent printed or failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := Report("p", &b, ctx, errors.New("rsync killed"), false); code != ExitInterrupted || !strings.HasPrefix(b.String(), "p: error: interrupted") {
		t.Fatalf("%d %q", code, b.String())
	}
}

// The README's exit-code table is ExitTable.
func TestReadmeExitCodes(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ExitTable {
		row := fmt.Sprintf("| %d | %s |", e.Code, strings.ReplaceAll(strings.ReplaceAll(e.Meaning, `"on"`, "`on`"), "ot-enable-sync", "`ot-enable-sync`"))
		row = strings.Replace(row, "(SYNCMODE", "(`SYNCMODE`", 1)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README lacks %q", row)
		}
	}
}

// Warnings read like the error line (GNU style); under --log-format json the
// final error is JSON too.
func TestLogAndErrorFormats(t *testing.T) {
	var b strings.Builder
	log := NewLogger("ot-x", &b, &Globals{LogFormat: "console"}, false)
	log.Warn().Msg("some files vanished")
	if b.String() != "ot-x: warning: some files vanished\n" {
		t.Fatalf("warning %q", b.String())
	}
	b.Reset()
	if code := Report("ot-x", &b, nil, Fail(ExitRefused, "refused", "do this"), true); code != ExitRefused ||
		!strings.Contains(b.String(), `"level":"error"`) || !strings.Contains(b.String(), `"exit":8`) || !strings.Contains(b.String(), `"message":"refused; do this"`) {
		t.Fatalf("json error %q", b.String())
	}
}
