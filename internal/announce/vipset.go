package announce

import (
	"net/netip"
	"slices"
)

// vipSet is an immutable set of VIPs, built by Set and read by the
// responders through an atomic.Pointer. Lookups are O(1) map probes keyed by
// the raw address bytes; neither they nor a nil *vipSet allocate.
type vipSet struct {
	v4 map[[4]byte]struct{}
	v6 map[[16]byte]struct{}
	// list is every VIP once, IPv4 as 4-byte addresses, sorted.
	list []netip.Addr
}

// emptyVIPs answers nothing; it is stored in a link before it is closed.
var emptyVIPs = &vipSet{}

// newVIPSet builds the set of addrs. Addresses must already be normalized
// (see wire.NormalizeVIP); duplicates are dropped.
func newVIPSet(addrs []netip.Addr) *vipSet {
	s := &vipSet{
		v4: make(map[[4]byte]struct{}),
		v6: make(map[[16]byte]struct{}),
	}
	for _, a := range addrs {
		if a.Is4() {
			s.v4[a.As4()] = struct{}{}
		} else {
			s.v6[a.As16()] = struct{}{}
		}
	}
	s.list = make([]netip.Addr, 0, len(s.v4)+len(s.v6))
	for k := range s.v4 {
		s.list = append(s.list, netip.AddrFrom4(k))
	}
	for k := range s.v6 {
		s.list = append(s.list, netip.AddrFrom16(k))
	}
	slices.SortFunc(s.list, netip.Addr.Compare)
	return s
}

func (s *vipSet) has4(a [4]byte) bool {
	if s == nil {
		return false
	}
	_, ok := s.v4[a]
	return ok
}

func (s *vipSet) has6(a [16]byte) bool {
	if s == nil {
		return false
	}
	_, ok := s.v6[a]
	return ok
}

// has reports whether a (normalized) is in s.
func (s *vipSet) has(a netip.Addr) bool {
	if a.Is4() {
		return s.has4(a.As4())
	}
	return s.has6(a.As16())
}
