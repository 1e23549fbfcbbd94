package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/service"
	"github.com/heraldlb/herald/speaker"
)

// DrainLabel is the label herald drain sets: Kubernetes' well-known exclusion from external load balancers,
// which the speakers honour (and so do other load-balancer implementations).
const DrainLabel = speaker.ExcludeLabel

// SpeakerSelector selects the speaker Pods of the chart and of config/.
var SpeakerSelector = client.MatchingLabels{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker"}

// Options say where Load looks.
type Options struct {
	// Namespace holds the speaker Pods; default herald-system.
	Namespace string
	// Class is the loadBalancerClass Herald serves besides Services that name none.
	Class string
}

// State is the cluster as Load read it.
type State struct {
	Cluster speaker.Cluster
	// LiveFrom says how the live members were found.
	LiveFrom string
}

// Load reads what a simulation needs from the API server.
func Load(ctx context.Context, c client.Client, o Options) (*State, error) {
	if o.Namespace == "" {
		o.Namespace = "herald-system"
	}
	s := &State{Cluster: speaker.Cluster{Class: o.Class, Holders: map[string]string{}}}
	var nodes corev1.NodeList
	var pools heraldv1.IPAddressPoolList
	var advs heraldv1.L2AdvertisementList
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	var anns heraldv1.AnnouncementList
	var pods corev1.PodList
	for _, l := range []struct {
		what string
		list client.ObjectList
		opts []client.ListOption
	}{
		{"Nodes", &nodes, nil}, {"IPAddressPools", &pools, nil}, {"L2Advertisements", &advs, nil},
		{"Services", &svcs, nil}, {"EndpointSlices", &eps, nil}, {"Announcements", &anns, nil},
		{"speaker Pods", &pods, []client.ListOption{client.InNamespace(o.Namespace), SpeakerSelector}},
	} {
		if err := c.List(ctx, l.list, l.opts...); err != nil {
			return nil, fmt.Errorf("listing %s: %w", l.what, err)
		}
	}
	s.Cluster.Nodes, s.Cluster.Pools, s.Cluster.Advs = nodes.Items, pools.Items, advs.Items
	s.Cluster.Services, s.Cluster.EndpointSlices = svcs.Items, eps.Items
	s.Cluster.Live, s.LiveFrom = liveMembers(nodes.Items, pods.Items, o.Namespace)
	// Who answers what: the node each Announcement names, for its Service's key.
	byName := map[types.NamespacedName]*corev1.Service{}
	for i := range svcs.Items {
		byName[types.NamespacedName{Namespace: svcs.Items[i].Namespace, Name: svcs.Items[i].Name}] = &svcs.Items[i]
	}
	for _, an := range anns.Items {
		svc := byName[types.NamespacedName{Namespace: an.Namespace, Name: an.Name}]
		if svc == nil || an.Status.Node == "" || len(an.Status.Addresses) == 0 {
			continue
		}
		if addrs := service.Addresses(svc); len(addrs) > 0 {
			s.Cluster.Holders[addrs[0].String()] = an.Status.Node
		}
	}
	return s, nil
}

// liveMembers picks the nodes taken to run a live speaker, and says how.
func liveMembers(nodes []corev1.Node, pods []corev1.Pod, ns string) ([]string, string) {
	var live []string
	if len(pods) > 0 {
		for _, p := range pods {
			if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && podReady(&p) && !slices.Contains(live, p.Spec.NodeName) {
				live = append(live, p.Spec.NodeName)
			}
		}
		sort.Strings(live)
		return live, fmt.Sprintf("the nodes of the %d Ready speaker Pods in %s", len(live), ns)
	}
	for _, n := range nodes {
		if nodeReady(&n) {
			live = append(live, n.Name)
		}
	}
	sort.Strings(live)
	return live, fmt.Sprintf("no speaker Pod in %s: every Node that is not NotReady (%d)", ns, len(live))
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeReady: not reported NotReady (a Node with no Ready condition, which no kubelet writes, counts as ready).
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true
}

// Move is what a change does to one announcement key.
type Move struct {
	Key      string
	Addrs    []netip.Addr
	Services []types.NamespacedName
	From, To string
	// Why says why To is empty (no node may answer), or how the move happens when it is not at once.
	Why string
}

// node returns the Node named name, or an error saying it does not exist.
func (s *State) node(name string) (int, error) {
	for i := range s.Cluster.Nodes {
		if s.Cluster.Nodes[i].Name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no Node %q", name)
}

// withLabel returns the cluster with node's drain label set (on) or removed.
func (s *State) withLabel(i int, on bool) speaker.Cluster {
	c := s.Cluster
	c.Nodes = slices.Clone(c.Nodes)
	n := c.Nodes[i].DeepCopy()
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if on {
		n.Labels[DrainLabel] = ""
	} else {
		delete(n.Labels, DrainLabel)
	}
	c.Nodes[i] = *n
	return c
}

// Drained says whether node carries the drain label.
func (s *State) Drained(node string) (bool, error) {
	i, err := s.node(node)
	if err != nil {
		return false, err
	}
	_, ok := s.Cluster.Nodes[i].Labels[DrainLabel]
	return ok, nil
}

// DrainMoves computes where each key node answers now goes when node is drained.
func (s *State) DrainMoves(node string) ([]Move, error) {
	i, err := s.node(node)
	if err != nil {
		return nil, err
	}
	after := speaker.Simulate(s.withLabel(i, true))
	var moves []Move
	for key, p := range speaker.Simulate(s.Cluster) {
		if p.Node != node {
			continue
		}
		q := after[key]
		m := Move{Key: key, Addrs: p.Addrs, Services: p.Services, From: node, To: q.Node}
		if q.Node == "" {
			m.Why = whyText(q.Why)
		}
		moves = append(moves, m)
	}
	sortMoves(moves)
	return moves, nil
}

// UndrainMoves computes what undraining node brings back: nothing at once (a holder keeps its key); the keys
// whose election prefers node come back by fail-back once it has been a member for --failback-after.
func (s *State) UndrainMoves(node string) ([]Move, error) {
	i, err := s.node(node)
	if err != nil {
		return nil, err
	}
	var moves []Move
	for key, p := range speaker.Simulate(s.withLabel(i, false)) {
		if p.Elected == node && p.Node != node {
			moves = append(moves, Move{Key: key, Addrs: p.Addrs, Services: p.Services, From: p.Node, To: node,
				Why: "by fail-back, once the speaker's --failback-after has passed (never with 0)"})
		}
	}
	sortMoves(moves)
	return moves, nil
}

func sortMoves(ms []Move) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Addrs[0].Less(ms[j].Addrs[0]) })
}

func whyText(why string) string {
	switch why {
	case "NoEligibleNode":
		return "no other node may announce it (live, selected by an L2Advertisement, usable and, for externalTrafficPolicy Local, running an endpoint): it goes dark"
	case "":
		return ""
	}
	return why
}

// SetDrained sets node's drain label (on) or removes it, with a merge patch that touches nothing else.
func SetDrained(ctx context.Context, c client.Client, node string, on bool) error {
	val := `""`
	if !on {
		val = "null"
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+DrainLabel+`":`+val+`}}}`))
	if err := c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, patch); err != nil {
		return fmt.Errorf("labelling Node %s: %w", node, err)
	}
	return nil
}

// Holding lists the Services whose Announcement names node as the announcer.
func Holding(ctx context.Context, c client.Client, node string) ([]types.NamespacedName, error) {
	var anns heraldv1.AnnouncementList
	if err := c.List(ctx, &anns); err != nil {
		return nil, fmt.Errorf("listing Announcements: %w", err)
	}
	var out []types.NamespacedName
	for _, an := range anns.Items {
		if an.Status.Node == node && len(an.Status.Addresses) > 0 {
			out = append(out, types.NamespacedName{Namespace: an.Namespace, Name: an.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// Names joins Service names for a table cell.
func Names(ns []types.NamespacedName) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.String()
	}
	return strings.Join(out, ",")
}

// MoveTo computes where svc's addresses go when it is pinned to node (speaker.AnnotationNode), or, with node "",
// unpinned. A node that may not answer them is refused with the reason.
func (s *State) MoveTo(svc types.NamespacedName, node string) (Move, error) {
	i := slices.IndexFunc(s.Cluster.Services, func(x corev1.Service) bool { return x.Namespace == svc.Namespace && x.Name == svc.Name })
	if i < 0 {
		return Move{}, fmt.Errorf("no Service %s", svc)
	}
	addrs := service.Addresses(&s.Cluster.Services[i])
	if s.Cluster.Services[i].Spec.Type != corev1.ServiceTypeLoadBalancer || len(addrs) == 0 {
		return Move{}, fmt.Errorf("Service %s has no load-balancer address to move", svc)
	}
	key := addrs[0].String()
	now := speaker.Simulate(s.Cluster)[key]
	c := s.Cluster
	c.Services = slices.Clone(c.Services)
	x := c.Services[i].DeepCopy()
	if node == "" {
		delete(x.Annotations, speaker.AnnotationNode)
	} else {
		if x.Annotations == nil {
			x.Annotations = map[string]string{}
		}
		x.Annotations[speaker.AnnotationNode] = node
	}
	c.Services[i] = *x
	after := speaker.Simulate(c)[key]
	m := Move{Key: key, Addrs: after.Addrs, Services: after.Services, From: now.Node, To: after.Node}
	if node != "" && after.Node != node {
		return m, fmt.Errorf("%s may not announce %s: %s", node, svc, s.whyNot(node, after))
	}
	if len(m.Services) > 1 {
		m.Why = "the address is shared: all of " + Names(m.Services) + " move"
	}
	return m, nil
}

// whyNot says why node is not eligible for a placement.
func (s *State) whyNot(node string, p speaker.Placement) string {
	i, err := s.node(node)
	switch {
	case err != nil:
		return "there is no such Node"
	case !slices.Contains(s.Cluster.Live, node):
		return "it is not a live member (live members: " + s.LiveFrom + ")"
	}
	n := &s.Cluster.Nodes[i]
	if _, ok := n.Labels[DrainLabel]; ok {
		return "it is drained (label " + DrainLabel + ")"
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			return "its network is unavailable (condition NetworkUnavailable)"
		}
	}
	if p.Node == "" {
		return "no node may announce it: " + whyText(p.Why)
	}
	return "the L2Advertisements of its pool do not select it, or, for externalTrafficPolicy Local, it runs no ready endpoint (eligible: " + strings.Join(p.Eligible, ", ") + ")"
}

// SetPin pins svc to node (speaker.AnnotationNode), or with node "" removes the pin, touching nothing else.
func SetPin(ctx context.Context, c client.Client, svc types.NamespacedName, node string) error {
	val := "null"
	if node != "" {
		b, _ := json.Marshal(node)
		val = string(b)
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+speaker.AnnotationNode+`":`+val+`}}}`))
	if err := c.Patch(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name}}, patch); err != nil {
		return fmt.Errorf("annotating Service %s: %w", svc, err)
	}
	return nil
}

// AnnouncedBy returns the node svc's Announcement names ("" when none).
func AnnouncedBy(ctx context.Context, c client.Client, svc types.NamespacedName) (string, error) {
	var an heraldv1.Announcement
	if err := c.Get(ctx, svc, &an); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return "", nil
		}
		return "", fmt.Errorf("reading Announcement %s: %w", svc, err)
	}
	if len(an.Status.Addresses) == 0 {
		return "", nil
	}
	return an.Status.Node, nil
}
