package main

import (
	"fmt"
	"regexp"
	"strings"
)

// Help is a program's --help text, parsed. Kong prints it as
//
//	Usage: PROG ARGS
//
//	description paragraphs
//
//	Flags:            (or another "Title:" or an ALL CAPS title)
//	  -t, --term=X    description, continued
//	                  on lines indented further
type Help struct {
	Usage    string  // after "Usage: "
	Desc     []Block // the paragraphs before the first section
	Sections []Section
}

// Block is a paragraph: text lines to fill, or lines to keep as they are.
type Block struct {
	Pre   bool
	Lines []string
}

// Section is a titled part of the help: a list of terms (flags, arguments,
// exit codes) and any plain text. Note is what the title line adds in
// parentheses: "EXIT STATUS (monitoring-plugin convention; ...)".
type Section struct {
	Title string
	Note  string
	Items []Item
	Text  []Block
}

// Item is one term and its description.
type Item struct {
	Term, Desc string
	indent     int
}

// gap splits "  term   description": two or more spaces end the term.
var gap = regexp.MustCompile(`\S( {2,})\S`)

// ParseHelp parses the output of `PROG --help`.
func ParseHelp(text string) (*Help, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Usage: ") {
		return nil, fmt.Errorf("help text does not start with \"Usage: \"")
	}
	h := &Help{Usage: strings.TrimSpace(strings.TrimPrefix(lines[0], "Usage: "))}
	var sec *Section
	var blk *Block // the paragraph being read, nil after a blank line
	for _, line := range lines[1:] {
		line = strings.TrimRight(line, " \t")
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		switch {
		case line == "":
			blk = nil
		case indent == 0 && isTitle(line):
			title, note := splitTitle(line)
			h.Sections = append(h.Sections, Section{Title: title, Note: note})
			sec, blk = &h.Sections[len(h.Sections)-1], nil
		case sec != nil && indent > 0:
			blk = nil
			n := len(sec.Items)
			if n > 0 && indent > sec.Items[n-1].indent+4 && !gap.MatchString(trimmed) {
				it := &sec.Items[n-1]
				it.Desc = strings.TrimSpace(it.Desc + " " + trimmed)
				continue
			}
			it := Item{Term: trimmed, indent: indent}
			if m := gap.FindStringSubmatchIndex(trimmed); m != nil {
				it.Term, it.Desc = trimmed[:m[2]], trimmed[m[3]:]
			}
			sec.Items = append(sec.Items, it)
		default:
			pre := indent > 0
			if blk == nil || blk.Pre != pre {
				if sec != nil {
					sec.Text = append(sec.Text, Block{Pre: pre})
					blk = &sec.Text[len(sec.Text)-1]
				} else {
					h.Desc = append(h.Desc, Block{Pre: pre})
					blk = &h.Desc[len(h.Desc)-1]
				}
			}
			if !pre {
				line = trimmed
			}
			blk.Lines = append(blk.Lines, line)
		}
	}
	return h, nil
}

// capsTitle is an ALL CAPS title, with an optional note in parentheses.
var capsTitle = regexp.MustCompile(`^([A-Z][A-Z ]*[A-Z])(?: \((.+)\))?$`)

// isTitle tells a section title: "Flags:", "EXIT STATUS", or "EXIT STATUS
// (a note)" as ot-status prints it.
func isTitle(line string) bool {
	if strings.Contains(line, "  ") {
		return false
	}
	if strings.HasSuffix(line, ":") {
		return len(line) <= 40
	}
	return capsTitle.MatchString(line)
}

// splitTitle returns a title line's title and its note, if any.
func splitTitle(line string) (title, note string) {
	if m := capsTitle.FindStringSubmatch(line); m != nil {
		return m[1], m[2]
	}
	return strings.TrimSuffix(line, ":"), ""
}

// Summary is the first sentence of the description, as a man page's NAME
// line wants it: lower case first letter, no final period.
func (h *Help) Summary() string {
	for _, b := range h.Desc {
		if b.Pre {
			continue
		}
		s := strings.Join(b.Lines, " ")
		if i := strings.Index(s, ". "); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSuffix(s, ".")
		if len(s) > 1 && s[1] >= 'a' && s[1] <= 'z' {
			s = strings.ToLower(s[:1]) + s[1:]
		}
		return s
	}
	return ""
}

// Options returns the flag names a program accepts ("--dry-run", "-n"),
// those that take a value ending in "=".
func (h *Help) Options() []string {
	var opts []string
	for _, s := range h.Sections {
		if s.Title != "Flags" {
			continue
		}
		for _, it := range s.Items {
			for _, f := range strings.Split(it.Term, ", ") {
				f = strings.Fields(f)[0]
				name, _, value := strings.Cut(f, "=")
				if value {
					name += "="
				}
				if neg, ok := strings.CutPrefix(name, "--[no-]"); ok {
					opts = append(opts, "--"+neg, "--no-"+neg)
					continue
				}
				if strings.HasPrefix(name, "-") {
					opts = append(opts, name)
				}
			}
		}
	}
	return opts
}

// Commands returns the subcommand names, if the program has any.
func (h *Help) Commands() []string {
	var cmds []string
	for _, s := range h.Sections {
		if s.Title != "Commands" {
			continue
		}
		for _, it := range s.Items {
			if f := strings.Fields(it.Term); len(f) > 0 && !strings.HasPrefix(f[0], "-") {
				cmds = append(cmds, f[0])
			}
		}
	}
	return cmds
}
