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

func TestExact(t *testing.T) {
	known := map[string]bool{"g++": true, "zstd": true, "openssh-server": true, "libc6": true}
	foreign := map[string]bool{"i386": true}
	names := []string{"g++", "zstd", "libc6:i386", "openssh-server-", "zstd+", "zstd.", "libc6:any", "libc6:armhf", "ghost"}
	ok, refused := Exact(names, known, foreign)
	if !slices.Equal(ok, []string{"g++", "zstd", "libc6:i386"}) ||
		!slices.Equal(refused, []string{"openssh-server-", "zstd+", "zstd.", "libc6:any", "libc6:armhf", "ghost"}) {
		t.Fatalf("ok %v, refused %v", ok, refused)
	}
	if got := Few([]string{"a", "b", "c"}, 2); got != "a, b and 1 more" {
		t.Fatal(got)
	}
	if got := Few([]string{"a", "b"}, 2); got != "a, b" {
		t.Fatal(got)
	}
}

func TestDeniedIgnoresArchitecture(t *testing.T) {
	deny := strings.Fields("linux-image-* intel-microcode")
	for name, want := range map[string]string{"linux-image-amd64:i386": "linux-image-*", "intel-microcode:amd64": "intel-microcode", "intel-microcode+": "", "zstd": ""} {
		if got := Denied(name, deny); got != want {
			t.Errorf("Denied(%q) = %q, want %q", name, got, want)
		}
	}
}
