package ipam

import (
	"fmt"
	"net/netip"
)

// Family is an IP address family.
type Family int

// The address families an allocator hands out.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// FamilyOf returns the family of a: IPv4 for a 4-byte address, IPv6 for a
// 16-byte one (including IPv4-mapped IPv6), and 0 for the zero Addr.
func FamilyOf(a netip.Addr) Family {
	switch {
	case a.Is4():
		return IPv4
	case a.Is6():
		return IPv6
	}
	return 0
}

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// bitLen returns the number of bits in an address of family f.
func (f Family) bitLen() int {
	if f == IPv4 {
		return 32
	}
	return 128
}
