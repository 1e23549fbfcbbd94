package speaker

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/announce"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/ipam"
	"github.com/heraldlb/herald/internal/service"
	l2 "github.com/heraldlb/herald/internal/wire"
)

// ExcludeLabel keeps a node from announcing load-balancer addresses, as for cloud load balancers.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// inputs is everything one decision needs, gathered from the informer cache, memberlist and netlink. The
// objects are the cache's own: read, never written.
type inputs struct {
	Self      string
	Class     string
	Nodes     map[string]*corev1.Node
	Pools     []*heraldv1.IPAddressPool
	Advs      []*heraldv1.L2Advertisement
	Services  []*corev1.Service
	Endpoints map[types.NamespacedName][]*discoveryv1.EndpointSlice // by Service
	Live      []string                                              // live members, self included
	Links     []iface.Link
	ArpIgnore map[string]int // net.ipv4.conf.{all,<link>}.arp_ignore of this node
	ProxyARP  map[string]int // net.ipv4.conf.{all,<link>}.proxy_arp of this node
	// RouteDev is, when proxy_arp is on for some link, the device this node routes each IPv4 address through.
	RouteDev map[netip.Addr]string
	// Holders are, per group key, the speaker this node knows to answer for it: itself for what it answers, and
	// the speaker it found answering when it probed. A holder that is live and eligible keeps the key, whoever
	// the election prefers: moving an address that works costs its clients an outage.
	Holders map[string]string
	// FailbackAfter, when positive, hands a key back to the node the election prefers once that node has been a
	// live member for this long (LiveSince, as this speaker saw it; Now is the decision's time).
	FailbackAfter time.Duration
	LiveSince     map[string]time.Time
	Now           time.Time
	// Impaired are, per live member, the prefixes it withdrew from (it found it could not answer there, such as
	// a dead NIC): it is not eligible for addresses inside them.
	Impaired map[string][]netip.Prefix
}

// group is a set of Services sharing one announcement: the same first load-balancer address, hence the same
// election key and the same announcing node (MetalLB keys its election the same way).
type group struct {
	Key      string
	Addrs    []netip.Addr // every address of the group's Services, sorted
	Services []svcRef     // sorted by namespace/name
	Pool     string       // pool holding the key address; "" when none does
	// Winner is the announcing node; "" when no node is eligible. It is the holder when one is live and
	// eligible, else the election's choice.
	Winner string
	// Elected is the election's choice, which differs from Winner while a holder keeps the key.
	Elected string
	// HolderOK says that the key's holder (inputs.Holders) is eligible for it (live, selected, ready).
	HolderOK bool
	// eligible says whether a node may announce the key (live, selected, ready, not impaired); nil when none may.
	eligible func(node string) bool
	// Why explains an empty Winner: "NoPool", "NotAdvertised", "NoEligibleNode".
	Why string
	// Choices are, when this node wins, the interfaces each address is answered on and the refusals.
	Choices  map[netip.Addr][]iface.Choice
	Refusals map[netip.Addr][]iface.Refusal
	// Kernel says, per address, why this node's kernel answers ARP for it too, whoever is elected.
	Kernel map[netip.Addr]string
	// Watcher is the node that probes the group's addresses for health: the first eligible node in the key's
	// election order other than Winner; "" when there is none.
	Watcher string
	// Corroborator is the node that checks the Watcher's reports that an address is dark before the announcer
	// withdraws: the next eligible node in the election order after Winner and Watcher; "" when there is none,
	// and then the Watcher's report stands alone.
	Corroborator string
	// ProbeFrom is, when this node is the Watcher or the Corroborator, the interface it probes each address from
	// (the one it would answer on).
	ProbeFrom map[netip.Addr]iface.Link
}

// svcRef is a Service of a group and its own addresses.
type svcRef struct {
	Name  types.NamespacedName
	Addrs []netip.Addr
	UID   types.UID
}

// plan is a decision: the groups, who announces each, and what this node answers on which interface.
type plan struct {
	Groups     map[string]*group
	Assignment announce.Assignment
}

// advInfo is an L2Advertisement digested for matching.
type advInfo struct {
	name       string
	pools      map[string]bool
	poolSel    []labels.Selector
	nodeSel    []labels.Selector
	interfaces []string
}

func digestAdvs(advs []*heraldv1.L2Advertisement) []advInfo {
	out := make([]advInfo, 0, len(advs))
	for _, a := range advs {
		ai := advInfo{name: a.Name, pools: map[string]bool{}, interfaces: a.Spec.Interfaces}
		for _, p := range a.Spec.IPAddressPools {
			ai.pools[p] = true
		}
		ok := true
		for i := range a.Spec.IPAddressPoolSelectors {
			s, err := metav1.LabelSelectorAsSelector(a.Spec.IPAddressPoolSelectors[i].LabelSelector())
			if err != nil {
				ok = false // the schema refuses such selectors; an advertisement we cannot read selects nothing
				break
			}
			ai.poolSel = append(ai.poolSel, s)
		}
		for i := range a.Spec.NodeSelectors {
			s, err := metav1.LabelSelectorAsSelector(a.Spec.NodeSelectors[i].LabelSelector())
			if err != nil {
				ok = false
				break
			}
			ai.nodeSel = append(ai.nodeSel, s)
		}
		if ok {
			out = append(out, ai)
		}
	}
	return out
}

// selectsPool: an advertisement naming neither pools nor selectors announces every pool.
func (a *advInfo) selectsPool(p *heraldv1.IPAddressPool) bool {
	if len(a.pools) == 0 && len(a.poolSel) == 0 {
		return true
	}
	if a.pools[p.Name] {
		return true
	}
	for _, s := range a.poolSel {
		if s.Matches(labels.Set(p.Labels)) {
			return true
		}
	}
	return false
}

// selectsNode: no node selectors means every node.
func (a *advInfo) selectsNode(n *corev1.Node) bool {
	if len(a.nodeSel) == 0 {
		return true
	}
	for _, s := range a.nodeSel {
		if s.Matches(labels.Set(n.Labels)) {
			return true
		}
	}
	return false
}

// poolInfo is a pool's parsed ranges and the advertisements that announce it.
type poolInfo struct {
	pool   *heraldv1.IPAddressPool
	ranges []ipam.Range
	advs   []*advInfo
}

// nodeUsable: a node announces nothing while its network is unavailable or it is excluded from load balancers.
func nodeUsable(n *corev1.Node) bool {
	if _, excluded := n.Labels[ExcludeLabel]; excluded {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			return false
		}
	}
	return true
}

// localNodes returns the nodes with a ready endpoint of the Service, or, when none is ready, a serving one
// (an endpoint draining during a rolling update still takes traffic).
func localNodes(slices []*discoveryv1.EndpointSlice) map[string]bool {
	ready, serving := map[string]bool{}, map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil {
				continue
			}
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready[*ep.NodeName] = true
			}
			if ep.Conditions.Serving != nil && *ep.Conditions.Serving {
				serving[*ep.NodeName] = true
			}
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return serving
}

// decide computes who announces every group and what this node answers where. It is pure but for the election
// table, whose cache it updates.
func decide(in *inputs, table *election.Table) *plan {
	advs := digestAdvs(in.Advs)

	// Pools in creation order: an address listed by several pools belongs to the earliest, as in the controller.
	pools := make([]*poolInfo, 0, len(in.Pools))
	for _, p := range in.Pools {
		pi := &poolInfo{pool: p}
		for _, s := range p.Spec.Addresses {
			if r, err := ipam.ParseRange(string(s)); err == nil {
				pi.ranges = append(pi.ranges, r)
			}
		}
		for i := range advs {
			if advs[i].selectsPool(p) {
				pi.advs = append(pi.advs, &advs[i])
			}
		}
		pools = append(pools, pi)
	}
	sort.SliceStable(pools, func(i, j int) bool {
		ti, tj := pools[i].pool.CreationTimestamp, pools[j].pool.CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return pools[i].pool.Name < pools[j].pool.Name
	})
	poolOf := func(a netip.Addr) *poolInfo {
		for _, p := range pools {
			for _, r := range p.ranges {
				if r.Contains(a) {
					return p
				}
			}
		}
		return nil
	}

	// Groups of Services by their first address.
	groups := map[string]*group{}
	localOnly := map[string][]map[string]bool{} // group key -> node sets of its Local Services
	for _, svc := range in.Services {
		if !service.Served(svc, in.Class) {
			continue
		}
		addrs := service.Addresses(svc)
		if len(addrs) == 0 {
			continue
		}
		key := addrs[0].String()
		g := groups[key]
		if g == nil {
			g = &group{Key: key}
			groups[key] = g
		}
		name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		g.Services = append(g.Services, svcRef{Name: name, Addrs: addrs, UID: svc.UID})
		for _, a := range addrs {
			if !slices.Contains(g.Addrs, a) {
				g.Addrs = append(g.Addrs, a)
			}
		}
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			localOnly[key] = append(localOnly[key], localNodes(in.Endpoints[name]))
		}
	}

	live := make(map[string]bool, len(in.Live))
	for _, m := range in.Live {
		live[m] = true
	}
	universe := slices.Clone(in.Live)
	for n := range in.Nodes {
		if !live[n] {
			universe = append(universe, n)
		}
	}
	sort.Strings(universe)
	table.SetNodes(universe)

	// Node eligibility per pool, computed once per pool.
	poolNodes := map[*poolInfo]map[string]bool{}
	eligibleFor := func(p *poolInfo) map[string]bool {
		if m, ok := poolNodes[p]; ok {
			return m
		}
		m := map[string]bool{}
		for name := range live {
			n := in.Nodes[name]
			if n == nil || !nodeUsable(n) {
				continue
			}
			for _, a := range p.advs {
				if a.selectsNode(n) {
					m[name] = true
					break
				}
			}
		}
		poolNodes[p] = m
		return m
	}

	pl := &plan{Groups: groups, Assignment: announce.Assignment{}}
	linkByName := map[string]iface.Link{}
	for _, l := range in.Links {
		linkByName[l.Name] = l
	}
	owners := localIPv4(in.Links)
	for key, g := range groups {
		slices.SortFunc(g.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		sort.Slice(g.Services, func(i, j int) bool { return g.Services[i].Name.String() < g.Services[j].Name.String() })
		p := poolOf(netip.MustParseAddr(key))
		if p == nil {
			g.Why = "NoPool"
			continue
		}
		g.Pool = p.pool.Name
		if len(p.advs) == 0 {
			g.Why = "NotAdvertised"
			continue
		}
		for _, a := range g.Addrs {
			_, owned := owners[a]
			_, routed := in.RouteDev[a]
			if !owned && !routed {
				continue
			}
			allowed, auto := interfacesFor(p, in.Nodes[in.Self])
			if auto {
				allowed = nil
			}
			ch, _ := iface.Select(a, in.Links, allowed)
			for _, c := range ch {
				why := kernelAnswers(a, c.Link.Name, owners, in.ArpIgnore)
				if why == "" {
					why = proxyARPAnswers(a, c.Link.Name, in.ProxyARP, in.RouteDev)
				}
				if why != "" {
					if g.Kernel == nil {
						g.Kernel = map[netip.Addr]string{}
					}
					g.Kernel[a] = why
					break
				}
			}
		}
		nodes := eligibleFor(p)
		locals := localOnly[key]
		keyAddr := netip.MustParseAddr(key)
		eligible := func(n string) bool {
			if !nodes[n] {
				return false
			}
			for _, pf := range in.Impaired[n] {
				if pf.Contains(keyAddr) {
					return false
				}
			}
			for _, l := range locals {
				if !l[n] {
					return false
				}
			}
			return true
		}
		g.eligible = eligible
		winner, ok := table.Elect(key, eligible)
		if !ok {
			g.Why = "NoEligibleNode"
			continue
		}
		g.Elected = winner
		if h, held := in.Holders[key]; held && eligible(h) {
			g.HolderOK = true
			if h != winner && !failbackDue(in, winner) {
				winner = h
			}
		}
		g.Winner = winner
		if w, ok := table.Elect(key, func(n string) bool { return n != winner && eligible(n) }); ok {
			g.Watcher = w
			if c, ok := table.Elect(key, func(n string) bool { return n != winner && n != w && eligible(n) }); ok {
				g.Corroborator = c
			}
		}
		allowed, auto := interfacesFor(p, in.Nodes[in.Self])
		if auto {
			allowed = nil
		}
		if (g.Watcher == in.Self || g.Corroborator == in.Self) && winner != in.Self {
			g.ProbeFrom = map[netip.Addr]iface.Link{}
			for _, a := range g.Addrs {
				if ch, _ := iface.Select(a, in.Links, allowed); len(ch) > 0 {
					g.ProbeFrom[a] = ch[0].Link
				}
			}
		}
		if winner != in.Self && g.Elected != in.Self {
			continue
		}
		g.Choices = map[netip.Addr][]iface.Choice{}
		g.Refusals = map[netip.Addr][]iface.Refusal{}
		for _, a := range g.Addrs {
			ch, ref := iface.Select(a, in.Links, allowed)
			g.Choices[a], g.Refusals[a] = ch, ref
			for _, c := range ch {
				e := pl.Assignment[c.Link.Name]
				e.Interface = l2.Interface{Index: c.Link.Index, Name: c.Link.Name, MAC: c.Link.MAC}
				e.VIPs = append(e.VIPs, a)
				pl.Assignment[c.Link.Name] = e
			}
		}
	}
	for name, e := range pl.Assignment {
		slices.SortFunc(e.VIPs, func(a, b netip.Addr) int { return a.Compare(b) })
		pl.Assignment[name] = e
	}
	return pl
}

// assignmentFor is what this node answers: the part of pl.Assignment (everything it is elected for) whose
// addresses belong to groups held says it answers.
func (pl *plan) assignmentFor(held func(key string) bool) announce.Assignment {
	keyOf := map[netip.Addr]string{}
	for key, g := range pl.Groups {
		if g.Winner != "" && held(key) {
			for _, a := range g.Addrs {
				keyOf[a] = key
			}
		}
	}
	out := announce.Assignment{}
	for name, e := range pl.Assignment {
		var vips []netip.Addr
		for _, a := range e.VIPs {
			if _, ok := keyOf[a]; ok {
				vips = append(vips, a)
			}
		}
		if len(vips) > 0 {
			e.VIPs = vips
			out[name] = e
		}
	}
	return out
}

// failbackDue says whether the election's choice has been live long enough to take a key back from its holder.
func failbackDue(in *inputs, elected string) bool {
	if in.FailbackAfter <= 0 {
		return false
	}
	since, ok := in.LiveSince[elected]
	return ok && in.Now.Sub(since) >= in.FailbackAfter
}

// interfacesFor returns the interfaces the advertisements announcing pool p on node n allow: auto when one of
// them names none (the connected-subnet rule), else the union of those named.
func interfacesFor(p *poolInfo, n *corev1.Node) (names []string, auto bool) {
	if n == nil {
		return nil, true
	}
	set := map[string]bool{}
	for _, a := range p.advs {
		if !a.selectsNode(n) {
			continue
		}
		if len(a.interfaces) == 0 {
			return nil, true
		}
		for _, i := range a.interfaces {
			set[i] = true
		}
	}
	for i := range set {
		names = append(names, i)
	}
	sort.Strings(names)
	return names, len(names) == 0
}

// interfacesOf lists, sorted and without repeats, the interfaces a Service's addresses are answered on.
func (g *group) interfacesOf(s svcRef) []string {
	var out []string
	for _, a := range s.Addrs {
		for _, c := range g.Choices[a] {
			if !slices.Contains(out, c.Link.Name) {
				out = append(out, c.Link.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func joinAddrs(as []netip.Addr) string { return strings.Join(addrStrings(as), ",") }
