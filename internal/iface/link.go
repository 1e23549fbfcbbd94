// Package iface follows the node's network interfaces and addresses through netlink (rtnetlink, RFC 3549) and
// chooses the interfaces a virtual IP is announced on.
package iface

import (
	"cmp"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is one network interface as far as announcing is concerned.
type Link struct {
	Index int
	Name  string
	// MAC is the hardware address; announcing needs a 6-byte Ethernet one.
	MAC net.HardwareAddr
	// Kind is the rtnetlink link kind: "veth", "bridge", "bond", "dummy",
	// "vlan"..., or "device" for a physical NIC.
	Kind string
	// Up is administratively up AND operationally up or unknown (lo and
	// dummy report unknown).
	Up           bool
	NoARP        bool
	Loopback     bool
	PointToPoint bool
	// MasterIndex is the index of the link's master (bond, bridge, VRF...),
	// 0 when it has none.
	MasterIndex int
	// MasterKind is the Kind of the master: "bond" for bond slaves,
	// "bridge" for bridge ports.
	MasterKind string
	// Prefixes are the configured addresses with their prefix length
	// (scope global and link), sorted, without repeats.
	Prefixes []netip.Prefix
}

// equal reports whether a and b are the same in every field.
func (l *Link) equal(o *Link) bool {
	return l.Index == o.Index && l.Name == o.Name && slices.Equal(l.MAC, o.MAC) && l.Kind == o.Kind &&
		l.Up == o.Up && l.NoARP == o.NoARP && l.Loopback == o.Loopback && l.PointToPoint == o.PointToPoint &&
		l.MasterIndex == o.MasterIndex && l.MasterKind == o.MasterKind && slices.Equal(l.Prefixes, o.Prefixes)
}

// linkFromNetlink converts the attributes of a netlink link of the given
// kind (netlink.Link.Type()). Prefixes and MasterKind are left empty.
func linkFromNetlink(a *netlink.LinkAttrs, kind string) Link {
	l := Link{
		Index:        a.Index,
		Name:         a.Name,
		Kind:         kind,
		Up:           a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown),
		NoARP:        a.RawFlags&unix.IFF_NOARP != 0,
		Loopback:     a.Flags&net.FlagLoopback != 0,
		PointToPoint: a.Flags&net.FlagPointToPoint != 0,
		MasterIndex:  a.MasterIndex,
	}
	if len(a.HardwareAddr) > 0 {
		l.MAC = slices.Clone(a.HardwareAddr)
	}
	return l
}

// slaveKind is the master kind a link's own attributes report (bond and
// VRF slaves), for when the master itself is not known.
func slaveKind(a *netlink.LinkAttrs) string {
	if a.Slave == nil {
		return ""
	}
	return a.Slave.SlaveType()
}

// keepScope reports whether an address of this scope is listed in Prefixes:
// global and link, not host or nowhere.
func keepScope(scope int) bool {
	return scope == int(netlink.SCOPE_UNIVERSE) || scope == int(netlink.SCOPE_LINK)
}

// prefixFromIPNet converts a netlink address, keeping the host bits:
// 198.51.100.7/24 stays 198.51.100.7/24. IPv4 addresses are never 4-in-6.
func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	if bits == 32 {
		addr = addr.Unmap()
	}
	if addr.BitLen() != bits {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// snapshot assembles links and the prefixes of each link index into a
// sorted slice of fresh Links, resolving MasterKind from the masters' kinds
// (or, for a master not listed, the slave kind the link reported).
func snapshot(links map[int]linkState, prefixes map[int]map[netip.Prefix]struct{}) []Link {
	out := make([]Link, 0, len(links))
	for idx, st := range links {
		l := st.link
		l.MAC = slices.Clone(l.MAC)
		if l.MasterIndex != 0 {
			if m, ok := links[l.MasterIndex]; ok {
				l.MasterKind = m.link.Kind
			} else {
				l.MasterKind = st.slaveKind
			}
		}
		if ps := prefixes[idx]; len(ps) > 0 {
			l.Prefixes = make([]netip.Prefix, 0, len(ps))
			for p := range ps {
				l.Prefixes = append(l.Prefixes, p)
			}
			slices.SortFunc(l.Prefixes, comparePrefix)
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Link) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}

// linkState is what the inventory keeps of one link between snapshots.
type linkState struct {
	link      Link
	slaveKind string
}

// inventory is the state a snapshot is made from.
type inventory struct {
	// links by index.
	links map[int]linkState
	// prefixes by link index, kept apart from links because address and link
	// notifications arrive on different sockets in no particular order.
	prefixes map[int]map[netip.Prefix]struct{}
}

func newInventory() *inventory {
	return &inventory{links: map[int]linkState{}, prefixes: map[int]map[netip.Prefix]struct{}{}}
}

// setLink records a link's current attributes.
func (inv *inventory) setLink(l netlink.Link) {
	a := l.Attrs()
	inv.links[a.Index] = linkState{link: linkFromNetlink(a, l.Type()), slaveKind: slaveKind(a)}
}

// deleteLink forgets a link and its addresses.
func (inv *inventory) deleteLink(index int) {
	delete(inv.links, index)
	delete(inv.prefixes, index)
}

// setAddr adds (add) or removes an address of a link; addresses of other
// scopes than global and link are ignored.
func (inv *inventory) setAddr(index int, n *net.IPNet, scope int, add bool) {
	if !keepScope(scope) {
		return
	}
	p, ok := prefixFromIPNet(n)
	if !ok {
		return
	}
	ps := inv.prefixes[index]
	if !add {
		delete(ps, p)
		if len(ps) == 0 {
			delete(inv.prefixes, index)
		}
		return
	}
	if ps == nil {
		ps = map[netip.Prefix]struct{}{}
		inv.prefixes[index] = ps
	}
	ps[p] = struct{}{}
}

func (inv *inventory) snapshot() []Link { return snapshot(inv.links, inv.prefixes) }
