// Command gendoc generates, at build time, the package's files that other
// sources already say: a man page and a bash completion script per program
// from the program's own --help, and the default configuration file from
// config.Template. See the Makefile's docs target.
//
//	gendoc man -o DIR -version V -date D BIN...
//	gendoc completion -o DIR [-link NAME:PROG]... BIN...
//	gendoc conf
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ot-redundancy/ot-redundancy/internal/core/config"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "gendoc: error: %v\n", err)
		os.Exit(1)
	}
}

type links []string

func (l *links) String() string     { return strings.Join(*l, ",") }
func (l *links) Set(s string) error { *l = append(*l, s); return nil }

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: gendoc man|completion|conf ...")
	}
	fs := flag.NewFlagSet("gendoc "+args[0], flag.ContinueOnError)
	out := fs.String("o", ".", "output directory")
	version := fs.String("version", "", "version shown in man pages")
	date := fs.String("date", "", "date shown in man pages")
	var link links
	fs.Var(&link, "link", "NAME:PROG: NAME is another name of PROG (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	bins := fs.Args()
	var progs []string
	for _, bin := range bins {
		progs = append(progs, filepath.Base(bin))
	}
	switch args[0] {
	case "conf":
		_, err := fmt.Print(config.Template())
		return err
	case "man", "completion":
	default:
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, bin := range bins {
		prog := filepath.Base(bin)
		h, err := helpOf(bin)
		if err != nil {
			return err
		}
		var name, text string
		if args[0] == "man" {
			name, text = prog+".1", Man(prog, h, *version, *date, progs)
		} else {
			var aliases []string
			for _, l := range link {
				if alias, target, ok := strings.Cut(l, ":"); ok && target == prog {
					aliases = append(aliases, alias)
				}
			}
			name, text = prog, Completion(prog, aliases, h)
		}
		if err := os.WriteFile(filepath.Join(*out, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// helpOf runs `bin --help` in a clean environment (no OT_CONFIG, no
// terminal), so the text is the one the program prints by default.
func helpOf(bin string) (*Help, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --help: %v: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	h, err := ParseHelp(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("%s --help: %v", bin, err)
	}
	return h, nil
}
