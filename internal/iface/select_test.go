package iface

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// selectLinks is a node with two NICs in different subnets, a decoy with a
// host address inside eth0's subnet, a bridge with a port, a bond with a
// slave, a down NIC, lo, a NOARP dummy, a point-to-point tunnel and a link
// without a MAC.
var selectLinks = []Link{
	{Index: 1, Name: "lo", Kind: "device", Up: true, Loopback: true, Prefixes: prefixes("127.0.0.1/8", "::1/128")},
	{Index: 2, Name: "eth0", Kind: "device", MAC: mac("02:00:00:00:00:02"), Up: true, Prefixes: prefixes("198.51.100.2/24", "2001:db8:1::2/64", "fe80::2/64")},
	{Index: 3, Name: "eth1", Kind: "device", MAC: mac("02:00:00:00:00:03"), Up: true, Prefixes: prefixes("203.0.113.2/24", "fe80::3/64")},
	{Index: 4, Name: "decoy", Kind: "veth", MAC: mac("02:00:00:00:00:04"), Up: true, Prefixes: prefixes("198.51.100.77/32", "2001:db8:1::77/128")},
	{Index: 5, Name: "br0", Kind: "bridge", MAC: mac("02:00:00:00:00:05"), Up: true, Prefixes: prefixes("198.18.0.2/15", "fe80::5/64")},
	{Index: 6, Name: "eth2", Kind: "device", MAC: mac("02:00:00:00:00:06"), Up: true, MasterIndex: 5, MasterKind: "bridge"},
	{Index: 7, Name: "down0", Kind: "device", MAC: mac("02:00:00:00:00:07"), Prefixes: prefixes("198.51.100.3/24")},
	{Index: 8, Name: "bond0", Kind: "bond", MAC: mac("02:00:00:00:00:08"), Up: true, Prefixes: prefixes("2001:db8:2::8/64")},
	{Index: 9, Name: "eth3", Kind: "device", MAC: mac("02:00:00:00:00:08"), Up: true, MasterIndex: 8, MasterKind: "bond"},
	{Index: 10, Name: "kube-ipvs0", Kind: "dummy", MAC: mac("02:00:00:00:00:0a"), Up: true, NoARP: true, Prefixes: prefixes("203.0.113.50/32")},
	{Index: 11, Name: "wg0", Kind: "wireguard", Up: true, NoARP: true, PointToPoint: true, Prefixes: prefixes("198.18.200.1/24")},
	{Index: 12, Name: "ipoib0", Kind: "ipoib", Up: true, Prefixes: prefixes("198.18.201.1/24")},
	{Index: 13, Name: "zero0", Kind: "veth", MAC: mac("00:00:00:00:00:00"), Up: true, Prefixes: prefixes("198.18.202.1/24")},
	{Index: 14, Name: "vrf-port", Kind: "device", MAC: mac("02:00:00:00:00:0e"), Up: true, MasterIndex: 15, MasterKind: "vrf", Prefixes: prefixes("198.18.203.1/24")},
}

func linkNamed(name string) Link {
	for _, l := range selectLinks {
		if l.Name == name {
			return l
		}
	}
	panic(name)
}

func chose(reason Reason, names ...string) []Choice {
	var out []Choice
	for _, n := range names {
		out = append(out, Choice{Link: linkNamed(n), Reason: reason})
	}
	return out
}

var noSubnet = Refusal{Reason: ReasonNoSubnet}

func TestSelect(t *testing.T) {
	tests := []struct {
		name         string
		addr         string
		allowed      []string
		wantChoices  []Choice
		wantRefusals []Refusal
	}{
		{
			name:         "subnet of eth0, a down link in it is refused",
			addr:         "198.51.100.10",
			wantChoices:  chose(ReasonSubnet, "eth0"),
			wantRefusals: []Refusal{{Name: "down0", Reason: ReasonDown}},
		},
		{
			name:        "subnet of eth1; the NOARP /32 elsewhere does not match",
			addr:        "203.0.113.10",
			wantChoices: chose(ReasonSubnet, "eth1"),
		},
		{
			name:         "decoy /32 matches only its own address",
			addr:         "198.51.100.77",
			wantChoices:  chose(ReasonSubnet, "decoy", "eth0"),
			wantRefusals: []Refusal{{Name: "down0", Reason: ReasonDown}},
		},
		{
			name:         "NOARP link holding the address as /32 is refused",
			addr:         "203.0.113.50",
			wantChoices:  chose(ReasonSubnet, "eth1"),
			wantRefusals: []Refusal{{Name: "kube-ipvs0", Reason: ReasonNoARP}},
		},
		{
			name:         "bridge chosen, its port refused",
			addr:         "198.18.1.1",
			wantChoices:  chose(ReasonSubnet, "br0"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}},
		},
		{
			name:         "bond chosen, its slave refused",
			addr:         "2001:db8:2::10",
			wantChoices:  chose(ReasonSubnet, "bond0"),
			wantRefusals: []Refusal{{Name: "eth3", Reason: ReasonBondSlave}},
		},
		{
			name:        "ipv6 global prefix; link-local prefixes never match",
			addr:        "2001:db8:1::10",
			wantChoices: chose(ReasonSubnet, "eth0"),
		},
		{
			name:        "ipv6 decoy /128",
			addr:        "2001:db8:1::77",
			wantChoices: chose(ReasonSubnet, "decoy", "eth0"),
		},
		{
			name:         "ipv6 outside every global prefix",
			addr:         "2001:db8:99::10",
			wantRefusals: []Refusal{noSubnet},
		},
		{
			name:         "ipv4 inside only the bridge's /15",
			addr:         "198.18.100.1",
			wantChoices:  chose(ReasonSubnet, "br0"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}},
		},
		{
			name:         "ipv4 in no subnet at all",
			addr:         "203.0.114.1",
			wantRefusals: []Refusal{noSubnet},
		},
		{
			name:         "ipv4-mapped address is treated as ipv4",
			addr:         "::ffff:198.51.100.10",
			wantChoices:  chose(ReasonSubnet, "eth0"),
			wantRefusals: []Refusal{{Name: "down0", Reason: ReasonDown}},
		},
		{
			name:         "point-to-point tunnel refused",
			addr:         "198.18.200.9",
			wantChoices:  chose(ReasonSubnet, "br0"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}, {Name: "wg0", Reason: ReasonPointToPoint}},
		},
		{
			name:         "non-Ethernet hardware address refused",
			addr:         "198.18.201.9",
			wantChoices:  chose(ReasonSubnet, "br0"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}, {Name: "ipoib0", Reason: ReasonNoMAC}},
		},
		{
			name:         "all-zero MAC refused",
			addr:         "198.18.202.9",
			wantChoices:  chose(ReasonSubnet, "br0"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}, {Name: "zero0", Reason: ReasonNoMAC}},
		},
		{
			name:         "VRF member is usable",
			addr:         "198.18.203.9",
			wantChoices:  chose(ReasonSubnet, "br0", "vrf-port"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}},
		},
		{
			name:         "loopback refused",
			addr:         "127.0.0.5",
			wantRefusals: []Refusal{{Name: "lo", Reason: ReasonLoopback}, noSubnet},
		},
		{
			name:        "allowed: exactly those, regardless of subnet",
			addr:        "198.51.100.10",
			allowed:     []string{"eth1"},
			wantChoices: chose(ReasonConfigured, "eth1"),
		},
		{
			name:         "allowed naming a missing and a down link",
			addr:         "198.51.100.10",
			allowed:      []string{"missing0", "eth1", "down0", "eth0", "eth1"},
			wantChoices:  chose(ReasonConfigured, "eth0", "eth1"),
			wantRefusals: []Refusal{{Name: "down0", Reason: ReasonDown}, {Name: "missing0", Reason: ReasonNotFound}},
		},
		{
			name:         "allowed bridge and its port",
			addr:         "198.18.1.1",
			allowed:      []string{"eth2", "br0"},
			wantChoices:  chose(ReasonConfigured, "br0"),
			wantRefusals: []Refusal{{Name: "eth2", Reason: ReasonBridgePort}},
		},
		{
			name:         "allowed unusable kinds",
			addr:         "198.51.100.10",
			allowed:      []string{"lo", "eth3", "kube-ipvs0", "wg0", "ipoib0"},
			wantRefusals: []Refusal{{Name: "eth3", Reason: ReasonBondSlave}, {Name: "ipoib0", Reason: ReasonNoMAC}, {Name: "kube-ipvs0", Reason: ReasonNoARP}, {Name: "lo", Reason: ReasonLoopback}, {Name: "wg0", Reason: ReasonPointToPoint}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			choices, refusals := Select(netip.MustParseAddr(tc.addr), selectLinks, tc.allowed)
			if diff := cmp.Diff(tc.wantChoices, choices, cmpLinks); diff != "" {
				t.Errorf("choices (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRefusals, refusals); diff != "" {
				t.Errorf("refusals (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnusableOrder(t *testing.T) {
	tests := []struct {
		name string
		link Link
		want Reason
	}{
		{name: "usable", link: Link{MAC: mac("02:00:00:00:00:01"), Up: true}, want: ""},
		{name: "down", link: Link{MAC: mac("02:00:00:00:00:01")}, want: ReasonDown},
		{name: "bridge port that is down says bridge-port", link: Link{MAC: mac("02:00:00:00:00:01"), MasterIndex: 3, MasterKind: "bridge"}, want: ReasonBridgePort},
		{name: "ovs port", link: Link{MAC: mac("02:00:00:00:00:01"), Up: true, MasterIndex: 3, MasterKind: "openvswitch"}, want: ReasonBridgePort},
		{name: "team port", link: Link{MAC: mac("02:00:00:00:00:01"), Up: true, MasterIndex: 3, MasterKind: "team"}, want: ReasonBondSlave},
		{name: "master of unknown kind", link: Link{MAC: mac("02:00:00:00:00:01"), Up: true, MasterIndex: 3}, want: ""},
		{name: "loopback first", link: Link{Loopback: true, NoARP: true}, want: ReasonLoopback},
		{name: "no mac before down", link: Link{}, want: ReasonNoMAC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.link.Unusable()); diff != "" {
				t.Errorf("Unusable (-want +got):\n%s", diff)
			}
		})
	}
}
