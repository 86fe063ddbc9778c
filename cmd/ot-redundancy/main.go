// Command ot-redundancy is the one program the package installs: every
// ot-* command is a link to it, and it runs the one named by the link.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/multicall"
)

func main() { os.Exit(multicall.Main(os.Args)) }
