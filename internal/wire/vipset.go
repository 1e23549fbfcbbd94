package wire

import (
	"net/netip"
	"slices"
)

// VIPSet is an immutable set of load-balancer addresses, built once and read by the packet paths through an
// atomic.Pointer. Lookups are one map probe keyed by the raw address bytes; neither they nor a nil *VIPSet (the
// empty set) allocate.
type VIPSet struct {
	v4 map[[4]byte]struct{}
	v6 map[[16]byte]struct{}
	// all is every address once, IPv4 as 4-byte addresses, sorted.
	all []netip.Addr
}

// NewVIPSet builds the set of addrs, each normalized by NormalizeVIP; addresses that cannot be on the wire are
// left out, and duplicates count once.
func NewVIPSet(addrs []netip.Addr) *VIPSet {
	s := &VIPSet{
		v4: make(map[[4]byte]struct{}),
		v6: make(map[[16]byte]struct{}),
	}
	for _, a := range addrs {
		a, ok := NormalizeVIP(a)
		switch {
		case !ok:
		case a.Is4():
			s.v4[a.As4()] = struct{}{}
		default:
			s.v6[a.As16()] = struct{}{}
		}
	}
	s.all = make([]netip.Addr, 0, len(s.v4)+len(s.v6))
	for k := range s.v4 {
		s.all = append(s.all, netip.AddrFrom4(k))
	}
	for k := range s.v6 {
		s.all = append(s.all, netip.AddrFrom16(k))
	}
	slices.SortFunc(s.all, netip.Addr.Compare)
	return s
}

// Has4 reports whether the IPv4 address a is in s.
func (s *VIPSet) Has4(a [4]byte) bool {
	if s == nil {
		return false
	}
	_, ok := s.v4[a]
	return ok
}

// Has6 reports whether the IPv6 address a is in s (an IPv4-mapped a is not: IPv4 addresses are held as such).
func (s *VIPSet) Has6(a [16]byte) bool {
	if s == nil {
		return false
	}
	_, ok := s.v6[a]
	return ok
}

// Has reports whether a, in the form NormalizeVIP gives, is in s.
func (s *VIPSet) Has(a netip.Addr) bool {
	if a.Is4() {
		return s.Has4(a.As4())
	}
	return s.Has6(a.As16())
}

// All returns every address of s once, sorted. The slice is shared: do not modify it.
func (s *VIPSet) All() []netip.Addr {
	if s == nil {
		return nil
	}
	return s.all
}

// Len returns how many IPv4 and IPv6 addresses s holds.
func (s *VIPSet) Len() (v4, v6 int) {
	if s == nil {
		return 0, 0
	}
	return len(s.v4), len(s.v6)
}
