package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
)

// The lab's VLAN: its id and subnets (a host's address on it ends in the host's number, as on the lab link).
const (
	vlanID   = 100
	vlanPool = "198.18.100.100-198.18.100.109"
	vlanV6   = "2001:db8:164::100-2001:db8:164::109"
)

func vlanAddrs(h *lab.Host) (netip.Prefix, netip.Prefix) {
	n := h.IPv4.As4()[3]
	return netip.MustParsePrefix(fmt.Sprintf("198.18.100.%d/24", n)), netip.MustParsePrefix(fmt.Sprintf("2001:db8:164::%x/64", n))
}

// testVLAN runs the VLAN scenarios: what reaches a node's parent interface tagged is not answered there (any
// kernel), and an advertisement naming eth0.100 is answered there and only there (a kernel with 802.1Q).
func testVLAN(t *testing.T, c *cluster) {
	t.Run("tagged requests are not answered on the parent", func(t *testing.T) { testTaggedAtParent(t, c) })
	t.Run("answered on eth0.100 and only there", func(t *testing.T) { testVLANSubInterface(t, c) })
}

// testVLANSubInterface: the nodes and the client are on VLAN 100 through sub-interfaces of their lab links (eth0.100), beside
// the untagged lab network. The lab bridge does not filter VLANs (the lab's kernel refuses vlan_filtering), so it
// carries the tagged frames like a trunk carrying every VLAN, and each host's kernel hands them to eth0.100 or
// drops them. An advertisement names eth0.100. Before any node has that sub-interface the address is
// elected but answered nowhere (NoInterface); once the nodes get it (the speakers learn it from netlink) the
// announcer answers ARP and NDP on VLAN 100, where the client's eth0.100 sees one MAC, and not on the untagged
// network, where the client's eth0 asking for the same addresses hears nobody. Removing and re-creating the
// announcer's sub-interface (a new interface index) is followed too.
func testVLANSubInterface(t *testing.T, c *cluster) {
	c = withT(c, t)
	if err := c.lab.DelVLAN(c.lab.Client, vlanID); err != nil {
		t.Fatal(err)
	}
	v4, v6 := vlanAddrs(c.lab.Client)
	if _, err := c.lab.AddVLAN(c.lab.Client, vlanID, v4, v6); errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("this kernel cannot make VLAN sub-interfaces (%v: no CONFIG_VLAN_8021Q); the scenario needs one", err)
	} else if err != nil {
		t.Fatal(err)
	}
	hosts := []*lab.Host{c.lab.Client}
	for _, h := range c.hosts {
		hosts = append(hosts, h)
	}
	defer func() {
		for _, h := range hosts {
			if err := c.lab.DelVLAN(h, vlanID); err != nil {
				t.Error(err)
			}
		}
	}()
	sub := c.lab.Client.Link + "." + fmt.Sprint(vlanID)
	c.pool("vlan", []string{vlanPool, vlanV6}, func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{sub} })
	svc, addrs := c.service("vlan", "web", "vlan", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	defer c.delete(svc)
	if len(addrs) != 2 {
		t.Fatalf("dual-stack Service got %v", addrs)
	}
	c.waitReason(svc, "NoInterface", "")

	// The nodes get their sub-interfaces (the client has one already), made in code with netlink.
	for _, h := range hosts[1:] {
		v4, v6 := vlanAddrs(h)
		if _, err := c.lab.AddVLAN(h, vlanID, v4, v6); err != nil {
			t.Fatal(err)
		}
	}
	var p4, p6 *probe.Prober
	if err := c.lab.Client.Do(func() error {
		ifi, err := net.InterfaceByName(sub)
		if err != nil {
			return err
		}
		v4, v6 := vlanAddrs(c.lab.Client)
		if p4, err = probe.New(wire.InterfaceOf(ifi), v4.Addr()); err != nil {
			return err
		}
		p6, err = probe.New(wire.InterfaceOf(ifi), v6.Addr())
		return err
	}); err != nil {
		t.Fatalf("opening probers on the client's %s: %v", sub, err)
	}
	defer p4.Close()
	defer p6.Close()
	onVLAN := func(a netip.Addr) []string {
		p := p4
		if a.Is6() {
			p = p6
		}
		replies, err := p.Once(c.ctx, a, 300*time.Millisecond)
		if err != nil {
			t.Fatalf("probing %s on %s: %v", a, sub, err)
		}
		var macs []string
		for _, r := range replies {
			if m := r.MAC.String(); !slices.Contains(macs, m) {
				macs = append(macs, m)
			}
		}
		return macs
	}
	answered := func(node string) {
		t.Helper()
		for _, a := range addrs {
			c.eventually(20*time.Second, fmt.Sprintf("%s answered on VLAN %d by %s alone", a, vlanID, node), func() (bool, string) {
				got := onVLAN(a)
				return len(got) == 1 && got[0] == c.hosts[node].MAC.String(), fmt.Sprintf("responders %v", got)
			})
		}
	}

	node, _ := c.announcer(svc, "")
	c.eventually(20*time.Second, "the Announcement to name "+sub, func() (bool, string) {
		var an *heraldv1.Announcement
		node, an = c.announcer(svc, "")
		return slices.Equal(an.Status.Interfaces, []string{sub}), fmt.Sprintf("%s on %v", node, an.Status.Interfaces)
	})
	answered(node)
	mac := c.hosts[node].MAC.String()
	t.Logf("%v announced by %s on %s", addrs, node, sub)

	// Not on the parent: the untagged network (VLAN 1) hears nothing for these addresses.
	for _, a := range addrs {
		c.silent(a)
	}

	// Real clients on the VLAN: iputils arping and ndisc6 see one MAC, and the client kernel resolves the
	// address on eth0.100 to the announcer.
	out, err := c.lab.Client.Run(c.ctx, "arping", "-c", "3", "-w", "3", "-I", sub, addrs[0].String())
	if err != nil {
		t.Fatalf("arping: %v\n%s", err, out)
	}
	if got := macsIn(string(out)); !slices.Equal(got, []string{mac}) {
		t.Errorf("arping on %s saw %v, want only %s:\n%s", sub, got, mac, out)
	}
	out, err = c.lab.Client.Run(c.ctx, "ndisc6", "-m", "-n", "-r", "3", "-w", "1000", addrs[1].String(), sub)
	if err != nil {
		t.Fatalf("ndisc6: %v\n%s", err, out)
	}
	if got := macsIn(string(out)); !slices.Equal(got, []string{mac}) {
		t.Errorf("ndisc6 on %s saw %v, want only %s:\n%s", sub, got, mac, out)
	}
	_, _ = c.lab.Client.Run(c.ctx, "ping", "-c", "1", "-W", "1", addrs[0].String()) // no echo reply: the node does not own the address
	got, err := c.lab.Client.Run(c.ctx, "ip", "neigh", "show", addrs[0].String(), "dev", sub)
	if err != nil || len(macsIn(string(got))) != 1 || macsIn(string(got))[0] != mac {
		t.Errorf("client neighbour entry on %s for %s: %q (%v), want %s", sub, addrs[0], got, err, mac)
	}

	// The announcer's sub-interface goes and comes back with a new index: the speaker follows it.
	if err := c.lab.DelVLAN(c.hosts[node], vlanID); err != nil {
		t.Fatal(err)
	}
	c.eventually(20*time.Second, "silence on VLAN 100 without the sub-interface", func() (bool, string) {
		got := onVLAN(addrs[0])
		return len(got) == 0 || got[0] != mac, fmt.Sprintf("responders %v", got)
	})
	v4, v6 = vlanAddrs(c.hosts[node])
	if _, err := c.lab.AddVLAN(c.hosts[node], vlanID, v4, v6); err != nil {
		t.Fatal(err)
	}
	node2, _ := c.announcer(svc, "")
	answered(node2)
	for _, a := range addrs {
		c.silent(a)
	}
}

// testTaggedAtParent: a client on VLAN 100 asks for addresses the nodes announce on eth0, untagged. The request
// reaches every node's eth0 tagged (the bridge carries it like any frame); a node without eth0.100 must not answer
// it on eth0, where the reply would go out untagged into the other network. The same requests untagged are
// answered, by the announcer: the requests are right and only the tag differs.
func testTaggedAtParent(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("vlan", "parent", "lab", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	defer c.delete(svc)
	node := c.settled(svc, addrs[0])
	mac := c.hosts[node].MAC.String()
	for _, a := range addrs {
		if got := c.askTagged(a, 0); !slices.Equal(got, []string{mac}) {
			t.Errorf("untagged request for %s answered by %v, want %s (%s) alone", a, got, node, mac)
		}
		if got := c.askTagged(a, vlanID); len(got) > 0 {
			t.Errorf("request for %s tagged with VLAN %d answered by %v on a parent interface, want nobody", a, vlanID, got)
		}
	}
}

// askTagged sends from the client's lab link, three times, an ARP request (IPv4) or a Neighbor Solicitation
// (IPv6) for addr with an 802.1Q tag for VLAN vid (none when vid is 0), and returns the MACs of the ARP replies
// or Neighbor Advertisements for addr seen within a second, sorted.
func (c *cluster) askTagged(addr netip.Addr, vid int) []string {
	c.t.Helper()
	cl := c.lab.Client
	var conn *wire.Conn
	if err := cl.Do(func() error {
		ifi, err := net.InterfaceByName(cl.Link)
		if err != nil {
			return err
		}
		conn, err = wire.Listen(ifi, wire.Config{}) // every EtherType
		return err
	}); err != nil {
		c.t.Fatalf("opening a raw socket on the client: %v", err)
	}
	defer conn.Close()
	self := [6]byte(cl.MAC)
	frame := make([]byte, wire.NDLinkFrameLen)
	var n int
	if addr.Is4() {
		n = wire.PutARP(frame, wire.BroadcastMAC, self, &wire.ARP{Op: wire.ARPRequest, SenderMAC: self,
			SenderIP: cl.IPv4.As4(), TargetIP: addr.As4()})
	} else {
		group := wire.SolicitedNode(addr.As16())
		n = wire.PutND(frame, &wire.ND{Eth: wire.Ethernet{Dst: wire.MulticastMAC(group), Src: self}, Src: cl.IPv6.As16(),
			Dst: group, Type: wire.ICMPTypeNS, Target: addr.As16(), LinkAddr: self, HasLinkAddr: true})
	}
	frame = frame[:n]
	if vid != 0 {
		tag := []byte{0x81, 0x00, byte(vid >> 8), byte(vid)} // TPID 0x8100, priority 0, VLAN id
		frame = slices.Concat(frame[:12], tag, frame[12:])
	}
	var macs []string
	done := make(chan struct{})
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	go func() {
		defer close(done)
		buf := make([]byte, 1600)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var from [6]byte
			switch eth, arp, f := wire.ParseARP(buf[:n]); {
			case f == wire.OK && arp.Op == wire.ARPReply && netip.AddrFrom4(arp.SenderIP) == addr:
				from = eth.Src
			default:
				nd, f := wire.ParseND(buf[:n], wire.AcceptNA, 4)
				if f != wire.OK || nd.Type != wire.ICMPTypeNA || netip.AddrFrom16(nd.Target) != addr {
					continue
				}
				from = nd.Eth.Src
			}
			if m := net.HardwareAddr(from[:]).String(); from != self && !slices.Contains(macs, m) {
				macs = append(macs, m)
			}
		}
	}()
	for range 3 {
		if _, err := conn.WriteTo(frame, nil); err != nil {
			c.t.Fatalf("sending on the client: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	<-done
	slices.Sort(macs)
	return macs
}
