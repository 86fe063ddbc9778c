// Command gendoc generates, at build time, the package's files that other
// sources already say: a man page and a bash completion script per program
// from the program's own --help, the configuration file's man page and the
// default configuration file from config.Defs, and the package's
// Static-Built-Using field from the binary's build information. See the
// Makefile's docs target and debian/rules.
//
//	gendoc man -o DIR -bin BIN -version V -date D   DIR/man1/*.1, DIR/man5/*.5
//	gendoc completion -o DIR -bin BIN
//	gendoc conf
//	gendoc built-using -copyright debian/copyright BIN
//
// BIN is the multi-call binary; each program's --help is read by running it
// under the program's name, as the links in /usr/bin do. The programs and
// their aliases are internal/prog/programs' list.
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
	"github.com/ot-redundancy/ot-redundancy/internal/prog/programs"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "gendoc: error: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: gendoc man|completion|conf|built-using ...")
	}
	fs := flag.NewFlagSet("gendoc "+args[0], flag.ContinueOnError)
	out := fs.String("o", ".", "output directory")
	bin := fs.String("bin", "", "the multi-call binary")
	version := fs.String("version", "", "version shown in man pages")
	date := fs.String("date", "", "date shown in man pages")
	copyright := fs.String("copyright", "debian/copyright", "debian/copyright, which must cover every module linked in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "conf":
		_, err := fmt.Print(config.Template())
		return err
	case "built-using":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: gendoc built-using -copyright FILE BIN")
		}
		line, err := BuiltUsing(fs.Arg(0), *copyright)
		if err != nil {
			return err
		}
		_, err = fmt.Println("misc:Static-Built-Using=" + line)
		return err
	case "man", "completion":
		if *bin == "" {
			return fmt.Errorf("gendoc %s: -bin is required", args[0])
		}
	default:
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	var names []string
	for _, p := range programs.All() {
		names = append(names, p.Name)
	}
	dir, ext := *out, ""
	if args[0] == "man" {
		dir, ext = filepath.Join(*out, "man1"), ".1"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, prog := range names {
		h, err := helpOf(*bin, prog)
		if err != nil {
			return err
		}
		var text string
		if args[0] == "man" {
			text = Man(prog, h, *version, *date, names)
		} else {
			text = Completion(prog, aliasesOf(prog), h)
		}
		if err := os.WriteFile(filepath.Join(dir, prog+ext), []byte(text), 0o644); err != nil {
			return err
		}
	}
	// An alias shares its program's page and completion: a link to them.
	for _, a := range programs.Aliases() {
		link := filepath.Join(dir, a.Name+ext)
		os.Remove(link)
		if err := os.Symlink(a.Program+ext, link); err != nil {
			return err
		}
	}
	if args[0] == "man" {
		dir5 := filepath.Join(*out, "man5")
		if err := os.MkdirAll(dir5, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir5, ConfPage+".5"), []byte(ConfMan(*version, *date, names)), 0o644)
	}
	return nil
}

func aliasesOf(prog string) []string {
	var aliases []string
	for _, a := range programs.Aliases() {
		if a.Program == prog {
			aliases = append(aliases, a.Name)
		}
	}
	return aliases
}

// helpOf runs the program prog of the multi-call binary bin with --help, in
// a clean environment (no OT_CONFIG, no terminal), so the text is the one
// the installed program prints by default.
func helpOf(bin, prog string) (*Help, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Args[0] = prog // what the link in /usr/bin passes
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --help: %v: %s", prog, err, strings.TrimSpace(stderr.String()))
	}
	h, err := ParseHelp(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("%s --help: %v", prog, err)
	}
	if !strings.HasPrefix(h.Usage, prog) {
		return nil, fmt.Errorf("%s --help: usage is %q: the binary did not run %s", prog, h.Usage, prog)
	}
	return h, nil
}
