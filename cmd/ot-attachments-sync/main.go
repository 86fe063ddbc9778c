// Command ot-attachments-sync mirrors production's Odoo filestore into the
// standby's (hourly, from cron).
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
)

func main() { os.Exit(filestore.Main(os.Args[1:])) }
