package iface

import (
	"cmp"
	"net/netip"
	"slices"
)

// Reason says why a link was chosen or refused.
type Reason string

// Reasons for a choice.
const (
	// ReasonSubnet: the link has a configured prefix containing the address.
	ReasonSubnet Reason = "subnet"
	// ReasonConfigured: the link is named by the advertisement.
	ReasonConfigured Reason = "configured"
)

// Reasons for a refusal.
const (
	ReasonDown         Reason = "down"
	ReasonNoARP        Reason = "noarp"
	ReasonLoopback     Reason = "loopback"
	ReasonPointToPoint Reason = "point-to-point"
	// ReasonBondSlave: the link is enslaved to a bond (or team); its master
	// answers.
	ReasonBondSlave Reason = "bond-slave"
	// ReasonBridgePort: the link is a bridge (or Open vSwitch) port; the
	// bridge answers.
	ReasonBridgePort Reason = "bridge-port"
	// ReasonNoMAC: the link has no 6-byte Ethernet address.
	ReasonNoMAC Reason = "no-mac"
	// ReasonNotFound: an allowed name matches no link.
	ReasonNotFound Reason = "not-found"
	// ReasonNoSubnet: no usable link has a prefix containing the address
	// (reported with an empty Name).
	ReasonNoSubnet Reason = "no-subnet"
)

// Choice is a link the address is announced on, and why.
type Choice struct {
	Link   Link
	Reason Reason
}

// Refusal is a link the address is not announced on, and why.
type Refusal struct {
	Name   string
	Reason Reason
}

// Unusable returns why nothing is announced on l, or "" when l is usable: up,
// with an Ethernet MAC, not loopback, NOARP or point-to-point, and neither a
// bond slave nor a bridge port. Structural reasons come before "down", which
// is the only one bringing the link up would cure.
func (l Link) Unusable() Reason {
	switch {
	case l.Loopback:
		return ReasonLoopback
	case l.PointToPoint:
		return ReasonPointToPoint
	case l.NoARP:
		return ReasonNoARP
	}
	if l.MasterIndex != 0 {
		switch l.MasterKind {
		case "bond", "team":
			return ReasonBondSlave
		case "bridge", "openvswitch":
			return ReasonBridgePort
		}
	}
	if len(l.MAC) != 6 || isZero(l.MAC) {
		return ReasonNoMAC
	}
	if !l.Up {
		return ReasonDown
	}
	return ""
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Select chooses where addr is announced. allowed (from L2Advertisement.spec.interfaces) non-empty: exactly those
// allowed links that exist and are usable (reason "configured"), the others refused with why. Empty: every usable
// link with a configured prefix that contains addr (reason "subnet"): all of them, sorted by name.
// Usable: up, has an Ethernet MAC, not loopback/NOARP/point-to-point, not a bond slave or bridge port.
// Decided from configured ADDRESSES only, never the routing table: a stray host route (a DHCP-style /32 route to
// the VIP or its subnet via another interface) must not change the choice. A /32 (/128) address on a decoy link
// matches only that exact address.
//
// With allowed empty, the refusals are the unusable links with a prefix
// containing addr, and the bond slaves and bridge ports of chosen links; when
// nothing is chosen they end with a Refusal{Reason: "no-subnet"} with an empty
// Name. Choices and the named refusals are sorted by name. A Choice's Link
// shares its MAC and Prefixes with the element of links it was copied from.
func Select(addr netip.Addr, links []Link, allowed []string) ([]Choice, []Refusal) {
	addr = addr.Unmap().WithZone("")
	var (
		choices  []Choice
		refusals []Refusal
	)
	if len(allowed) > 0 {
		byName := make(map[string]*Link, len(links))
		for i := range links {
			byName[links[i].Name] = &links[i]
		}
		names := slices.Clone(allowed)
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			l, ok := byName[name]
			switch {
			case !ok:
				refusals = append(refusals, Refusal{Name: name, Reason: ReasonNotFound})
			case l.Unusable() != "":
				refusals = append(refusals, Refusal{Name: name, Reason: l.Unusable()})
			default:
				choices = append(choices, Choice{Link: *l, Reason: ReasonConfigured})
			}
		}
		return choices, refusals
	}

	chosen := map[int]bool{}
	for i := range links {
		l := &links[i]
		if !slices.ContainsFunc(l.Prefixes, func(p netip.Prefix) bool { return p.Contains(addr) }) {
			continue
		}
		if why := l.Unusable(); why != "" {
			refusals = append(refusals, Refusal{Name: l.Name, Reason: why})
			continue
		}
		choices = append(choices, Choice{Link: *l, Reason: ReasonSubnet})
		chosen[l.Index] = true
	}
	for i := range links {
		l := &links[i]
		if !chosen[l.MasterIndex] || l.MasterIndex == 0 {
			continue
		}
		if why := l.Unusable(); (why == ReasonBondSlave || why == ReasonBridgePort) &&
			!slices.ContainsFunc(refusals, func(r Refusal) bool { return r.Name == l.Name }) {
			refusals = append(refusals, Refusal{Name: l.Name, Reason: why})
		}
	}
	slices.SortFunc(choices, func(a, b Choice) int { return cmp.Compare(a.Link.Name, b.Link.Name) })
	slices.SortFunc(refusals, func(a, b Refusal) int { return cmp.Compare(a.Name, b.Name) })
	if len(choices) == 0 {
		refusals = append(refusals, Refusal{Reason: ReasonNoSubnet})
	}
	return choices, refusals
}
