package promote

import "github.com/ot-redundancy/ot-redundancy/internal/core/run"

// odooSteps enables Odoo at boot and starts it: with systemctl where systemd
// runs, otherwise with update-rc.d and service (sysvinit). When Odoo already
// answers (a re-run), it is only enabled.
func odooSteps(services []string, systemd, running bool) []run.Step {
	var steps []run.Step
	for _, s := range services {
		if systemd {
			steps = append(steps, run.Step{What: "enable Odoo at boot (" + s + ")", Argv: []string{"systemctl", "enable", s}})
			if !running {
				steps = append(steps, run.Step{What: "start Odoo (" + s + ")", Argv: []string{"systemctl", "start", s}, Detach: true})
			}
			continue
		}
		// "defaults" creates the links when there are none; "enable" turns
		// the links of a disabled service back into start links.
		steps = append(steps,
			run.Step{What: "install Odoo's boot links (" + s + ")", Argv: []string{"update-rc.d", s, "defaults"}},
			run.Step{What: "enable Odoo at boot (" + s + ")", Argv: []string{"update-rc.d", s, "enable"}})
		if !running {
			steps = append(steps, run.Step{What: "start Odoo (" + s + ")", Argv: []string{"service", s, "start"}, Detach: true})
		}
	}
	return steps
}
