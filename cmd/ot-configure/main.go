// Command ot-configure is the configuration wizard.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/configure"
)

func main() { os.Exit(configure.Main(os.Args[1:])) }
