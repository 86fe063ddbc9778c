// Command ot-write-summary appends a line to the summary log.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/writesummary"
)

func main() { os.Exit(writesummary.Main(os.Args[1:])) }
