package guard

import (
	"net/netip"

	"github.com/heraldlb/herald/internal/wire"
)

// vipSet is an immutable set of managed VIPs, built by SetVIPs and read by
// the readers through an atomic.Pointer. A lookup is one map probe and
// does not allocate; a nil *vipSet holds nothing.
type vipSet struct {
	m map[netip.Addr]struct{}
}

// newVIPSet builds the set of addrs, normalized by wire.NormalizeVIP; addresses
// that cannot be claimed on a link are left out.
func newVIPSet(addrs []netip.Addr) *vipSet {
	s := &vipSet{m: make(map[netip.Addr]struct{}, len(addrs))}
	for _, a := range addrs {
		if a, ok := wire.NormalizeVIP(a); ok {
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
