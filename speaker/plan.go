package speaker

import (
	"maps"
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

// AnnotationNode pins a Service's addresses to a node (herald move sets it): the node answers them whenever it
// is eligible, whoever the election prefers and whoever holds them; when it is not, the election decides, and
// the Announcement says the pin is not followed. Services sharing an address follow the pin of the first of
// them, by namespace and name, that has one.
const AnnotationNode = "herald.dev/node"

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
	// Excluded are, per group key, a node left out of its election: it handed the key over (a take, handoff.go)
	// moments ago, and may not have told the rest of the cluster yet.
	Excluded map[string]string
	Now      time.Time
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
	// weights are the soft preferences (preferredNodeSelectors) of the advertisements applying to the group's
	// Services: the election places the key on the eligible node with the highest weight. Nil when none has any.
	weights election.Ranked
	// Why explains an empty Winner: "NoPool", "NotAdvertised", "NotSelected", "SelectorConflict",
	// "NoEligibleNode".
	Why string
	// Conflict says, when the group's Services are selected by L2Advertisements that allow different nodes, which
	// and where the group is announced from as a result; "" when they agree.
	Conflict string
	// Choices are, when this node wins, the interfaces each address is answered on and the refusals.
	Choices  addrMap[[]iface.Choice]
	Refusals addrMap[[]iface.Refusal]
	// Kernel says, per address, why this node's kernel answers ARP for it too, whoever is elected.
	Kernel map[netip.Addr]string
	// PinIgnored is the node the group's Services are pinned to (AnnotationNode) when it may not announce them.
	PinIgnored string
	// Watcher is the node that probes the group's addresses for health: the first eligible node in the key's
	// election order (under weights, if any) other than Winner; "" when there is none. It is the node a failover
	// of Winner goes to.
	Watcher string
	// Corroborator is the node that checks the Watcher's reports that an address is dark before the announcer
	// withdraws: the next eligible node in the election order after Winner and Watcher; "" when there is none,
	// and then the Watcher's report stands alone.
	Corroborator string
	// ProbeFrom is, when this node is the Watcher or the Corroborator, the interface it probes each address from
	// (the one it would answer on).
	ProbeFrom addrMap[iface.Link]
}

// addrMap maps a group's few addresses (usually one) to values. It is a slice because a Go map costs a whole
// 8-slot group even for one entry: at 10,000 groups, megabytes for every decision.
type addrMap[V any] []addrEntry[V]

type addrEntry[V any] struct {
	Addr netip.Addr
	V    V
}

// lookup returns a's value and whether it has one.
func (m addrMap[V]) lookup(a netip.Addr) (V, bool) {
	for _, e := range m {
		if e.Addr == a {
			return e.V, true
		}
	}
	var zero V
	return zero, false
}

// at returns a's value, the zero value when it has none.
func (m addrMap[V]) at(a netip.Addr) V {
	v, _ := m.lookup(a)
	return v
}

// set gives a the value v.
func (m *addrMap[V]) set(a netip.Addr, v V) {
	for i := range *m {
		if (*m)[i].Addr == a {
			(*m)[i].V = v
			return
		}
	}
	*m = append(*m, addrEntry[V]{a, v})
}

// svcRef is a Service of a group and its own addresses.
type svcRef struct {
	Name   types.NamespacedName
	Addrs  []netip.Addr
	UID    types.UID
	Labels labels.Set
	Pin    string // its AnnotationNode
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
	svcSel     []labels.Selector
	prefer     []preference
	interfaces []string
}

// preference is one of an advertisement's preferredNodeSelectors, digested.
type preference struct {
	sel    labels.Selector
	weight int64
}

func digestAdvs(advs []*heraldv1.L2Advertisement) []advInfo {
	out := make([]advInfo, 0, len(advs))
	for _, a := range advs {
		ai := advInfo{name: a.Name, pools: map[string]bool{}, interfaces: a.Spec.Interfaces}
		for _, p := range a.Spec.IPAddressPools {
			ai.pools[p] = true
		}
		// The schema refuses selectors that do not convert; an advertisement we cannot read selects nothing.
		var err1, err2, err3 error
		ai.poolSel, err1 = toSelectors(a.Spec.IPAddressPoolSelectors)
		ai.nodeSel, err2 = toSelectors(a.Spec.NodeSelectors)
		ai.svcSel, err3 = toSelectors(a.Spec.ServiceSelectors)
		ok := err1 == nil && err2 == nil && err3 == nil
		for _, p := range a.Spec.PreferredNodeSelectors {
			sel, err := metav1.LabelSelectorAsSelector(p.Preference.LabelSelector())
			ok = ok && err == nil
			ai.prefer = append(ai.prefer, preference{sel: sel, weight: int64(p.Weight)})
		}
		if ok {
			out = append(out, ai)
		}
	}
	return out
}

// toSelectors converts an advertisement's selectors for matching.
func toSelectors(sels []heraldv1.Selector) ([]labels.Selector, error) {
	var out []labels.Selector
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(sels[i].LabelSelector())
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
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
	return anySelects(a.nodeSel, labels.Set(n.Labels))
}

// score is the preference the advertisement gives node n: the weights of its preferredNodeSelectors that match
// n's labels, summed; 0 when it does not select n (a preference never reaches beyond the advertisement's own
// nodeSelectors).
func (a *advInfo) score(n *corev1.Node) int64 {
	if len(a.prefer) == 0 || !a.selectsNode(n) {
		return 0
	}
	var sum int64
	for _, p := range a.prefer {
		if p.sel.Matches(labels.Set(n.Labels)) {
			sum += p.weight
		}
	}
	return sum
}

// selectsService: no service selectors means every Service.
func (a *advInfo) selectsService(set labels.Set) bool { return anySelects(a.svcSel, set) }

// anySelects: no selectors select everything, else one must match.
func anySelects(sels []labels.Selector, set labels.Set) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(set) {
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
	// allowed are the interfaces its advertisements allow on this node; nil for the connected-subnet rule.
	allowed []string
	// bySvc says that some of its advertisements have serviceSelectors, so that which of them apply depends on
	// the Service.
	bySvc bool
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

// decide makes one whole decision over the inputs: who announces every group and what this node answers where.
// It is pure but for the election table, whose cache it updates. It runs in named phases, each a function below, so that "why
// is address X (not) answered here?" has one place to look per step:
//
//  1. orderPools: the pools in ownership order (ipam.OwnerFirst: an address listed by several belongs to the
//     earliest, as in the controller), each with the advertisements that select it and the interfaces they
//     allow on this node;
//  2. groupServices: the Services grouped by their first address, the election key;
//  3. per group, the pool owning its key (else Why "NoPool"), advertised (else "NotAdvertised"), then
//     a. selection: the advertisements of the pool that apply to each of the group's Services (their
//     serviceSelectors), the nodes they allow and the interfaces they allow here; a Service none applies to
//     is not announced ("NotSelected" when that is all of them), and Services whose advertisements allow
//     different nodes are a conflict, announced only from a node all of them allow ("SelectorConflict" when
//     no node is);
//     b. kernelAnswers: why this node's kernel answers ARP for an address itself, whoever is elected;
//     c. eligibility: the nodes that may announce the key (live, selected for every Service, usable, not
//     impaired there, and with a local endpoint of every externalTrafficPolicy Local Service);
//     d. elect: the winner (a live, eligible holder keeps the key unless fail-back is due), the watcher and
//     the corroborator (else "NoEligibleNode"), each first in the election order under the advertisements'
//     preferredNodeSelectors (election.Weights; the plain hash order without them);
//     e. chooseInterfaces: where this node answers each address if it wins, or probes it from if it watches.
func decide(in *inputs, table *election.Table) *plan {
	pools := orderPools(in.Pools, digestAdvs(in.Advs), in.Nodes[in.Self])
	groups, localOnly := groupServices(in)
	d := &decision{in: in, table: table, live: map[string]bool{}, advSets: map[string]*advSet{},
		owners: localIPv4(in.Links)}
	for _, m := range in.Live {
		d.live[m] = true
	}
	d.setUniverse()
	pl := &plan{Groups: groups, Assignment: announce.Assignment{}}
	for key, g := range groups {
		slices.SortFunc(g.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		sort.Slice(g.Services, func(i, j int) bool { return g.Services[i].Name.String() < g.Services[j].Name.String() })
		p := ownerOf(pools, netip.MustParseAddr(key))
		if p == nil {
			g.Why = "NoPool"
			continue
		}
		g.Pool = p.pool.Name
		if len(p.advs) == 0 {
			g.Why = "NotAdvertised"
			continue
		}
		sel := d.selection(g, p)
		g.Conflict = sel.conflict
		if sel.why != "" {
			g.Why = sel.why
			continue
		}
		g.weights = sel.weights
		g.Kernel = d.kernelAnswers(g, sel.allowed)
		g.eligible = d.eligibility(key, append(sel.nodes, localOnly[key]...))
		if !d.elect(g) {
			g.Why = "NoEligibleNode"
			continue
		}
		d.chooseInterfaces(pl, g, sel.allowed)
	}
	for name, e := range pl.Assignment {
		slices.SortFunc(e.VIPs, func(a, b netip.Addr) int { return a.Compare(b) })
		pl.Assignment[name] = e
	}
	return pl
}

// decision is the state decide's phases share.
type decision struct {
	in      *inputs
	table   *election.Table
	live    map[string]bool
	advSets map[string]*advSet    // by pool and advertisement names, computed once per distinct set
	owners  map[netip.Addr]string // this node's IPv4 addresses -> their link
}

// orderPools digests the pools in ownership order, each with its ranges, the advertisements selecting it and the
// interfaces they allow on self.
func orderPools(in []*heraldv1.IPAddressPool, advs []advInfo, self *corev1.Node) []*poolInfo {
	pools := make([]*poolInfo, 0, len(in))
	for _, p := range in {
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
		pi.allowed = allowedOn(pi.advs, self)
		for _, a := range pi.advs {
			pi.bySvc = pi.bySvc || len(a.svcSel) > 0
		}
		pools = append(pools, pi)
	}
	slices.SortStableFunc(pools, func(a, b *poolInfo) int {
		return ipam.OwnerFirst(a.pool.CreationTimestamp.Time, a.pool.Name, b.pool.CreationTimestamp.Time, b.pool.Name)
	})
	return pools
}

// ownerOf is the pool that owns a: the first in ownership order that lists it.
func ownerOf(pools []*poolInfo, a netip.Addr) *poolInfo {
	for _, p := range pools {
		for _, r := range p.ranges {
			if r.Contains(a) {
				return p
			}
		}
	}
	return nil
}

// groupServices groups the Services this speaker serves by their first address, and lists, per group, the node
// sets of its externalTrafficPolicy Local Services (the nodes with a ready local endpoint).
func groupServices(in *inputs) (map[string]*group, map[string][]map[string]bool) {
	groups := map[string]*group{}
	localOnly := map[string][]map[string]bool{}
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
		g.Services = append(g.Services, svcRef{Name: name, Addrs: addrs, UID: svc.UID, Labels: svc.Labels, Pin: svc.Annotations[AnnotationNode]})
		for _, a := range addrs {
			if !slices.Contains(g.Addrs, a) {
				g.Addrs = append(g.Addrs, a)
			}
		}
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			nodes, _ := service.EndpointNodes(in.Endpoints[name])
			localOnly[key] = append(localOnly[key], nodes)
		}
	}
	return groups, localOnly
}

// setUniverse gives the election table every node it may have to order: the live members and every Node.
func (d *decision) setUniverse() {
	universe := slices.Clone(d.in.Live)
	for n := range d.in.Nodes {
		if !d.live[n] {
			universe = append(universe, n)
		}
	}
	sort.Strings(universe)
	d.table.SetNodes(universe)
}

// kernelAnswers says, per address of g this node owns or routes, why its kernel answers ARP for it on an
// interface the pool allows; nil when it does for none.
func (d *decision) kernelAnswers(g *group, allowed []string) map[netip.Addr]string {
	in := d.in
	var out map[netip.Addr]string
	for _, a := range g.Addrs {
		_, owned := d.owners[a]
		_, routed := in.RouteDev[a]
		if !owned && !routed {
			continue
		}
		ch, _ := iface.Select(a, in.Links, allowed)
		for _, c := range ch {
			why := kernelAnswers(a, c.Link.Name, d.owners, in.ArpIgnore)
			if why == "" {
				why = proxyARPAnswers(a, c.Link.Name, in.ProxyARP, in.RouteDev)
			}
			if why != "" {
				if out == nil {
					out = map[netip.Addr]string{}
				}
				out[a] = why
				break
			}
		}
	}
	return out
}

// eligibility returns who may announce key: a node in every one of sets (the live, usable nodes the
// advertisements of each of the group's Services select; the nodes with a ready local endpoint of each of its
// Local Services), not withdrawn from a prefix holding the key.
func (d *decision) eligibility(key string, sets []map[string]bool) func(node string) bool {
	keyAddr := netip.MustParseAddr(key)
	gone := d.in.Excluded[key]
	return func(n string) bool {
		if n == gone {
			return false
		}
		for _, s := range sets {
			if !s[n] {
				return false
			}
		}
		for _, pf := range d.in.Impaired[n] {
			if pf.Contains(keyAddr) {
				return false
			}
		}
		return true
	}
}

// elect sets g's Elected, Winner, HolderOK, Watcher and Corroborator, and reports whether any node is eligible.
func (d *decision) elect(g *group) bool {
	in, key, eligible := d.in, g.Key, g.eligible
	winner, ok := d.table.ElectRanked(key, g.weights, eligible)
	if !ok {
		return false
	}
	pin := g.pin()
	pinned := pin != "" && eligible(pin)
	if pinned {
		winner = pin
	} else if pin != "" {
		g.PinIgnored = pin
	}
	g.Elected = winner
	if h, held := in.Holders[key]; held && eligible(h) {
		g.HolderOK = true
		if h != winner && !pinned && !failbackDue(in, winner) {
			winner = h
		}
	}
	g.Winner = winner
	if w, ok := d.table.ElectRanked(key, g.weights, func(n string) bool { return n != winner && eligible(n) }); ok {
		g.Watcher = w
		if c, ok := d.table.ElectRanked(key, g.weights, func(n string) bool { return n != winner && n != w && eligible(n) }); ok {
			g.Corroborator = c
		}
	}
	return true
}

// chooseInterfaces picks, for each address of g, the interfaces this node answers it on (when it is the winner
// or the election's choice), adding them to the plan's assignment, or the one it probes it from (when it watches
// or corroborates).
func (d *decision) chooseInterfaces(pl *plan, g *group, allowed []string) {
	in := d.in
	if (g.Watcher == in.Self || g.Corroborator == in.Self) && g.Winner != in.Self {
		g.ProbeFrom = make(addrMap[iface.Link], 0, len(g.Addrs))
		for _, a := range g.Addrs {
			if ch, _ := iface.Select(a, in.Links, allowed); len(ch) > 0 {
				g.ProbeFrom.set(a, ch[0].Link)
			}
		}
	}
	if g.Winner != in.Self && g.Elected != in.Self && in.Holders[g.Key] != in.Self {
		return // neither elected nor answering (a holder answers while it hands the key over)
	}
	g.Choices = make(addrMap[[]iface.Choice], 0, len(g.Addrs))
	g.Refusals = make(addrMap[[]iface.Refusal], 0, len(g.Addrs))
	for _, a := range g.Addrs {
		ch, ref := iface.Select(a, in.Links, allowed)
		g.Choices.set(a, ch)
		g.Refusals.set(a, ref)
		for _, c := range ch {
			e := pl.Assignment[c.Link.Name]
			e.Interface = l2.Interface{Index: c.Link.Index, Name: c.Link.Name, MAC: c.Link.MAC}
			e.VIPs = append(e.VIPs, a)
			pl.Assignment[c.Link.Name] = e
		}
	}
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

// pin is the node the group is pinned to: the AnnotationNode of its first Service (by name) that has one.
func (g *group) pin() string {
	for _, s := range g.Services {
		if s.Pin != "" {
			return s.Pin
		}
	}
	return ""
}

// failbackDue says whether the election's choice has been live long enough to take a key back from its holder.
// nextFailback is when the next live member becomes due its fail-backs (zero: none will).
func nextFailback(in *inputs) time.Time {
	var next time.Time
	if in.FailbackAfter <= 0 {
		return next
	}
	for _, since := range in.LiveSince {
		if t := since.Add(in.FailbackAfter); t.After(in.Now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

func failbackDue(in *inputs, elected string) bool {
	if in.FailbackAfter <= 0 {
		return false
	}
	since, ok := in.LiveSince[elected]
	return ok && in.Now.Sub(since) >= in.FailbackAfter
}

// allowedOn returns the interfaces advertisements allow on node n: nil, the connected-subnet rule, when one of
// those selecting n names none (or none selects it), else the union of those named.
func allowedOn(advs []*advInfo, n *corev1.Node) []string {
	if n == nil {
		return nil
	}
	set := map[string]bool{}
	for _, a := range advs {
		if !a.selectsNode(n) {
			continue
		}
		if len(a.interfaces) == 0 {
			return nil
		}
		for _, i := range a.interfaces {
			set[i] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

// interfacesOf lists, sorted and without repeats, the interfaces a Service's addresses are answered on.
func (g *group) interfacesOf(s svcRef) []string {
	var out []string
	for _, a := range s.Addrs {
		for _, c := range g.Choices.at(a) {
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
