// Command ot-disable-standby-mode promotes this standby to production.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/promote"
)

func main() { os.Exit(promote.Main(os.Args[1:])) }
