// Command ot-attachments-sync mirrors production's Odoo filestore into the
// standby's (hourly, from cron).
package main

import (
	"os"

	"github.com/ot-redundancy/ot-redundancy/internal/filestore"
)

func main() { os.Exit(filestore.Main(os.Args[1:])) }
