// Command ot-disable-sync turns syncing from production off.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/syncmode"
)

func main() { os.Exit(syncmode.DisableMain(os.Args[1:])) }
