// Command ot-conf-sync copies a selection of configuration from production.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/confsync"
)

func main() { os.Exit(confsync.Main(os.Args[1:])) }
