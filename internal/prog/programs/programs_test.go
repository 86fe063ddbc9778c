package programs

import (
	"os"
	"testing"
)

// Every program has a cmd/ directory, and every cmd/ot-* directory is a
// program: the list cannot drift from what is built.
func TestEveryCommandListed(t *testing.T) {
	mains := Mains()
	entries, err := os.ReadDir("../../../cmd")
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		// cmd/ot-redundancy is the multi-call binary that runs them all.
		if e.IsDir() && len(e.Name()) > 3 && e.Name()[:3] == "ot-" && e.Name() != "ot-redundancy" {
			dirs[e.Name()] = true
			if mains[e.Name()] == nil {
				t.Errorf("cmd/%s is not in programs.All", e.Name())
			}
		}
	}
	for name := range mains {
		if !dirs[name] {
			t.Errorf("%s has no cmd/%s", name, name)
		}
	}
}

// Every alias names a program, and no alias is a program's own name.
func TestAliases(t *testing.T) {
	mains := Mains()
	for _, a := range Aliases() {
		if mains[a.Program] == nil {
			t.Errorf("alias %s names %s, which is not a program", a.Name, a.Program)
		}
		if mains[a.Name] != nil {
			t.Errorf("alias %s is also a program", a.Name)
		}
	}
}
