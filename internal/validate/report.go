package validate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report is the outcome of a run, and the JSON document of -o json. Fields are only ever added.
type Report struct {
	Version int `json:"version"`
	// OK is false when a finding has severity error, or, with Strict, warning.
	OK       bool      `json:"ok"`
	Strict   bool      `json:"strict"`
	Counts   Counts    `json:"counts"`
	Objects  Objects   `json:"objects"`
	Findings []Finding `json:"findings"`
}

// Counts counts findings by severity.
type Counts struct {
	Errors    int `json:"errors"`
	Warnings  int `json:"warnings"`
	Unchecked int `json:"unchecked"`
}

// Objects counts what was checked.
type Objects struct {
	IPAddressPools   int `json:"ipAddressPools"`
	L2Advertisements int `json:"l2Advertisements"`
	Services         int `json:"services"`
	Nodes            int `json:"nodes"`
	EndpointSlices   int `json:"endpointSlices"`
	Announcements    int `json:"announcements"`
}

// NewReport checks s and reports; strict makes warnings fail too.
func NewReport(s *Snapshot, strict bool) Report {
	r := Report{Version: 1, Strict: strict, Findings: Check(s), Objects: Objects{
		IPAddressPools: len(s.Pools), L2Advertisements: len(s.Advertisements), Services: len(s.Services),
		Nodes: len(s.Nodes), EndpointSlices: len(s.EndpointSlices), Announcements: len(s.Announcements),
	}}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, f := range r.Findings {
		switch f.Severity {
		case Error:
			r.Counts.Errors++
		case Warning:
			r.Counts.Warnings++
		case Unchecked:
			r.Counts.Unchecked++
		}
	}
	r.OK = r.Counts.Errors == 0 && !(strict && r.Counts.Warnings > 0)
	return r
}

// WriteJSON writes r as one indented JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for a person: a summary line, then each finding, worst first, as
//
//	SEVERITY CHECK: OBJECT FIELD
//	  MESSAGE
//	  fix: FIX
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	o := r.Objects
	checked := fmt.Sprintf("%s, %s, %s, %s, %s, %s", count(o.IPAddressPools, "IPAddressPool"),
		count(o.L2Advertisements, "L2Advertisement"), count(o.Services, "Service"), count(o.Nodes, "Node"),
		count(o.EndpointSlices, "EndpointSlice"), count(o.Announcements, "Announcement"))
	if len(r.Findings) == 0 {
		fmt.Fprintf(&b, "No problems found in %s.\n", checked)
	} else {
		fmt.Fprintf(&b, "%s, %s, %d unchecked in %s.\n", count(r.Counts.Errors, "error"),
			count(r.Counts.Warnings, "warning"), r.Counts.Unchecked, checked)
	}
	for _, f := range r.Findings {
		where := f.Object
		if f.Field != "" {
			where += " " + f.Field
		}
		fmt.Fprintf(&b, "\n%s %s: %s\n  %s\n", f.Severity, f.Check, where, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(&b, "  fix: %s\n", f.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
