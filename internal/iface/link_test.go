package iface

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var cmpLinks = cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func ipnet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func TestLinkFromNetlink(t *testing.T) {
	tests := []struct {
		name  string
		attrs netlink.LinkAttrs
		kind  string
		want  Link
	}{
		{
			name:  "physical NIC up",
			attrs: netlink.LinkAttrs{Index: 2, Name: "eth0", HardwareAddr: mac("02:00:00:00:00:01"), Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast, OperState: netlink.OperUp},
			kind:  "device",
			want:  Link{Index: 2, Name: "eth0", MAC: mac("02:00:00:00:00:01"), Kind: "device", Up: true},
		},
		{
			name:  "loopback reports unknown operstate",
			attrs: netlink.LinkAttrs{Index: 1, Name: "lo", HardwareAddr: mac("00:00:00:00:00:00"), Flags: net.FlagUp | net.FlagLoopback, OperState: netlink.OperUnknown},
			kind:  "device",
			want:  Link{Index: 1, Name: "lo", MAC: mac("00:00:00:00:00:00"), Kind: "device", Up: true, Loopback: true},
		},
		{
			name:  "admin up, carrier down",
			attrs: netlink.LinkAttrs{Index: 3, Name: "eth1", HardwareAddr: mac("02:00:00:00:00:03"), Flags: net.FlagUp, OperState: netlink.OperDown},
			kind:  "device",
			want:  Link{Index: 3, Name: "eth1", MAC: mac("02:00:00:00:00:03"), Kind: "device"},
		},
		{
			name:  "admin down",
			attrs: netlink.LinkAttrs{Index: 4, Name: "eth2", HardwareAddr: mac("02:00:00:00:00:04"), OperState: netlink.OperDown},
			kind:  "device",
			want:  Link{Index: 4, Name: "eth2", MAC: mac("02:00:00:00:00:04"), Kind: "device"},
		},
		{
			name:  "lower layer down",
			attrs: netlink.LinkAttrs{Index: 5, Name: "vlan10", HardwareAddr: mac("02:00:00:00:00:05"), Flags: net.FlagUp, OperState: netlink.OperLowerLayerDown},
			kind:  "vlan",
			want:  Link{Index: 5, Name: "vlan10", MAC: mac("02:00:00:00:00:05"), Kind: "vlan"},
		},
		{
			name:  "noarp dummy",
			attrs: netlink.LinkAttrs{Index: 6, Name: "kube-ipvs0", HardwareAddr: mac("02:00:00:00:00:06"), Flags: net.FlagBroadcast, RawFlags: unix.IFF_BROADCAST | unix.IFF_NOARP, OperState: netlink.OperDown},
			kind:  "dummy",
			want:  Link{Index: 6, Name: "kube-ipvs0", MAC: mac("02:00:00:00:00:06"), Kind: "dummy", NoARP: true},
		},
		{
			name:  "point-to-point tunnel without MAC",
			attrs: netlink.LinkAttrs{Index: 7, Name: "wg0", Flags: net.FlagUp | net.FlagPointToPoint, RawFlags: unix.IFF_UP | unix.IFF_POINTOPOINT | unix.IFF_NOARP, OperState: netlink.OperUnknown},
			kind:  "wireguard",
			want:  Link{Index: 7, Name: "wg0", Kind: "wireguard", Up: true, NoARP: true, PointToPoint: true},
		},
		{
			name:  "bridge port",
			attrs: netlink.LinkAttrs{Index: 8, Name: "eth3", HardwareAddr: mac("02:00:00:00:00:08"), Flags: net.FlagUp, OperState: netlink.OperUp, MasterIndex: 9},
			kind:  "device",
			want:  Link{Index: 8, Name: "eth3", MAC: mac("02:00:00:00:00:08"), Kind: "device", Up: true, MasterIndex: 9},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := linkFromNetlink(&tc.attrs, tc.kind)
			if diff := cmp.Diff(tc.want, got, cmpLinks); diff != "" {
				t.Errorf("linkFromNetlink (-want +got):\n%s", diff)
			}
			if len(tc.attrs.HardwareAddr) > 0 {
				tc.attrs.HardwareAddr[0] ^= 0xff
				if diff := cmp.Diff(tc.want.MAC, got.MAC); diff != "" {
					t.Errorf("MAC aliases the netlink attributes (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestPrefixFromIPNet(t *testing.T) {
	tests := []struct {
		name   string
		in     *net.IPNet
		want   netip.Prefix
		wantOK bool
	}{
		{name: "ipv4 keeps host bits", in: ipnet("198.51.100.7/24"), want: netip.MustParsePrefix("198.51.100.7/24"), wantOK: true},
		{name: "ipv4 in 16-byte form", in: &net.IPNet{IP: net.ParseIP("198.51.100.7"), Mask: net.CIDRMask(24, 32)}, want: netip.MustParsePrefix("198.51.100.7/24"), wantOK: true},
		{name: "ipv4 host", in: ipnet("203.0.113.9/32"), want: netip.MustParsePrefix("203.0.113.9/32"), wantOK: true},
		{name: "ipv6", in: ipnet("2001:db8:1::2/64"), want: netip.MustParsePrefix("2001:db8:1::2/64"), wantOK: true},
		{name: "ipv6 link-local", in: ipnet("fe80::1/64"), want: netip.MustParsePrefix("fe80::1/64"), wantOK: true},
		{name: "nil", in: nil},
		{name: "ipv6 address with ipv4 mask", in: &net.IPNet{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(24, 32)}},
		{name: "non-canonical mask", in: &net.IPNet{IP: net.ParseIP("198.51.100.7").To4(), Mask: net.IPMask{255, 0, 255, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := prefixFromIPNet(tc.in)
			if diff := cmp.Diff(struct {
				P  netip.Prefix
				OK bool
			}{tc.want, tc.wantOK}, struct {
				P  netip.Prefix
				OK bool
			}{got, ok}, cmpLinks); diff != "" {
				t.Errorf("prefixFromIPNet (-want +got):\n%s", diff)
			}
		})
	}
}

func veth(index int, name string, m string, master int) *netlink.Veth {
	return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name, HardwareAddr: mac(m), Flags: net.FlagUp, OperState: netlink.OperUp, MasterIndex: master}}
}

func TestInventorySnapshot(t *testing.T) {
	inv := newInventory()
	inv.setLink(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, OperState: netlink.OperUnknown}})
	inv.setLink(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Index: 10, Name: "br0", HardwareAddr: mac("02:00:00:00:00:10"), Flags: net.FlagUp, OperState: netlink.OperUp}})
	inv.setLink(veth(11, "veth-port", "02:00:00:00:00:11", 10))
	// A bond slave whose master is not (yet) known: the slave kind it reports is used.
	slave := veth(12, "eth-slave", "02:00:00:00:00:12", 99)
	slave.Slave = &netlink.BondSlave{}
	inv.setLink(slave)

	inv.setAddr(1, ipnet("127.0.0.1/8"), unix.RT_SCOPE_HOST, true) // host scope: dropped
	inv.setAddr(10, ipnet("2001:db8:1::2/64"), unix.RT_SCOPE_UNIVERSE, true)
	inv.setAddr(10, ipnet("198.51.100.2/24"), unix.RT_SCOPE_UNIVERSE, true)
	inv.setAddr(10, ipnet("fe80::10/64"), unix.RT_SCOPE_LINK, true)
	inv.setAddr(10, ipnet("198.51.100.2/24"), unix.RT_SCOPE_UNIVERSE, true) // repeat
	inv.setAddr(10, ipnet("198.51.100.3/24"), unix.RT_SCOPE_UNIVERSE, true)
	inv.setAddr(10, ipnet("198.51.100.3/24"), unix.RT_SCOPE_UNIVERSE, false) // removed again
	inv.setAddr(42, ipnet("203.0.113.1/24"), unix.RT_SCOPE_UNIVERSE, true)   // no such link (yet)

	want := []Link{
		{Index: 10, Name: "br0", MAC: mac("02:00:00:00:00:10"), Kind: "bridge", Up: true, Prefixes: prefixes("198.51.100.2/24", "2001:db8:1::2/64", "fe80::10/64")},
		{Index: 12, Name: "eth-slave", MAC: mac("02:00:00:00:00:12"), Kind: "veth", Up: true, MasterIndex: 99, MasterKind: "bond"},
		{Index: 1, Name: "lo", Kind: "device", Up: true, Loopback: true},
		{Index: 11, Name: "veth-port", MAC: mac("02:00:00:00:00:11"), Kind: "veth", Up: true, MasterIndex: 10, MasterKind: "bridge"},
	}
	if diff := cmp.Diff(want, inv.snapshot(), cmpLinks); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}

	// Addresses that arrived before their link attach to it.
	inv.setLink(veth(42, "late", "02:00:00:00:00:42", 0))
	inv.deleteLink(10)
	want = []Link{
		{Index: 12, Name: "eth-slave", MAC: mac("02:00:00:00:00:12"), Kind: "veth", Up: true, MasterIndex: 99, MasterKind: "bond"},
		{Index: 42, Name: "late", MAC: mac("02:00:00:00:00:42"), Kind: "veth", Up: true, Prefixes: prefixes("203.0.113.1/24")},
		{Index: 1, Name: "lo", Kind: "device", Up: true, Loopback: true},
		// The bridge is gone, so nothing says what the master was.
		{Index: 11, Name: "veth-port", MAC: mac("02:00:00:00:00:11"), Kind: "veth", Up: true, MasterIndex: 10},
	}
	if diff := cmp.Diff(want, inv.snapshot(), cmpLinks); diff != "" {
		t.Errorf("snapshot after changes (-want +got):\n%s", diff)
	}
}

func TestApplyLink(t *testing.T) {
	newLink := func(typ uint16, family uint8, l netlink.Link) netlink.LinkUpdate {
		var u netlink.LinkUpdate
		u.Header.Type = typ
		u.IfInfomsg.Family = family
		u.Link = l
		return u
	}
	tests := []struct {
		name      string
		update    netlink.LinkUpdate
		wantNew   bool
		wantNames []string
	}{
		{name: "new link", update: newLink(unix.RTM_NEWLINK, unix.AF_UNSPEC, veth(3, "new0", "02:00:00:00:00:03", 0)), wantNew: true, wantNames: []string{"a0", "b0", "new0"}},
		{name: "change of a known link", update: newLink(unix.RTM_NEWLINK, unix.AF_UNSPEC, veth(1, "a0-renamed", "02:00:00:00:00:01", 0)), wantNames: []string{"a0-renamed", "b0"}},
		{name: "deleted link", update: newLink(unix.RTM_DELLINK, unix.AF_UNSPEC, veth(1, "a0", "02:00:00:00:00:01", 0)), wantNames: []string{"b0"}},
		{name: "port leaving its bridge is not a deletion", update: newLink(unix.RTM_DELLINK, unix.AF_BRIDGE, veth(2, "b0", "02:00:00:00:00:02", 0)), wantNames: []string{"a0", "b0"}},
		{name: "bridge-family new link ignored", update: newLink(unix.RTM_NEWLINK, unix.AF_BRIDGE, veth(4, "x0", "02:00:00:00:00:04", 0)), wantNames: []string{"a0", "b0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInventory()
			inv.setLink(veth(1, "a0", "02:00:00:00:00:01", 0))
			inv.setLink(veth(2, "b0", "02:00:00:00:00:02", 0))
			gotNew := applyLink(inv, tc.update)
			var names []string
			for _, l := range inv.snapshot() {
				names = append(names, l.Name)
			}
			if diff := cmp.Diff(struct {
				New   bool
				Names []string
			}{tc.wantNew, tc.wantNames}, struct {
				New   bool
				Names []string
			}{gotNew, names}); diff != "" {
				t.Errorf("applyLink (-want +got):\n%s", diff)
			}
		})
	}
}
