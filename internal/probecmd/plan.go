package probecmd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/iface"
)

// Target is one address to probe.
type Target struct {
	// Addr is the address, without zone.
	Addr netip.Addr
	// Zone is the interface an IPv6 link-local address was given with (fe80::1%eth0), else "".
	Zone string
	// Service is "namespace/name" when the address is a Service's, else "".
	Service string
}

func (t Target) String() string {
	s := t.Addr.String()
	if t.Zone != "" {
		s += "%" + t.Zone
	}
	if t.Service != "" {
		s += " (" + t.Service + ")"
	}
	return s
}

// Protocols of a Plan.
const (
	ProtocolARP = "ARP"
	ProtocolNDP = "NDP"
)

// Plan is how one target is probed: which interface, which source address, and why.
type Plan struct {
	Target Target
	// Protocol is ARP (IPv4) or NDP (IPv6: Neighbor Solicitations).
	Protocol string
	// Interface and InterfaceIndex are the link the requests go out on; InterfaceReason says why it.
	Interface       string
	InterfaceIndex  int
	InterfaceReason string
	// Source is the requests' sender address (0.0.0.0: ARP probes); SourceReason says why it.
	Source       netip.Addr
	SourceReason string
	// Warnings are reasons the target might not answer that are not errors.
	Warnings []string
}

// route is what the kernel's route to a target says (ip route get).
type route struct {
	Type      int // unix.RTN_*
	LinkIndex int
	Gateway   netip.Addr // invalid when on-link
	Src       netip.Addr // preferred source, invalid when none
}

// planOptions are the command line's choices: -I and -s.
type planOptions struct {
	Interface string
	Source    netip.Addr
}

// errUsage marks an error the user can fix with other arguments; it is reported with exit code 2 like the rest,
// but without a CAP_NET_RAW hint.
var errUsage = errors.New("usage")

// makePlan decides how to probe t from links (iface.List) and, unless -I or a zone names the interface, the
// kernel's route to t, which getRoute returns.
func makePlan(t Target, links []iface.Link, getRoute func(netip.Addr) (route, error), opts planOptions) (Plan, error) {
	p := Plan{Target: t, Protocol: ProtocolARP}
	if t.Addr.Is6() {
		p.Protocol = ProtocolNDP
	}
	byName := func(name string) *iface.Link {
		for i := range links {
			if links[i].Name == name {
				return &links[i]
			}
		}
		return nil
	}
	var link *iface.Link
	var rt route
	var haveRoute bool
	switch {
	case opts.Interface != "":
		if link = byName(opts.Interface); link == nil {
			return p, fmt.Errorf("%w: -I %s: no such interface", errUsage, opts.Interface)
		}
		p.InterfaceReason = "-I " + opts.Interface
		if t.Zone != "" && t.Zone != opts.Interface {
			return p, fmt.Errorf("%w: %s names interface %s but -I says %s", errUsage, t, t.Zone, opts.Interface)
		}
	case t.Zone != "":
		if link = byName(t.Zone); link == nil {
			return p, fmt.Errorf("%w: %s: no interface %s", errUsage, t, t.Zone)
		}
		p.InterfaceReason = "the address's zone %" + t.Zone
	case t.Addr.Is6() && t.Addr.IsLinkLocalUnicast():
		return p, fmt.Errorf("%w: %s is link-local: say on which interface, with -I or as %s%%IFACE", errUsage, t.Addr, t.Addr)
	default:
		var err error
		if rt, err = getRoute(t.Addr); err != nil {
			return p, fmt.Errorf("%w: the kernel has no route to %s (%v): name the interface with -I", errUsage, t.Addr, err)
		}
		haveRoute = true
		for i := range links {
			if links[i].Index == rt.LinkIndex {
				link = &links[i]
			}
		}
		switch {
		case rt.Type == unix.RTN_LOCAL:
			return p, fmt.Errorf("%w: %s is an address of this host (the kernel's route to it is local): probing it "+
				"needs another host's view; to ask the link anyway, name the interface with -I", errUsage, t.Addr)
		case rt.Type != unix.RTN_UNICAST:
			return p, fmt.Errorf("%w: the kernel's route to %s is of type %s, not unicast: name the interface with -I",
				errUsage, t.Addr, routeTypeName(rt.Type))
		case link == nil:
			return p, fmt.Errorf("%w: the kernel routes %s out of interface index %d, which is gone: name the interface with -I",
				errUsage, t.Addr, rt.LinkIndex)
		}
		p.InterfaceReason = "the kernel's route to " + t.Addr.String() + ": " + describeRoute(rt, link.Name)
		if rt.Gateway.IsValid() {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s is not on a subnet connected to this host (the kernel routes it via %s): "+
				"only a device doing proxy %s for it would answer on %s", t.Addr, rt.Gateway, p.Protocol, link.Name))
		}
	}
	p.Interface, p.InterfaceIndex = link.Name, link.Index
	if err := usable(link); err != nil {
		return p, fmt.Errorf("%w: %v", errUsage, err)
	}
	if link.MasterIndex != 0 {
		master := fmt.Sprintf("index %d", link.MasterIndex)
		for _, l := range links {
			if l.Index == link.MasterIndex {
				master = l.Name
			}
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s is a port of %s %s: answers addressed to this host arrive on %s, "+
			"probe there instead", link.Name, link.MasterKind, master, master))
	}

	src, why, err := chooseSource(t.Addr, link, rt, haveRoute, opts.Source)
	if err != nil {
		return p, fmt.Errorf("%w: %v", errUsage, err)
	}
	p.Source, p.SourceReason = src, why
	return p, nil
}

// usable says why a link cannot carry ARP or NDP requests, or nil.
func usable(l *iface.Link) error {
	switch {
	case l.Loopback:
		return fmt.Errorf("%s is a loopback interface", l.Name)
	case l.NoARP:
		return fmt.Errorf("%s does not do ARP/NDP (NOARP)", l.Name)
	case len(l.MAC) != 6:
		return fmt.Errorf("%s has no Ethernet address (a tunnel or point-to-point link?)", l.Name)
	case !l.Up:
		return fmt.Errorf("%s is down", l.Name)
	}
	return nil
}

// chooseSource picks the sender address: -s; else the link's address in the target's subnet (the route's
// preferred source first); else the route's preferred source when it is the link's; else another address of
// the link of the target's family (global before link-local); else, for IPv4, 0.0.0.0 (an ARP probe).
func chooseSource(target netip.Addr, l *iface.Link, rt route, haveRoute bool, explicit netip.Addr) (netip.Addr, string, error) {
	if explicit.IsValid() {
		switch {
		case explicit.Is4() != target.Is4():
			return netip.Addr{}, "", fmt.Errorf("-s %s and the target %s are not of one family", explicit, target)
		case explicit.Is6() && (explicit.IsUnspecified() || explicit.IsMulticast()):
			return netip.Addr{}, "", fmt.Errorf("-s %s: want an IPv6 unicast address", explicit)
		case explicit.Is4() && explicit.IsUnspecified():
			return explicit, "-s 0.0.0.0: ARP probes (RFC 5227)", nil
		}
		for _, p := range l.Prefixes {
			if p.Addr() == explicit {
				return explicit, "-s", nil
			}
		}
		return explicit, fmt.Sprintf("-s (not an address of %s: answers are read all the same)", l.Name), nil
	}
	var inSubnet, global, linkLocal []netip.Addr
	for _, p := range l.Prefixes {
		a := p.Addr()
		if a.Is4() != target.Is4() || a == target {
			continue
		}
		switch {
		case p.Masked().Contains(target) && !(a.Is6() && a.IsLinkLocalUnicast() && !target.IsLinkLocalUnicast()):
			inSubnet = append(inSubnet, a)
		case a.IsLinkLocalUnicast():
			linkLocal = append(linkLocal, a)
		default:
			global = append(global, a)
		}
	}
	preferred := haveRoute && rt.Src.IsValid()
	if len(inSubnet) > 0 {
		if preferred && slices.Contains(inSubnet, rt.Src) {
			return rt.Src, fmt.Sprintf("%s's address in the target's subnet (the kernel's preferred source)", l.Name), nil
		}
		return inSubnet[0], fmt.Sprintf("%s's address in the target's subnet", l.Name), nil
	}
	if preferred && (slices.Contains(global, rt.Src) || slices.Contains(linkLocal, rt.Src)) {
		return rt.Src, fmt.Sprintf("the kernel's preferred source on %s (no address of %s is in the target's subnet)", l.Name, l.Name), nil
	}
	if len(global) > 0 {
		return global[0], fmt.Sprintf("another address of %s: none is in the target's subnet", l.Name), nil
	}
	if len(linkLocal) > 0 {
		return linkLocal[0], fmt.Sprintf("%s's link-local address: it has no global IPv6 address", l.Name), nil
	}
	if target.Is4() {
		return netip.IPv4Unspecified(), fmt.Sprintf("%s has no IPv4 address: ARP probes, sender 0.0.0.0 (RFC 5227)", l.Name), nil
	}
	return netip.Addr{}, "", fmt.Errorf("%s has no IPv6 address to send Neighbor Solicitations from: give one with -s", l.Name)
}

// describeRoute is ip route get's gist: "dev eth0 src 198.51.100.2" or "via 198.51.100.1 dev eth0".
func describeRoute(rt route, dev string) string {
	s := ""
	if rt.Gateway.IsValid() {
		s = "via " + rt.Gateway.String() + " "
	}
	s += "dev " + dev
	if rt.Src.IsValid() {
		s += " src " + rt.Src.String()
	}
	return s
}

func routeTypeName(t int) string {
	switch t {
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_BROADCAST:
		return "broadcast"
	case unix.RTN_MULTICAST:
		return "multicast"
	case unix.RTN_ANYCAST:
		return "anycast"
	}
	return fmt.Sprintf("%d", t)
}

// kernelRoute asks the kernel of the calling thread's network namespace for its route to a (ip route get).
func kernelRoute(a netip.Addr) (route, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return route{}, fmt.Errorf("opening rtnetlink: %w", err)
	}
	defer h.Close()
	rs, err := h.RouteGet(net.IP(a.AsSlice()))
	if err != nil {
		return route{}, err
	}
	if len(rs) == 0 {
		return route{}, errors.New("no route")
	}
	r := rs[0]
	out := route{Type: r.Type, LinkIndex: r.LinkIndex}
	gw := r.Gw
	if len(r.MultiPath) > 0 {
		out.LinkIndex, gw = r.MultiPath[0].LinkIndex, r.MultiPath[0].Gw
	}
	if g, ok := netip.AddrFromSlice(gw); ok && !g.IsUnspecified() {
		out.Gateway = g.Unmap()
	}
	if s, ok := netip.AddrFromSlice(r.Src); ok && !s.IsUnspecified() {
		out.Src = s.Unmap()
	}
	return out, nil
}
