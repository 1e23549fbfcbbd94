package probecmd

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/iface"
)

var (
	hwA = net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}
	hwB = net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// testLinks: lo; eth0 with two IPv4 subnets and an IPv6 one; eth1 with only another subnet; bare with no
// address; tun0 without MAC; down0 down; port0 a bridge port.
func testLinks() []iface.Link {
	return []iface.Link{
		{Index: 1, Name: "lo", Loopback: true, Up: true, Prefixes: prefixes("127.0.0.1/8", "::1/128")},
		{Index: 2, Name: "eth0", MAC: hwA, Up: true, Prefixes: prefixes("198.51.100.2/24", "198.51.100.3/24",
			"203.0.113.2/24", "2001:db8:1::2/64", "fe80::a/64")},
		{Index: 3, Name: "eth1", MAC: hwB, Up: true, Prefixes: prefixes("198.18.0.2/24")},
		{Index: 4, Name: "bare", MAC: hwB, Up: true, Prefixes: prefixes("fe80::b/64")},
		{Index: 5, Name: "tun0", Up: true, PointToPoint: true, NoARP: true},
		{Index: 6, Name: "down0", MAC: hwB},
		{Index: 7, Name: "port0", MAC: hwB, Up: true, MasterIndex: 8, MasterKind: "bridge"},
		{Index: 8, Name: "br0", MAC: hwB, Up: true},
		{Index: 9, Name: "tun1", Up: true},
	}
}

func TestMakePlan(t *testing.T) {
	routes := map[string]route{
		"198.51.100.50":  {Type: unix.RTN_UNICAST, LinkIndex: 2, Src: netip.MustParseAddr("198.51.100.3")},
		"198.51.100.51":  {Type: unix.RTN_UNICAST, LinkIndex: 2},
		"203.0.113.200":  {Type: unix.RTN_UNICAST, LinkIndex: 2, Gateway: netip.MustParseAddr("198.51.100.1"), Src: netip.MustParseAddr("198.51.100.2")},
		"2001:db8:1::50": {Type: unix.RTN_UNICAST, LinkIndex: 2},
		"198.51.100.2":   {Type: unix.RTN_LOCAL, LinkIndex: 1},
		"198.51.100.99":  {Type: unix.RTN_BLACKHOLE},
		"198.18.0.9":     {Type: unix.RTN_UNICAST, LinkIndex: 5},
		"198.18.1.9":     {Type: unix.RTN_UNICAST, LinkIndex: 42},
	}
	getRoute := func(a netip.Addr) (route, error) {
		r, ok := routes[a.String()]
		if !ok {
			return route{}, syscall.ENETUNREACH
		}
		return r, nil
	}
	type want struct {
		iface, source, ifaceWhy, sourceWhy, warning, err string
	}
	tests := []struct {
		name   string
		target string
		zone   string
		opts   planOptions
		want   want
	}{
		{name: "route, preferred source in subnet", target: "198.51.100.50",
			want: want{iface: "eth0", source: "198.51.100.3", ifaceWhy: "route to 198.51.100.50: dev eth0 src 198.51.100.3", sourceWhy: "preferred source"}},
		{name: "route without source: first in subnet", target: "198.51.100.51",
			want: want{iface: "eth0", source: "198.51.100.2", sourceWhy: "address in the target's subnet"}},
		{name: "via gateway warns", target: "203.0.113.200",
			want: want{iface: "eth0", source: "203.0.113.2", ifaceWhy: "via 198.51.100.1 dev eth0", warning: "proxy ARP"}},
		{name: "IPv6 by route: global, not link-local", target: "2001:db8:1::50",
			want: want{iface: "eth0", source: "2001:db8:1::2"}},
		{name: "-I with another subnet", target: "198.51.100.50", opts: planOptions{Interface: "eth1"},
			want: want{iface: "eth1", source: "198.18.0.2", ifaceWhy: "-I eth1", sourceWhy: "none is in the target's subnet"}},
		{name: "-I without IPv4: ARP probe", target: "198.51.100.50", opts: planOptions{Interface: "bare"},
			want: want{iface: "bare", source: "0.0.0.0", sourceWhy: "RFC 5227"}},
		{name: "-I, IPv6 from link-local", target: "2001:db8:1::50", opts: planOptions{Interface: "bare"},
			want: want{iface: "bare", source: "fe80::b", sourceWhy: "link-local"}},
		{name: "-I without IPv6", target: "2001:db8:1::50", opts: planOptions{Interface: "eth1"},
			want: want{err: "eth1 has no IPv6 address"}},
		{name: "-s", target: "198.51.100.50", opts: planOptions{Source: netip.MustParseAddr("198.51.100.2")},
			want: want{iface: "eth0", source: "198.51.100.2", sourceWhy: "-s"}},
		{name: "-s foreign", target: "198.51.100.50", opts: planOptions{Source: netip.MustParseAddr("198.51.100.77")},
			want: want{iface: "eth0", source: "198.51.100.77", sourceWhy: "not an address of eth0"}},
		{name: "-s 0.0.0.0", target: "198.51.100.50", opts: planOptions{Source: netip.IPv4Unspecified()},
			want: want{source: "0.0.0.0", sourceWhy: "ARP probes"}},
		{name: "-s of the other family", target: "198.51.100.50", opts: planOptions{Source: netip.MustParseAddr("2001:db8::1")},
			want: want{err: "not of one family"}},
		{name: "-s ::", target: "2001:db8:1::50", opts: planOptions{Source: netip.IPv6Unspecified()},
			want: want{err: "IPv6 unicast"}},
		{name: "zone", target: "fe80::77", zone: "bare",
			want: want{iface: "bare", source: "fe80::b", ifaceWhy: "zone %bare"}},
		{name: "link-local without zone", target: "fe80::77", want: want{err: "link-local"}},
		{name: "zone and -I disagree", target: "fe80::77", zone: "bare", opts: planOptions{Interface: "eth0"},
			want: want{err: "-I says eth0"}},
		{name: "no route", target: "198.18.200.1", want: want{err: "no route to 198.18.200.1"}},
		{name: "local address", target: "198.51.100.2", want: want{err: "an address of this host"}},
		{name: "blackhole", target: "198.51.100.99", want: want{err: "blackhole"}},
		{name: "route out of a NOARP tunnel", target: "198.18.0.9", want: want{err: "tun0 does not do ARP"}},
		{name: "route out of a vanished link", target: "198.18.1.9", want: want{err: "index 42"}},
		{name: "no such interface", target: "198.51.100.50", opts: planOptions{Interface: "nope"}, want: want{err: "no such interface"}},
		{name: "down", target: "198.51.100.50", opts: planOptions{Interface: "down0"}, want: want{err: "down0 is down"}},
		{name: "no MAC", target: "198.51.100.50", opts: planOptions{Interface: "tun1"}, want: want{err: "no Ethernet address"}},
		{name: "loopback", target: "198.51.100.50", opts: planOptions{Interface: "lo"}, want: want{err: "loopback"}},
		{name: "bridge port warns", target: "198.51.100.50", opts: planOptions{Interface: "port0"},
			want: want{iface: "port0", source: "0.0.0.0", warning: "port of bridge br0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := makePlan(Target{Addr: netip.MustParseAddr(tt.target), Zone: tt.zone}, testLinks(), getRoute, tt.opts)
			if tt.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want.err) {
					t.Fatalf("error %v, want one holding %q", err, tt.want.err)
				}
				if !errors.Is(err, errUsage) {
					t.Errorf("error %v is not errUsage", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.iface != "" && p.Interface != tt.want.iface {
				t.Errorf("interface %s, want %s", p.Interface, tt.want.iface)
			}
			if p.Source.String() != tt.want.source {
				t.Errorf("source %s, want %s (%s)", p.Source, tt.want.source, p.SourceReason)
			}
			if !strings.Contains(p.InterfaceReason, tt.want.ifaceWhy) {
				t.Errorf("interface reason %q does not hold %q", p.InterfaceReason, tt.want.ifaceWhy)
			}
			if !strings.Contains(p.SourceReason, tt.want.sourceWhy) {
				t.Errorf("source reason %q does not hold %q", p.SourceReason, tt.want.sourceWhy)
			}
			warnings := strings.Join(p.Warnings, "\n")
			if (tt.want.warning == "") != (warnings == "") || !strings.Contains(warnings, tt.want.warning) {
				t.Errorf("warnings %q, want %q", warnings, tt.want.warning)
			}
		})
	}
}
