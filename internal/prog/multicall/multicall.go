// Package multicall is the program behind every ot-* command in the
// package, busybox style: one static binary, each command a link to it,
// dispatched on the name it was called by. Called by its own name it lists
// the commands, runs one named by its first argument, or does the package's
// maintainer-script work (upgrade-conf).
package multicall

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/programs"
)

// Name is the binary's own name.
const Name = "ot-redundancy"

// Main runs the program that argv[0] names, or the binary's own commands.
func Main(argv []string) int {
	return run(argv, os.Stdout, os.Stderr)
}

func run(argv []string, stdout, stderr io.Writer) int {
	if len(argv) == 0 {
		argv = []string{Name}
	}
	if main := lookup(filepath.Base(argv[0])); main != nil {
		return main(argv[1:])
	}
	args := argv[1:]
	if len(args) == 0 {
		usage(stderr)
		return cli.ExitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return cli.ExitOK
	case "--version":
		fmt.Fprintf(stdout, "%s %s\n", Name, cli.Version)
		return cli.ExitOK
	case "--list":
		for _, n := range Names() {
			fmt.Fprintln(stdout, n)
		}
		return cli.ExitOK
	case "upgrade-conf":
		if len(args) != 3 {
			fmt.Fprintf(stderr, "%s: error: usage: %s upgrade-conf OLD-VERSION FILE\n", Name, Name)
			return cli.ExitUsage
		}
		return upgradeConf(args[1], args[2], stdout, stderr)
	}
	if main := lookup(args[0]); main != nil {
		return main(args[1:])
	}
	fmt.Fprintf(stderr, "%s: error: %q is not an ot-* command; %s --list names them\n", Name, args[0], Name)
	return cli.ExitUsage
}

// Names lists every name the binary answers to: the programs in the
// manual's order, then the aliases. The package links each in /usr/bin.
func Names() []string {
	var names []string
	for _, p := range programs.All() {
		names = append(names, p.Name)
	}
	for _, a := range programs.Aliases() {
		names = append(names, a.Name)
	}
	return names
}

// lookup finds the Main of a program or alias name, or nil.
func lookup(name string) func([]string) int {
	mains := programs.Mains()
	if m := mains[name]; m != nil {
		return m
	}
	for _, a := range programs.Aliases() {
		if a.Name == name {
			return mains[a.Program]
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s COMMAND [ARGS...]

The ot-redundancy suite in one program. Each ot-* command is a link to it and
runs the command it is called as; "%[1]s ot-status --help" runs ot-status.

  %[1]s --list                        the commands, one per line
  %[1]s --version                     the version
  %[1]s upgrade-conf OLD-VERSION FILE  for the package's postinst: bring the
        configuration FILE of a version before 1.0 to this version's meaning
`, Name)
}

// upgradeConf brings a configuration file written for the original suite
// (before 1.0) to this version's meaning. The original synced when SYNCMODE
// was missing or empty; these programs sync only when it is "on". Left as
// it was, such a machine would stop syncing without a word on upgrade, so
// SYNCMODE="on" is written, through the same writer the programs use
// (comments, order, owner and mode kept; atomic), and said.
func upgradeConf(oldVersion, path string, stdout, stderr io.Writer) int {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return cli.ExitOK // nothing to carry over
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: cannot check SYNCMODE after the upgrade from %s: %v; fix the file, then set SYNCMODE=\"on\" if this standby should sync (ot-enable-sync)\n", Name, oldVersion, err)
		return cli.ExitConfig
	}
	if cfg.IsSet(config.SyncMode) && cfg.Get(config.SyncMode) != "" {
		return cli.ExitOK
	}
	was := "missing"
	if cfg.IsSet(config.SyncMode) {
		was = "empty"
	}
	if err := cfg.Set(config.SyncMode, "on"); err == nil {
		err = cfg.Save(config.SyncMode)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: cannot set SYNCMODE=\"on\" in %s: %v; set it by hand (ot-enable-sync), or syncing stays off\n", Name, path, err)
		return cli.ExitFailure
	}
	fmt.Fprintf(stdout, "%s: SYNCMODE was %s in %s; ot-redundancy %s synced then, this version syncs only when it is \"on\", so SYNCMODE=\"on\" was written to keep this standby syncing (ot-disable-sync turns it off)\n",
		Name, was, path, oldVersion)
	return cli.ExitOK
}
