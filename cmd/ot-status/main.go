// Command ot-status says whether this standby is ready to take over.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/status"
)

func main() { os.Exit(status.Main(os.Args[1:])) }
