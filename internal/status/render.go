package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// Output formats of Render.
const (
	FormatTable = "table"
	FormatWide  = "wide"
	FormatJSON  = "json"
)

// JSONVersion is the version of the -o json document; it changes only if a field changes meaning or goes.
const JSONVersion = 1

// Document is the -o json output.
type Document struct {
	// Version is JSONVersion.
	Version int `json:"version"`
	// OK is true when every Service is OK (exit code 0).
	OK bool `json:"ok"`
	// Services are the rows, sorted by namespace and name; never null.
	Services []Row `json:"services"`
}

// Columns of the table; wide adds WideColumns. Both are stable: new columns are only ever appended.
var (
	Columns     = []string{"NAMESPACE", "NAME", "ADDRESSES", "NODE", "INTERFACES", "HEALTH", "RESPONDERS", "LAST-PROBE", "STATUS"}
	WideColumns = []string{"SINCE", "WATCHER", "CONDITIONS"}
)

// Render writes rows in format (table, wide or json) to w. now dates the ages of the table.
func Render(w io.Writer, rows []Row, format string, now time.Time) error {
	switch format {
	case FormatJSON:
		doc := Document{Version: JSONVersion, OK: ExitCode(rows) == 0, Services: rows}
		if doc.Services == nil {
			doc.Services = []Row{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	case FormatTable, FormatWide, "":
		return renderTable(w, rows, format == FormatWide, now)
	default:
		return fmt.Errorf("unknown output format %q: want table, wide or json", format)
	}
}

func renderTable(w io.Writer, rows []Row, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := Columns
	if wide {
		head = append(append([]string{}, Columns...), WideColumns...)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cells := []string{r.Namespace, r.Name, list(r.Addresses), dash(r.Node), list(r.Interfaces), healthCell(r),
			respondersCell(r), age(lastProbe(r), now), string(r.State)}
		if wide {
			watcher := ""
			if r.Health != nil {
				watcher = r.Health.Watcher
			}
			cells = append(cells, age(r.Since, now), dash(watcher), conditionsCell(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	// Cells never hold blanks, so that the columns split on white space.
	return strings.Join(strings.Fields(s), "_")
}

func list(s []string) string { return dash(strings.Join(s, ",")) }

func healthCell(r Row) string {
	switch {
	case r.Health != nil && r.Health.Verdict != "":
		return r.Health.Verdict
	case r.Announcement:
		return "Unknown"
	default:
		return "-"
	}
}

// respondersCell lists the distinct responders of the latest probe, mac(node), in order of first answer.
func respondersCell(r Row) string {
	if r.Health == nil {
		return "-"
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range r.Health.Addresses {
		for _, rs := range a.Responders {
			s := rs.MAC
			if rs.Node != "" {
				s += "(" + rs.Node + ")"
			}
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return list(out)
}

func lastProbe(r Row) *time.Time {
	if r.Health == nil {
		return nil
	}
	return r.Health.LastProbe
}

// age is kubectl's short age ("5s", "3m2s", "4d"), "-" when t is unknown.
func age(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(*t)
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

// conditionsCell is "Announced=True/Reason,Conflict=False,...".
func conditionsCell(r Row) string {
	var out []string
	for _, c := range r.Conditions {
		s := c.Type + "=" + c.Status
		if c.Reason != "" {
			s += "/" + c.Reason
		}
		out = append(out, s)
	}
	return list(out)
}
