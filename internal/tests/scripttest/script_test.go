// Package scripttest runs the programs' script tests, testdata/script/*.txtar:
// help, dry-run output, errors and exit codes, each program on PATH under its
// own name. What a sync does to real files is proven by the integration
// tests of each program's package, against real tools.
package scripttest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/programs"
)

// TestMain puts every program on PATH under its own name: the test binary
// plays it (testscript.Main), so the scripts need no build.
func TestMain(m *testing.M) {
	cmds := map[string]func(){}
	for _, p := range programs.All() {
		cmds[p.Name] = func() { os.Exit(p.Main(os.Args[1:])) }
	}
	testscript.Main(m, cmds)
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "../../../testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       os.Getenv("UPDATE_SCRIPTS") == "1",
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// conf FILE KEY=VALUE...: write a configuration file (mode 0600);
			// unlike an archive file, its arguments see $WORK expanded.
			"conf": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 {
					ts.Fatalf("usage: conf FILE [KEY=VALUE...]")
				}
				var b strings.Builder
				for _, kv := range args[1:] {
					k, v, _ := strings.Cut(kv, "=")
					b.WriteString(k + "=" + config.Quote(v) + "\n")
				}
				ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o600))
			},
			// status N prog args...: run prog and require exit status N.
			"status": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: status N prog [args...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("status: %v", err)
				}
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("%s: %v", args[1], err)
				}
				if (got == want) == neg {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
		},
	})
}
