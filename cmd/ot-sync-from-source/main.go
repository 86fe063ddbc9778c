// Command ot-sync-from-source runs every sync from production in one go.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/fullsync"
)

func main() { os.Exit(fullsync.Main(os.Args[1:])) }
