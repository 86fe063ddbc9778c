package enablestandby

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// odoo is this machine's Odoo: its services and whether it answers.
type odoo struct {
	url      string
	systemd  bool
	services []string // ODOO_SERVICE's services that exist here
	missing  []string // ODOO_SERVICE's services unknown here
	up       bool     // ODOO_URL answers
}

// inspectOdoo finds Odoo's services (a systemd unit, or an init script)
// and asks ODOO_URL once.
func inspectOdoo(ctx context.Context, r *run.Runner, names []string, url string) odoo {
	o := odoo{url: url, systemd: isDir("/run/systemd/system")}
	for _, n := range names {
		if o.exists(ctx, r, n) {
			o.services = append(o.services, n)
		} else {
			o.missing = append(o.missing, n)
		}
	}
	o.up = httpOK(ctx, url, 2*time.Second) == nil
	return o
}

func (o odoo) exists(ctx context.Context, r *run.Runner, name string) bool {
	if !o.systemd {
		return exists(filepath.Join("/etc/init.d", name))
	}
	out, err := r.Exec(ctx, run.Step{Argv: []string{"systemctl", "show", "--property=LoadState", "--value", "--", name + ".service"}, Timeout: 30 * time.Second})
	return err == nil && strings.TrimSpace(string(out)) != "not-found"
}

// fenceSteps stop Odoo and disable it at boot, so that it cannot write
// again: the mirror of ot-disable-standby-mode's odooSteps. "disable"
// keeps the unit (or the init script's links) so that a later
// ot-disable-standby-mode can enable it again; a masked unit could not be.
// update-rc.d disables only existing links: "defaults" makes them first
// when there are none (and changes nothing when there are).
func fenceSteps(services []string, systemd bool) []run.Step {
	var steps []run.Step
	for _, s := range services {
		if systemd {
			steps = append(steps,
				run.Step{What: "stop Odoo (" + s + ")", Argv: []string{"systemctl", "stop", "--", s}},
				run.Step{What: "disable Odoo at boot (" + s + ")", Argv: []string{"systemctl", "disable", "--", s}})
			continue
		}
		steps = append(steps,
			run.Step{What: "stop Odoo (" + s + ")", Argv: []string{"service", s, "stop"}},
			run.Step{What: "install Odoo's boot links, if it has none (" + s + ")", Argv: []string{"update-rc.d", s, "defaults"}},
			run.Step{What: "disable Odoo at boot (" + s + ")", Argv: []string{"update-rc.d", s, "disable"}})
	}
	return steps
}

// waitDown waits until url no longer answers: Odoo is fenced.
func waitDown(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for httpOK(ctx, url, 2*time.Second) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("Odoo still answers at %s %s after it was stopped; stop whatever serves there and run again", url, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// httpOK gets url once and wants a 2xx or 3xx answer.
func httpOK(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
