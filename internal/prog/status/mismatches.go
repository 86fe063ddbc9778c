package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/prog/filestore"
)

// Mismatches is what the last full filestore sync found of production's
// attachments whose content does not match their content-addressed name
// (ransomware, a failing disk): the standby kept its own copies.
type Mismatches struct {
	Count   int       `json:"count"`
	First   []string  `json:"first,omitempty"`
	Checked time.Time `json:"checked"` // when that sync ended
}

// mismatches reads the filestore sync's state file in STATE_DIR: CRITICAL
// on a standby when production has mismatched attachments. No state file
// (no sync since the check exists) adds no check.
func mismatches(stateDir string, standby bool, r *Report) {
	st, err := filestore.ReadState(stateDir)
	switch {
	case err != nil:
		r.add("production content", Unknown, "cannot read "+filestore.StateFile(stateDir)+": "+err.Error())
		return
	case st.Time.IsZero():
		return
	}
	r.ProductionMismatches = &Mismatches{Count: st.Mismatches, First: st.First, Checked: st.Time}
	when := st.Time.Local().Format("2006-01-02 15:04")
	if st.Mismatches == 0 {
		r.add("production content", OK, "production's attachments that arrived match their names (sync of "+when+")")
		return
	}
	l := Critical
	if !standby {
		l = OK // this machine is production now: the old one's state is history
	}
	first := strings.Join(st.First, ", ")
	if st.Mismatches > len(st.First) {
		first += ", ..."
	}
	r.add("production content", l, fmt.Sprintf("production has %d attachments whose content does not match their name (%s; sync of %s): the standby kept its own copies; check production's filestore for ransomware or a failing disk",
		st.Mismatches, first, when))
}

// mismatchMetrics adds the mismatch count to the Prometheus textfile.
func mismatchMetrics(r *Report, metric func(name, help, typ string), value func(name, labels string, v float64)) {
	if r.ProductionMismatches == nil {
		return
	}
	metric("ot_redundancy_production_mismatched_attachments", "Production's attachments whose content does not match their name, per the last filestore sync (the standby kept its copies).", "gauge")
	value("ot_redundancy_production_mismatched_attachments", "", float64(r.ProductionMismatches.Count))
}
