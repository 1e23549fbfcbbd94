package speaker

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
)

// Cluster is what a simulation of the speakers' decision reads (herald drain --dry-run, herald move --dry-run):
// the objects as the API server has them, the speakers taken to be live members, and who answers what now.
type Cluster struct {
	// Class is the loadBalancerClass served besides Services that name none.
	Class          string
	Nodes          []corev1.Node
	Pools          []heraldv1.IPAddressPool
	Advs           []heraldv1.L2Advertisement
	Services       []corev1.Service
	EndpointSlices []discoveryv1.EndpointSlice
	// Live are the nodes whose speakers are taken to be live members.
	Live []string
	// Holders are, per announcement key (a group's first address), the node that answers it now: a live,
	// eligible holder keeps its key, as on the speakers.
	Holders map[string]string
}

// Placement is where the speakers put one announcement key.
type Placement struct {
	Key      string
	Addrs    []netip.Addr
	Services []types.NamespacedName
	// Node answers the key; "" when none may, and Why says why (NoPool, NotAdvertised, NotSelected,
	// SelectorConflict, NoEligibleNode).
	Node string
	Why  string
	// Elected is the election's own choice, which differs from Node while a holder keeps the key.
	Elected string
	// Eligible are the nodes that may answer the key, in its election order (preferredNodeSelectors first).
	Eligible []string
}

// Simulate runs the speakers' decision (decide, the code every speaker runs) over c, as a node that answers
// nothing itself would make it, and returns the placement of every key. Fail-backs are not due: each live,
// eligible holder keeps its key.
func Simulate(c Cluster) map[string]Placement {
	in := &inputs{Class: c.Class, Nodes: map[string]*corev1.Node{}, Endpoints: map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		Live: slices.Clone(c.Live), Holders: c.Holders, FailbackAfter: -1}
	for i := range c.Nodes {
		in.Nodes[c.Nodes[i].Name] = &c.Nodes[i]
	}
	for i := range c.Pools {
		in.Pools = append(in.Pools, &c.Pools[i])
	}
	for i := range c.Advs {
		in.Advs = append(in.Advs, &c.Advs[i])
	}
	for i := range c.Services {
		in.Services = append(in.Services, &c.Services[i])
	}
	for i := range c.EndpointSlices {
		e := &c.EndpointSlices[i]
		name := types.NamespacedName{Namespace: e.Namespace, Name: e.Labels[discoveryv1.LabelServiceName]}
		in.Endpoints[name] = append(in.Endpoints[name], e)
	}
	table := election.NewTable()
	pl := decide(in, table)
	out := make(map[string]Placement, len(pl.Groups))
	for key, g := range pl.Groups {
		p := Placement{Key: key, Addrs: g.Addrs, Node: g.Winner, Why: g.Why, Elected: g.Elected}
		for _, s := range g.Services {
			p.Services = append(p.Services, s.Name)
		}
		if g.eligible != nil {
			var el []string
			for _, n := range table.Order(key) {
				if g.eligible(n) {
					el = append(el, n)
				}
			}
			p.Eligible = election.OrderWeighted(key, el, g.weights.Weights())
		}
		out[key] = p
	}
	return out
}
