package lab

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bridgeName is the lab bridge, in the switch namespace.
const bridgeName = "br0"

// hostSysctls are set in every host namespace before its links exist, so that they inherit them: addresses are
// usable at once (no duplicate address detection) and no router advertisement changes the lab's routes.
var hostSysctls = map[string]string{
	"net/ipv6/conf/all/accept_dad":     "0",
	"net/ipv6/conf/default/accept_dad": "0",
	"net/ipv6/conf/all/accept_ra":      "0",
	"net/ipv6/conf/default/accept_ra":  "0",
}

// switchSysctls keep every address, IPv6 link-local ones included, off the switch namespace's links.
var switchSysctls = map[string]string{
	"net/ipv6/conf/all/disable_ipv6":     "1",
	"net/ipv6/conf/default/disable_ipv6": "1",
	"net/ipv6/conf/all/accept_dad":       "0",
	"net/ipv6/conf/all/accept_ra":        "0",
}

// buildSwitch creates the switch namespace and its bridge. Multicast snooping is off, so that the bridge floods
// neighbor solicitations to every port, as a switch that sees no MLD querier does, also for addresses nobody
// joined the solicited-node group of (a VIP answered by a speaker).
func (l *Lab) buildSwitch(ctx context.Context) error {
	ns, err := addNetns(ctx, l.Switch)
	if err != nil {
		return err
	}
	l.namespaces = append(l.namespaces, l.Switch)
	l.switchNS = ns
	if err := writeSysctls(ns, l.origin, switchSysctls); err != nil {
		return fmt.Errorf("in %s: %w", l.Switch, err)
	}
	sw, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", l.Switch, err)
	}
	defer sw.Close()
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}, MulticastSnooping: &off}
	if err := sw.LinkAdd(br); err != nil {
		return fmt.Errorf("creating bridge %s in %s: %w", bridgeName, l.Switch, err)
	}
	if err := sw.LinkSetUp(br); err != nil {
		return fmt.Errorf("setting bridge %s in %s up: %w", bridgeName, l.Switch, err)
	}
	return nil
}

// addHost creates the namespace <prefix>-<role> with eth0 on the bridge.
func (l *Lab) addHost(ctx context.Context, name, role string, num int) (*Host, error) {
	nsName := l.Prefix + "-" + role
	ns, err := addNetns(ctx, nsName)
	if err != nil {
		return nil, err
	}
	l.namespaces = append(l.namespaces, nsName)
	h := &Host{
		Name: name,
		NS:   nsName,
		Link: "eth0",
		IPv4: netip.AddrFrom4([4]byte{198, 51, 100, byte(num)}),
		IPv6: netip.MustParseAddr(fmt.Sprintf("2001:db8:100::%d", num)),
		MAC:  net.HardwareAddr{0x02, 0x00, 0xc6, 0x33, 0x64, byte(num)},
		lab:  l,
		num:  num,
		ns:   ns,
		port: role,
	}
	l.hosts = append(l.hosts, h)
	if err := h.Do(func() error { return setSysctls(hostSysctls) }); err != nil {
		return nil, err
	}
	v4 := netip.PrefixFrom(h.IPv4, Subnet4.Bits())
	v6 := netip.PrefixFrom(h.IPv6, Subnet6.Bits())
	if err := l.addVeth(h, h.port, h.Link, h.MAC, v4, v6); err != nil {
		return nil, err
	}
	return h, nil
}

// addVeth creates a veth pair: port on the bridge in the switch namespace, and peer in h's namespace with mac and
// the addresses v4 and v6 (each optional), both up. Loopback in h's namespace is set up too. It returns once
// frames pass: the kernel brings links, bridge ports and IPv6 addresses into service asynchronously, so the steps
// are ordered to make most of it synchronous and the rest is waited for.
func (l *Lab) addVeth(h *Host, port, peer string, mac net.HardwareAddr, v4, v6 netip.Prefix) error {
	sw, err := netlink.NewHandleAt(l.switchNS)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", l.Switch, err)
	}
	defer sw.Close()
	hn, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", h.NS, err)
	}
	defer hn.Close()
	br, err := sw.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("looking up bridge %s in %s: %w", bridgeName, l.Switch, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: port},
		PeerName:         peer,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(h.ns)),
	}
	if err := sw.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s (switch) / %s (%s): %w", port, peer, h.Name, err)
	}
	link, err := sw.LinkByName(port)
	if err != nil {
		return fmt.Errorf("looking up %s in %s: %w", port, l.Switch, err)
	}
	in, err := hn.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("looking up %s in %s: %w", peer, h.NS, err)
	}
	lo, err := hn.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("looking up lo in %s: %w", h.NS, err)
	}
	if err := hn.LinkSetUp(lo); err != nil {
		return fmt.Errorf("setting lo in %s up: %w", h.NS, err)
	}
	if err := sw.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s in %s up: %w", port, l.Switch, err)
	}
	if err := hn.LinkSetUp(in); err != nil {
		return fmt.Errorf("setting %s in %s up: %w", peer, h.NS, err)
	}
	if err := waitOperUp(sw, port); err != nil {
		return fmt.Errorf("in %s: %w", l.Switch, err)
	}
	if err := waitOperUp(hn, peer); err != nil {
		return fmt.Errorf("in %s: %w", h.NS, err)
	}
	// A port joining the bridge with its carrier up forwards at once (no STP).
	if err := sw.LinkSetMaster(link, br); err != nil {
		return fmt.Errorf("attaching %s to %s in %s: %w", port, bridgeName, l.Switch, err)
	}
	for _, p := range []netip.Prefix{v4, v6} {
		if !p.IsValid() {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := hn.AddrAdd(in, a); err != nil {
			return fmt.Errorf("adding %v to %s in %s: %w", p, peer, h.NS, err)
		}
	}
	if v6.IsValid() {
		if err := h.waitJoined(peer, solicitedNode(v6.Addr())); err != nil {
			return err
		}
	}
	return nil
}

// waitJoined waits until link has joined the IPv6 multicast group: the kernel joins an address's solicited-node
// group from a work queue after the address is added, and until then drops neighbor solicitations for it.
func (h *Host) waitJoined(link string, group netip.Addr) error {
	want := hex.EncodeToString(group.AsSlice())
	deadline := time.Now().Add(operUpTimeout)
	for {
		var joined bool
		err := h.Do(func() error {
			// /proc/self/net is the main thread's namespace; thread-self is this thread's.
			b, err := os.ReadFile("/proc/thread-self/net/igmp6")
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				// index, device, group, users, flags, timer
				if f := strings.Fields(line); len(f) >= 3 && f[1] == link && f[2] == want {
					joined = true
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading the IPv6 multicast groups: %w", err)
		}
		if joined {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s did not join %v in %v", h.Name, link, group, operUpTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// solicitedNode is the solicited-node multicast group of a (RFC 4291 section 2.7.1).
func solicitedNode(a netip.Addr) netip.Addr {
	t := a.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
}

// operUpTimeout bounds the wait for the kernel to see a link's carrier.
const operUpTimeout = 10 * time.Second

// waitOperUp waits until a link's operational state is up. The kernel sets it asynchronously after the carrier
// comes (linkwatch), and only then gives the link a transmit queue, the bridge port its forwarding state and IPv6
// its solicited-node groups: until then frames are dropped.
func waitOperUp(nl *netlink.Handle, name string) error {
	deadline := time.Now().Add(operUpTimeout)
	for {
		link, err := nl.LinkByName(name)
		if err != nil {
			return fmt.Errorf("looking up %s: %w", name, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s not up after %v: operational state %v", name, operUpTimeout, link.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AddLink gives h another interface, name, on the lab bridge (a decoy, a second path), with the given addresses,
// each optional and within the lab's subnets. Its MAC is 02:<k>:c6:33:64:<n> for h's k-th added link.
func (l *Lab) AddLink(h *Host, name string, v4, v6 netip.Prefix) error {
	if name == "" || len(name) > unix.IFNAMSIZ-1 || name == h.Link || name == "lo" {
		return fmt.Errorf("link name %q for %s: want 1 to 15 characters, not %s or lo", name, h.Name, h.Link)
	}
	if v4.IsValid() && (!v4.Addr().Is4() || !Subnet4.Contains(v4.Addr())) {
		return fmt.Errorf("address %v for %s %s: not in the lab's %v", v4, h.Name, name, Subnet4)
	}
	if v6.IsValid() && (!v6.Addr().Is6() || !Subnet6.Contains(v6.Addr())) {
		return fmt.Errorf("address %v for %s %s: not in the lab's %v", v6, h.Name, name, Subnet6)
	}
	h.mu.Lock()
	h.extras++
	k := h.extras
	h.mu.Unlock()
	if k > 255 {
		return errors.New("too many links")
	}
	mac := net.HardwareAddr{0x02, byte(k), 0xc6, 0x33, 0x64, byte(h.num)}
	return l.addVeth(h, fmt.Sprintf("%sx%d", h.port, k), name, mac, v4, v6)
}

// waitForwarding waits until the bridge forwards on port: the bridge enables a port when the kernel has seen its
// carrier, asynchronously after the port is set up.
func (l *Lab) waitForwarding(port string) error {
	deadline := time.Now().Add(operUpTimeout)
	for {
		out, err := exec.Command("bridge", "-n", l.Switch, "-j", "link", "show", "dev", port).CombinedOutput()
		if err != nil {
			return fmt.Errorf("looking up bridge port %s in %s: %w: %s", port, l.Switch, err, tail(out))
		}
		var ports []struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(out, &ports); err != nil {
			return fmt.Errorf("parsing bridge port %s in %s: %w", port, l.Switch, err)
		}
		if len(ports) == 1 && ports[0].State == "forwarding" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge port %s in %s not forwarding after %v: %s", port, l.Switch, operUpTimeout, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SetLink sets the bridge side of h's lab link up or down: a cable pulled and put back, seen by h as carrier
// loss. Setting it up returns once frames pass again.
func (l *Lab) SetLink(h *Host, up bool) error {
	sw, err := netlink.NewHandleAt(l.switchNS)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", l.Switch, err)
	}
	defer sw.Close()
	link, err := sw.LinkByName(h.port)
	if err != nil {
		return fmt.Errorf("looking up %s's port %s in %s: %w", h.Name, h.port, l.Switch, err)
	}
	if !up {
		if err := sw.LinkSetDown(link); err != nil {
			return fmt.Errorf("setting %s's port %s down: %w", h.Name, h.port, err)
		}
		return nil
	}
	if err := sw.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s's port %s up: %w", h.Name, h.port, err)
	}
	if err := l.waitForwarding(h.port); err != nil {
		return err
	}
	hn, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", h.NS, err)
	}
	defer hn.Close()
	if err := waitOperUp(hn, h.Link); err != nil {
		return fmt.Errorf("in %s: %w", h.NS, err)
	}
	return nil
}
