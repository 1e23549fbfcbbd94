package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report is the outcome of a doctor run: JSON {"node": ..., "findings": [...]} for tools.
type Report struct {
	Node     string    `json:"node"`
	Findings []Finding `json:"findings"`
}

// groups are the severities in the order the text report shows them, with their heading and marker.
var groups = []struct{ severity, heading, marker string }{
	{SeverityError, "Errors", "✗"},
	{SeverityWarning, "Warnings", "!"},
	{SeverityInfo, "Info", "i"},
	{SeverityOK, "OK", "✓"},
}

// WriteJSON writes r as one JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteText writes r for a person: a summary line, then the findings grouped by severity, worst first, each
// with its fix underneath.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	count := map[string]int{}
	for _, f := range r.Findings {
		count[f.Severity]++
	}
	fmt.Fprintf(&b, "herald doctor on %s: %s, %s, %d info, %d ok\n", r.Node,
		plural(count[SeverityError], "error"), plural(count[SeverityWarning], "warning"), count[SeverityInfo], count[SeverityOK])
	for _, g := range groups {
		if count[g.severity] == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", g.heading)
		for _, f := range r.Findings {
			if f.Severity != g.severity {
				continue
			}
			fmt.Fprintf(&b, "  %s %s %s: %s\n", g.marker, f.Check, f.Subject, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(&b, "      fix: %s\n", f.Fix)
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
