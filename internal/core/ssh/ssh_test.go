package ssh

import (
	"strings"
	"testing"

	"github.com/kballard/go-shellquote"
)

func TestCommandQuotesRemoteAndPutsDashDashBeforeHost(t *testing.T) {
	tg := Target{Host: "prod.example.com", User: "odoo", Port: 2222, KnownHosts: "/etc/odoo/kh", ConnectTimeout: 7}
	argv := tg.Command("ls", "-1", "/var/lib/my files", "$(id)")
	joined := strings.Join(argv, " ")
	for _, want := range []string{"-F /dev/null", "BatchMode=yes", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/etc/odoo/kh", "ConnectTimeout=7", "-p 2222 -l odoo -- prod.example.com"} {
		if !strings.Contains(joined, want) {
			t.Errorf("argv lacks %q: %s", want, joined)
		}
	}
	remote := argv[len(argv)-1]
	back, err := shellquote.Split(remote)
	if err != nil || len(back) != 4 || back[2] != "/var/lib/my files" || back[3] != "$(id)" {
		t.Fatalf("remote string %q splits to %q (%v)", remote, back, err)
	}
}

func TestRsyncShellUsesMaster(t *testing.T) {
	c := &Conn{Target: Target{Host: "::1", User: "odoo", Port: 22, KnownHosts: "/k"}, sock: "/tmp/ot-ssh-x/master"}
	sh := c.RsyncShell()
	if !strings.HasPrefix(sh, "ssh -F /dev/null") || !strings.Contains(sh, "ControlPath=/tmp/ot-ssh-x/master") {
		t.Fatalf("rsync -e %q", sh)
	}
	if c.Spec("/data") != "[::1]:/data" {
		t.Fatalf("spec %q", c.Spec("/data"))
	}
}
