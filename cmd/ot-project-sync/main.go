// Command ot-project-sync copies production's addon projects to the standby.
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/projects"
)

func main() { os.Exit(projects.Main(os.Args[1:])) }
