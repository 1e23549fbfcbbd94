package wire

import "net/netip"

// NormalizeVIP returns a in the form the announcer's and the guard's sets and parsers use (IPv4-mapped IPv6 as
// IPv4, zone dropped) and whether it can be a load-balancer address on the wire at all: invalid, unspecified,
// loopback and multicast addresses, and 255.255.255.255, cannot (nobody answers ARP or NDP for them).
func NormalizeVIP(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() ||
		(a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return netip.Addr{}, false
	}
	return a, true
}
