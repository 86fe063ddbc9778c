package pipsync

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

var (
	// PEP 508 names: letters, digits, and . _ - inside; never a leading '-'.
	nameRE = regexp.MustCompile(`^(?i)([a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$`)
	// PEP 440 (the regular expression of its appendix B, canonical and
	// tolerated spellings), anchored; never a leading '-'.
	versionRE = regexp.MustCompile(`^(?i)v?(?:(?:[0-9]+)!)?(?:[0-9]+(?:\.[0-9]+)*)` +
		`(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?:[0-9]+)?)?` +
		`(?:-(?:[0-9]+)|[-_.]?(?:post|rev|r)[-_.]?(?:[0-9]+)?)?` +
		`(?:[-_.]?dev[-_.]?(?:[0-9]+)?)?` +
		`(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$`)
	separators = regexp.MustCompile(`[-_.]+`)
)

// ValidName reports whether s is a PEP 508 distribution name.
func ValidName(s string) bool { return len(s) <= 200 && nameRE.MatchString(s) }

// ValidVersion reports whether s is a PEP 440 version.
func ValidVersion(s string) bool { return len(s) <= 100 && versionRE.MatchString(s) }

// Normalize is PEP 503's normalised name, under which pip compares names.
func Normalize(name string) string {
	return strings.ToLower(separators.ReplaceAllString(name, "-"))
}

// Dist is one installed distribution.
type Dist struct {
	Name    string
	Version string
	// Direct is set for a distribution not installed from an index: an
	// editable or local-path install, or one from a URL or VCS. It says what.
	Direct string
}

// inspectOutput is the part of `pip inspect`'s report we read (pip >= 22.2).
type inspectOutput struct {
	Version   string `json:"version"`
	Installed []struct {
		Metadata struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"metadata"`
		DirectURL *struct {
			URL     string `json:"url"`
			DirInfo *struct {
				Editable bool `json:"editable"`
			} `json:"dir_info"`
			VCSInfo *struct {
				VCS string `json:"vcs"`
			} `json:"vcs_info"`
		} `json:"direct_url"`
	} `json:"installed"`
}

// listEntry is one element of `pip list --format=json`.
type listEntry struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Editable string `json:"editable_project_location"` // pip >= 21.3
}

// ParseInspect reads `pip inspect` output.
func ParseInspect(data []byte) ([]Dist, error) {
	var out inspectOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("not pip inspect's JSON: %v", err)
	}
	if out.Version != "1" {
		return nil, fmt.Errorf("pip inspect report version %q, want \"1\"", out.Version)
	}
	dists := make([]Dist, 0, len(out.Installed))
	for _, in := range out.Installed {
		d := Dist{Name: in.Metadata.Name, Version: in.Metadata.Version}
		if u := in.DirectURL; u != nil {
			switch {
			case u.DirInfo != nil && u.DirInfo.Editable:
				d.Direct = "an editable install (" + u.URL + ")"
			case u.VCSInfo != nil:
				d.Direct = "a " + u.VCSInfo.VCS + " install (" + u.URL + ")"
			case strings.HasPrefix(u.URL, "file:"):
				d.Direct = "a local install (" + u.URL + ")"
			default:
				d.Direct = "an install from a URL (" + u.URL + ")"
			}
		}
		dists = append(dists, d)
	}
	return dists, nil
}

// ParseList reads `pip list --format=json` output.
func ParseList(data []byte) ([]Dist, error) {
	var entries []listEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("not pip list's JSON: %v", err)
	}
	dists := make([]Dist, 0, len(entries))
	for _, e := range entries {
		d := Dist{Name: e.Name, Version: e.Version}
		if e.Editable != "" {
			d.Direct = "an editable install (" + e.Editable + ")"
		}
		dists = append(dists, d)
	}
	return dists, nil
}

// Validate refuses any name or version that is not what PEP 508 and PEP 440
// allow, so that nothing production prints can become a pip option.
func Validate(dists []Dist) error {
	var bad []string
	for _, d := range dists {
		switch {
		case !ValidName(d.Name):
			bad = append(bad, fmt.Sprintf("name %q", trunc(d.Name)))
		case !ValidVersion(d.Version):
			bad = append(bad, fmt.Sprintf("version %q of %s", trunc(d.Version), d.Name))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if len(bad) > 3 {
		bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
	}
	return fmt.Errorf("%s: not a PEP 508 name or PEP 440 version", strings.Join(bad, ", "))
}

func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
