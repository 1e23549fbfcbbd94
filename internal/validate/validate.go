package validate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/ipam"
	"github.com/heraldlb/herald/internal/migrate"
	"github.com/heraldlb/herald/internal/service"
	"github.com/heraldlb/herald/speaker"
)

// Severity says how much a Finding matters.
type Severity string

// Severities, worst first.
const (
	// Error: the configuration does not work as written (addresses not handed out or not answered).
	Error Severity = "error"
	// Warning: it works as written, but probably not as meant.
	Warning Severity = "warning"
	// Unchecked: the check needs objects the input does not hold (Nodes, EndpointSlices, Announcements).
	Unchecked Severity = "unchecked"
)

var severityRank = map[Severity]int{Error: 0, Warning: 1, Unchecked: 2}

// Checks, the stable identifiers of findings.
const (
	CheckInvalidAddress       = "invalid-address"
	CheckPoolOverlap          = "pool-overlap"
	CheckPoolNotFound         = "pool-not-found"
	CheckInvalidSelector      = "invalid-selector"
	CheckPoolSelector         = "pool-selector-matches-nothing"
	CheckNodeSelector         = "node-selector-matches-nothing"
	CheckServiceSelector      = "service-selector-matches-nothing"
	CheckPreferredNode        = "preferred-node-selector-matches-nothing"
	CheckPoolNotAnnounced     = "pool-not-announced"
	CheckServiceRequest       = "service-request"
	CheckInterfaceNotFound    = "interface-not-found"
	CheckLocalNoEndpoint      = "local-no-ready-endpoint"
	CheckMetalLBNotTranslated = "metallb-not-translated"
)

// Finding is one mistake, or one check that could not be made.
type Finding struct {
	// Check is the check's stable identifier (CheckPoolOverlap...).
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Object names the object at fault: "IPAddressPool b", "Service shop/web"; an object translated from MetalLB
	// also names its source.
	Object string `json:"object"`
	// Field is the field path inside Object ("spec.addresses[1]"), empty for the whole object.
	Field string `json:"field,omitempty"`
	// Message says what is wrong, in a sentence a person understands.
	Message string `json:"message"`
	// Fix says how to correct it.
	Fix string `json:"fix,omitempty"`
}

// Snapshot is the configuration to check: objects as read from files or from a cluster.
type Snapshot struct {
	Pools          []heraldv1.IPAddressPool
	Advertisements []heraldv1.L2Advertisement
	Services       []corev1.Service
	Nodes          []corev1.Node
	EndpointSlices []discoveryv1.EndpointSlice
	Announcements  []heraldv1.Announcement
	// FromCluster says the lists are a cluster's, complete: a Node or EndpointSlice that is not listed does not
	// exist. From files, the Nodes count as complete when any is given, and a Service's endpoints are known only
	// when one of its EndpointSlices is given.
	FromCluster bool
	// Class is the loadBalancerClass Herald serves besides Services that name none.
	Class string
	// MetalLB names, by "Kind name", the pools and advertisements translated from MetalLB's objects, with the
	// MetalLB object they come from.
	MetalLB map[string]string
	// MetalLBUnread says why MetalLB's configuration (metallb.io's kinds, ConfigMaps) could not be read from the
	// cluster; empty when it was, or is not there.
	MetalLBUnread string
	// Untranslated are the notes of the MetalLB translation that left something out (severity skipped): it is
	// not checked.
	Untranslated []migrate.Note
}

// Check runs every check on s and returns the findings, worst first, then by object and field.
func Check(s *Snapshot) []Finding {
	c := &checker{s: s, ranges: map[string][]ipam.Range{}, pools: map[string]*heraldv1.IPAddressPool{}}
	c.untranslated()
	c.poolAddresses()
	c.overlaps()
	for i := range s.Advertisements {
		c.advertisement(&s.Advertisements[i])
	}
	c.unannounced()
	for i := range s.Services {
		if svc := &s.Services[i]; service.Served(svc, s.Class) {
			c.request(svc)
			c.localEndpoints(svc)
		}
	}
	c.interfaces()
	sort.SliceStable(c.out, func(i, j int) bool {
		a, b := c.out[i], c.out[j]
		if severityRank[a.Severity] != severityRank[b.Severity] {
			return severityRank[a.Severity] < severityRank[b.Severity]
		}
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Field < b.Field
	})
	return c.out
}

type checker struct {
	s      *Snapshot
	out    []Finding
	ranges map[string][]ipam.Range // by pool name, the entries that parse
	pools  map[string]*heraldv1.IPAddressPool
}

func (c *checker) add(check string, sev Severity, object, field, fix, format string, args ...any) {
	c.out = append(c.out, Finding{Check: check, Severity: sev, Object: object, Field: field,
		Message: fmt.Sprintf(format, args...), Fix: fix})
}

// name names an object for a finding, with the MetalLB object it was translated from.
func (c *checker) name(kind, name string) string {
	n := kind + " " + name
	if src, ok := c.s.MetalLB[n]; ok {
		n += " (from metallb.io " + src + ")"
	}
	return n
}

func (c *checker) untranslated() {
	if c.s.MetalLBUnread != "" {
		c.add(CheckMetalLBNotTranslated, Unchecked, "MetalLB configuration", "",
			"let the kubeconfig's user list ConfigMaps and metallb.io's kinds in every namespace, or give MetalLB's manifests with -f; nothing to do without MetalLB",
			"not checked: it cannot be read (%s)", c.s.MetalLBUnread)
	}
	for _, n := range c.s.Untranslated {
		c.add(CheckMetalLBNotTranslated, Unchecked, "metallb.io "+n.Source, n.Field,
			"correct it if Herald is to use it; herald migrate says the same",
			"not checked: Herald's translation leaves it out (%s)", n.Message)
	}
}

// poolAddresses parses every pool's addresses; from files, nothing refused a malformed one yet.
func (c *checker) poolAddresses() {
	for i := range c.s.Pools {
		p := &c.s.Pools[i]
		c.pools[p.Name] = p
		for j, a := range p.Spec.Addresses {
			r, err := ipam.ParseRange(string(a))
			if err != nil {
				c.add(CheckInvalidAddress, Error, c.name("IPAddressPool", p.Name), fmt.Sprintf("spec.addresses[%d]", j),
					"write a CIDR (198.51.100.0/24), a first-last range or one address; the API server refuses this one",
					"%v", err)
				continue
			}
			c.ranges[p.Name] = append(c.ranges[p.Name], r)
		}
	}
}

func (c *checker) overlaps() {
	for _, o := range controllers.Overlaps(c.s.Pools) {
		shared := rangeList(o.Ranges)
		var fields []string
		for i, a := range c.pools[o.Pool].Spec.Addresses {
			if r, err := ipam.ParseRange(string(a)); err == nil && len(ipam.Intersect([]ipam.Range{r}, o.Ranges)) > 0 {
				fields = append(fields, fmt.Sprintf("spec.addresses[%d]", i))
			}
		}
		owner := fmt.Sprintf("the controller hands them out only from the pool created first (%q when both are created at once)", o.Earlier)
		if c.s.FromCluster {
			owner = fmt.Sprintf("the controller hands them out only from %q, created earlier, and marks this pool Overlapping", o.Earlier)
		}
		c.add(CheckPoolOverlap, Error, c.name("IPAddressPool", o.Pool), strings.Join(fields, ","),
			fmt.Sprintf("list each address in one pool only: take %s out of IPAddressPool %q or %q", shared, o.Pool, o.Earlier),
			"%s: also listed by IPAddressPool %q; %s", shared, o.Earlier, owner)
	}
}

// advertisement checks the pools and nodes an advertisement selects.
func (c *checker) advertisement(a *heraldv1.L2Advertisement) {
	obj := c.name("L2Advertisement", a.Name)
	selectsPool := false
	for i, name := range a.Spec.IPAddressPools {
		if c.pools[name] != nil {
			selectsPool = true
			continue
		}
		c.add(CheckPoolNotFound, Error, obj, fmt.Sprintf("spec.ipAddressPools[%d]", i),
			"create the pool, or correct the name ("+c.poolNames()+")",
			"names IPAddressPool %q, which does not exist: nothing is announced for it", name)
	}
	c.unmatched(obj, CheckPoolSelector, "spec.ipAddressPoolSelectors", a.Spec.IPAddressPoolSelectors,
		labelSets(c.s.Pools), selectsPool, "no IPAddressPool", "the advertisement announces no pool",
		"label the pools it is meant for (kubectl label ipaddresspool NAME KEY=VALUE), or correct the selector")
	if len(a.Spec.ServiceSelectors) > 0 && (c.s.FromCluster || len(c.s.Services) > 0) {
		c.unmatched(obj, CheckServiceSelector, "spec.serviceSelectors", a.Spec.ServiceSelectors, labelSets(c.s.Services), false,
			fmt.Sprintf("none of the %d Services", len(c.s.Services)), "the advertisement applies to no Service",
			"label the Services it is meant for (kubectl label service -n NAMESPACE NAME KEY=VALUE), or correct the selector")
	}
	c.preferences(a, obj)
	if len(a.Spec.NodeSelectors) == 0 {
		return
	}
	if !c.s.FromCluster && len(c.s.Nodes) == 0 {
		c.add(CheckNodeSelector, Unchecked, obj, "spec.nodeSelectors",
			"give the Nodes with -f (kubectl get nodes -o yaml > nodes.yaml), or use --from-cluster",
			"not checked: the input holds no Node")
		return
	}
	c.unmatched(obj, CheckNodeSelector, "spec.nodeSelectors", a.Spec.NodeSelectors, labelSets(c.s.Nodes), false,
		fmt.Sprintf("none of the %d Nodes", len(c.s.Nodes)), "no node may announce the advertisement's addresses",
		"label the nodes meant to announce (kubectl label node NAME KEY=VALUE), or correct the selector")
}

// preferences reports each of an advertisement's preferredNodeSelectors that gives its weight to no node: one
// matching no Node, or only Nodes the advertisement's nodeSelectors leave out (a preference applies only to the
// nodes its advertisement selects). Warnings: preferences are soft, so every address is still announced, only
// not where the operator meant.
func (c *checker) preferences(a *heraldv1.L2Advertisement, obj string) {
	prefs := a.Spec.PreferredNodeSelectors
	if len(prefs) == 0 {
		return
	}
	if !c.s.FromCluster && len(c.s.Nodes) == 0 {
		c.add(CheckPreferredNode, Unchecked, obj, "spec.preferredNodeSelectors",
			"give the Nodes with -f (kubectl get nodes -o yaml > nodes.yaml), or use --from-cluster",
			"not checked: the input holds no Node")
		return
	}
	for i := range prefs {
		field := fmt.Sprintf("spec.preferredNodeSelectors[%d].preference", i)
		p := &prefs[i].Preference
		if _, err := metav1.LabelSelectorAsSelector(p.LabelSelector()); err != nil {
			c.add(CheckInvalidSelector, Error, obj, field, "correct the selector; the API server refuses it", "invalid selector: %v", err)
			continue
		}
		var matched, selected []string
		for j := range c.s.Nodes {
			n := &c.s.Nodes[j]
			if p.Matches(labels.Set(n.Labels)) {
				matched = append(matched, n.Name)
				if a.Spec.SelectsNode(labels.Set(n.Labels)) {
					selected = append(selected, n.Name)
				}
			}
		}
		switch {
		case len(matched) == 0:
			c.add(CheckPreferredNode, Warning, obj, field,
				"label the nodes to prefer (kubectl label node NAME KEY=VALUE), or correct the selector",
				"preference %s (weight %d) matches none of the %d Nodes: no node is preferred by it", selectorText(p), prefs[i].Weight, len(c.s.Nodes))
		case len(selected) == 0:
			sort.Strings(matched)
			c.add(CheckPreferredNode, Warning, obj, field,
				"make spec.nodeSelectors select the nodes to prefer, or prefer them in the advertisement that selects them",
				"preference %s (weight %d) matches only Nodes the advertisement's nodeSelectors leave out (%s): a preference applies only to nodes its own advertisement selects",
				selectorText(p), prefs[i].Weight, nameList(matched))
		}
	}
}

// nameList joins at most 5 names and says how many more there are.
func nameList(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

// labelSets lists the labels of objects.
func labelSets[T any, P interface {
	*T
	metav1.Object
}](objs []T) []labels.Set {
	out := make([]labels.Set, 0, len(objs))
	for i := range objs {
		out = append(out, P(&objs[i]).GetLabels())
	}
	return out
}

// unmatched reports each selector of field that matches none of sets ("matches "+what): an error, saying
// consequence, when no selector matches and nothing else (selectsOther) selects anything either; else a warning.
// A selector that does not convert is reported as invalid. It returns whether some selector matches.
func (c *checker) unmatched(obj, check, field string, sels []heraldv1.Selector, sets []labels.Set, selectsOther bool,
	what, consequence, fix string) bool {
	var miss []int
	matchedAny := false
	for i := range sels {
		if _, err := metav1.LabelSelectorAsSelector(sels[i].LabelSelector()); err != nil {
			c.add(CheckInvalidSelector, Error, obj, fmt.Sprintf("%s[%d]", field, i),
				"correct the selector; the API server refuses it", "invalid selector: %v", err)
			continue
		}
		matched := false
		for _, set := range sets {
			if sels[i].Matches(set) {
				matched = true
				break
			}
		}
		if matched {
			matchedAny = true
		} else {
			miss = append(miss, i)
		}
	}
	for _, i := range miss {
		sev, also := Warning, ""
		if !matchedAny && !selectsOther {
			sev, also = Error, ": "+consequence
		}
		c.add(check, sev, obj, fmt.Sprintf("%s[%d]", field, i), fix, "selector %s matches %s%s", selectorText(&sels[i]), what, also)
	}
	return matchedAny
}

func (c *checker) poolNames() string {
	if len(c.s.Pools) == 0 {
		return "there is no pool"
	}
	names := make([]string, 0, len(c.s.Pools))
	for i := range c.s.Pools {
		names = append(names, c.s.Pools[i].Name)
	}
	sort.Strings(names)
	return "the pools are " + strings.Join(names, ", ")
}

func (c *checker) unannounced() {
	for i := range c.s.Pools {
		p := &c.s.Pools[i]
		announced := false
		for j := range c.s.Advertisements {
			if c.s.Advertisements[j].Spec.SelectsPool(p) {
				announced = true
				break
			}
		}
		if !announced {
			c.add(CheckPoolNotAnnounced, Warning, c.name("IPAddressPool", p.Name), "",
				"create an L2Advertisement naming it in spec.ipAddressPools (or whose ipAddressPoolSelectors match its labels); leave it so only if its addresses reach the nodes another way",
				"no L2Advertisement announces it: Services get its addresses, but no node answers ARP/NDP for them")
		}
	}
}

// request checks the addresses and pool a Service asks for.
func (c *checker) request(svc *corev1.Service) {
	obj := "Service " + svc.Namespace + "/" + svc.Name
	req, err := controllers.ServiceRequest(svc)
	if err != nil {
		c.add(CheckServiceRequest, Error, obj, "", "correct the annotations or spec.loadBalancerIP as the message says",
			"the controller refuses it (AllocationFailed InvalidRequest): %v", err)
		return
	}
	pool := c.pools[req.Pool]
	if req.Pool != "" && pool == nil {
		c.add(CheckServiceRequest, Error, obj, fieldOf(req.PoolFrom), "create the pool, or name an existing one ("+c.poolNames()+")",
			"asks for IPAddressPool %q, which does not exist: it gets no address", req.Pool)
		return
	}
	for _, a := range req.Addresses {
		holders := c.holders(a)
		switch {
		case len(holders) == 0:
			c.add(CheckServiceRequest, Error, obj, fieldOf(req.AddressesFrom),
				fmt.Sprintf("add %s to a pool's spec.addresses, or request an address a pool holds", a),
				"requests %s, which no IPAddressPool holds: it gets no address (AllocationFailed NotInPool)", a)
		case pool != nil && !contains(holders, pool.Name):
			c.add(CheckServiceRequest, Error, obj, fieldOf(req.AddressesFrom),
				fmt.Sprintf("request an address of IPAddressPool %q, or name the pool that holds %s", pool.Name, a),
				"requests %s from IPAddressPool %q, which does not hold it (%s does): it gets no address", a, pool.Name, strings.Join(holders, ", "))
		}
	}
}

// holders lists the pools whose addresses hold a, sorted.
func (c *checker) holders(a netip.Addr) []string {
	var out []string
	for name, rs := range c.ranges {
		for _, r := range rs {
			if r.Contains(a) {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// fieldOf turns where a value was read into a field path.
func fieldOf(from string) string {
	if from == "" || strings.HasPrefix(from, "spec.") {
		return from
	}
	return "metadata.annotations[" + from + "]"
}

// localEndpoints checks that a Service with externalTrafficPolicy Local has a ready endpoint: only nodes
// running one may announce it.
func (c *checker) localEndpoints(svc *corev1.Service) {
	if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		return
	}
	obj := "Service " + svc.Namespace + "/" + svc.Name
	list := fmt.Sprintf("kubectl get endpointslices -n %s -l %s=%s", svc.Namespace, discoveryv1.LabelServiceName, svc.Name)
	var slices []*discoveryv1.EndpointSlice
	for i := range c.s.EndpointSlices {
		es := &c.s.EndpointSlices[i]
		if es.Namespace == svc.Namespace && es.Labels[discoveryv1.LabelServiceName] == svc.Name {
			slices = append(slices, es)
		}
	}
	if len(slices) == 0 && !c.s.FromCluster {
		c.add(CheckLocalNoEndpoint, Unchecked, obj, "spec.externalTrafficPolicy",
			"give its EndpointSlices with -f ("+list+" -o yaml), or use --from-cluster",
			"not checked: the input holds no EndpointSlice of it")
		return
	}
	nodes, ready := service.EndpointNodes(slices)
	switch {
	case ready:
	case len(nodes) > 0:
		c.add(CheckLocalNoEndpoint, Warning, obj, "spec.externalTrafficPolicy",
			"check its Pods ("+list+")",
			"externalTrafficPolicy Local and no ready endpoint: only the serving, terminating endpoints on %s keep it announced", strings.Join(sortedKeys(nodes), ", "))
	default:
		c.add(CheckLocalNoEndpoint, Error, obj, "spec.externalTrafficPolicy",
			"make its Pods ready ("+list+"), or set externalTrafficPolicy: Cluster",
			"externalTrafficPolicy Local and no ready endpoint: no node may announce it, so nobody answers ARP/NDP for its addresses")
	}
}

// interfaces checks the interfaces advertisements name against what the speakers publish: the interfaces a
// node answers on, in each Announcement's status, and the Announcements whose node is elected but has no
// interface to answer on (reason NoInterface). Speakers publish nothing else about their interfaces, so an
// interface no Announcement mentions is reported unchecked.
func (c *checker) interfaces() {
	inUse := map[string]bool{}
	for i := range c.s.Announcements {
		for _, name := range c.s.Announcements[i].Status.Interfaces {
			inUse[name] = true
		}
	}
	nodes := map[string]*corev1.Node{}
	for i := range c.s.Nodes {
		nodes[c.s.Nodes[i].Name] = &c.s.Nodes[i]
	}
	for i := range c.s.Advertisements {
		a := &c.s.Advertisements[i]
		for j, name := range a.Spec.Interfaces {
			if inUse[name] {
				continue
			}
			field := fmt.Sprintf("spec.interfaces[%d]", j)
			obj := c.name("L2Advertisement", a.Name)
			doctor := fmt.Sprintf("on a node the advertisement selects, run herald doctor --vip ADDRESS --interfaces %s", strings.Join(a.Spec.Interfaces, ","))
			if an, addr := c.noInterface(a, nodes); an != nil {
				c.add(CheckInterfaceNotFound, Error, obj, field,
					"name an interface the nodes have (ip -br link), or leave spec.interfaces empty to answer on the interface whose subnet holds the address; "+doctor+" to see why one is refused",
					"no node answers on %q: %s is elected for %s (Announcement %s/%s) and has none of %s usable, and no Announcement shows %q in use",
					name, an.Status.Node, addr, an.Namespace, an.Name, strings.Join(a.Spec.Interfaces, ", "), name)
				continue
			}
			why := "no Announcement shows it in use"
			if len(c.s.Announcements) == 0 {
				why = "the input holds no Announcement"
			}
			c.add(CheckInterfaceNotFound, Unchecked, obj, field, doctor,
				"not checked: speakers publish the interfaces they answer on only in Announcements (status.interfaces), and %s", why)
		}
	}
}

// noInterface finds an Announcement saying that its node, which the advertisement selects, is elected for an
// address of a pool the advertisement announces and has no interface to answer on.
func (c *checker) noInterface(a *heraldv1.L2Advertisement, nodes map[string]*corev1.Node) (*heraldv1.Announcement, string) {
	for i := range c.s.Announcements {
		an := &c.s.Announcements[i]
		cond := meta.FindStatusCondition(an.Status.Conditions, speaker.ConditionAnnounced)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != speaker.ReasonNoInterface {
			continue
		}
		if n := nodes[an.Status.Node]; n != nil && !a.Spec.SelectsNode(n.Labels) {
			continue
		}
		for _, s := range an.Status.Addresses {
			addr, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			for _, p := range c.holders(addr) {
				if a.Spec.SelectsPool(c.pools[p]) {
					return an, s
				}
			}
		}
	}
	return nil, ""
}

func selectorText(s *heraldv1.Selector) string {
	t := metav1.FormatLabelSelector(s.LabelSelector())
	if t == "<none>" || t == "" {
		return "{}"
	}
	return "{" + t + "}"
}

func rangeList(rs []ipam.Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
