package doctor

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldlb/herald/internal/iface"
)

// ipvsLink is the dummy interface kube-proxy in IPVS mode puts every Service address on.
const ipvsLink = "kube-ipvs0"

// Check runs every check on h and returns the findings in a fixed order: by check (the order of the Check*
// constants), then by interface name or address. It does no I/O; peers are ProbePeers' business.
func Check(h Host) []Finding {
	p := newPlan(h)
	var out []Finding
	out = append(out, checkForwarding(p)...)
	out = append(out, checkArpIgnore(p)...)
	out = append(out, checkArpAnnounce(p)...)
	out = append(out, checkIPVS(p)...)
	out = append(out, checkProxyARP(p)...)
	out = append(out, checkRPFilter(p)...)
	out = append(out, checkVIPInterface(p)...)
	out = append(out, checkVIPConfigured(p)...)
	out = append(out, checkShadowRoutes(p)...)
	return out
}

// plan is what the checks share: where each VIP is announced and where it is configured.
type plan struct {
	h    Host
	vips []vipPlan
	// ifaces are the interfaces ARP requests for the VIPs arrive on, sorted: those some VIP is announced on,
	// or, when no VIP is announced anywhere, every usable interface with an address.
	ifaces []string
	// announced4 are the IPv4 VIPs announced on each interface, sorted.
	announced4 map[string][]netip.Addr
	// owners are the links each VIP is configured on (an address equal to the VIP), sorted.
	owners map[netip.Addr][]ownedOn
}

type vipPlan struct {
	vip      VIP
	choices  []iface.Choice
	refusals []iface.Refusal
}

// ownedOn is a link a VIP is configured on, and the prefix it is configured with.
type ownedOn struct {
	link   string
	prefix netip.Prefix
}

func newPlan(h Host) *plan {
	p := &plan{h: h, announced4: map[string][]netip.Addr{}, owners: map[netip.Addr][]ownedOn{}}
	vips := slices.Clone(h.VIPs)
	for i := range vips {
		vips[i].Addr = vips[i].Addr.Unmap().WithZone("")
	}
	slices.SortStableFunc(vips, func(a, b VIP) int { return a.Addr.Compare(b.Addr) })
	vips = slices.CompactFunc(vips, func(a, b VIP) bool { return a.Addr == b.Addr })
	isVIP := map[netip.Addr]bool{}
	used := map[string]bool{}
	for _, v := range vips {
		isVIP[v.Addr] = true
		choices, refusals := iface.Select(v.Addr, h.Links, v.Interfaces)
		p.vips = append(p.vips, vipPlan{vip: v, choices: choices, refusals: refusals})
		for _, c := range choices {
			used[c.Link.Name] = true
			if v.Addr.Is4() {
				p.announced4[c.Link.Name] = append(p.announced4[c.Link.Name], v.Addr)
			}
		}
	}
	if len(used) == 0 {
		for _, l := range h.Links {
			if l.Unusable() == "" && slices.ContainsFunc(l.Prefixes, func(q netip.Prefix) bool {
				return !q.Addr().IsLinkLocalUnicast()
			}) {
				used[l.Name] = true
			}
		}
	}
	for name := range used {
		p.ifaces = append(p.ifaces, name)
	}
	slices.Sort(p.ifaces)
	for _, l := range h.Links {
		for _, q := range l.Prefixes {
			if a := q.Addr().Unmap(); isVIP[a] {
				p.owners[a] = append(p.owners[a], ownedOn{link: l.Name, prefix: q})
			}
		}
	}
	for a := range p.owners {
		slices.SortFunc(p.owners[a], func(x, y ownedOn) int { return cmp.Compare(x.link, y.link) })
	}
	return p
}

// sysctlKey is the sysctl(8) name of setting name for interface dev ("all", "default" or a link name) of
// family "ipv4" or "ipv6".
func sysctlKey(family, dev, name string) string {
	return "net." + family + ".conf." + strings.ReplaceAll(dev, ".", "/") + "." + name
}

// value is the integer value of a sysctl, 0 when missing or not a number.
func (p *plan) value(key string) int {
	v, err := strconv.Atoi(strings.TrimSpace(p.h.Sysctls[key]))
	if err != nil {
		return 0
	}
	return v
}

// conf is an IPv4 per-interface setting: the values for "all" and dev.
type conf struct {
	name     string
	dev      string
	all, own int
}

func (p *plan) conf4(dev, name string) conf {
	return conf{name: name, dev: dev, all: p.value(sysctlKey("ipv4", "all", name)), own: p.value(sysctlKey("ipv4", dev, name))}
}

// max is the value the kernel uses for arp_ignore, arp_announce and rp_filter: the larger of all and the
// interface's own.
func (c conf) max() int { return max(c.all, c.own) }

// describe says where an effective value comes from: "2 (all=2, eth0=0)".
func (c conf) describe(effective int) string {
	return fmt.Sprintf("net.ipv4.conf.%s.%s is effectively %d (all=%d, %s=%d)", c.dev, c.name, effective, c.all, c.dev, c.own)
}

// localElsewhere lists the IPv4 VIPs configured on a link other than dev, as "addr is configured on link".
func (p *plan) localElsewhere(dev string) []string {
	var out []string
	for _, v := range p.vips {
		if !v.vip.Addr.Is4() {
			continue
		}
		for _, o := range p.owners[v.vip.Addr] {
			if o.link != dev {
				out = append(out, fmt.Sprintf("%s is configured on %s", v.vip.Addr, o.link))
			}
		}
	}
	return out
}

func checkForwarding(p *plan) []Finding {
	var out []Finding
	if v, ok := p.h.Sysctls["net.ipv4.ip_forward"]; ok {
		if strings.TrimSpace(v) != "0" {
			out = append(out, Finding{Check: CheckIPForward, Severity: SeverityInfo, Subject: "ipv4",
				Message: "IPv4 forwarding is on, as Kubernetes needs for pods: the node routes between its interfaces, " +
					"and replies leave by the interface the routing table picks, not the one a request came in on " +
					"(see rp_filter and shadow_route)"})
		} else {
			out = append(out, Finding{Check: CheckIPForward, Severity: SeverityInfo, Subject: "ipv4",
				Message: "IPv4 forwarding is off: unusual on a Kubernetes node, where pod and Service traffic is " +
					"routed; announcing works, but traffic for load-balancer addresses is not forwarded to pods " +
					"on other nodes",
				Fix: "sysctl -w net.ipv4.ip_forward=1 (usually the CNI plugin or kube-proxy sets it)"})
		}
	}
	if v, ok := p.h.Sysctls["net.ipv6.conf.all.forwarding"]; ok && strings.TrimSpace(v) != "0" {
		out = append(out, Finding{Check: CheckIPForward, Severity: SeverityInfo, Subject: "ipv6",
			Message: "IPv6 forwarding is on: the kernel acts as an IPv6 router, so it ignores Router Advertisements " +
				"on interfaces whose accept_ra is not 2 (a default route learned from them expires) and sets the " +
				"Router flag in its Neighbor Advertisements",
			Fix: "if the node's IPv6 default route comes from Router Advertisements: sysctl -w net.ipv6.conf.<interface>.accept_ra=2"})
	}
	return out
}

func checkArpIgnore(p *plan) []Finding {
	var out []Finding
	for _, dev := range p.ifaces {
		c := p.conf4(dev, "arp_ignore")
		eff := c.max()
		f := Finding{Check: CheckArpIgnore, Subject: dev}
		switch others := p.localElsewhere(dev); {
		case eff >= 1:
			f.Severity = SeverityOK
			f.Message = c.describe(eff) + ": the kernel answers ARP on " + dev + " only for addresses of " + dev
		case len(others) > 0:
			f.Severity = SeverityError
			f.Message = c.describe(eff) + " and " + strings.Join(others, ", ") + ": " +
				"the kernel answers ARP for it on " + dev + " with this node's MAC even when another node is elected"
			f.Fix = "sysctl -w net.ipv4.conf.all.arp_ignore=1"
		default:
			f.Severity = SeverityWarning
			f.Message = c.describe(eff) + ": the kernel answers ARP on " + dev + " for any address configured on " +
				"any interface, so a load-balancer address put on this node (kube-proxy in IPVS mode, by hand) " +
				"would be answered here too"
			f.Fix = "sysctl -w net.ipv4.conf.all.arp_ignore=1"
		}
		out = append(out, f)
	}
	return out
}

func checkArpAnnounce(p *plan) []Finding {
	var out []Finding
	for _, dev := range p.ifaces {
		c := p.conf4(dev, "arp_announce")
		eff := c.max()
		f := Finding{Check: CheckArpAnnounce, Subject: dev}
		switch others := p.localElsewhere(dev); {
		case eff >= 1:
			f.Severity = SeverityOK
			f.Message = c.describe(eff) + ": ARP requests sent on " + dev + " use a source address of " + dev + "'s subnet"
			if eff == 1 {
				f.Message = c.describe(eff) + ": ARP requests sent on " + dev + " avoid source addresses outside the target's subnet (2 is stricter)"
			}
		case len(others) > 0:
			f.Severity = SeverityWarning
			f.Message = c.describe(eff) + " and " + strings.Join(others, ", ") + ": " +
				"the kernel may use it as the sender address of its own ARP requests on " + dev +
				", teaching neighbours this node's MAC for it"
			f.Fix = "sysctl -w net.ipv4.conf.all.arp_announce=2"
		default:
			f.Severity = SeverityInfo
			f.Message = c.describe(eff) + ": the kernel may use any local address as the sender of its ARP " +
				"requests on " + dev + "; harmless while no load-balancer address is configured on the node"
			f.Fix = "sysctl -w net.ipv4.conf.all.arp_announce=2"
		}
		out = append(out, f)
	}
	return out
}

func checkIPVS(p *plan) []Finding {
	i := slices.IndexFunc(p.h.Links, func(l iface.Link) bool { return l.Name == ipvsLink })
	if i < 0 {
		return nil
	}
	f := Finding{Check: CheckIPVSStrictARP, Subject: ipvsLink}
	var held []string
	for _, q := range p.h.Links[i].Prefixes {
		a := q.Addr().Unmap()
		if !a.Is4() {
			continue
		}
		if len(p.vips) == 0 || slices.ContainsFunc(p.vips, func(v vipPlan) bool { return v.vip.Addr == a }) {
			held = append(held, a.String())
		}
	}
	if len(held) == 0 {
		f.Severity = SeverityOK
		f.Message = "kube-proxy runs in IPVS mode but " + ipvsLink + " holds none of the load-balancer addresses checked"
		return []Finding{f}
	}
	var loose []string
	for _, dev := range p.ifaces {
		if dev != ipvsLink && p.conf4(dev, "arp_ignore").max() == 0 {
			loose = append(loose, dev)
		}
	}
	if len(loose) == 0 {
		f.Severity = SeverityOK
		f.Message = "kube-proxy runs in IPVS mode and arp_ignore is at least 1 where ARP requests arrive: " +
			"the kernel does not answer for the addresses on " + ipvsLink
		return []Finding{f}
	}
	f.Severity = SeverityError
	f.Message = "kube-proxy in IPVS mode without strictARP: every node answers for every VIP (" +
		strings.Join(held, ", ") + " on " + ipvsLink + ", arp_ignore 0 on " + strings.Join(loose, ", ") + ")"
	f.Fix = "kubectl edit configmap -n kube-system kube-proxy → ipvs: strictARP: true, then restart kube-proxy " +
		"(it sets net.ipv4.conf.all.arp_ignore=1 and arp_announce=2)"
	return []Finding{f}
}

func checkProxyARP(p *plan) []Finding {
	var out []Finding
	for _, dev := range p.ifaces {
		c := p.conf4(dev, "proxy_arp")
		f := Finding{Check: CheckProxyARP, Subject: dev}
		if c.all == 0 && c.own == 0 {
			f.Severity = SeverityOK
			f.Message = "proxy_arp is off on " + dev
			out = append(out, f)
			continue
		}
		var set []string
		if c.all != 0 {
			set = append(set, "net.ipv4.conf.all.proxy_arp=0")
		}
		if c.own != 0 {
			set = append(set, sysctlKey("ipv4", dev, "proxy_arp")+"=0")
		}
		f.Severity = SeverityError
		f.Message = fmt.Sprintf("proxy_arp is on for %s (all=%d, %s=%d): the kernel answers ARP on %s with this "+
			"node's MAC for addresses it routes out another interface, so it can answer for a load-balancer "+
			"address on a node that was not elected", dev, c.all, dev, c.own, dev)
		f.Fix = "sysctl -w " + strings.Join(set, " ")
		out = append(out, f)
	}
	return out
}

func checkRPFilter(p *plan) []Finding {
	var out []Finding
	for _, dev := range p.ifaces {
		vips := p.announced4[dev]
		if len(p.vips) > 0 && len(vips) == 0 {
			continue // announces only IPv6 here: rp_filter is IPv4's
		}
		c := p.conf4(dev, "rp_filter")
		eff := c.max()
		f := Finding{Check: CheckRPFilter, Subject: dev}
		switch eff {
		case 0:
			f.Severity = SeverityOK
			f.Message = c.describe(eff) + ": no reverse-path filtering on " + dev
			out = append(out, f)
			continue
		case 2:
			f.Severity = SeverityOK
			f.Message = c.describe(eff) + ": loose reverse-path filtering on " + dev +
				" accepts a packet whose source is reachable through any interface"
			out = append(out, f)
			continue
		}
		var asym []string
		seen := map[netip.Prefix]bool{}
		for _, a := range vips {
			sub, ok := connected(p.h.Links, dev, a)
			if !ok || seen[sub] {
				continue
			}
			seen[sub] = true
			if r, ok := covering(p.h.Routes, sub); ok && r.Dev != dev {
				asym = append(asym, fmt.Sprintf("the route to %s goes out %s", sub, r.Dev))
			}
		}
		if r, ok := covering(p.h.Routes, netip.PrefixFrom(netip.IPv4Unspecified(), 0)); ok && r.Dev != dev {
			asym = append(asym, "the default route goes out "+r.Dev)
		}
		if len(asym) == 0 {
			f.Severity = SeverityInfo
			f.Message = c.describe(eff) + ": strict reverse-path filtering on " + dev + "; the routes back to " +
				"clients leave by " + dev + " today, but a packet whose source is routed out another interface " +
				"would be dropped (loose mode 2 only asks that the source be reachable through some interface)"
			f.Fix = ""
			out = append(out, f)
			continue
		}
		f.Severity = SeverityWarning
		f.Message = c.describe(eff) + " (strict) and " + strings.Join(asym, "; ") + ": the kernel drops packets " +
			"arriving on " + dev + " whose source it would not route back out " + dev + ", so those clients get " +
			"no answer from the load-balancer address"
		f.Fix = "sysctl -w " + sysctlKey("ipv4", dev, "rp_filter") + "=2 (loose: accept a source reachable through any interface)"
		out = append(out, f)
	}
	return out
}

// connected returns the subnet of a prefix configured on link dev that contains a, not counting a host
// address (/32, /128).
func connected(links []iface.Link, dev string, a netip.Addr) (netip.Prefix, bool) {
	var best netip.Prefix
	for _, l := range links {
		if l.Name != dev {
			continue
		}
		for _, q := range l.Prefixes {
			if q.Bits() < q.Addr().BitLen() && q.Contains(a) && (!best.IsValid() || q.Bits() > best.Bits()) {
				best = q.Masked()
			}
		}
	}
	return best, best.IsValid()
}

// covering returns the route the kernel uses for most of sub: the most specific route containing all of it,
// the lowest metric among equals.
func covering(routes []Route, sub netip.Prefix) (Route, bool) {
	var best Route
	found := false
	for _, r := range routes {
		if r.Dst.Addr().Is4() != sub.Addr().Is4() || r.Dst.Bits() > sub.Bits() || !r.Dst.Contains(sub.Addr()) {
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best, found = r, true
		}
	}
	return best, found
}

func checkVIPInterface(p *plan) []Finding {
	var out []Finding
	for _, v := range p.vips {
		f := Finding{Check: CheckVIPInterface, Subject: vipSubject(v.vip)}
		var refused []string
		for _, r := range v.refusals {
			if r.Name != "" {
				refused = append(refused, fmt.Sprintf("%s (%s)", r.Name, r.Reason))
			}
		}
		if len(v.choices) > 0 {
			var on []string
			for _, c := range v.choices {
				on = append(on, c.Link.Name+" ("+choiceWhy(c, v.vip.Addr)+")")
			}
			f.Severity = SeverityOK
			f.Message = fmt.Sprintf("%s is announced on %s", v.vip.Addr, strings.Join(on, ", "))
			if len(refused) > 0 {
				f.Message += "; not on " + strings.Join(refused, ", ")
			}
			out = append(out, f)
			continue
		}
		var why, fixes []string
		for _, r := range v.refusals {
			w, fix := refusalText(r, v.vip)
			why = append(why, w)
			if fix != "" && !slices.Contains(fixes, fix) {
				fixes = append(fixes, fix)
			}
		}
		f.Severity = SeverityError
		f.Message = fmt.Sprintf("%s is announced on no interface of this node: %s", v.vip.Addr, strings.Join(why, "; "))
		f.Fix = strings.Join(fixes, "; ")
		out = append(out, f)
	}
	return out
}

func vipSubject(v VIP) string {
	if v.Service != "" {
		return v.Addr.String() + " (" + v.Service + ")"
	}
	return v.Addr.String()
}

// choiceWhy says why c was chosen for a.
func choiceWhy(c iface.Choice, a netip.Addr) string {
	if c.Reason == iface.ReasonConfigured {
		return "named by the L2Advertisement"
	}
	for _, q := range c.Link.Prefixes {
		if q.Contains(a) {
			return "its subnet " + q.Masked().String() + " contains it"
		}
	}
	return string(c.Reason)
}

// refusalText says why nothing is announced on r, and what would change that.
func refusalText(r iface.Refusal, v VIP) (why, fix string) {
	switch r.Reason {
	case iface.ReasonNoSubnet:
		return "no usable interface has an address in a subnet containing it",
			"configure an address of " + v.Addr.String() + "'s subnet on the interface facing its clients, " +
				"or name that interface in the L2Advertisement's spec.interfaces"
	case iface.ReasonNotFound:
		return r.Name + " (named by the L2Advertisement) does not exist here",
			"fix the L2Advertisement's spec.interfaces to name interfaces of this node"
	case iface.ReasonDown:
		return r.Name + " is down", "ip link set dev " + r.Name + " up"
	case iface.ReasonBondSlave:
		return r.Name + " is a bond slave; its bond answers", "name the bond, not its slave, in the L2Advertisement's spec.interfaces"
	case iface.ReasonBridgePort:
		return r.Name + " is a bridge port; the bridge answers", "name the bridge, not its port, in the L2Advertisement's spec.interfaces"
	case iface.ReasonNoARP:
		return r.Name + " has ARP turned off (NOARP)", "announce on an Ethernet interface with ARP (ip link set dev " + r.Name + " arp on if it should have it)"
	default:
		return fmt.Sprintf("%s cannot announce (%s)", r.Name, r.Reason), "announce on an Ethernet interface that is up"
	}
}

func checkVIPConfigured(p *plan) []Finding {
	var out []Finding
	for _, v := range p.vips {
		for _, c := range v.choices {
			i := slices.IndexFunc(p.owners[v.vip.Addr], func(o ownedOn) bool { return o.link == c.Link.Name })
			if i < 0 {
				continue
			}
			if v.vip.Addr.Is4() && p.conf4(c.Link.Name, "arp_ignore").max() >= 8 {
				continue // the kernel answers ARP for no local address at all
			}
			o := p.owners[v.vip.Addr][i]
			out = append(out, Finding{Check: CheckVIPConfigured, Severity: SeverityError, Subject: vipSubject(v.vip),
				Message: fmt.Sprintf("%s is configured on %s, the interface it is announced on: the kernel answers "+
					"ARP/NDP for it there whatever arp_ignore says, on every node where it is configured",
					v.vip.Addr, c.Link.Name),
				Fix: fmt.Sprintf("ip addr del %s dev %s (Herald answers for the address; it need not be on the node)", o.prefix, c.Link.Name)})
		}
	}
	return out
}

func checkShadowRoutes(p *plan) []Finding {
	var out []Finding
	for _, v := range p.vips {
		a := v.vip.Addr
		var subs []string
		var found []Finding
		for _, c := range v.choices {
			sub, ok := connected(p.h.Links, c.Link.Name, a)
			if !ok {
				continue
			}
			subs = append(subs, sub.String()+" on "+c.Link.Name)
			for _, r := range p.h.Routes {
				if r.Dst.Addr().Is4() != a.Is4() || r.Dst.Bits() <= sub.Bits() || !sub.Contains(r.Dst.Addr()) ||
					r.Dev == c.Link.Name {
					continue
				}
				found = append(found, shadow(v.vip, c.Link.Name, sub, r))
			}
		}
		switch {
		case len(found) > 0:
			out = append(out, found...)
		case len(subs) > 0:
			out = append(out, Finding{Check: CheckShadowRoute, Severity: SeverityOK, Subject: vipSubject(v.vip),
				Message: "no route more specific than " + strings.Join(subs, ", ") + " leaves by another interface"})
		}
	}
	return out
}

// shadow is the finding for route r, more specific than sub on dev, where v is announced.
func shadow(v VIP, dev string, sub netip.Prefix, r Route) Finding {
	desc := describeRoute(r)
	effect := fmt.Sprintf("the kernel sends replies to clients in %s out %s, not %s", r.Dst, r.Dev, dev)
	if r.Dst.Contains(v.Addr) {
		effect = fmt.Sprintf("the kernel sends traffic for %s itself out %s", v.Addr, r.Dev)
	}
	fix := "ip route del " + desc
	if r.Protocol == "dhcp" {
		fix += " and stop the DHCP client from installing it (classless static routes, option 121)"
	} else {
		fix += " and remove it from the node's network configuration"
	}
	fix += ", or announce on " + r.Dev + " by naming it in the L2Advertisement's spec.interfaces if the clients are there"
	return Finding{Check: CheckShadowRoute, Severity: SeverityWarning, Subject: vipSubject(v),
		Message: fmt.Sprintf("route %s is more specific than %s on %s, where %s is announced: Herald chooses the "+
			"interface by connected prefix, not by route, so %s", desc, sub, dev, v.Addr, effect),
		Fix: fix}
}

// describeRoute writes r as ip-route(8) does: "198.51.100.10/32 via 203.0.113.1 dev eth1 proto dhcp".
func describeRoute(r Route) string {
	s := r.Dst.String()
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	s += " dev " + r.Dev
	if r.Protocol != "" {
		s += " proto " + r.Protocol
	}
	return s
}
