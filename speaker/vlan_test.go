package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
)

// TestDecideVLAN: a VLAN sub-interface (eth0.100, kind vlan, with its parent's MAC) is an interface like any
// other: answered on when an advertisement names it or when it holds the address's subnet, and then the parent is
// not, though the two share a MAC; named but missing (not created yet), nothing is answered and the refusal
// names it.
func TestDecideVLAN(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	links := append(slices.Clone(ptLinks), iface.Link{Index: 7, Name: "eth0.100", Up: true, Kind: "vlan", MAC: mac,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.100.11/24"), netip.MustParsePrefix("2001:db8:164::11/64")}})
	named := func(names ...string) *heraldv1.L2Advertisement {
		return ptAdv("adv", func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = names })
	}
	tests := []struct {
		name    string
		links   []iface.Link
		adv     *heraldv1.L2Advertisement
		ips     []string
		want    map[string][]string // interface -> VIPs
		refused []iface.Refusal     // of the first address
	}{
		{name: "named: on the sub-interface only, even for the parent's subnet", links: links, adv: named("eth0.100"),
			ips:  []string{"198.51.100.100", "198.18.100.100", "2001:db8:164::100"},
			want: map[string][]string{"eth0.100": {"198.18.100.100", "198.51.100.100", "2001:db8:164::100"}}},
		{name: "its subnet: on the sub-interface, not the parent", links: links, adv: ptAdv("all"),
			ips:  []string{"198.18.100.100", "2001:db8:164::100", "198.51.100.100"},
			want: map[string][]string{"eth0.100": {"198.18.100.100", "2001:db8:164::100"}, "eth0": {"198.51.100.100"}}},
		{name: "named but not created yet: silent, and the refusal says so", links: ptLinks, adv: named("eth0.100"),
			ips: []string{"198.18.100.100"}, want: map[string][]string{},
			refused: []iface.Refusal{{Name: "eth0.100", Reason: iface.ReasonNotFound}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ptInputs("node1", []string{"node1"}, []*corev1.Node{ptNode("node1")})
			in.Links = tt.links
			in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.51.100.0/24", "198.18.100.0/24", "2001:db8:164::/64")}
			in.Advs = []*heraldv1.L2Advertisement{tt.adv}
			for i, ip := range tt.ips {
				in.Services = append(in.Services, ptSvc(fmt.Sprintf("s%d", i), ip))
			}
			pl := decide(in, election.NewTable())
			got := map[string][]string{}
			for name, e := range pl.Assignment {
				got[name] = addrStrings(e.VIPs)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("assignment (-want +got):\n%s", diff)
			}
			if tt.refused != nil {
				a := netip.MustParseAddr(tt.ips[0])
				if diff := cmp.Diff(tt.refused, pl.Groups[tt.ips[0]].Refusals.at(a)); diff != "" {
					t.Errorf("refusals (-want +got):\n%s", diff)
				}
			}
		})
	}
}
