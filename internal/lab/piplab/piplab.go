// Package piplab builds what pip tests need, offline: tiny wheels written
// from Go (a wheel is a zip of a module, METADATA, WHEEL and RECORD) in a
// wheelhouse, and virtual environments whose pip installs only from it.
package piplab

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Wheel is one tiny pure-Python distribution.
type Wheel struct {
	Name    string // as written in METADATA, e.g. "ot-pip-a"
	Version string
}

// Build writes the wheel into dir and returns its path.
func (w Wheel) Build(t testing.TB, dir string) string {
	t.Helper()
	dist := strings.ReplaceAll(w.Name, "-", "_")
	module := strings.ToLower(dist)
	info := dist + "-" + w.Version + ".dist-info"
	files := [][2]string{
		{module + ".py", fmt.Sprintf("VERSION = %q\n", w.Version)},
		{info + "/METADATA", fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: ot-redundancy test wheel\n", w.Name, w.Version)},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: ot-redundancy piptest\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	record.WriteString(info + "/RECORD,,\n")
	files = append(files, [2]string{info + "/RECORD", record.String()})

	path := filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", dist, w.Version))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	for _, file := range files {
		wr, err := z.Create(file[0])
		if err != nil {
			t.Fatal(err)
		}
		wr.Write([]byte(file[1]))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Sdist is a tiny source distribution whose build, as pip runs it, writes
// Marker (saying which uid built it) and then makes a wheel: a build runs
// code the package chose, as whoever runs pip. Its build backend is in
// the tree (PEP 517 backend-path) and needs nothing from an index.
type Sdist struct {
	Name    string // as written in PKG-INFO, e.g. "ot-pip-src"
	Version string
	Marker  string // absolute path of the file the build writes
}

// backend is the sdist's build backend: build_wheel writes the marker and
// a py3-none-any wheel of one module.
const backend = `import base64, hashlib, os, zipfile
NAME, DIST, VERSION, MARKER = %q, %q, %q, %q
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(MARKER, "w") as f:
        f.write("built by uid %%d\n" %% os.getuid())
    info = "%%s-%%s.dist-info" %% (DIST, VERSION)
    files = {
        DIST.lower() + ".py": "VERSION = %%r\n" %% VERSION,
        info + "/METADATA": "Metadata-Version: 2.1\nName: %%s\nVersion: %%s\n" %% (NAME, VERSION),
        info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: ot-redundancy piplab\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record += "%%s,sha256=%%s,%%d\n" %% (path, digest, len(content))
    files[info + "/RECORD"] = record + info + "/RECORD,,\n"
    name = "%%s-%%s-py3-none-any.whl" %% (DIST, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, content in files.items():
            z.writestr(path, content)
    return name
`

// Build writes the sdist (NAME-VERSION.tar.gz) into dir and returns its path.
func (s Sdist) Build(t testing.TB, dir string) string {
	t.Helper()
	dist := strings.ReplaceAll(s.Name, "-", "_")
	top := dist + "-" + s.Version + "/"
	files := [][2]string{
		{top + "pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"otbackend\"\nbackend-path = [\".\"]\n"},
		{top + "PKG-INFO", fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", s.Name, s.Version)},
		{top + "otbackend.py", fmt.Sprintf(backend, s.Name, dist, s.Version, s.Marker)},
	}
	path := filepath.Join(dir, dist+"-"+s.Version+".tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, file := range files {
		hdr := &tar.Header{Name: file[0], Mode: 0o644, Size: int64(len(file[1])), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(file[1]))
	}
	for _, c := range []interface{ Close() error }{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// Wheelhouse builds wheels into dir (created) and returns dir. It points
// pip's environment at it for the rest of the test.
func Wheelhouse(t testing.TB, dir string, wheels ...Wheel) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, w := range wheels {
		w.Build(t, dir)
	}
	// pip's environment variables beat a venv's pip.conf: a host's
	// PIP_FIND_LINKS must not send the test's pip elsewhere.
	t.Setenv("PIP_FIND_LINKS", dir)
	t.Setenv("PIP_NO_INDEX", "1")
	return dir
}

// Python is the interpreter for test venvs: Debian's own when present.
func Python() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

var template struct {
	once sync.Once
	dir  string
	err  error
}

// Venv creates a virtual environment at dir whose pip installs only from
// wheelhouse (its own pip.conf: no index, find-links) and returns the pip
// command to use, "DIR/bin/python -m pip". The venv is a copy of one made
// once per test binary (python -m venv takes seconds; a copy does not, and
// a venv's python finds its prefix from its own path); Cleanup removes it.
func Venv(t testing.TB, dir, wheelhouse string) string {
	t.Helper()
	template.once.Do(func() {
		template.dir, template.err = os.MkdirTemp("", "ot-piptest-venv-")
		if template.err == nil {
			out, err := exec.Command(Python(), "-m", "venv", filepath.Join(template.dir, "venv")).CombinedOutput()
			if err != nil {
				template.err = fmt.Errorf("%s -m venv: %v\n%s", Python(), err, out)
			}
		}
	})
	if template.err != nil {
		t.Fatalf("piptest: %v", template.err)
	}
	Run(t, "cp", "-a", filepath.Join(template.dir, "venv"), dir)
	conf := fmt.Sprintf("[global]\nno-index = true\nfind-links = %s\ndisable-pip-version-check = true\n", wheelhouse)
	if err := os.WriteFile(filepath.Join(dir, "pip.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "bin", "python") + " -m pip"
}

// Cleanup removes the template venv; call it from TestMain after m.Run.
func Cleanup() {
	if template.dir != "" {
		os.RemoveAll(template.dir)
	}
}

// Versions returns name -> version of what pip has installed (pip's own
// tools left out), by pip list --format=json.
func Versions(t testing.TB, pip string) map[string]string {
	t.Helper()
	out := Run(t, append(strings.Fields(pip), "list", "--format=json")...)
	var list []struct{ Name, Version string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("piptest: pip list: %v", err)
	}
	m := map[string]string{}
	for _, e := range list {
		if n := strings.ToLower(e.Name); n != "pip" && n != "setuptools" && n != "wheel" {
			m[n] = e.Version
		}
	}
	return m
}

// Run runs argv and returns stdout, failing the test on error.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("piptest: %s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out)
}
