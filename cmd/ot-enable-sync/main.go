// Command ot-enable-sync turns syncing from production on.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/syncmode"
)

func main() { os.Exit(syncmode.EnableMain(os.Args[1:])) }
