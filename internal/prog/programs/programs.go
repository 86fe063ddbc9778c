// Package programs names every ot-* program and its Main: the one list the
// multi-call binary dispatches on and the script tests run in-process.
package programs

import (
	"github.com/ot-redundancy/ot-redundancy/internal/prog/aptsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/configure"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/confsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/conntest"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/enablestandby"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/fullsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/pipsync"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/projects"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/promote"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/status"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/syncmode"
	"github.com/ot-redundancy/ot-redundancy/internal/prog/writesummary"
)

// Program is one command: the name it is installed as, and its Main.
type Program struct {
	Name string
	Main func(args []string) int
}

// All lists the programs, in the manual's order (table 1), ours last.
func All() []Program {
	return []Program{
		{"ot-connection-test", conntest.Main},
		{"ot-disable-standby-mode", promote.Main},
		{"ot-configure", configure.Main},
		{"ot-enable-sync", syncmode.EnableMain},
		{"ot-disable-sync", syncmode.DisableMain},
		{"ot-sync-from-source", fullsync.Main},
		{"ot-apt-sync", aptsync.Main},
		{"ot-pip-sync", pipsync.Main},
		{"ot-attachments-sync", filestore.Main},
		{"ot-project-sync", projects.Main},
		{"ot-conf-sync", confsync.Main},
		{"ot-write-summary", writesummary.Main},
		{"ot-status", status.Main},
		{"ot-enable-standby-mode", enablestandby.Main},
	}
}

// Alias is another name a program is installed as.
type Alias struct {
	Name, Program string
}

// Aliases lists the extra names. The manual spells the hourly job both
// ot-attachments-sync and ot-attachment-sync; the second runs the first.
func Aliases() []Alias {
	return []Alias{{"ot-attachment-sync", "ot-attachments-sync"}}
}

// Mains maps each program's name to its Main.
func Mains() map[string]func([]string) int {
	m := map[string]func([]string) int{}
	for _, p := range All() {
		m[p.Name] = p.Main
	}
	return m
}
