package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// FieldManager is the field manager the Service documents are meant to be applied with.
const FieldManager = "herald-migrate"

// Objects returns the Herald pools and advertisements of r as plain objects, without status and server-set
// metadata: what `kubectl apply` takes.
func (r *Result) Objects() ([]map[string]any, error) {
	var out []map[string]any
	add := func(obj any, what string) error {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", what, err)
		}
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		out = append(out, m)
		return nil
	}
	for i := range r.Pools {
		if err := add(&r.Pools[i], "IPAddressPool "+r.Pools[i].Name); err != nil {
			return nil, err
		}
	}
	for i := range r.Advertisements {
		if err := add(&r.Advertisements[i], "L2Advertisement "+r.Advertisements[i].Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ServiceObjects returns, for each Service patch that sets annotations, a minimal Service (apiVersion, kind,
// namespace, name, the annotations to set) for server-side apply.
func (r *Result) ServiceObjects() []map[string]any {
	var out []map[string]any
	for _, p := range r.Services {
		if len(p.Set) == 0 {
			continue
		}
		ann := map[string]any{}
		for k, v := range p.Set {
			ann[k] = v
		}
		out = append(out, map[string]any{
			"apiVersion": "v1",
			"kind":       "Service",
			"metadata":   map[string]any{"namespace": p.Namespace, "name": p.Name, "annotations": ann},
		})
	}
	return out
}

// RemoveCommands returns, for each Service patch that removes annotations, the kubectl command that removes
// them: server-side apply cannot remove fields that another field manager owns.
func (r *Result) RemoveCommands() []string {
	var out []string
	for _, p := range r.Services {
		if len(p.Remove) == 0 {
			continue
		}
		keys := append([]string(nil), p.Remove...)
		sort.Strings(keys)
		out = append(out, fmt.Sprintf("kubectl annotate --namespace %s service/%s %s-", p.Namespace, p.Name, strings.Join(keys, "- ")))
	}
	return out
}

// WriteYAML writes the notes as comments, then the Herald pools and advertisements as YAML documents.
func WriteYAML(w io.Writer, r *Result) error {
	objs, err := r.Objects()
	if err != nil {
		return err
	}
	head := "# Herald IPAddressPools and L2Advertisements translated from MetalLB by `herald migrate`.\n" +
		"# Apply with: kubectl apply -f <this file>\n"
	return writeYAML(w, head, r.Notes, objs, nil)
}

// WriteServicesYAML writes the notes as comments, then the Service documents for server-side apply, then the
// commands that remove MetalLB's annotations, as comments.
func WriteServicesYAML(w io.Writer, r *Result) error {
	head := "# Service annotations translated from MetalLB by `herald migrate`. Herald reads MetalLB's annotations\n" +
		"# too, so this is cosmetic. Each document holds only what changes; apply it with\n" +
		"#   kubectl apply --server-side --field-manager=" + FieldManager + " -f <this file>\n" +
		"# which adds Herald's annotations and leaves every other field of the Services alone.\n"
	var tail []string
	if cmds := r.RemoveCommands(); len(cmds) > 0 {
		tail = append([]string{"Once MetalLB is uninstalled, remove its annotations (server-side apply cannot remove what another manager owns):"}, cmds...)
	}
	return writeYAML(w, head, r.Notes, r.ServiceObjects(), tail)
}

func writeYAML(w io.Writer, head string, notes []Note, objs []map[string]any, tail []string) error {
	var b strings.Builder
	b.WriteString(head)
	for _, n := range notes {
		b.WriteString("# note: " + n.String() + "\n")
	}
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	for _, line := range tail {
		b.WriteString("# " + line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes objs as one indented v1 List, which kubectl apply takes. JSON has no comments: the notes
// and removal commands are for the caller to print elsewhere.
func WriteJSON(w io.Writer, objs []map[string]any) error {
	items := make([]any, len(objs))
	for i, o := range objs {
		items[i] = o
	}
	list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
