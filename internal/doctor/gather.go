package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/iface"
)

// GatherOptions says what Gather cannot find out by itself.
type GatherOptions struct {
	// Node is the node's name; empty means the host name.
	Node string
	// VIPs and Peers are copied into the Host.
	VIPs  []VIP
	Peers []Peer
	// ProcSys is where sysctls are read; empty means /proc/sys.
	ProcSys string
}

// ipv4Conf and ipv6Conf are the per-interface settings Gather reads, for "all", "default" and every link.
var (
	ipv4Conf = []string{"arp_ignore", "arp_announce", "rp_filter", "proxy_arp"}
	ipv6Conf = []string{"forwarding", "accept_ra", "proxy_ndp"}
)

// Gather reads the facts Check needs from the network namespace of the calling thread: links and addresses
// and main-table routes through netlink, settings from /proc/sys. VIPs and peers come from opts.
func Gather(ctx context.Context, opts GatherOptions) (Host, error) {
	h := Host{Node: opts.Node, VIPs: slices.Clone(opts.VIPs), Peers: slices.Clone(opts.Peers)}
	if h.Node == "" {
		name, err := os.Hostname()
		if err != nil {
			return Host{}, fmt.Errorf("gather: host name: %w", err)
		}
		h.Node = name
	}
	if err := ctx.Err(); err != nil {
		return Host{}, fmt.Errorf("gather: %w", err)
	}
	links, err := iface.List(0)
	if err != nil {
		return Host{}, fmt.Errorf("gather: %w", err)
	}
	h.Links = links
	root := cmp.Or(opts.ProcSys, "/proc/sys")
	if h.Sysctls, err = readSysctls(root, links); err != nil {
		return Host{}, fmt.Errorf("gather: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Host{}, fmt.Errorf("gather: %w", err)
	}
	if h.Routes, err = mainRoutes(links); err != nil {
		return Host{}, fmt.Errorf("gather: %w", err)
	}
	return h, nil
}

// readSysctls reads the settings the checks use. Settings that do not exist (IPv6 disabled, a link that just
// went away) are left out; net.ipv4.conf.all.arp_ignore must be readable.
func readSysctls(root string, links []iface.Link) (map[string]string, error) {
	out := map[string]string{}
	read := func(rel string) error {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return err
		}
		out[strings.ReplaceAll(rel, "/", ".")] = strings.TrimSpace(string(b))
		return nil
	}
	if err := read("net/ipv4/conf/all/arp_ignore"); err != nil {
		return nil, fmt.Errorf("read sysctls: %w", err)
	}
	devs := []string{"all", "default"}
	for _, l := range links {
		// A name with a slash cannot be a directory; "." and ".." would escape it.
		if l.Name != "" && l.Name != "." && l.Name != ".." && !strings.Contains(l.Name, "/") {
			devs = append(devs, l.Name)
		}
	}
	try := func(rel, key string) error {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", key, err)
		}
		out[key] = strings.TrimSpace(string(b))
		return nil
	}
	if err := try("net/ipv4/ip_forward", "net.ipv4.ip_forward"); err != nil {
		return nil, err
	}
	for _, d := range devs {
		for _, name := range ipv4Conf {
			if err := try(filepath.Join("net/ipv4/conf", d, name), sysctlKey("ipv4", d, name)); err != nil {
				return nil, err
			}
		}
		for _, name := range ipv6Conf {
			if err := try(filepath.Join("net/ipv6/conf", d, name), sysctlKey("ipv6", d, name)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// mainRoutes lists the unicast routes of the main table, sorted by destination, metric and device.
func mainRoutes(links []iface.Link) ([]Route, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	defer h.Close()
	var rs []netlink.Route
	for range 5 {
		rs, err = h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dump routes: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Index] = l.Name
	}
	var out []Route
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		if rt, ok := routeFromNetlink(r, names); ok {
			out = append(out, rt)
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Dst.Bits(), b.Dst.Bits()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Metric, b.Metric); c != 0 {
			return c
		}
		return cmp.Compare(a.Dev, b.Dev)
	})
	return out, nil
}

// routeFromNetlink converts a route; a multipath route is described by its first next hop.
func routeFromNetlink(r netlink.Route, names map[int]string) (Route, bool) {
	var dst netip.Prefix
	switch {
	case r.Dst != nil:
		ones, bits := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || bits == 0 {
			return Route{}, false
		}
		if bits == 32 {
			a = a.Unmap()
		}
		dst = netip.PrefixFrom(a, ones)
	case r.Family == netlink.FAMILY_V6:
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	index, gw := r.LinkIndex, r.Gw
	if len(r.MultiPath) > 0 {
		index, gw = r.MultiPath[0].LinkIndex, r.MultiPath[0].Gw
	}
	out := Route{Dst: dst, Dev: names[index], Protocol: r.Protocol.String(), Metric: r.Priority, Scope: r.Scope.String()}
	if out.Dev == "" && index != 0 {
		out.Dev = fmt.Sprintf("if%d", index)
	}
	if out.Scope == "universe" {
		out.Scope = "global"
	}
	if gw != nil {
		out.Gateway = addrOf(gw)
	}
	return out, true
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
