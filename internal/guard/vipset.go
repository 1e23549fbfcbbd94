package guard

import "net/netip"

// vipSet is an immutable set of managed VIPs, built by SetVIPs and read by
// the readers through an atomic.Pointer. A lookup is one map probe and
// does not allocate; a nil *vipSet holds nothing.
type vipSet struct {
	m map[netip.Addr]struct{}
}

// newVIPSet builds the set of addrs, normalized by normalizeVIP; addresses
// that cannot be claimed on a link are left out.
func newVIPSet(addrs []netip.Addr) *vipSet {
	s := &vipSet{m: make(map[netip.Addr]struct{}, len(addrs))}
	for _, a := range addrs {
		if a, ok := normalizeVIP(a); ok {
			s.m[a] = struct{}{}
		}
	}
	return s
}

func (s *vipSet) has(a netip.Addr) bool {
	if s == nil {
		return false
	}
	_, ok := s.m[a]
	return ok
}

// normalizeVIP returns a as the parsers report addresses (IPv4-mapped IPv6
// as IPv4, no zone) and whether it can be claimed at all: invalid,
// unspecified and multicast addresses (and 255.255.255.255) cannot.
func normalizeVIP(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() ||
		(a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return netip.Addr{}, false
	}
	return a, true
}
