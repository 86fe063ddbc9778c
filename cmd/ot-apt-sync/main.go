// Command ot-apt-sync installs production's manually installed apt packages
// on the standby.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/aptsync"
)

func main() { os.Exit(aptsync.Main(os.Args[1:])) }
