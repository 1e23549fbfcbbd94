package validate

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/speaker"
)

func pool(name string, lbls map[string]string, addrs ...string) heraldv1.IPAddressPool {
	p := heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, heraldv1.AddressRange(a))
	}
	return p
}

func sel(k, v string) heraldv1.Selector {
	return heraldv1.Selector{MatchLabels: map[string]heraldv1.LabelValue{k: heraldv1.LabelValue(v)}}
}

func node(name string, lbls map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func lbService(ns, name string, ann map[string]string) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
}

// endpoints is an EndpointSlice of a Service with one endpoint on a node.
func endpoints(ns, svc, node string, ready, serving bool) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + node, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving)}}},
	}
}

func announcement(ns, name, node, addr string, ifaces []string, reason string) heraldv1.Announcement {
	an := heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	an.Status.Node, an.Status.Addresses, an.Status.Interfaces = node, []string{addr}, ifaces
	st := metav1.ConditionTrue
	if reason != "Announcing" {
		st = metav1.ConditionFalse
	}
	an.Status.Conditions = []metav1.Condition{{Type: speaker.ConditionAnnounced, Status: st, Reason: reason}}
	return an
}

// clean is a configuration without mistakes: two pools (one dual-stack), each announced, nodes selected by label,
// a Service with externalTrafficPolicy Local and a ready endpoint, another requesting an address of a named
// pool, and an Announcement showing the interface in use.
func clean() *Snapshot {
	web := lbService("shop", "web", map[string]string{controllers.AnnotationLoadBalancerIPs: "198.51.100.10"})
	web.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	www := lbService("blog", "www", map[string]string{"metallb.io/address-pool": "internal"})
	www.Spec.LoadBalancerIP = "203.0.113.5" //nolint:staticcheck // still honoured
	other := lbService("blog", "elsewhere", map[string]string{controllers.AnnotationLoadBalancerIPs: "192.0.2.1"})
	other.Spec.LoadBalancerClass = ptr.To("example.com/other") // not Herald's: not checked
	return &Snapshot{
		Pools: []heraldv1.IPAddressPool{
			pool("web", nil, "198.51.100.0/26", "2001:db8:1::/120"),
			pool("internal", map[string]string{"tier": "internal"}, "203.0.113.0/28"),
		},
		Advertisements: []heraldv1.L2Advertisement{
			{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: heraldv1.L2AdvertisementSpec{
				IPAddressPools: []string{"web"}, NodeSelectors: []heraldv1.Selector{sel("rack", "r1")}, Interfaces: []string{"eth0"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "internal"}, Spec: heraldv1.L2AdvertisementSpec{
				IPAddressPoolSelectors: []heraldv1.Selector{sel("tier", "internal")}}},
		},
		Services:       []corev1.Service{web, www, other},
		Nodes:          []corev1.Node{node("node-1", map[string]string{"rack": "r1"}), node("node-2", nil)},
		EndpointSlices: []discoveryv1.EndpointSlice{endpoints("shop", "web", "node-1", true, true)},
		Announcements:  []heraldv1.Announcement{announcement("shop", "web", "node-1", "198.51.100.10", []string{"eth0"}, "Announcing")},
		FromCluster:    true,
		Class:          controllers.DefaultLoadBalancerClass,
	}
}

// brief is a finding without its message and fix, for tables.
func brief(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s %s", f.Severity, f.Check, f.Object, f.Field))
	}
	return out
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *Snapshot)
		want   []string
	}{
		{name: "clean", change: func(*Snapshot) {}, want: []string{}},
		{name: "overlapping IPv4 pools", change: func(s *Snapshot) {
			s.Pools = append(s.Pools, pool("web-b", map[string]string{"tier": "internal"}, "203.0.113.64/26", "198.51.100.32-198.51.100.40"))
		}, want: []string{"error pool-overlap IPAddressPool web-b spec.addresses[1]"}},
		{name: "overlapping IPv6 pools", change: func(s *Snapshot) {
			// "v6" sorts before "web": without creation times the controller gives the shared addresses to v6.
			s.Pools = append(s.Pools, pool("v6", map[string]string{"tier": "internal"}, "2001:db8:1::80-2001:db8:1::1ff"))
		}, want: []string{"error pool-overlap IPAddressPool web spec.addresses[1]"}},
		{name: "adjacent pools do not overlap", change: func(s *Snapshot) {
			s.Pools = append(s.Pools, pool("next", map[string]string{"tier": "internal"}, "198.51.100.64/26", "2001:db8:1::100/120"))
		}, want: []string{}},
		{name: "advertisement names a missing pool", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.IPAddressPools = append(s.Advertisements[0].Spec.IPAddressPools, "wbe")
		}, want: []string{"error pool-not-found L2Advertisement web spec.ipAddressPools[1]"}},
		{name: "pool selector matching nothing, beside a named pool", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.IPAddressPoolSelectors = []heraldv1.Selector{sel("tier", "nope")}
		}, want: []string{"warning pool-selector-matches-nothing L2Advertisement web spec.ipAddressPoolSelectors[0]"}},
		{name: "the only pool selector matches nothing", change: func(s *Snapshot) {
			s.Advertisements[1].Spec.IPAddressPoolSelectors = []heraldv1.Selector{sel("tier", "internl")}
		}, want: []string{
			"error pool-selector-matches-nothing L2Advertisement internal spec.ipAddressPoolSelectors[0]",
			"warning pool-not-announced IPAddressPool internal ",
		}},
		{name: "node selector matching no node", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.NodeSelectors = []heraldv1.Selector{sel("rack", "r9")}
		}, want: []string{"error node-selector-matches-nothing L2Advertisement web spec.nodeSelectors[0]"}},
		{name: "one of two node selectors matching no node", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.NodeSelectors = append(s.Advertisements[0].Spec.NodeSelectors, sel("rack", "r9"))
		}, want: []string{"warning node-selector-matches-nothing L2Advertisement web spec.nodeSelectors[1]"}},
		{name: "service selector matching no Service", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.ServiceSelectors = []heraldv1.Selector{sel("app", "shop")}
		}, want: []string{"error service-selector-matches-nothing L2Advertisement web spec.serviceSelectors[0]"}},
		{name: "one of two service selectors matching no Service", change: func(s *Snapshot) {
			s.Services[0].Labels = map[string]string{"app": "web"}
			s.Advertisements[0].Spec.ServiceSelectors = []heraldv1.Selector{sel("app", "web"), sel("app", "wbe")}
		}, want: []string{"warning service-selector-matches-nothing L2Advertisement web spec.serviceSelectors[1]"}},
		{name: "preferences matching nodes the advertisement selects", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 100, Preference: sel("rack", "r1")}, {Weight: 1}}
		}, want: []string{}},
		{name: "a preference matching no node", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 1}, {Weight: 100, Preference: sel("rack", "r2")}}
		}, want: []string{"warning preferred-node-selector-matches-nothing L2Advertisement web spec.preferredNodeSelectors[1].preference"}},
		{name: "a preference matching only nodes its advertisement leaves out", change: func(s *Snapshot) {
			s.Nodes[1].Labels = map[string]string{"zone": "a"}
			s.Advertisements[0].Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 50, Preference: sel("zone", "a")}}
		}, want: []string{"warning preferred-node-selector-matches-nothing L2Advertisement web spec.preferredNodeSelectors[0].preference"}},
		{name: "an invalid preference", change: func(s *Snapshot) {
			s.Advertisements[1].Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 5, Preference: heraldv1.Selector{
				MatchExpressions: []heraldv1.SelectorRequirement{{Key: "zone", Operator: "In"}}}}}
		}, want: []string{"error invalid-selector L2Advertisement internal spec.preferredNodeSelectors[0].preference"}},
		{name: "preferences without Nodes are unchecked", change: func(s *Snapshot) {
			s.FromCluster, s.Nodes = false, nil
			s.Advertisements[1].Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 5, Preference: sel("zone", "a")}}
		}, want: []string{
			"unchecked preferred-node-selector-matches-nothing L2Advertisement internal spec.preferredNodeSelectors",
			"unchecked node-selector-matches-nothing L2Advertisement web spec.nodeSelectors",
		}},
		{name: "node selectors without Nodes are unchecked", change: func(s *Snapshot) {
			s.FromCluster, s.Nodes = false, nil
		}, want: []string{"unchecked node-selector-matches-nothing L2Advertisement web spec.nodeSelectors"}},
		{name: "Nodes in files are checked", change: func(s *Snapshot) {
			s.FromCluster = false
			s.Nodes = s.Nodes[1:]
		}, want: []string{"error node-selector-matches-nothing L2Advertisement web spec.nodeSelectors[0]"}},
		{name: "pool no advertisement announces", change: func(s *Snapshot) {
			s.Pools = append(s.Pools, pool("spare", nil, "198.18.0.0/24"))
		}, want: []string{"warning pool-not-announced IPAddressPool spare "}},
		{name: "an advertisement of every pool announces every pool", change: func(s *Snapshot) {
			s.Pools = append(s.Pools, pool("spare", nil, "198.18.0.0/24"))
			s.Advertisements = append(s.Advertisements, heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}})
		}, want: []string{}},
		{name: "requested address in no pool", change: func(s *Snapshot) {
			s.Services[0].Annotations = map[string]string{"metallb.universe.tf/loadBalancerIPs": "198.18.0.5"}
		}, want: []string{"error service-request Service shop/web metadata.annotations[metallb.universe.tf/loadBalancerIPs]"}},
		{name: "requested IPv6 address in no pool", change: func(s *Snapshot) {
			s.Services[0].Annotations = map[string]string{controllers.AnnotationLoadBalancerIPs: "2001:db8:2::1"}
			s.Services[0].Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		}, want: []string{"error service-request Service shop/web metadata.annotations[herald.dev/load-balancer-ips]"}},
		{name: "requested address outside the named pool", change: func(s *Snapshot) {
			s.Services[1].Spec.LoadBalancerIP = "198.51.100.20" //nolint:staticcheck
		}, want: []string{"error service-request Service blog/www spec.loadBalancerIP"}},
		{name: "named pool missing", change: func(s *Snapshot) {
			s.Services[1].Annotations = map[string]string{controllers.AnnotationIPPool: "interna"}
		}, want: []string{"error service-request Service blog/www metadata.annotations[herald.dev/ip-pool]"}},
		{name: "annotations the controller refuses", change: func(s *Snapshot) {
			s.Services[1].Annotations = map[string]string{controllers.AnnotationLoadBalancerIPs: "203.0.113.6"}
		}, want: []string{"error service-request Service blog/www "}},
		{name: "a Service of another class is not checked", change: func(s *Snapshot) {
			s.Services = s.Services[2:]
			s.Services[0].Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, want: []string{}},
		{name: "interface no elected node has", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.Interfaces = []string{"eth9"}
			s.Announcements[0] = announcement("shop", "web", "node-1", "198.51.100.10", nil, speaker.ReasonNoInterface)
		}, want: []string{"error interface-not-found L2Advertisement web spec.interfaces[0]"}},
		{name: "interface unchecked without an Announcement that uses it", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.Interfaces = []string{"eth0", "eth1"}
		}, want: []string{"unchecked interface-not-found L2Advertisement web spec.interfaces[1]"}},
		{name: "a NoInterface Announcement of another pool proves nothing", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.Interfaces = []string{"eth9"}
			s.Announcements[0] = announcement("blog", "www", "node-1", "203.0.113.5", nil, speaker.ReasonNoInterface)
		}, want: []string{"unchecked interface-not-found L2Advertisement web spec.interfaces[0]"}},
		{name: "a NoInterface Announcement of a node the advertisement does not select proves nothing", change: func(s *Snapshot) {
			s.Advertisements[0].Spec.Interfaces = []string{"eth9"}
			s.Announcements[0] = announcement("shop", "web", "node-2", "198.51.100.10", nil, speaker.ReasonNoInterface)
		}, want: []string{"unchecked interface-not-found L2Advertisement web spec.interfaces[0]"}},
		{name: "Local Service without any endpoint", change: func(s *Snapshot) {
			s.EndpointSlices = nil
		}, want: []string{"error local-no-ready-endpoint Service shop/web spec.externalTrafficPolicy"}},
		{name: "Local Service with endpoints not ready", change: func(s *Snapshot) {
			s.EndpointSlices[0] = endpoints("shop", "web", "node-1", false, false)
		}, want: []string{"error local-no-ready-endpoint Service shop/web spec.externalTrafficPolicy"}},
		{name: "Local Service with serving endpoints only", change: func(s *Snapshot) {
			s.EndpointSlices[0] = endpoints("shop", "web", "node-1", false, true)
		}, want: []string{"warning local-no-ready-endpoint Service shop/web spec.externalTrafficPolicy"}},
		{name: "Local Service from files without its EndpointSlice", change: func(s *Snapshot) {
			s.FromCluster, s.EndpointSlices = false, nil
		}, want: []string{"unchecked local-no-ready-endpoint Service shop/web spec.externalTrafficPolicy"}},
		{name: "malformed address in a file", change: func(s *Snapshot) {
			s.Pools[1].Spec.Addresses = append(s.Pools[1].Spec.Addresses, "203.0.113.77/24")
		}, want: []string{"error invalid-address IPAddressPool internal spec.addresses[1]"}},
		{name: "malformed selector in a file", change: func(s *Snapshot) {
			s.Advertisements[1].Spec.IPAddressPoolSelectors = append(s.Advertisements[1].Spec.IPAddressPoolSelectors,
				heraldv1.Selector{MatchExpressions: []heraldv1.SelectorRequirement{{Key: "tier", Operator: "Near"}}})
		}, want: []string{"error invalid-selector L2Advertisement internal spec.ipAddressPoolSelectors[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := clean()
			tt.change(s)
			got := Check(s)
			if diff := cmp.Diff(tt.want, brief(got)); diff != "" {
				t.Errorf("Check (-want +got):\n%s\nfindings: %+v", diff, got)
			}
			for _, f := range got {
				if f.Message == "" || f.Fix == "" {
					t.Errorf("finding without a message or a fix: %+v", f)
				}
			}
		})
	}
}

// TestMessages pins the words of one finding of each check a person acts on.
func TestMessages(t *testing.T) {
	s := clean()
	s.Pools = append(s.Pools, pool("web-b", nil, "198.51.100.32/27", "2001:db8:1::80/121"))
	s.Advertisements[1].Spec.IPAddressPools = []string{"web-b", "gone"}
	s.Services[1].Spec.LoadBalancerIP = "198.18.0.9" //nolint:staticcheck
	s.Services[1].Annotations = nil
	s.EndpointSlices = nil
	s.Advertisements[0].Spec.NodeSelectors = append(s.Advertisements[0].Spec.NodeSelectors, sel("rack", "r9"))
	s.Advertisements[1].Spec.IPAddressPoolSelectors = append(s.Advertisements[1].Spec.IPAddressPoolSelectors, sel("tier", "internl"))
	s.Advertisements[0].Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 100, Preference: sel("rack", "r2")},
		{Weight: 10, Preference: heraldv1.Selector{MatchExpressions: []heraldv1.SelectorRequirement{{Key: "rack", Operator: "DoesNotExist"}}}}}
	want := []Finding{
		{Check: CheckPoolOverlap, Severity: Error, Object: "IPAddressPool web-b", Field: "spec.addresses[0],spec.addresses[1]",
			Message: `198.51.100.32/27, 2001:db8:1::80/121: also listed by IPAddressPool "web"; the controller hands them out only from "web", created earlier, and marks this pool Overlapping`,
			Fix:     `list each address in one pool only: take 198.51.100.32/27, 2001:db8:1::80/121 out of IPAddressPool "web-b" or "web"`},
		{Check: CheckPoolNotFound, Severity: Error, Object: "L2Advertisement internal", Field: "spec.ipAddressPools[1]",
			Message: `names IPAddressPool "gone", which does not exist: nothing is announced for it`,
			Fix:     "create the pool, or correct the name (the pools are internal, web, web-b)"},
		{Check: CheckServiceRequest, Severity: Error, Object: "Service blog/www", Field: "spec.loadBalancerIP",
			Message: "requests 198.18.0.9, which no IPAddressPool holds: it gets no address (AllocationFailed NotInPool)",
			Fix:     "add 198.18.0.9 to a pool's spec.addresses, or request an address a pool holds"},
		{Check: CheckLocalNoEndpoint, Severity: Error, Object: "Service shop/web", Field: "spec.externalTrafficPolicy",
			Message: "externalTrafficPolicy Local and no ready endpoint: no node may announce it, so nobody answers ARP/NDP for its addresses",
			Fix:     "make its Pods ready (kubectl get endpointslices -n shop -l kubernetes.io/service-name=web), or set externalTrafficPolicy: Cluster"},
		{Check: CheckPoolSelector, Severity: Warning, Object: "L2Advertisement internal", Field: "spec.ipAddressPoolSelectors[1]",
			Message: "selector {tier=internl} matches no IPAddressPool",
			Fix:     "label the pools it is meant for (kubectl label ipaddresspool NAME KEY=VALUE), or correct the selector"},
		{Check: CheckNodeSelector, Severity: Warning, Object: "L2Advertisement web", Field: "spec.nodeSelectors[1]",
			Message: "selector {rack=r9} matches none of the 2 Nodes",
			Fix:     "label the nodes meant to announce (kubectl label node NAME KEY=VALUE), or correct the selector"},
		{Check: CheckPreferredNode, Severity: Warning, Object: "L2Advertisement web", Field: "spec.preferredNodeSelectors[0].preference",
			Message: "preference {rack=r2} (weight 100) matches none of the 2 Nodes: no node is preferred by it",
			Fix:     "label the nodes to prefer (kubectl label node NAME KEY=VALUE), or correct the selector"},
		{Check: CheckPreferredNode, Severity: Warning, Object: "L2Advertisement web", Field: "spec.preferredNodeSelectors[1].preference",
			Message: "preference {!rack} (weight 10) matches only Nodes the advertisement's nodeSelectors leave out (node-2): a preference applies only to nodes its own advertisement selects",
			Fix:     "make spec.nodeSelectors select the nodes to prefer, or prefer them in the advertisement that selects them"},
	}
	if diff := cmp.Diff(want, Check(s)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}
