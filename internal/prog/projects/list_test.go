package projects

import (
	"maps"
	"slices"
	"testing"
)

var defaults = Matcher{Include: []string{"*odoo*"}, Exclude: []string{"core-odoo"}}

func TestParseListing(t *testing.T) {
	out := []byte("odoo-sale\x00core-odoo\x00python3\x00b-odoo\x00weird name\x00")
	got, err := ParseListing(out, defaults)
	if err != nil || !slices.Equal(got, []string{"b-odoo", "odoo-sale"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := ParseListing(nil, defaults); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := ParseListing([]byte("odoo-sale\x00b-od"), defaults); err != errPartial {
		t.Fatalf("partial: %v", err)
	}
}

func TestParseListingRefusesUnsafeMatchingNames(t *testing.T) {
	for _, name := range []string{"-odoo", "..odoo", "x odoo", "odoo;rm", "odoo$(x)", "odoo\nx", "odoo'", "odoo\\", ".odoo"} {
		if _, err := ParseListing([]byte(name+"\x00"), defaults); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	// find's %f never holds a '/'; if it did, no glob matches it: ignored.
	if got, err := ParseListing([]byte("odoo/x\x00"), defaults); err != nil || len(got) != 0 {
		t.Errorf("odoo/x: %v %v", got, err)
	}
	for _, name := range []string{"odoo-14.0", "vertel_odoo", "odoo+x@y", "OdooX_odoo"} {
		if got, err := ParseListing([]byte(name+"\x00"), defaults); err != nil || len(got) != 1 {
			t.Errorf("%q: %v %v", name, got, err)
		}
	}
}

func TestStale(t *testing.T) {
	got := Stale([]string{"a", "b", "c"}, []string{"b", "d"})
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Fatal(got)
	}
}

func TestParseOwners(t *testing.T) {
	out := []byte("x-odoo, y-odoo: /usr/share/a-odoo\n" +
		"diversion by z from: /usr/share/b-odoo\n" +
		"other: /usr/share/c-odoo/sub\n" +
		"other: /usr/lib/a-odoo\n" +
		"dpkg-query: no path found matching pattern /usr/share/d-odoo\n")
	got := ParseOwners(out, "/usr/share", []string{"a-odoo", "b-odoo", "c-odoo", "d-odoo"})
	want := map[string]string{"a-odoo": "x-odoo, y-odoo", "b-odoo": "diversion by z from"}
	if !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
