package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
)

// ptPrefer adds a preferredNodeSelector: weight for nodes whose label key has value.
func ptPrefer(weight int32, key, value string) func(*heraldv1.L2Advertisement) {
	return func(a *heraldv1.L2Advertisement) {
		a.Spec.PreferredNodeSelectors = append(a.Spec.PreferredNodeSelectors, heraldv1.PreferredNodeSelector{Weight: weight,
			Preference: heraldv1.Selector{MatchLabels: map[string]heraldv1.LabelValue{key: heraldv1.LabelValue(value)}}})
	}
}

// ptOnZones limits an advertisement to nodes of these zones.
func ptOnZones(zones ...string) func(*heraldv1.L2Advertisement) {
	return func(a *heraldv1.L2Advertisement) {
		a.Spec.NodeSelectors = []heraldv1.Selector{{MatchExpressions: []heraldv1.SelectorRequirement{
			{Key: "zone", Operator: "In", Values: zones}}}}
	}
}

// TestDecidePreferred: preferredNodeSelectors order the eligible nodes by weight, ties and unpreferred nodes by
// the hash order, for the winner and for the watcher and corroborator that take over after it. The hash orders,
// from `printf 'node#key' | sha256sum`:
//
//	198.51.100.20: node3 2628.. < node4 591e.. < node1 c178.. < node2 efa6..
//	198.51.100.21: node4 3ded.. < node3 511a.. < node1 9631.. < node2 cf46..
func TestDecidePreferred(t *testing.T) {
	const v20, v21 = "198.51.100.20", "198.51.100.21"
	four := []string{"node1", "node2", "node3", "node4"}
	zone := func(z string) func(*corev1.Node) { return func(n *corev1.Node) { n.Labels["zone"] = z } }
	nodes := func() []*corev1.Node {
		return []*corev1.Node{ptNode("node1", zone("a")), ptNode("node2", zone("a")), ptNode("node3", zone("b")), ptNode("node4", zone("c"))}
	}
	pool := ptPool("p", 1, "198.51.100.0/24")
	type setup struct {
		advs     []*heraldv1.L2Advertisement
		live     []string                    // default: all four
		svcs     []*corev1.Service           // default: one Service on v20
		holders  map[string]string           // per key
		mut      func(in *inputs)            // anything else
		want     map[string]string           // per key: "winner elected watcher corroborator"
		wantKeys map[string]election.Weights // when set, the group's weights
	}
	tests := []struct {
		name string
		setup
	}{
		{name: "no preferences: the hash order", setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all")},
			want: map[string]string{v20: "node3 node3 node4 node1"}}},
		{name: "preferred zone: the first preferred node in hash order wins, the other preferred one watches",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"))},
				want:     map[string]string{v20: "node1 node1 node2 node3"},
				wantKeys: map[string]election.Weights{v20: {"node1": 100, "node2": 100}}}},
		{name: "tiers: weight 100 before weight 50 before the rest",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(50, "zone", "a"), ptPrefer(100, "zone", "c"))},
				want: map[string]string{v20: "node4 node4 node1 node2"}}},
		{name: "weights a node matches add up",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(60, "zone", "a"), ptPrefer(50, "kubernetes.io/hostname", "node2"))},
				want:     map[string]string{v20: "node2 node2 node1 node3"},
				wantKeys: map[string]election.Weights{v20: {"node1": 60, "node2": 110}}}},
		{name: "failover goes to the next preferred node",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"))}, live: []string{"node2", "node3", "node4"},
				want: map[string]string{v20: "node2 node2 node3 node4"}}},
		{name: "no preferred node left: any eligible node, in hash order",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"))}, live: []string{"node3", "node4"},
				want: map[string]string{v20: "node3 node3 node4 "}}},
		{name: "a preference reaches only the nodes its own advertisement selects",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("ab", ptOnZones("a", "b"), ptPrefer(100, "zone", "c")), ptAdv("c", ptOnZones("c"))},
				want: map[string]string{v20: "node3 node3 node4 node1"}, wantKeys: map[string]election.Weights{v20: nil}}},
		{name: "a preference never makes a node eligible",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("ab", ptOnZones("a", "b"), ptPrefer(100, "zone", "c"), ptPrefer(1, "zone", "a"))},
				want: map[string]string{v20: "node1 node1 node2 node3"}}},
		{name: "advertisements of the pool add their weights",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("x", ptPrefer(70, "zone", "a")), ptAdv("y", ptPrefer(30, "kubernetes.io/hostname", "node2"))},
				want: map[string]string{v20: "node2 node2 node1 node3"}}},
		{name: "serviceSelectors: an advertisement's preferences apply only to the Services it selects",
			setup: setup{advs: []*heraldv1.L2Advertisement{
				ptAdv("for-a", func(a *heraldv1.L2Advertisement) { *a = *ptSelAdv("for-a", "a") }, ptPrefer(100, "zone", "a")),
				ptSelAdv("for-b", "b")},
				svcs: []*corev1.Service{ptApp("a", ptSvc("a", v20)), ptApp("b", ptSvc("b", v21))},
				want: map[string]string{v20: "node1 node1 node2 node3", v21: "node4 node4 node3 node1"}}},
		{name: "externalTrafficPolicy Local: the preferred node among those with an endpoint",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "c"), ptPrefer(50, "zone", "b"))},
				svcs: []*corev1.Service{ptLocal(ptSvc("s", v20))},
				mut: func(in *inputs) {
					in.Endpoints[types.NamespacedName{Namespace: "default", Name: "s"}] = []*discoveryv1.EndpointSlice{
						ptSlice("s", map[string][2]bool{"node1": {true, true}, "node3": {true, true}, "node2": {true, true}})}
				},
				want: map[string]string{v20: "node3 node3 node1 node2"}}},
		{name: "an address already answered stays with its holder",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"))}, holders: map[string]string{v20: "node3"},
				mut:  func(in *inputs) { in.LiveSince = map[string]time.Time{"node1": t0.Add(-time.Hour)} },
				want: map[string]string{v20: "node3 node1 node1 node2"}}},
		{name: "--failback-after: back to the preferred node once it has been live that long",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"))}, holders: map[string]string{v20: "node3"},
				mut: func(in *inputs) {
					in.FailbackAfter = time.Minute
					in.LiveSince = map[string]time.Time{"node1": t0.Add(-2 * time.Minute), "node3": t0.Add(-time.Hour)}
				},
				want: map[string]string{v20: "node1 node1 node2 node3"}}},
		{name: "--failback-after: not before",
			setup: setup{advs: []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"))}, holders: map[string]string{v20: "node3"},
				mut: func(in *inputs) {
					in.FailbackAfter = time.Minute
					in.LiveSince = map[string]time.Time{"node1": t0.Add(-30 * time.Second), "node3": t0.Add(-time.Hour)}
				},
				want: map[string]string{v20: "node3 node1 node1 node2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			build := func(self string) *inputs {
				live := tt.live
				if live == nil {
					live = four
				}
				in := ptInputs(self, live, nodes())
				in.Pools = []*heraldv1.IPAddressPool{pool}
				in.Advs = tt.advs
				in.Services = tt.svcs
				if in.Services == nil {
					in.Services = []*corev1.Service{ptSvc("s", v20)}
				}
				in.Holders = tt.holders
				in.Now = t0
				if tt.mut != nil {
					tt.mut(in)
				}
				return in
			}
			var first map[string]string
			for i, self := range four {
				pl := decide(build(self), election.NewTable())
				got := map[string]string{}
				for k, g := range pl.Groups {
					got[k] = strings.Join([]string{g.Winner, g.Elected, g.Watcher, g.Corroborator}, " ")
				}
				if i == 0 {
					first = got
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("winner elected watcher corroborator (-want +got):\n%s", diff)
					}
					for k, w := range tt.wantKeys {
						if diff := cmp.Diff(w, pl.Groups[k].weights.Weights()); diff != "" {
							t.Errorf("%s weights (-want +got):\n%s", k, diff)
						}
					}
				} else if diff := cmp.Diff(first, got); diff != "" {
					t.Errorf("%s disagrees with node1 (-node1 +%s):\n%s", self, self, diff)
				}
			}
		})
	}
}

// BenchmarkDecide10kPreferred is BenchmarkDecide10kServices100Members with preferredNodeSelectors: 10 of the
// 100 members preferred with weight 100 and 20 more with weight 50, and then one of the first ten dying and
// coming back. The deciding node is one of the other 70, which is elected for no address (node000 would be for a
// tenth of them and spend the time choosing interfaces).
func BenchmarkDecide10kPreferred(b *testing.B) {
	var live []string
	var nodes []*corev1.Node
	for i := range 100 {
		n := fmt.Sprintf("node%03d", i)
		live = append(live, n)
		nodes = append(nodes, ptNode(n, func(n *corev1.Node) {
			switch {
			case i < 10:
				n.Labels["zone"] = "a"
			case i < 30:
				n.Labels["zone"] = "b"
			}
		}))
	}
	in := ptInputs(live[50], live, nodes)
	in.Links = []iface.Link{{Index: 2, Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/15")}}}
	in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.18.0.0/15")}
	in.Advs = []*heraldv1.L2Advertisement{ptAdv("all", ptPrefer(100, "zone", "a"), ptPrefer(50, "zone", "b"))}
	for i := range 10000 {
		in.Services = append(in.Services, ptSvc(fmt.Sprintf("s%05d", i), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)))
	}
	table := election.NewTable()
	decide(in, table)
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decide(in, table)
		}
	})
	b.Run("preferred-member-dies", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			in.Live = live[1:]
			if i%2 == 1 {
				in.Live = live
			}
			decide(in, table)
		}
	})
}
