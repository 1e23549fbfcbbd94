package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
)

func ptNode(name string, mut ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	for _, m := range mut {
		m(n)
	}
	return n
}

func ptPool(name string, created int, addrs ...string) *heraldv1.IPAddressPool {
	p := &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": name},
		CreationTimestamp: metav1.NewTime(time.Unix(int64(created), 0))}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, heraldv1.AddressRange(a))
	}
	return p
}

func ptAdv(name string, mut ...func(*heraldv1.L2Advertisement)) *heraldv1.L2Advertisement {
	a := &heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, m := range mut {
		m(a)
	}
	return a
}

func ptSvc(name string, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

// ptApp labels a Service app=<app>.
func ptApp(app string, s *corev1.Service) *corev1.Service {
	s.Labels = map[string]string{"app": app}
	return s
}

// ptSelAdv is an advertisement for Services labelled app=<app> (any Service when app is ""), from these nodes
// (any node when none are given).
func ptSelAdv(name, app string, nodes ...string) *heraldv1.L2Advertisement {
	return ptAdv(name, func(a *heraldv1.L2Advertisement) {
		if app != "" {
			a.Spec.ServiceSelectors = []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"app": heraldv1.LabelValue(app)}}}
		}
		if len(nodes) > 0 {
			a.Spec.NodeSelectors = []heraldv1.Selector{{MatchExpressions: []heraldv1.SelectorRequirement{
				{Key: "kubernetes.io/hostname", Operator: "In", Values: nodes}}}}
		}
	})
}

func ptLocal(s *corev1.Service) *corev1.Service {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	return s
}

func ptSlice(svc string, eps map[string][2]bool) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	names := make([]string, 0, len(eps))
	for n := range eps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := eps[n]
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.18.0.1"}, NodeName: ptr.To(n),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(c[0]), Serving: ptr.To(c[1])}})
	}
	return sl
}

var ptLinks = []iface.Link{
	{Index: 1, Name: "lo", Loopback: true, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
	{Index: 2, Name: "eth0", Up: true, Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24"), netip.MustParsePrefix("2001:db8:100::11/64")}},
	{Index: 3, Name: "eth1", Up: true, Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.11/24")}},
}

func ptInputs(self string, live []string, nodes []*corev1.Node) *inputs {
	in := &inputs{Self: self, Class: "herald.dev/l2", Nodes: map[string]*corev1.Node{}, Live: live, Links: ptLinks,
		Endpoints: map[types.NamespacedName][]*discoveryv1.EndpointSlice{}}
	for _, n := range nodes {
		in.Nodes[n.Name] = n
	}
	return in
}

// winners maps each group key to its winner, or to "-"+why when there is none.
func winners(pl *plan) map[string]string {
	out := map[string]string{}
	for k, g := range pl.Groups {
		if g.Winner == "" {
			out[k] = "-" + g.Why
		} else {
			out[k] = g.Winner
		}
	}
	return out
}

func TestDecideWinners(t *testing.T) {
	three := []string{"node1", "node2", "node3"}
	allNodes := []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")}
	pool := ptPool("lab", 1, "198.51.100.100-198.51.100.150", "2001:db8:100::100-2001:db8:100::150")
	vip := "198.51.100.100"
	all := func(key string, nodes ...string) string { w, _ := election.Winner(key, nodes); return w }

	tests := []struct {
		name string
		in   func() *inputs
		want map[string]string
	}{
		{
			name: "every live node eligible: the MetalLB order decides",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
				in.Services = []*corev1.Service{ptSvc("a", vip), ptSvc("b", "2001:db8:100::100"), ptSvc("c", "198.51.100.101", "2001:db8:100::101")}
				return in
			},
			want: map[string]string{vip: all(vip, three...), "2001:db8:100::100": all("2001:db8:100::100", three...),
				"198.51.100.101": all("198.51.100.101", three...)},
		},
		{
			name: "a Service outside every pool and one whose pool no advertisement names",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool, ptPool("quiet", 2, "203.0.113.0/24")}
				in.Advs = []*heraldv1.L2Advertisement{ptAdv("lab-only", func(a *heraldv1.L2Advertisement) { a.Spec.IPAddressPools = []string{"lab"} })}
				in.Services = []*corev1.Service{ptSvc("a", vip), ptSvc("out", "198.18.0.5"), ptSvc("quiet", "203.0.113.7")}
				return in
			},
			want: map[string]string{vip: all(vip, three...), "198.18.0.5": "-NoPool", "203.0.113.7": "-NotAdvertised"},
		},
		{
			name: "pool selector and node selector",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptAdv("sel", func(a *heraldv1.L2Advertisement) {
					a.Spec.IPAddressPoolSelectors = []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"pool": "lab"}}}
					a.Spec.NodeSelectors = []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"kubernetes.io/hostname": "node2"}}}
				})}
				in.Services = []*corev1.Service{ptSvc("a", vip), ptSvc("b", "198.51.100.101")}
				return in
			},
			want: map[string]string{vip: "node2", "198.51.100.101": "node2"},
		},
		{
			name: "excluded, network-unavailable and dead nodes never win",
			in: func() *inputs {
				nodes := []*corev1.Node{
					ptNode("node1", func(n *corev1.Node) { n.Labels[ExcludeLabel] = "" }),
					ptNode("node2", func(n *corev1.Node) {
						n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}
					}),
					ptNode("node3"), ptNode("node4"),
				}
				in := ptInputs("node1", []string{"node1", "node2", "node3"}, nodes) // node4 is not a live member
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
				in.Services = []*corev1.Service{ptSvc("a", vip), ptSvc("b", "198.51.100.101"), ptSvc("c", "198.51.100.102")}
				return in
			},
			want: map[string]string{vip: "node3", "198.51.100.101": "node3", "198.51.100.102": "node3"},
		},
		{
			name: "externalTrafficPolicy Local follows ready endpoints, then serving ones; none means nobody",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
				in.Services = []*corev1.Service{ptLocal(ptSvc("ready", vip)), ptLocal(ptSvc("serving", "198.51.100.101")), ptLocal(ptSvc("none", "198.51.100.102"))}
				in.Endpoints[types.NamespacedName{Namespace: "default", Name: "ready"}] = []*discoveryv1.EndpointSlice{
					ptSlice("ready", map[string][2]bool{"node3": {true, true}, "node2": {false, true}})}
				in.Endpoints[types.NamespacedName{Namespace: "default", Name: "serving"}] = []*discoveryv1.EndpointSlice{
					ptSlice("serving", map[string][2]bool{"node2": {false, true}, "node1": {false, false}})}
				return in
			},
			want: map[string]string{vip: "node3", "198.51.100.101": "node2", "198.51.100.102": "-NoEligibleNode"},
		},
		{
			name: "Services sharing an address are one group; other classes and other types are ignored",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
				other := ptSvc("other", "198.51.100.120")
				other.Spec.LoadBalancerClass = ptr.To("example.com/lb")
				np := ptSvc("np", "198.51.100.121")
				np.Spec.Type = corev1.ServiceTypeNodePort
				in.Services = []*corev1.Service{ptSvc("web", vip), ptSvc("dns", vip), other, np}
				return in
			},
			want: map[string]string{vip: all(vip, three...)},
		},
		{
			name: "serviceSelectors: each Service from the nodes of the advertisements selecting it; one selected by none is not announced",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1"), ptSelAdv("b", "b", "node2", "node3"), ptSelAdv("c", "c", "node3")}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("a", vip)), ptApp("b", ptSvc("b", "198.51.100.101")),
					ptApp("c", ptSvc("c", "198.51.100.102")), ptSvc("plain", "198.51.100.103"), ptApp("z", ptSvc("z", "198.51.100.104"))}
				return in
			},
			want: map[string]string{vip: "node1", "198.51.100.101": all("198.51.100.101", "node2", "node3"), "198.51.100.102": "node3",
				"198.51.100.103": "-NotSelected", "198.51.100.104": "-NotSelected"},
		},
		{
			name: "an advertisement without serviceSelectors applies to every Service beside one with them",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("any", "", "node3"), ptSelAdv("a", "a", "node1")}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("a", vip)), ptSvc("plain", "198.51.100.101")}
				return in
			},
			want: map[string]string{vip: all(vip, "node1", "node3"), "198.51.100.101": "node3"},
		},
		{
			name: "serviceSelectors of another pool's advertisement do not apply",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool, ptPool("quiet", 2, "203.0.113.0/24")}
				a := ptSelAdv("a", "a", "node2")
				a.Spec.IPAddressPools = []string{"quiet"}
				in.Advs = []*heraldv1.L2Advertisement{a, ptSelAdv("lab", "", "node1")}
				in.Advs[1].Spec.IPAddressPools = []string{"lab"}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("a", vip)), ptApp("a", ptSvc("q", "203.0.113.7"))}
				return in
			},
			want: map[string]string{vip: "node1", "203.0.113.7": "node2"},
		},
		{
			name: "a shared address whose Services' advertisements allow different nodes: announced from the intersection",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1", "node2"), ptSelAdv("b", "b", "node2", "node3")}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))}
				return in
			},
			want: map[string]string{vip: "node2"},
		},
		{
			name: "a shared address whose Services' advertisements allow disjoint nodes: nobody announces it",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1"), ptSelAdv("b", "b", "node2")}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip)),
					ptApp("a", ptSvc("web2", "198.51.100.101")), ptSvc("other", "198.51.100.101")}
				return in
			},
			want: map[string]string{vip: "-SelectorConflict", "198.51.100.101": "-SelectorConflict"},
		},
		{
			name: "a shared address selected by different advertisements of the same nodes: no conflict",
			in: func() *inputs {
				in := ptInputs("node1", three, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1", "node3"), ptSelAdv("b", "b", "node3", "node1")}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))}
				return in
			},
			want: map[string]string{vip: all(vip, "node1", "node3")},
		},
		{
			name: "the intersection holds only a dead node: no eligible node",
			in: func() *inputs {
				in := ptInputs("node1", []string{"node1", "node2"}, allNodes)
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1", "node3"), ptSelAdv("b", "b", "node2", "node3")}
				in.Services = []*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))}
				return in
			},
			want: map[string]string{vip: "-NoEligibleNode"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in()
			got := winners(decide(in, election.NewTable()))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("winners (-want +got):\n%s", diff)
			}
			// Every speaker, whatever its name and table history, reaches the same verdict.
			for _, self := range in.Live {
				in2 := tt.in()
				in2.Self = self
				tab := election.NewTable()
				decide(ptInputs(self, in2.Live[:1], nil), tab) // a different history
				if diff := cmp.Diff(got, winners(decide(in2, tab))); diff != "" {
					t.Errorf("speaker %s disagrees (-node1 +%s):\n%s", self, self, diff)
				}
			}
		})
	}
}

func TestDecideInterfaces(t *testing.T) {
	nodes := []*corev1.Node{ptNode("node1")}
	tests := []struct {
		name string
		adv  *heraldv1.L2Advertisement
		ips  []string
		want map[string][]string // interface -> VIPs
	}{
		{"connected subnet", ptAdv("all"), []string{"198.51.100.100", "2001:db8:100::100"},
			map[string][]string{"eth0": {"198.51.100.100", "2001:db8:100::100"}}},
		{"the other subnet", ptAdv("all"), []string{"203.0.113.50"}, map[string][]string{"eth1": {"203.0.113.50"}}},
		{"no connected subnet: elected but silent", ptAdv("all"), []string{"198.18.0.9"}, map[string][]string{}},
		{"advertisement names the interface", ptAdv("eth1", func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{"eth1"} }),
			[]string{"198.51.100.100"}, map[string][]string{"eth1": {"198.51.100.100"}}},
		{"advertisement names a missing interface", ptAdv("gone", func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{"eth9"} }),
			[]string{"198.51.100.100"}, map[string][]string{}},
		{"an advertisement with serviceSelectors names the interface of the Services it selects", ptAdv("eth1", func(a *heraldv1.L2Advertisement) {
			a.Spec.Interfaces = []string{"eth1"}
			a.Spec.ServiceSelectors = []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"app": "s0"}}}
		}), []string{"198.51.100.100", "198.51.100.101"}, map[string][]string{"eth1": {"198.51.100.100"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ptInputs("node1", []string{"node1"}, nodes)
			in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.51.100.0/24", "2001:db8:100::/64", "203.0.113.0/24", "198.18.0.0/24")}
			in.Advs = []*heraldv1.L2Advertisement{tt.adv}
			for i, ip := range tt.ips {
				in.Services = append(in.Services, ptApp(fmt.Sprintf("s%d", i), ptSvc(fmt.Sprintf("s%d", i), ip)))
			}
			pl := decide(in, election.NewTable())
			got := map[string][]string{}
			for name, e := range pl.Assignment {
				got[name] = addrStrings(e.VIPs)
				if e.Interface.Name != name {
					t.Errorf("assignment %s names interface %s", name, e.Interface.Name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("assignment (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideEveryViewOneWinner: speakers with the same view elect exactly one announcer for each of many
// addresses, and the announcements spread over the nodes.
func TestDecideEveryViewOneWinner(t *testing.T) {
	live := []string{"node1", "node2", "node3"}
	nodes := []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")}
	var svcs []*corev1.Service
	for i := range 200 {
		svcs = append(svcs, ptSvc(fmt.Sprintf("s%d", i), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)))
	}
	count := map[string]int{}
	for _, self := range live {
		in := ptInputs(self, live, nodes)
		in.Links = []iface.Link{{Index: 2, Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
			Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/15")}}}
		in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.18.0.0/15")}
		in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
		in.Services = svcs
		pl := decide(in, election.NewTable())
		for _, e := range pl.Assignment {
			count[self] += len(e.VIPs)
		}
	}
	total := 0
	for _, n := range live {
		total += count[n]
		if count[n] < 40 {
			t.Errorf("%s announces %d of 200 addresses; the election should spread them", n, count[n])
		}
	}
	if total != 200 {
		t.Errorf("%d announcements for 200 addresses, want exactly one each (per node: %v)", total, count)
	}
}

// BenchmarkDecide10kServices100Members: one whole decision (grouping, pools, eligibility, election, interface
// choice) for 10,000 Services with 100 live members, the table warm as in a running speaker; and the same after
// one member dies.
func BenchmarkDecide10kServices100Members(b *testing.B) { benchDecide10k(b, 100) }

// BenchmarkDecide10kServices3Members is the same in a three-node cluster, where this node announces a third of
// the addresses and watches or corroborates the rest: its plan holds the interfaces of every one of them.
func BenchmarkDecide10kServices3Members(b *testing.B) { benchDecide10k(b, 3) }

func benchDecide10k(b *testing.B, members int) {
	var live []string
	var nodes []*corev1.Node
	for i := range members {
		n := fmt.Sprintf("node%03d", i)
		live = append(live, n)
		nodes = append(nodes, ptNode(n))
	}
	in := ptInputs(live[0], live, nodes)
	in.Links = []iface.Link{{Index: 2, Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/15")}}}
	in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.18.0.0/15")}
	in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
	for i := range 10000 {
		in.Services = append(in.Services, ptSvc(fmt.Sprintf("s%05d", i), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)))
	}
	table := election.NewTable()
	decide(in, table) // cold: hashes every (address, node) pair once
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decide(in, table)
		}
	})
	b.Run("member-dies", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			in.Live = live[:members-1]
			if i%2 == 1 {
				in.Live = live
			}
			decide(in, table)
		}
	})
}

func TestKernelAnswers(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.100")
	links := func(extra ...iface.Link) []iface.Link { return append(slices.Clone(ptLinks), extra...) }
	ipvs := iface.Link{Index: 9, Name: "kube-ipvs0", Kind: "dummy", NoARP: true,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.100/32"), netip.MustParsePrefix("2001:db8:100::100/128")}}
	tests := []struct {
		name      string
		links     []iface.Link
		arpIgnore map[string]int
		addr      netip.Addr
		want      string
	}{
		{"not configured anywhere", links(), nil, vip, ""},
		{"on kube-ipvs0, arp_ignore 0", links(ipvs), map[string]int{"all": 0, "eth0": 0}, vip,
			"198.51.100.100 is configured on kube-ipvs0 and net.ipv4.conf.eth0.arp_ignore is 0"},
		{"on kube-ipvs0, strict ARP for all", links(ipvs), map[string]int{"all": 1}, vip, ""},
		{"on kube-ipvs0, strict ARP on eth0 only", links(ipvs), map[string]int{"all": 0, "eth0": 2}, vip, ""},
		{"on the announcing link itself", links(iface.Link{Index: 2, Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
			Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")}}), map[string]int{"all": 1}, vip,
			"198.51.100.100 is configured on eth0 itself"},
		{"IPv6 on kube-ipvs0 is not answered on eth0", links(ipvs), nil, netip.MustParseAddr("2001:db8:100::100"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kernelAnswers(tt.addr, "eth0", localIPv4(tt.links), tt.arpIgnore); got != tt.want {
				t.Errorf("kernelAnswers = %q, want %q", got, tt.want)
			}
		})
	}

	// In a decision the finding belongs to the node whose kernel answers, whoever is elected.
	for _, self := range []string{"node1", "node2", "node3"} {
		in := ptInputs(self, []string{"node1", "node2", "node3"}, []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")})
		in.Links = links(ipvs)
		in.Pools = []*heraldv1.IPAddressPool{ptPool("lab", 1, "198.51.100.100-198.51.100.150")}
		in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
		in.Services = []*corev1.Service{ptSvc("a", "198.51.100.100"), ptSvc("b", "198.51.100.101")}
		pl := decide(in, election.NewTable())
		if got := pl.Groups["198.51.100.100"].Kernel[vip]; !strings.Contains(got, "kube-ipvs0") {
			t.Errorf("%s: Kernel finding %q, want one naming kube-ipvs0", self, got)
		}
		if got := pl.Groups["198.51.100.101"].Kernel; len(got) != 0 {
			t.Errorf("%s: finding %v for an address no interface holds", self, got)
		}
	}
}

// TestDecideHolder: a live, eligible holder keeps its key whoever the election prefers; an ineligible or dead one
// does not; with FailbackAfter the election's choice takes the key back once it has been live long enough.
func TestDecideHolder(t *testing.T) {
	live := []string{"node1", "node2", "node3"}
	nodes := []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")}
	const ip = "198.51.100.20"
	base := func(self string) *inputs {
		in := ptInputs(self, live, nodes)
		in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.51.100.0/24")}
		in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
		in.Services = []*corev1.Service{ptSvc("s", ip)}
		in.Now = t0
		return in
	}
	order := election.Order(ip, live)
	preferred, other := order[0], order[2]

	in := base(preferred)
	pl := decide(in, election.NewTable())
	if g := pl.Groups[ip]; g.Winner != preferred || g.Elected != preferred {
		t.Fatalf("no holder: winner %s elected %s, want %s", g.Winner, g.Elected, preferred)
	}

	in = base(preferred)
	in.Holders = map[string]string{ip: other}
	g := decide(in, election.NewTable()).Groups[ip]
	if g.Winner != other || g.Elected != preferred || !g.HolderOK {
		t.Errorf("live holder %s: winner %s elected %s holderOK %v", other, g.Winner, g.Elected, g.HolderOK)
	}

	in = base(preferred)
	in.Holders = map[string]string{ip: other}
	in.Live = []string{preferred, order[1]}
	g = decide(in, election.NewTable()).Groups[ip]
	if g.Winner != preferred || g.HolderOK {
		t.Errorf("dead holder %s: winner %s holderOK %v, want %s", other, g.Winner, g.HolderOK, preferred)
	}

	in = base(preferred)
	in.Holders = map[string]string{ip: other}
	for _, n := range in.Nodes {
		if n.Name == other {
			n.Labels = map[string]string{ExcludeLabel: ""}
		}
	}
	g = decide(in, election.NewTable()).Groups[ip]
	if g.Winner != preferred || g.HolderOK {
		t.Errorf("excluded (drained) holder %s: winner %s holderOK %v, want %s", other, g.Winner, g.HolderOK, preferred)
	}

	for _, tc := range []struct {
		name  string
		since time.Duration // how long the preferred node has been live
		want  string
	}{
		{name: "failback not due", since: 30 * time.Second, want: other},
		{name: "failback due", since: 2 * time.Minute, want: preferred},
	} {
		in = base(preferred)
		in.Nodes = map[string]*corev1.Node{}
		for _, n := range nodes {
			in.Nodes[n.Name] = ptNode(n.Name)
		}
		in.Holders = map[string]string{ip: other}
		in.FailbackAfter = time.Minute
		in.LiveSince = map[string]time.Time{preferred: t0.Add(-tc.since), other: t0.Add(-time.Hour)}
		if g := decide(in, election.NewTable()).Groups[ip]; g.Winner != tc.want {
			t.Errorf("%s: winner %s, want %s", tc.name, g.Winner, tc.want)
		}
	}
}

// TestDecidePin: a Service pinned to a node (herald move) is answered there when that node is eligible, whoever
// the election prefers and whoever holds it; a pin to a node that may not answer is ignored and reported; an
// excluded node, a leave or a handoff (Excluded) overrides the pin.
func TestDecidePin(t *testing.T) {
	live := []string{"node1", "node2", "node3"}
	const ip = "198.51.100.21"
	order := election.Order(ip, live)
	for _, tc := range []struct {
		name          string
		pin, holder   string
		live          []string
		excluded      string // a take's Excluded, or a drain label
		drained       string
		winner, avoid string
		ignored       string
	}{
		{name: "no pin", winner: order[0]},
		{name: "pinned to the last in order", pin: order[2], winner: order[2]},
		{name: "pinned, another node holds", pin: order[2], holder: order[0], winner: order[2]},
		{name: "pinned to a node that is not live", pin: order[2], live: order[:2], winner: order[0], ignored: order[2]},
		{name: "pinned to a drained node", pin: order[2], drained: order[2], winner: order[0], ignored: order[2]},
		{name: "pinned node handed it over", pin: order[2], excluded: order[2], winner: order[0], ignored: order[2]},
		{name: "pinned to a node that does not exist", pin: "node9", winner: order[0], ignored: "node9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ptInputs(order[0], live, []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")})
			if tc.live != nil {
				in.Live = tc.live
			}
			in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.51.100.0/24")}
			in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
			svc := ptSvc("s", ip)
			if tc.pin != "" {
				svc.Annotations = map[string]string{AnnotationNode: tc.pin}
			}
			in.Services = []*corev1.Service{svc}
			in.Now = t0
			if tc.holder != "" {
				in.Holders = map[string]string{ip: tc.holder}
			}
			if tc.excluded != "" {
				in.Excluded = map[string]string{ip: tc.excluded}
			}
			if tc.drained != "" {
				in.Nodes[tc.drained].Labels = map[string]string{ExcludeLabel: ""}
			}
			g := decide(in, election.NewTable()).Groups[ip]
			if g.Winner != tc.winner || g.PinIgnored != tc.ignored {
				t.Errorf("winner %s, pin ignored %q; want %s, %q", g.Winner, g.PinIgnored, tc.winner, tc.ignored)
			}
		})
	}
}

func TestDecideWatcherAndImpaired(t *testing.T) {
	live := []string{"node1", "node2", "node3"}
	nodes := []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")}
	const ip = "198.51.100.20"
	base := func(self string) *inputs {
		in := ptInputs(self, live, nodes)
		in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.51.100.0/24")}
		in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
		in.Services = []*corev1.Service{ptSvc("s", ip)}
		in.Now = t0
		return in
	}
	order := election.Order(ip, live)

	// Every node agrees: the watcher is the second in the order and the corroborator the third, and only they
	// get an interface to probe from.
	for _, self := range live {
		g := decide(base(self), election.NewTable()).Groups[ip]
		if g.Winner != order[0] || g.Watcher != order[1] || g.Corroborator != order[2] {
			t.Errorf("%s: winner %s watcher %s corroborator %s, want %s, %s and %s", self, g.Winner, g.Watcher,
				g.Corroborator, order[0], order[1], order[2])
		}
		wantProbe := self != order[0]
		if l, ok := g.ProbeFrom.lookup(netip.MustParseAddr(ip)); ok != wantProbe || (ok && l.Name != "eth0") {
			t.Errorf("%s: probes from %+v (%v), want eth0: %v", self, l, ok, wantProbe)
		}
	}

	// A holder that is not the election's choice: the watcher is the first other node, the preferred one.
	in := base(order[1])
	in.Holders = map[string]string{ip: order[2]}
	if g := decide(in, election.NewTable()).Groups[ip]; g.Winner != order[2] || g.Watcher != order[0] || g.Corroborator != order[1] {
		t.Errorf("holder %s: winner %s watcher %s corroborator %s, want watcher %s and corroborator %s", order[2],
			g.Winner, g.Watcher, g.Corroborator, order[0], order[1])
	}

	// The announcer withdrew from the address's prefix: the next node announces, the one after watches; the
	// holder rule does not keep an impaired holder.
	in = base(order[1])
	in.Holders = map[string]string{ip: order[0]}
	in.Impaired = map[string][]netip.Prefix{order[0]: {netip.MustParsePrefix("198.51.100.0/24")}}
	if g := decide(in, election.NewTable()).Groups[ip]; g.Winner != order[1] || g.Watcher != order[2] || g.Corroborator != "" || g.HolderOK {
		t.Errorf("impaired %s: winner %s watcher %s corroborator %q holderOK %v, want %s, %s and none", order[0],
			g.Winner, g.Watcher, g.Corroborator, g.HolderOK, order[1], order[2])
	}
	// A prefix that does not hold the address changes nothing.
	in = base(order[1])
	in.Impaired = map[string][]netip.Prefix{order[0]: {netip.MustParsePrefix("203.0.113.0/24")}}
	if g := decide(in, election.NewTable()).Groups[ip]; g.Winner != order[0] {
		t.Errorf("impaired elsewhere: winner %s, want %s", g.Winner, order[0])
	}
	// A lone eligible node has no watcher.
	in = base(order[0])
	in.Live = []string{order[0]}
	if g := decide(in, election.NewTable()).Groups[ip]; g.Winner != order[0] || g.Watcher != "" || g.Corroborator != "" {
		t.Errorf("alone: winner %s watcher %q corroborator %q, want %s and none", g.Winner, g.Watcher, g.Corroborator, order[0])
	}
	// Two eligible nodes: a watcher, no corroborator.
	in = base(order[0])
	in.Live = []string{order[0], order[1]}
	if g := decide(in, election.NewTable()).Groups[ip]; g.Watcher != order[1] || g.Corroborator != "" {
		t.Errorf("two nodes: watcher %q corroborator %q, want %s and none", g.Watcher, g.Corroborator, order[1])
	}
}

// TestInterfacesText: an elected node with no interface says why: no connected subnet when the advertisements
// name none, the named interfaces it lacks (or cannot use) otherwise.
func TestInterfacesText(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.10")
	for _, tt := range []struct {
		refusals []iface.Refusal
		want     string
	}{
		{[]iface.Refusal{{Reason: iface.ReasonNoSubnet}}, "no interface (no connected subnet holds the address and the L2Advertisement names none)"},
		{[]iface.Refusal{{Name: "eth1", Reason: iface.ReasonNotFound}, {Name: "eth2", Reason: iface.ReasonDown}}, "no interface (eth1: not-found; eth2: down)"},
	} {
		g := &group{Addrs: []netip.Addr{a}, Refusals: addrMap[[]iface.Refusal]{{a, tt.refusals}}}
		if got := interfacesText(g); got != tt.want {
			t.Errorf("interfacesText = %q, want %q", got, tt.want)
		}
	}
}

// TestDecideSelectorConflict: the conflict of Services sharing an address is described the same way whether or
// not a node is allowed for all of them, and only for a group whose Services' advertisements select different
// nodes.
func TestDecideSelectorConflict(t *testing.T) {
	nodes := []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")}
	const vip = "198.51.100.100"
	for _, tt := range []struct {
		name string
		advs []*heraldv1.L2Advertisement
		svcs []*corev1.Service
		want string
	}{
		{"intersection", []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1", "node2"), ptSelAdv("b", "b", "node2", "node3")},
			[]*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))},
			"the Services sharing 198.51.100.100 are selected by L2Advertisements that allow different nodes (default/dns: b on node2,node3; " +
				"default/web: a on node1,node2): it is announced only from a node allowed for all of them (node2)"},
		{"disjoint", []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1"), ptSelAdv("b", "b", "node2"), ptSelAdv("b2", "b", "node2")},
			[]*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))},
			"the Services sharing 198.51.100.100 are selected by L2Advertisements that allow different nodes (default/dns: b,b2 on node2; " +
				"default/web: a on node1): no node is allowed for all of them, so no node announces it; make their advertisements " +
				"select a common node or give the Services different addresses"},
		{"one Service selected by none", []*heraldv1.L2Advertisement{ptSelAdv("a", "a")},
			[]*corev1.Service{ptApp("a", ptSvc("web", vip)), ptSvc("dns", vip)},
			"the Services sharing 198.51.100.100 are selected by L2Advertisements that allow different nodes (default/dns: none; " +
				"default/web: a on node1,node2,node3): no node is allowed for all of them, so no node announces it; make their " +
				"advertisements select a common node or give the Services different addresses"},
		{"same nodes", []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1"), ptSelAdv("b", "b", "node1")},
			[]*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))}, ""},
		{"no serviceSelectors", []*heraldv1.L2Advertisement{ptSelAdv("a", "", "node1"), ptSelAdv("b", "", "node2")},
			[]*corev1.Service{ptSvc("web", vip), ptSvc("dns", vip)}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := ptInputs("node1", []string{"node1", "node2", "node3"}, nodes)
			in.Pools = []*heraldv1.IPAddressPool{ptPool("lab", 1, "198.51.100.0/24")}
			in.Advs, in.Services = tt.advs, tt.svcs
			if got := decide(in, election.NewTable()).Groups[vip].Conflict; got != tt.want {
				t.Errorf("conflict:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestReportSelectorConflicts: the conflict is raised once per message, on every Service of the group, by one node
// (the first live member in the key's order when nobody announces); the group's reason text is the conflict.
func TestReportSelectorConflicts(t *testing.T) {
	live := []string{"node1", "node2", "node3"}
	nodes := []*corev1.Node{ptNode("node1"), ptNode("node2"), ptNode("node3")}
	const vip = "198.51.100.100"
	first := election.Order(vip, live)[0]
	for _, self := range live {
		in := ptInputs(self, live, nodes)
		in.Pools = []*heraldv1.IPAddressPool{ptPool("lab", 1, "198.51.100.0/24")}
		in.Advs = []*heraldv1.L2Advertisement{ptSelAdv("a", "a", "node1"), ptSelAdv("b", "b", "node2")}
		in.Services = []*corev1.Service{ptApp("a", ptSvc("web", vip)), ptApp("b", ptSvc("dns", vip))}
		rec := events.NewFakeRecorder(10)
		a := &agent{rec: rec, log: logr.Discard(), in: in, plan: decide(in, election.NewTable())}
		g := a.plan.Groups[vip]
		if got := g.whyText(); got != g.Conflict || g.Why != ReasonSelectorConflict {
			t.Fatalf("%s: why %s %q, want the conflict", self, g.Why, got)
		}
		a.reportSelectorConflicts()
		a.reportSelectorConflicts() // the same conflict again: no second Event
		want := 0
		if self == first {
			want = 2
		}
		if got := len(rec.Events); got != want {
			t.Errorf("%s: %d Events, want %d", self, got, want)
		}
		for range len(rec.Events) {
			if e := <-rec.Events; !strings.Contains(e, "Warning SelectorConflict the Services sharing "+vip) {
				t.Errorf("%s: Event %q", self, e)
			}
		}
	}
}
