package rsync

import (
	"fmt"
	"strings"
)

// Changes counts what an rsync run itemizes (--out-format=rsync.ItemFormat),
// and keeps the lines that add, change or delete something.
type Changes struct {
	Added, Changed, Deleted int
	Lines                   []string
}

// Itemize reads rsync's itemized output. Files, links and other non-dirs
// are counted; directories show in Lines only when created or deleted, and
// attribute-only updates not at all.
func Itemize(out []byte) Changes {
	var c Changes
	for _, line := range strings.Split(string(out), "\n") {
		it, ok := ParseItem(line)
		if !ok {
			continue
		}
		switch {
		case it.Deleting():
			c.Lines = append(c.Lines, line)
			if !it.Dir() {
				c.Deleted++
			}
		case it.New():
			c.Lines = append(c.Lines, line)
			if !it.Dir() {
				c.Added++
			}
		case it.Transferred() && !it.Dir():
			c.Lines = append(c.Lines, line)
			c.Changed++
		}
	}
	return c
}

// Empty reports whether nothing would be added, changed or deleted.
func (c Changes) Empty() bool { return len(c.Lines) == 0 }

func (c Changes) String() string {
	return fmt.Sprintf("%d added, %d changed, %d deleted", c.Added, c.Changed, c.Deleted)
}
