package doctor

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/iface"
)

// brief is the part of a Finding the table tests compare exactly; messages are checked by substrings.
type brief struct {
	Check, Severity, Subject, Fix string
}

func briefs(fs []Finding, checks []string) []brief {
	var out []brief
	for _, f := range fs {
		if len(checks) == 0 || slices.Contains(checks, f.Check) {
			out = append(out, brief{f.Check, f.Severity, f.Subject, f.Fix})
		}
	}
	return out
}

var nextIndex = 1

// eth is an up Ethernet link with the given addresses.
func eth(name string, prefixes ...string) iface.Link {
	nextIndex++
	l := iface.Link{Index: nextIndex, Name: name, Kind: "veth", Up: true,
		MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, byte(nextIndex)}}
	for _, p := range prefixes {
		l.Prefixes = append(l.Prefixes, netip.MustParsePrefix(p))
	}
	return l
}

// ipvs is kube-proxy's kube-ipvs0: a NOARP dummy holding Service addresses as /32.
func ipvs(prefixes ...string) iface.Link {
	l := eth(ipvsLink, prefixes...)
	l.Kind, l.NoARP = "dummy", true
	return l
}

func lo() iface.Link {
	return iface.Link{Index: 1, Name: "lo", Kind: "device", Up: true, Loopback: true,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}
}

func down(l iface.Link) iface.Link { l.Up = false; return l }

func vip(addr string, ifaces ...string) VIP {
	return VIP{Addr: netip.MustParseAddr(addr), Interfaces: ifaces}
}

func route(dst, gw, dev, proto string) Route {
	r := Route{Dst: netip.MustParsePrefix(dst), Dev: dev, Protocol: proto}
	if gw != "" {
		r.Gateway = netip.MustParseAddr(gw)
	}
	return r
}

// sysctls builds a Sysctls map from "key=value" pairs.
func sysctls(kv ...string) map[string]string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

// good are settings under which nothing is wrong.
var good = []string{
	"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
	"net.ipv4.conf.all.rp_filter=2", "net.ipv4.conf.all.proxy_arp=0",
}

const (
	fixArpIgnore   = "sysctl -w net.ipv4.conf.all.arp_ignore=1"
	fixArpAnnounce = "sysctl -w net.ipv4.conf.all.arp_announce=2"
	fixIPVS        = "kubectl edit configmap -n kube-system kube-proxy → ipvs: strictARP: true, then restart kube-proxy (it sets net.ipv4.conf.all.arp_ignore=1 and arp_announce=2)"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		host   Host
		checks []string // compare only these checks; empty means all
		want   []brief
		// mention are substrings the messages of the compared findings must contain, all together.
		mention []string
	}{
		{
			name: "arp_ignore 0 with the VIP on kube-ipvs0 is an error, and so is IPVS without strictARP",
			host: Host{
				Links:   []iface.Link{lo(), eth("eth0", "198.51.100.2/24"), ipvs("198.51.100.10/32")},
				Sysctls: sysctls("net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.eth0.arp_ignore=0"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckArpIgnore, CheckIPVSStrictARP},
			want: []brief{
				{CheckArpIgnore, SeverityError, "eth0", fixArpIgnore},
				{CheckIPVSStrictARP, SeverityError, "kube-ipvs0", fixIPVS},
			},
			mention: []string{"198.51.100.10 on kube-ipvs0", "every node answers for every VIP", "arp_ignore 0 on eth0"},
		},
		{
			name: "arp_ignore 0 with the VIP on lo of this node is an error",
			host: Host{
				Links: []iface.Link{func() iface.Link {
					l := lo()
					l.Prefixes = append(l.Prefixes, netip.MustParsePrefix("198.51.100.10/32"))
					return l
				}(), eth("eth0", "198.51.100.2/24")},
				VIPs: []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckArpIgnore, CheckIPVSStrictARP},
			want:    []brief{{CheckArpIgnore, SeverityError, "eth0", fixArpIgnore}},
			mention: []string{"198.51.100.10 is configured on lo"},
		},
		{
			name: "arp_ignore 0 with no VIP configured locally is a warning",
			host: Host{
				Links: []iface.Link{lo(), eth("eth0", "198.51.100.2/24")},
				VIPs:  []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckArpIgnore, CheckIPVSStrictARP},
			want:   []brief{{CheckArpIgnore, SeverityWarning, "eth0", fixArpIgnore}},
		},
		{
			name: "arp_ignore is the larger of all and the interface: eth0=1 is enough",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24"), ipvs("198.51.100.10/32")},
				Sysctls: sysctls("net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.eth0.arp_ignore=1"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckArpIgnore, CheckIPVSStrictARP},
			want: []brief{
				{CheckArpIgnore, SeverityOK, "eth0", ""},
				{CheckIPVSStrictARP, SeverityOK, "kube-ipvs0", ""},
			},
			mention: []string{"effectively 1 (all=0, eth0=1)"},
		},
		{
			name: "without VIPs every usable interface with an address is checked, lo and down links are not",
			host: Host{
				Links: []iface.Link{lo(), eth("eth1", "203.0.113.2/24"), eth("eth0", "198.51.100.2/24"),
					down(eth("eth2", "198.18.0.2/24")), eth("eth3")},
				Sysctls: sysctls("net.ipv4.conf.eth1.arp_ignore=2"),
			},
			checks: []string{CheckArpIgnore},
			want: []brief{
				{CheckArpIgnore, SeverityWarning, "eth0", fixArpIgnore},
				{CheckArpIgnore, SeverityOK, "eth1", ""},
			},
		},
		{
			name: "arp_announce 0 with the VIP configured locally is a warning",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), ipvs("198.51.100.10/32")},
				VIPs:  []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckArpAnnounce},
			want:    []brief{{CheckArpAnnounce, SeverityWarning, "eth0", fixArpAnnounce}},
			mention: []string{"sender address"},
		},
		{
			name: "arp_announce 0 without a local VIP is info",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24")},
				VIPs:  []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckArpAnnounce},
			want:   []brief{{CheckArpAnnounce, SeverityInfo, "eth0", fixArpAnnounce}},
		},
		{
			name: "arp_announce 2 on the interface is ok",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24"), ipvs("198.51.100.10/32")},
				Sysctls: sysctls("net.ipv4.conf.eth0.arp_announce=2"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckArpAnnounce},
			want:   []brief{{CheckArpAnnounce, SeverityOK, "eth0", ""}},
		},
		{
			name: "kube-ipvs0 holding only other Service addresses is ok",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), ipvs("198.18.0.1/32")},
				VIPs:  []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckIPVSStrictARP},
			want:    []brief{{CheckIPVSStrictARP, SeverityOK, "kube-ipvs0", ""}},
			mention: []string{"holds none"},
		},
		{
			name: "without VIPs any IPv4 address on kube-ipvs0 counts",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), ipvs("198.18.0.1/32", "2001:db8::1/128")},
			},
			checks:  []string{CheckIPVSStrictARP},
			want:    []brief{{CheckIPVSStrictARP, SeverityError, "kube-ipvs0", fixIPVS}},
			mention: []string{"198.18.0.1 on kube-ipvs0"},
		},
		{
			name: "no kube-ipvs0, no IPVS finding",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24")},
				VIPs:  []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckIPVSStrictARP},
		},
		{
			name: "proxy_arp on for all is an error on the announcing interface",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				Sysctls: sysctls("net.ipv4.conf.all.proxy_arp=1"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckProxyARP},
			want:   []brief{{CheckProxyARP, SeverityError, "eth0", "sysctl -w net.ipv4.conf.all.proxy_arp=0"}},
		},
		{
			name: "proxy_arp on for the interface is an error; a dotted name is written with a slash",
			host: Host{
				Links:   []iface.Link{eth("eth0.100", "198.51.100.2/24")},
				Sysctls: sysctls("net.ipv4.conf.eth0/100.proxy_arp=1"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckProxyARP},
			want:   []brief{{CheckProxyARP, SeverityError, "eth0.100", "sysctl -w net.ipv4.conf.eth0/100.proxy_arp=0"}},
		},
		{
			name: "proxy_arp off is ok",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24")},
				Sysctls: sysctls("net.ipv4.conf.eth1.proxy_arp=1"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckProxyARP},
			want:   []brief{{CheckProxyARP, SeverityOK, "eth0", ""}},
		},
		{
			name: "strict rp_filter with the default route out another interface is a warning",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				Sysctls: sysctls("net.ipv4.conf.all.rp_filter=1"),
				Routes: []Route{
					route("0.0.0.0/0", "203.0.113.1", "eth1", "dhcp"),
					route("198.51.100.0/24", "", "eth0", "kernel"),
					route("203.0.113.0/24", "", "eth1", "kernel"),
				},
				VIPs: []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckRPFilter},
			want:    []brief{{CheckRPFilter, SeverityWarning, "eth0", "sysctl -w net.ipv4.conf.eth0.rp_filter=2 (loose: accept a source reachable through any interface)"}},
			mention: []string{"the default route goes out eth1"},
		},
		{
			name: "strict rp_filter with the VIP's subnet routed out another interface is a warning",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				Sysctls: sysctls("net.ipv4.conf.eth0.rp_filter=1"),
				Routes: []Route{
					route("0.0.0.0/0", "198.51.100.1", "eth0", "static"),
					{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth0", Protocol: "kernel", Metric: 100},
					{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth1", Protocol: "static", Metric: 10},
				},
				VIPs: []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckRPFilter},
			want:    []brief{{CheckRPFilter, SeverityWarning, "eth0", "sysctl -w net.ipv4.conf.eth0.rp_filter=2 (loose: accept a source reachable through any interface)"}},
			mention: []string{"the route to 198.51.100.0/24 goes out eth1"},
		},
		{
			name: "strict rp_filter with symmetric routes is info",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24")},
				Sysctls: sysctls("net.ipv4.conf.all.rp_filter=1"),
				Routes:  []Route{route("0.0.0.0/0", "198.51.100.1", "eth0", "dhcp"), route("198.51.100.0/24", "", "eth0", "kernel")},
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckRPFilter},
			want:    []brief{{CheckRPFilter, SeverityInfo, "eth0", ""}},
			mention: []string{"loose mode 2"},
		},
		{
			name: "loose rp_filter wins over strict: the larger of all=1 and eth0=2",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				Sysctls: sysctls("net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth0.rp_filter=2"),
				Routes:  []Route{route("0.0.0.0/0", "203.0.113.1", "eth1", "dhcp")},
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks:  []string{CheckRPFilter},
			want:    []brief{{CheckRPFilter, SeverityOK, "eth0", ""}},
			mention: []string{"loose"},
		},
		{
			name: "rp_filter is not checked for an interface announcing only IPv6",
			host: Host{
				Links:   []iface.Link{eth("eth0", "2001:db8::2/64")},
				Sysctls: sysctls("net.ipv4.conf.all.rp_filter=1"),
				VIPs:    []VIP{vip("2001:db8::10")},
			},
			checks: []string{CheckRPFilter},
		},
		{
			name: "a VIP is announced on the interface whose subnet contains it",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				VIPs:  []VIP{{Addr: netip.MustParseAddr("198.51.100.10"), Service: "shop/web"}},
			},
			checks:  []string{CheckVIPInterface},
			want:    []brief{{CheckVIPInterface, SeverityOK, "198.51.100.10 (shop/web)", ""}},
			mention: []string{"announced on eth0 (its subnet 198.51.100.0/24 contains it)"},
		},
		{
			name: "a VIP is announced on the interfaces the advertisement names, the others are refused",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1")},
				VIPs:  []VIP{vip("203.0.113.10", "eth1", "eth7")},
			},
			checks:  []string{CheckVIPInterface},
			want:    []brief{{CheckVIPInterface, SeverityOK, "203.0.113.10", ""}},
			mention: []string{"eth1 (named by the L2Advertisement)", "not on eth7 (not-found)"},
		},
		{
			name: "a VIP no subnet contains is an error",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24")},
				VIPs:  []VIP{vip("203.0.113.10")},
			},
			checks: []string{CheckVIPInterface},
			want: []brief{{CheckVIPInterface, SeverityError, "203.0.113.10",
				"configure an address of 203.0.113.10's subnet on the interface facing its clients, or name that interface in the L2Advertisement's spec.interfaces"}},
		},
		{
			name: "a VIP whose only interface is down is an error with the fix",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), down(eth("eth1", "203.0.113.2/24"))},
				VIPs:  []VIP{vip("203.0.113.10")},
			},
			checks: []string{CheckVIPInterface},
			want: []brief{{CheckVIPInterface, SeverityError, "203.0.113.10",
				"ip link set dev eth1 up; configure an address of 203.0.113.10's subnet on the interface facing its clients, or name that interface in the L2Advertisement's spec.interfaces"}},
			mention: []string{"eth1 is down"},
		},
		{
			name: "a VIP whose named interface is a bond slave is an error",
			host: Host{
				Links: []iface.Link{func() iface.Link {
					l := eth("eth0")
					l.MasterIndex, l.MasterKind = 99, "bond"
					return l
				}()},
				VIPs: []VIP{vip("198.51.100.10", "eth0", "eth9")},
			},
			checks: []string{CheckVIPInterface},
			want: []brief{{CheckVIPInterface, SeverityError, "198.51.100.10",
				"name the bond, not its slave, in the L2Advertisement's spec.interfaces; fix the L2Advertisement's spec.interfaces to name interfaces of this node"}},
		},
		{
			name: "a VIP configured on the interface it is announced on is an error",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24", "198.51.100.10/32")},
				Sysctls: sysctls(good...),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckVIPConfigured},
			want: []brief{{CheckVIPConfigured, SeverityError, "198.51.100.10",
				"ip addr del 198.51.100.10/32 dev eth0 (Herald answers for the address; it need not be on the node)"}},
		},
		{
			name: "an IPv6 VIP configured on the interface it is announced on is an error too",
			host: Host{
				Links: []iface.Link{eth("eth0", "2001:db8::2/64", "2001:db8::10/128")},
				VIPs:  []VIP{vip("2001:db8::10")},
			},
			checks: []string{CheckVIPConfigured},
			want: []brief{{CheckVIPConfigured, SeverityError, "2001:db8::10",
				"ip addr del 2001:db8::10/128 dev eth0 (Herald answers for the address; it need not be on the node)"}},
		},
		{
			name: "arp_ignore 8 keeps the kernel from answering for a VIP configured on the interface",
			host: Host{
				Links:   []iface.Link{eth("eth0", "198.51.100.2/24", "198.51.100.10/32")},
				Sysctls: sysctls("net.ipv4.conf.all.arp_ignore=8"),
				VIPs:    []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckVIPConfigured},
		},
		{
			name: "a DHCP /32 route to the VIP out another interface shadows its subnet",
			host: Host{
				Links: []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				Routes: []Route{
					route("198.51.100.0/24", "", "eth0", "kernel"),
					route("198.51.100.10/32", "203.0.113.1", "eth1", "dhcp"),
					route("198.51.100.1/32", "", "eth0", "dhcp"), // the gateway's host route, same interface: fine
				},
				VIPs: []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckShadowRoute},
			want: []brief{{CheckShadowRoute, SeverityWarning, "198.51.100.10",
				"ip route del 198.51.100.10/32 via 203.0.113.1 dev eth1 proto dhcp and stop the DHCP client from installing it (classless static routes, option 121), or announce on eth1 by naming it in the L2Advertisement's spec.interfaces if the clients are there"}},
			mention: []string{"sends traffic for 198.51.100.10 itself out eth1", "not by route"},
		},
		{
			name: "a route to part of the VIP's subnet out another interface takes the replies there",
			host: Host{
				Links:  []iface.Link{eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24")},
				Routes: []Route{route("198.51.100.128/25", "203.0.113.1", "eth1", "static")},
				VIPs:   []VIP{vip("198.51.100.10")},
			},
			checks: []string{CheckShadowRoute},
			want: []brief{{CheckShadowRoute, SeverityWarning, "198.51.100.10",
				"ip route del 198.51.100.128/25 via 203.0.113.1 dev eth1 proto static and remove it from the node's network configuration, or announce on eth1 by naming it in the L2Advertisement's spec.interfaces if the clients are there"}},
			mention: []string{"replies to clients in 198.51.100.128/25 out eth1, not eth0"},
		},
		{
			name: "an IPv6 /128 out another interface shadows too; an IPv4 route does not count for it",
			host: Host{
				Links: []iface.Link{eth("eth0", "2001:db8:1::2/64"), eth("eth1", "2001:db8:2::2/64")},
				Routes: []Route{
					route("2001:db8:1::10/128", "2001:db8:2::1", "eth1", "ra"),
					route("198.51.100.10/32", "", "eth1", "static"),
				},
				VIPs: []VIP{vip("2001:db8:1::10")},
			},
			checks: []string{CheckShadowRoute},
			want: []brief{{CheckShadowRoute, SeverityWarning, "2001:db8:1::10",
				"ip route del 2001:db8:1::10/128 via 2001:db8:2::1 dev eth1 proto ra and remove it from the node's network configuration, or announce on eth1 by naming it in the L2Advertisement's spec.interfaces if the clients are there"}},
		},
		{
			name: "no shadowing route is ok; a VIP announced nowhere gets no shadow finding",
			host: Host{
				Links:  []iface.Link{eth("eth0", "198.51.100.2/24")},
				Routes: []Route{route("198.51.100.0/24", "", "eth0", "kernel"), route("0.0.0.0/0", "198.51.100.1", "eth0", "dhcp")},
				VIPs:   []VIP{vip("198.51.100.10"), vip("203.0.113.10")},
			},
			checks:  []string{CheckShadowRoute},
			want:    []brief{{CheckShadowRoute, SeverityOK, "198.51.100.10", ""}},
			mention: []string{"198.51.100.0/24 on eth0"},
		},
		{
			name: "forwarding on is info for both families",
			host: Host{
				Sysctls: sysctls("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"),
			},
			checks: []string{CheckIPForward},
			want: []brief{
				{CheckIPForward, SeverityInfo, "ipv4", ""},
				{CheckIPForward, SeverityInfo, "ipv6", "if the node's IPv6 default route comes from Router Advertisements: sysctl -w net.ipv6.conf.<interface>.accept_ra=2"},
			},
			mention: []string{"Router Advertisements"},
		},
		{
			name:    "IPv4 forwarding off is info with the fix; IPv6 off and unknown settings say nothing",
			host:    Host{Sysctls: sysctls("net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")},
			checks:  []string{CheckIPForward},
			want:    []brief{{CheckIPForward, SeverityInfo, "ipv4", "sysctl -w net.ipv4.ip_forward=1 (usually the CNI plugin or kube-proxy sets it)"}},
			mention: []string{"off"},
		},
		{
			name: "a well-configured node: every check in order, nothing wrong",
			host: Host{
				Links:   []iface.Link{lo(), eth("eth0", "198.51.100.2/24"), ipvs("198.51.100.10/32")},
				Sysctls: sysctls(append([]string{"net.ipv4.ip_forward=1"}, good...)...),
				Routes:  []Route{route("198.51.100.0/24", "", "eth0", "kernel"), route("0.0.0.0/0", "198.51.100.1", "eth0", "dhcp")},
				VIPs:    []VIP{vip("198.51.100.10")},
				Peers:   []Peer{{Addr: "198.51.100.3"}},
			},
			want: []brief{
				{CheckIPForward, SeverityInfo, "ipv4", ""},
				{CheckArpIgnore, SeverityOK, "eth0", ""},
				{CheckArpAnnounce, SeverityOK, "eth0", ""},
				{CheckIPVSStrictARP, SeverityOK, "kube-ipvs0", ""},
				{CheckProxyARP, SeverityOK, "eth0", ""},
				{CheckRPFilter, SeverityOK, "eth0", ""},
				{CheckVIPInterface, SeverityOK, "198.51.100.10", ""},
				{CheckShadowRoute, SeverityOK, "198.51.100.10", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(tt.host)
			if diff := cmp.Diff(tt.want, briefs(got, tt.checks)); diff != "" {
				t.Errorf("Check() findings (-want +got):\n%s\nall: %+v", diff, got)
			}
			var text strings.Builder
			for _, f := range got {
				if len(tt.checks) == 0 || slices.Contains(tt.checks, f.Check) {
					text.WriteString(f.Message + "\n")
				}
			}
			for _, m := range tt.mention {
				if !strings.Contains(text.String(), m) {
					t.Errorf("messages do not mention %q:\n%s", m, text.String())
				}
			}
		})
	}
}

// TestCheckDeterministic: the order of links, VIPs and routes in Host does not change the findings.
func TestCheckDeterministic(t *testing.T) {
	h := Host{
		Links: []iface.Link{lo(), eth("eth0", "198.51.100.2/24"), eth("eth1", "203.0.113.2/24"),
			ipvs("198.51.100.10/32", "203.0.113.10/32")},
		Sysctls: sysctls("net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth1.proxy_arp=1"),
		Routes: []Route{route("0.0.0.0/0", "203.0.113.1", "eth1", "dhcp"), route("198.51.100.0/24", "", "eth0", "kernel"),
			route("198.51.100.10/32", "203.0.113.1", "eth1", "dhcp")},
		VIPs: []VIP{vip("203.0.113.10"), vip("198.51.100.10"), vip("2001:db8::10")},
	}
	want := Check(h)
	r := h
	r.Links = slices.Clone(h.Links)
	slices.Reverse(r.Links)
	r.VIPs = slices.Clone(h.VIPs)
	slices.Reverse(r.VIPs)
	r.Routes = slices.Clone(h.Routes)
	slices.Reverse(r.Routes)
	if diff := cmp.Diff(want, Check(r)); diff != "" {
		t.Errorf("Check() of the same host in another order (-want +got):\n%s", diff)
	}
	if !HasErrors(want) {
		t.Errorf("HasErrors() = false for %+v, want true (proxy_arp on eth1)", want)
	}
}
