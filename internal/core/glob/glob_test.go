package glob

import "testing"

func TestFind(t *testing.T) {
	pats := []string{"linux-image-*", "*-firmware", "[bad"}
	for name, want := range map[string]string{
		"linux-image-6.1.0-18-amd64": "linux-image-*",
		"atmel-firmware":             "*-firmware",
		"nginx":                      "",
		"[bad":                       "",
		"firmware":                   "",
	} {
		if got := Find(pats, name); got != want {
			t.Errorf("Find(%q) = %q, want %q", name, got, want)
		}
		if Any(pats, name) != (want != "") {
			t.Errorf("Any(%q) disagrees with Find", name)
		}
	}
}
