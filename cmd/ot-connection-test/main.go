// Command ot-connection-test checks that production is reachable and login-able.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/conntest"
)

func main() { os.Exit(conntest.Main(os.Args[1:])) }
