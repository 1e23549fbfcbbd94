package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/heraldlb/herald/internal/iface"
)

// EventKernelAnswers is the Warning Event on a Service whose address this node's kernel answers ARP for too.
const EventKernelAnswers = "KernelAnswers"

// localIPv4 maps each IPv4 address configured on one of the node's links to that link's name.
func localIPv4(links []iface.Link) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, l := range links {
		for _, p := range l.Prefixes {
			if a := p.Addr().Unmap(); a.Is4() && !a.IsLoopback() {
				out[a] = l.Name
			}
		}
	}
	return out
}

// kernelAnswers says why this node's kernel answers ARP requests for addr arriving on link on, or "" when it does
// not. Linux answers for any IPv4 address configured on any of its interfaces unless the receiving interface's
// effective arp_ignore (the larger of net.ipv4.conf.all and net.ipv4.conf.<link>) is 1 or more: a load-balancer
// address that kube-proxy in IPVS mode puts on kube-ipvs0 without strict ARP, or one added by hand, makes every such
// node answer beside the elected one. (IPv6 is not affected: the kernel answers a Neighbor Solicitation only for
// addresses of the interface it arrives on.) arpIgnore maps "all" and link names to their values.
func kernelAnswers(addr netip.Addr, on string, owners map[netip.Addr]string, arpIgnore map[string]int) string {
	owner, ok := owners[addr]
	if !ok {
		return ""
	}
	if owner == on {
		return fmt.Sprintf("%s is configured on %s itself", addr, on)
	}
	ignore := max(arpIgnore["all"], arpIgnore[on])
	if ignore >= 1 {
		return ""
	}
	return fmt.Sprintf("%s is configured on %s and net.ipv4.conf.%s.arp_ignore is 0", addr, owner, on)
}

// proxyARPAnswers says why this node's kernel answers ARP requests for addr arriving on link on because of proxy
// ARP, or "" when it does not: with net.ipv4.conf.{all,<on>}.proxy_arp set, Linux answers for any address it
// routes out of another interface than the one the request arrived on.
func proxyARPAnswers(addr netip.Addr, on string, proxy map[string]int, routeDev map[netip.Addr]string) string {
	if proxy["all"] == 0 && proxy[on] == 0 {
		return ""
	}
	dev, ok := routeDev[addr]
	if !ok || dev == on {
		return ""
	}
	return fmt.Sprintf("net.ipv4.conf.%s.proxy_arp is on and this node routes %s through %s", on, addr, dev)
}

// kernelFix is the advice that goes with a kernelAnswers finding.
const kernelFix = "fix: remove the address from the node, or set net.ipv4.conf.all.arp_ignore=1 " +
	"(kube-proxy in IPVS mode: strictARP: true), and net.ipv4.conf.all.proxy_arp=0; `herald doctor` checks a node"

// readArpIgnore reads net.ipv4.conf.{all,<link>}.arp_ignore of this network namespace for the given links;
// unreadable values are left out (and count as 0, the kernel's default).
func readArpIgnore(links []iface.Link) map[string]int { return readConf(links, "arp_ignore") }

// readConf reads net.ipv4.conf.{all,<link>}.<name> for the given links; unreadable values are left out.
func readConf(links []iface.Link, name string) map[string]int {
	out := map[string]int{}
	read := func(link string) {
		b, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/conf", link, name))
		if err != nil {
			return
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[link] = v
		}
	}
	read("all")
	for _, l := range links {
		if l.Name != "." && l.Name != ".." && !strings.Contains(l.Name, "/") {
			read(l.Name)
		}
	}
	return out
}

// routeDev is the link this node routes addr through, or "" when it has no route or the lookup fails.
func routeDev(addr netip.Addr, links []iface.Link) string {
	if !addr.Is4() {
		return ""
	}
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil || len(routes) == 0 {
		return ""
	}
	for _, l := range links {
		if l.Index == routes[0].LinkIndex {
			return l.Name
		}
	}
	return ""
}
