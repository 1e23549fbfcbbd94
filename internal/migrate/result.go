package migrate

import (
	"fmt"
	"strings"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Severities of a Note.
const (
	// SeverityWarning: the object was translated, but something in it was dropped or behaves differently.
	SeverityWarning = "warning"
	// SeveritySkipped: the object or field was not translated at all.
	SeveritySkipped = "skipped"
	// SeverityInfo: nothing was lost; the note explains a choice the translation made.
	SeverityInfo = "info"
)

// Note is one thing the translation could not carry over, or carried over with a different meaning.
type Note struct {
	// Source names the MetalLB object: "IPAddressPool metallb-system/default".
	Source string
	// Field is the field path inside Source ("spec.addresses[2]"), empty for the whole object.
	Field string
	// Message says what happened and, where there is one, what to do.
	Message string
	// Severity is SeverityWarning, SeveritySkipped or SeverityInfo.
	Severity string
}

// String formats the note as "<severity>: <source> <field>: <message>".
func (n Note) String() string {
	where := n.Source
	if n.Field != "" {
		where += " " + n.Field
	}
	return fmt.Sprintf("%s: %s: %s", n.Severity, where, n.Message)
}

// ServicePatch is the change of one Service's annotations from MetalLB's spelling to Herald's.
type ServicePatch struct {
	Namespace, Name string
	// Set holds the annotations to add, with their values.
	Set map[string]string
	// Remove lists the annotations to delete, sorted.
	Remove []string
}

// Result is the translation of a set of MetalLB objects.
type Result struct {
	Pools          []heraldv1.IPAddressPool
	Advertisements []heraldv1.L2Advertisement
	// Services lists the Services whose annotations change.
	Services []ServicePatch
	// Notes says what could not be translated or changed meaning, in the order found.
	Notes []Note
}

// Complete reports whether every note is informational: nothing was skipped and nothing changed meaning.
func (r *Result) Complete() bool {
	for _, n := range r.Notes {
		if n.Severity != SeverityInfo {
			return false
		}
	}
	return true
}

// Options changes how Translate treats Services.
type Options struct {
	// KeepMetalLBAnnotations leaves Services' metallb.io/ and metallb.universe.tf/ annotations alone instead of
	// rewriting them to Herald's herald.dev/ ones. Herald reads both spellings.
	KeepMetalLBAnnotations bool
}

// source names an object for a Note: its kind and namespace/name.
func source(kind, ns, name string) string {
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}
