// Package status joins the cluster's Services of type LoadBalancer with their Announcements for
// `herald status`: who announces each load-balancer address, on which interfaces, and what the watching
// speaker's health probes found. Gather reads, Evaluate judges, Render writes a table or JSON.
package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Condition types of an Announcement (written by the speaker).
const (
	ConditionAnnounced = "Announced"
	ConditionConflict  = "Conflict"
	ConditionHealthy   = "Healthy"
)

// State is the one-word judgement of a row, in the STATUS column and the JSON "state" field.
type State string

const (
	// StateHealthy: announced, and the latest health probe found exactly the announcing node answering.
	StateHealthy State = "Healthy"
	// StateAnnounced: announced, no conflict, health not known yet (no probe result, or no watcher).
	StateAnnounced State = "Announced"
	// StateNotAnnounced: no Announcement, its Announced condition is not True, or an address of the Service is
	// missing from it.
	StateNotAnnounced State = "NotAnnounced"
	// StateConflict: another device answers for an address (status.conflict, or the Conflict condition True).
	StateConflict State = "Conflict"
	// StateUnhealthy: the health probe found the address dark, answered twice, or by the wrong device, or the
	// Healthy condition is False.
	StateUnhealthy State = "Unhealthy"
)

// OK tells whether a row in this state passes: exit code 0 needs every row OK.
func (s State) OK() bool { return s == StateHealthy || s == StateAnnounced }

// Options says which Services Gather lists.
type Options struct {
	// Namespace limits the listing to one namespace; empty means every namespace.
	Namespace string
	// LoadBalancerClass is the class Herald serves besides Services that name none; Services of other classes
	// are not Herald's and are left out. Empty means only Services without a class.
	LoadBalancerClass string
}

// Row is one Service of type LoadBalancer with at least one ingress IP, joined with its Announcement. Its JSON
// form is part of `herald status -o json`, documented in the command's help: fields are only ever added.
type Row struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Addresses are the Service's status.loadBalancer.ingress IPs, IPv4 first.
	Addresses []string `json:"addresses"`
	// Announcement says whether an Announcement of that name exists.
	Announcement bool `json:"announcement"`
	// Node, Interfaces, AnnouncedAddresses and Since are the Announcement's status.
	Node               string     `json:"node,omitempty"`
	Interfaces         []string   `json:"interfaces,omitempty"`
	AnnouncedAddresses []string   `json:"announcedAddresses,omitempty"`
	Since              *time.Time `json:"since,omitempty"`
	// Health is the watching speaker's latest probe result, nil before the first.
	Health *Health `json:"health,omitempty"`
	// Conflict is another device answering for an address, while that lasts.
	Conflict *Conflict `json:"conflict,omitempty"`
	// Conditions are Announced, Conflict and Healthy in that order, when present.
	Conditions []Condition `json:"conditions,omitempty"`
	// State is the judgement, Problems why it is not Healthy (empty when it is).
	State    State    `json:"state"`
	Problems []string `json:"problems,omitempty"`
}

// Health is an Announcement's status.health.
type Health struct {
	Verdict   string          `json:"verdict"`
	Watcher   string          `json:"watcher,omitempty"`
	LastProbe *time.Time      `json:"lastProbe,omitempty"`
	Since     *time.Time      `json:"since,omitempty"`
	Addresses []AddressHealth `json:"addresses,omitempty"`
}

// AddressHealth is one address's health verdict and who answered.
type AddressHealth struct {
	Address    string      `json:"address"`
	Verdict    string      `json:"verdict"`
	Responders []Responder `json:"responders,omitempty"`
}

// Responder is one device that answered a health probe.
type Responder struct {
	MAC  string `json:"mac"`
	Node string `json:"node,omitempty"`
	// LatencySeconds is how long after the request its first answer came; 0 when not recorded.
	LatencySeconds float64 `json:"latencySeconds,omitempty"`
}

// Conflict is an Announcement's status.conflict.
type Conflict struct {
	Kind    string     `json:"kind"`
	Address string     `json:"address"`
	MAC     string     `json:"mac,omitempty"`
	Node    string     `json:"node,omitempty"`
	Since   *time.Time `json:"since,omitempty"`
}

// Condition is one of an Announcement's conditions.
type Condition struct {
	Type               string     `json:"type"`
	Status             string     `json:"status"`
	Reason             string     `json:"reason,omitempty"`
	Message            string     `json:"message,omitempty"`
	LastTransitionTime *time.Time `json:"lastTransitionTime,omitempty"`
}

// ErrNoCRD is returned by Gather when the cluster does not know Announcements: Herald is not installed.
var ErrNoCRD = errors.New("the cluster has no Announcement resource (herald.dev/v1alpha1): is Herald installed? (kubectl apply -k config/default)")

// Gather lists the Services of type LoadBalancer that have an ingress IP and the Announcements, and joins them
// into rows sorted by namespace and name. c's scheme must know core/v1 and herald.dev/v1alpha1.
func Gather(ctx context.Context, c client.Reader, opts Options) ([]Row, error) {
	var list []client.ListOption
	if opts.Namespace != "" {
		list = append(list, client.InNamespace(opts.Namespace))
	}
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs, list...); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	var anns heraldv1.AnnouncementList
	if err := c.List(ctx, &anns, list...); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, ErrNoCRD
		}
		return nil, fmt.Errorf("listing Announcements: %w", err)
	}
	return Join(svcs.Items, anns.Items, opts.LoadBalancerClass), nil
}

// Join builds the rows, sorted by namespace and name, and evaluates each.
func Join(svcs []corev1.Service, anns []heraldv1.Announcement, class string) []Row {
	byName := map[client.ObjectKey]*heraldv1.Announcement{}
	for i := range anns {
		byName[client.ObjectKeyFromObject(&anns[i])] = &anns[i]
	}
	var rows []Row
	for i := range svcs {
		s := &svcs[i]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if c := s.Spec.LoadBalancerClass; c != nil && *c != class {
			continue
		}
		addrs := ingressIPs(s)
		if len(addrs) == 0 {
			continue // still waiting for an address: kubectl get svc shows <pending>
		}
		r := Row{Namespace: s.Namespace, Name: s.Name, Addresses: addrs}
		if an := byName[client.ObjectKeyFromObject(s)]; an != nil {
			fill(&r, an)
		}
		Evaluate(&r)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return rows
}

// ingressIPs are a Service's ingress IPs, canonical, IPv4 first, without duplicates.
func ingressIPs(s *corev1.Service) []string {
	var as []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			as = append(as, a.Unmap())
		}
	}
	slices.SortFunc(as, netip.Addr.Compare)
	as = slices.Compact(as)
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// fill copies an Announcement's status into r.
func fill(r *Row, an *heraldv1.Announcement) {
	st := &an.Status
	r.Announcement = true
	r.Node = st.Node
	r.Interfaces = slices.Clone(st.Interfaces)
	r.AnnouncedAddresses = slices.Clone(st.Addresses)
	r.Since = timeOf(st.Since)
	if h := st.Health; h != nil {
		out := &Health{Verdict: string(h.Verdict), Watcher: h.Watcher, LastProbe: timeOf(h.LastProbe), Since: timeOf(h.Since)}
		for _, a := range h.Addresses {
			ah := AddressHealth{Address: a.Address, Verdict: string(a.Verdict)}
			for _, rs := range a.Responders {
				resp := Responder{MAC: rs.MAC, Node: rs.Node}
				if rs.Latency != nil {
					resp.LatencySeconds = rs.Latency.Seconds()
				}
				ah.Responders = append(ah.Responders, resp)
			}
			out.Addresses = append(out.Addresses, ah)
		}
		r.Health = out
	}
	if c := st.Conflict; c != nil {
		r.Conflict = &Conflict{Kind: string(c.Kind), Address: c.Address, MAC: c.MAC, Node: c.Node, Since: timeOf(c.Since)}
	}
	for _, t := range []string{ConditionAnnounced, ConditionConflict, ConditionHealthy} {
		if c := meta.FindStatusCondition(st.Conditions, t); c != nil {
			lt := c.LastTransitionTime.Time
			r.Conditions = append(r.Conditions, Condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason,
				Message: c.Message, LastTransitionTime: nonZero(lt)})
		}
	}
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	return nonZero(t.Time)
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Condition returns the row's condition of type t, or nil.
func (r *Row) Condition(t string) *Condition {
	for i := range r.Conditions {
		if r.Conditions[i].Type == t {
			return &r.Conditions[i]
		}
	}
	return nil
}

// Evaluate sets r.State and r.Problems from the rest of r. The worst finding sets the state: NotAnnounced,
// then Conflict, then Unhealthy; otherwise Healthy when the health verdict is Healthy, else Announced.
func Evaluate(r *Row) {
	r.Problems = nil
	var notAnnounced, conflict, unhealthy bool
	problem := func(flag *bool, format string, a ...any) {
		*flag = true
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}

	announced := r.Condition(ConditionAnnounced)
	switch {
	case !r.Announcement:
		problem(&notAnnounced, "no Announcement: no speaker announces it (are the speakers running, and does an L2Advertisement select its pool and a node?)")
	case announced != nil && announced.Status != string(metav1.ConditionTrue):
		problem(&notAnnounced, "Announced=%s%s", announced.Status, reasonSuffix(announced))
	case announced == nil && (r.Node == "" || len(r.Interfaces) == 0):
		problem(&notAnnounced, "the Announcement names no node and interface yet")
	}
	if r.Announcement {
		for _, a := range r.Addresses {
			if !containsAddr(r.AnnouncedAddresses, a) {
				problem(&notAnnounced, "%s is not among the Announcement's addresses", a)
			}
		}
	}

	if c := r.Conflict; c != nil {
		who := c.Kind
		if c.MAC != "" {
			who += " " + c.MAC
		}
		if c.Node != "" {
			who += " (node " + c.Node + ")"
		}
		problem(&conflict, "conflict: %s answers for %s too", who, c.Address)
	} else if c := r.Condition(ConditionConflict); c != nil && c.Status == string(metav1.ConditionTrue) {
		problem(&conflict, "Conflict=True%s", reasonSuffix(c))
	}

	healthyByVerdict := false
	if h := r.Health; h != nil && h.Verdict != "" {
		if h.Verdict == string(heraldv1.HealthHealthy) {
			healthyByVerdict = true
		} else {
			detail := ""
			for _, a := range h.Addresses {
				if a.Verdict != string(heraldv1.HealthHealthy) {
					detail += fmt.Sprintf("; %s: %s, answered by %s", a.Address, a.Verdict, respondersText(a.Responders))
				}
			}
			problem(&unhealthy, "health %s%s", h.Verdict, detail)
		}
	}
	if c := r.Condition(ConditionHealthy); c != nil && c.Status == string(metav1.ConditionFalse) {
		healthyByVerdict = false
		if !unhealthy {
			problem(&unhealthy, "Healthy=False%s", reasonSuffix(c))
		}
	}

	switch {
	case notAnnounced:
		r.State = StateNotAnnounced
	case conflict:
		r.State = StateConflict
	case unhealthy:
		r.State = StateUnhealthy
	case healthyByVerdict:
		r.State = StateHealthy
	default:
		r.State = StateAnnounced
	}
}

func reasonSuffix(c *Condition) string {
	s := ""
	if c.Reason != "" {
		s = " (" + c.Reason + ")"
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

// containsAddr compares addresses, not spellings.
func containsAddr(list []string, a string) bool {
	want, err := netip.ParseAddr(a)
	if err != nil {
		return slices.Contains(list, a)
	}
	for _, s := range list {
		if got, err := netip.ParseAddr(s); err == nil && got.Unmap() == want.Unmap() {
			return true
		}
	}
	return false
}

// respondersText is "nobody", or the MACs with their nodes: "02:00:00:00:00:0b (n1), 02:00:00:00:00:0c".
func respondersText(rs []Responder) string {
	if len(rs) == 0 {
		return "nobody"
	}
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += responderText(r)
	}
	return s
}

func responderText(r Responder) string {
	if r.Node == "" {
		return r.MAC
	}
	return r.MAC + " (" + r.Node + ")"
}

// ExitCode is 0 when every row is OK (announced, no conflict, healthy or health not known yet), else 1.
func ExitCode(rows []Row) int {
	for _, r := range rows {
		if !r.State.OK() {
			return 1
		}
	}
	return 0
}
