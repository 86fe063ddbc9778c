package aptsync

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, s := range []string{"adduser", "libc6:i386", "g++", "python3.11", "lib-x+y.z", "0ad"} {
		if !ValidName(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "a", "-oDPkg::Pre-Invoke::=touch /tmp/x", "--purge", "Foo", "a b", "foo:", "foo:-x", "foo;rm", "foo\tbar", "$(id)", ".foo", "+foo"} {
		if ValidName(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestParseListFixtures(t *testing.T) {
	data, err := os.ReadFile("../../../testdata/fixtures/apt-mark-showmanual.txt")
	if err != nil {
		t.Fatal(err)
	}
	names, err := ParseList(data)
	if err != nil || len(names) != 7 || names[3] != "libc6:i386" {
		t.Fatalf("%v %v", names, err)
	}
	data, err = os.ReadFile("../../../testdata/fixtures/apt-mark-showmanual-hostile.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseList(data); err == nil || err.Error() != `"-oDPkg::Pre-Invoke::=touch /tmp/x": not a Debian package name` {
		t.Fatalf("%v", err)
	}
}

func TestMakePlan(t *testing.T) {
	prod := []string{"a1", "b1:amd64", "c1", "linux-image-amd64", "d1:i386", "e1"}
	installed := map[string]bool{"c1": true, "e1": true}
	manual := map[string]bool{"e1": true}
	p := MakePlan(prod, "amd64", installed, manual, strings.Fields("linux-image-* *-firmware"))
	if !slices.Equal(p.Install, []string{"a1", "b1", "d1:i386"}) || !slices.Equal(p.Mark, []string{"a1", "b1", "c1", "d1:i386"}) {
		t.Fatalf("%+v", p)
	}
	if p.Denied["linux-image-amd64"] != "linux-image-*" || len(p.Denied) != 1 {
		t.Fatalf("%v", p.Denied)
	}
}

func TestUnknown(t *testing.T) {
	stderr := "E: Unable to locate package foo\nE: Package 'bar' has no installation candidate\nE: Unable to locate package foo\n"
	if got := Unknown(stderr); !slices.Equal(got, []string{"foo", "bar"}) {
		t.Fatal(got)
	}
}
