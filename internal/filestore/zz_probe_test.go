package filestore

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestZZProbe(t *testing.T) {
	l := newLab(t, nil)
	n, _ := strconv.Atoi(os.Getenv("PROBE_N"))
	fill(t, l.prod, "db1", 0, n, 1000)
	bl := &benchLab{lab: l}
	j := bl.newJob(&testing.B{})
	if r := l.run(t); r.code != 0 {
		t.Fatal(r)
	}
	src := j.SSH.Spec(l.standby + "/")
	base := []string{"rsync", "-a", "--delete", "--chown=daemon:daemon"}
	safe := []string{"--no-devices", "--no-specials", "--safe-links", "--chmod=ug-s", "--timeout=120"}
	part := []string{"--partial-dir=" + l.standby + "/.rsync-partial", "--exclude=/.rsync-partial/"}
	md := []string{"--max-delete=0"}
	lg := []string{"-q", "-ii", "--info=stats2", "--log-file=/tmp/fsx-me/lg", "--log-file-format=%i %n"}
	cat := func(xs ...[]string) []string {
		var r []string
		for _, x := range xs {
			r = append(r, x...)
		}
		return append(r, "-e", j.SSH.RsyncShell(), "--", src, l.standby+"/")
	}
	variants := []struct {
		name string
		argv []string
	}{
		{"V0 bare", cat(base)},
		{"V1 +safe", cat(base, safe)},
		{"V2 +partial", cat(base, safe, part)},
		{"V3 +maxdel", cat(base, safe, part, md)},
		{"V4 +log", cat(base, safe, part, md, lg)},
		{"V5 nopart+log", cat(base, safe, md, lg)},
	}
	vs := []struct {
		name string
		argv []string
	}{
		{"V0", cat(base)},
		{"+log", cat(base, lg)},
		{"+ii-stdout", cat(base, []string{"-ii", "--out-format=%i %n"})},
		{"+partial", cat(base, part)},
		{"+partial-rel", cat(base, []string{"--partial-dir=.rsync-partial"})},
		{"+delay", cat(base, []string{"--delay-updates"})},
	}
	_ = variants
	sum := map[string]time.Duration{}
	for r := 0; r < 5; r++ {
		for _, v := range vs {
			cmd := exec.Command(v.argv[0], v.argv[1:]...)
			s := time.Now()
			cmd.Run()
			sum[v.name] += time.Since(s)
		}
	}
	for _, v := range vs {
		t.Logf("%-14s %v", v.name, sum[v.name]/5)
	}
}
