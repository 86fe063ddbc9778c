// Command ot-enable-standby-mode makes this machine a standby of production again.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/enablestandby"
)

func main() { os.Exit(enablestandby.Main(os.Args[1:])) }
