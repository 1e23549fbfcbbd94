// Package doctor checks a node's kernel settings, interfaces and routes for what breaks Layer-2 announcing of
// load-balancer addresses, and says how to fix each finding.
package doctor

import (
	"net/netip"

	"github.com/heraldlb/herald/internal/iface"
)

// DefaultMemberlistPort is the speakers' memberlist port when a Peer names none.
const DefaultMemberlistPort = 7946

// Host is what Check looks at: facts gathered from one node, all plain data.
type Host struct {
	// Node is the node's name, for reports.
	Node string
	// Links are the node's interfaces with their addresses (iface.List).
	Links []iface.Link
	// Sysctls maps sysctl(8) names to their values: "net.ipv4.conf.all.arp_ignore" -> "0". An interface name
	// with a dot is written with a slash, as sysctl(8) does: "net.ipv4.conf.eth0/100.rp_filter". A missing
	// name counts as the kernel's default, 0.
	Sysctls map[string]string
	// Routes are the routes of the main table.
	Routes []Route
	// VIPs are the load-balancer addresses to check.
	VIPs []VIP
	// Peers are other speakers, probed by ProbePeers (Check does no I/O and ignores them).
	Peers []Peer
}

// Route is one route of the main routing table.
type Route struct {
	// Dst is the destination; 0.0.0.0/0 or ::/0 for a default route.
	Dst netip.Prefix
	// Gateway is the next hop, the zero Addr for a directly connected route.
	Gateway netip.Addr
	// Dev is the name of the outgoing interface.
	Dev string
	// Scope is "global", "link", "host"...
	Scope string
	// Protocol is who installed the route: "kernel", "boot", "static", "dhcp", "ra"...
	Protocol string
	// Metric is the route's priority; among routes to the same prefix the lowest wins.
	Metric int
}

// VIP is a load-balancer address to check.
type VIP struct {
	Addr netip.Addr
	// Service is "namespace/name" of the Service the address belongs to, when known.
	Service string
	// Interfaces are the interfaces an L2Advertisement names for it; empty means "by subnet".
	Interfaces []string
}

// Peer is another speaker whose memberlist port should be reachable from this node.
type Peer struct {
	// Addr is the peer's host name or IP address.
	Addr string
	// Port is its memberlist port; 0 means DefaultMemberlistPort.
	Port int
}

// Severities of a Finding, from harmless to broken.
const (
	SeverityOK      = "ok"
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityError   = "error"
)

// Stable identifiers of the checks, in the order Check reports them.
const (
	CheckIPForward      = "ip_forward"
	CheckArpIgnore      = "arp_ignore"
	CheckArpAnnounce    = "arp_announce"
	CheckIPVSStrictARP  = "ipvs_strict_arp"
	CheckProxyARP       = "proxy_arp"
	CheckRPFilter       = "rp_filter"
	CheckVIPInterface   = "vip_interface"
	CheckVIPConfigured  = "vip_configured"
	CheckShadowRoute    = "shadow_route"
	CheckMemberlistPort = "memberlist_port"
)

// Finding is one result of a check.
type Finding struct {
	// Check is the check's stable identifier (CheckArpIgnore...).
	Check string `json:"check"`
	// Severity is ok, info, warning or error.
	Severity string `json:"severity"`
	// Subject is the interface, address or peer the finding is about.
	Subject string `json:"subject"`
	// Message says what was found, in a sentence a person understands.
	Message string `json:"message"`
	// Fix is the command or setting that fixes it; empty when nothing needs fixing.
	Fix string `json:"fix,omitempty"`
}

// HasErrors reports whether any finding has severity error.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}
