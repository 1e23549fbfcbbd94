// Package access compares what Herald's components do on the API server, as its audit log (audit.k8s.io/v1
// events, JSON lines) records it, with what the RBAC roles shipped in config/ grant them.
package access

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Request is one API request from the audit log.
type Request struct {
	User      string
	Verb      string
	Group     string // "" for the core group
	Resource  string // resource, or resource/subresource; empty for a non-resource URL
	Namespace string
	Name      string
	URI       string
	Code      int       // the response's HTTP status
	At        time.Time // when the API server received it
}

// Forbidden tells whether the API server refused the request for want of rights.
func (r Request) Forbidden() bool { return r.Code == 403 }

func (r Request) String() string {
	if r.Resource == "" {
		return fmt.Sprintf("%s %s %s: %d", r.User, r.Verb, r.URI, r.Code)
	}
	return fmt.Sprintf("%s %s %s %s/%s: %d", r.User, r.Verb, groupResource(r.Group, r.Resource), r.Namespace,
		r.Name, r.Code)
}

type auditEvent struct {
	AuditID    string    `json:"auditID"`
	Stage      string    `json:"stage"`
	Received   time.Time `json:"requestReceivedTimestamp"`
	RequestURI string    `json:"requestURI"`
	Verb       string    `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// ReadAudit reads an audit log: one Request per audit ID (a watch logs when it starts and when it ends), in the
// order the requests first appear.
func ReadAudit(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseAudit(f)
}

// ParseAudit is ReadAudit on a reader.
func ParseAudit(r io.Reader) ([]Request, error) {
	var reqs []Request
	byID := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("audit log line %d: %w", n, err)
		}
		req := Request{User: ev.User.Username, Verb: ev.Verb, URI: ev.RequestURI, At: ev.Received}
		if o := ev.ObjectRef; o != nil {
			req.Group, req.Resource, req.Namespace, req.Name = o.APIGroup, o.Resource, o.Namespace, o.Name
			if o.Subresource != "" {
				req.Resource += "/" + o.Subresource
			}
		}
		if ev.ResponseStatus != nil {
			req.Code = ev.ResponseStatus.Code
		}
		if i, ok := byID[ev.AuditID]; ok && ev.AuditID != "" {
			if req.Code != 0 {
				reqs[i].Code = req.Code
			}
			continue
		}
		byID[ev.AuditID] = len(reqs)
		reqs = append(reqs, req)
	}
	return reqs, sc.Err()
}

// Key is what a request needs a grant for.
type Key struct {
	Group     string
	Resource  string // resource or resource/subresource; "" for non-resource URLs
	Namespace string // "" cluster-wide
	Verb      string
}

// Usage counts requests per user and Key.
type Usage map[string]map[Key]int

// Add counts reqs.
func (u Usage) Add(reqs []Request) {
	for _, r := range reqs {
		if u[r.User] == nil {
			u[r.User] = map[Key]int{}
		}
		u[r.User][Key{Group: r.Group, Resource: r.Resource, Namespace: r.Namespace, Verb: r.Verb}]++
	}
}

// Rule is a PolicyRule with the namespace it applies in ("" for a ClusterRole bound cluster-wide).
type Rule struct {
	rbacv1.PolicyRule
	Namespace string
}

// Grants resolves the ClusterRoles, Roles and their bindings among objs into the rules each ServiceAccount
// subject is granted, by username (system:serviceaccount:NS:NAME). Roles bound to no one grant nothing.
func Grants(objs []*unstructured.Unstructured) (map[string][]Rule, error) {
	clusterRoles := map[string][]rbacv1.PolicyRule{}
	roles := map[string][]rbacv1.PolicyRule{} // by namespace/name
	var crbs []rbacv1.ClusterRoleBinding
	var rbs []rbacv1.RoleBinding
	for _, o := range objs {
		if o.GetAPIVersion() != rbacv1.SchemeGroupVersion.String() {
			continue
		}
		var err error
		switch o.GetKind() {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r)
			clusterRoles[r.Name] = r.Rules
		case "Role":
			var r rbacv1.Role
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r)
			roles[r.Namespace+"/"+r.Name] = r.Rules
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b)
			crbs = append(crbs, b)
		case "RoleBinding":
			var b rbacv1.RoleBinding
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b)
			rbs = append(rbs, b)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	grants := map[string][]Rule{}
	add := func(subjects []rbacv1.Subject, rules []rbacv1.PolicyRule, ns string) {
		for _, s := range subjects {
			if s.Kind != rbacv1.ServiceAccountKind {
				continue
			}
			user := "system:serviceaccount:" + s.Namespace + ":" + s.Name
			for _, r := range rules {
				grants[user] = append(grants[user], Rule{PolicyRule: r, Namespace: ns})
			}
		}
	}
	for _, b := range crbs {
		if b.RoleRef.Kind == "ClusterRole" {
			add(b.Subjects, clusterRoles[b.RoleRef.Name], "")
		}
	}
	for _, b := range rbs {
		switch b.RoleRef.Kind {
		case "ClusterRole":
			add(b.Subjects, clusterRoles[b.RoleRef.Name], b.Namespace)
		case "Role":
			add(b.Subjects, roles[b.Namespace+"/"+b.RoleRef.Name], b.Namespace)
		}
	}
	return grants, nil
}

// Allows tells whether rules grant k (resource requests only; wildcards honoured).
func Allows(rules []Rule, k Key) bool {
	for _, r := range rules {
		if r.Namespace != "" && r.Namespace != k.Namespace {
			continue
		}
		if matches(r.Verbs, k.Verb) && matches(r.APIGroups, k.Group) && matches(r.Resources, k.Resource) {
			return true
		}
	}
	return false
}

func matches(list []string, v string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, v)
}

// Row is one resource of a component's report.
type Row struct {
	Resource string // group/resource with its namespace when a Role limits it
	Granted  []string
	Used     []string
	Unused   []string // granted, never used
	Denied   []string // used, not granted
}

// Compare lists, per resource, the verbs rules grant and those used (non-resource URLs, such as discovery,
// left out: the API server's own roles grant those to every authenticated user).
func Compare(rules []Rule, used map[Key]int) []Row {
	type rowKey struct{ group, resource, ns string }
	rows := map[rowKey]*Row{}
	row := func(k rowKey) *Row {
		r := rows[k]
		if r == nil {
			name := groupResource(k.group, k.resource)
			if k.ns != "" {
				name += " in " + k.ns
			}
			r = &Row{Resource: name}
			rows[k] = r
		}
		return r
	}
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				r := row(rowKey{g, res, rule.Namespace})
				for _, v := range rule.Verbs {
					if !slices.Contains(r.Granted, v) {
						r.Granted = append(r.Granted, v)
					}
				}
			}
		}
	}
	for k := range used {
		if k.Resource == "" {
			continue
		}
		// A request counts towards a Role's row when it is about that Role's resources in its namespace.
		rk := rowKey{k.Group, k.Resource, ""}
		for _, rule := range rules {
			if rule.Namespace != "" && rule.Namespace == k.Namespace && matches(rule.APIGroups, k.Group) &&
				matches(rule.Resources, k.Resource) {
				rk.ns = rule.Namespace
			}
		}
		r := row(rk)
		if !slices.Contains(r.Used, k.Verb) {
			r.Used = append(r.Used, k.Verb)
		}
		if !Allows(rules, k) && !slices.Contains(r.Denied, k.Verb) {
			r.Denied = append(r.Denied, k.Verb)
		}
	}
	var out []Row
	for _, r := range rows {
		slices.Sort(r.Granted)
		slices.Sort(r.Used)
		slices.Sort(r.Denied)
		for _, v := range r.Granted {
			if !slices.Contains(r.Used, v) {
				r.Unused = append(r.Unused, v)
			}
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// WriteTable writes rows as a Markdown table.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| resource | granted | used | granted, never used | used, not granted |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Resource, verbs(r.Granted), verbs(r.Used), verbs(r.Unused),
			verbs(r.Denied))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func verbs(v []string) string {
	if len(v) == 0 {
		return "-"
	}
	return strings.Join(v, " ")
}

func groupResource(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}
