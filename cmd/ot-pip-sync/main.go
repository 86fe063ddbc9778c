// Command ot-pip-sync installs production's pip packages on the standby.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/pipsync"
)

func main() { os.Exit(pipsync.Main(os.Args[1:])) }
