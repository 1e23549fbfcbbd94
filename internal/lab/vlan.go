package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The ranges a VLAN of the lab may use: documentation ranges outside the lab's own subnets (Subnet4, Subnet6).
var (
	vlanRange4 = netip.MustParsePrefix("198.18.0.0/15")
	vlanRange6 = netip.MustParsePrefix("2001:db8::/32")
)

// AddVLAN gives h an 802.1Q sub-interface of its lab link for VLAN id, named <link>.<id> (what `ip link add link
// eth0 name eth0.100 type vlan id 100` makes), up, with the given addresses, each optional, in 198.18.0.0/15 or
// 2001:db8::/32 but outside the lab's subnets. It has the lab link's MAC, as a VLAN sub-interface has by default.
// Frames it sends leave tagged. The lab bridge does not filter VLANs (the kernels the lab runs on may lack
// CONFIG_BRIDGE_VLAN_FILTERING): it carries tagged frames to every port like any other, and each host's kernel
// delivers them to its sub-interface for the VLAN, or drops them when it has none, as on a trunk port.
// It returns the sub-interface's name once it passes frames.
func (l *Lab) AddVLAN(h *Host, id int, v4, v6 netip.Prefix) (string, error) {
	if id < 2 || id > 4094 {
		return "", fmt.Errorf("VLAN %d for %s: want 2 to 4094 (1 is the lab's untagged VLAN)", id, h.Name)
	}
	if v4.IsValid() && (!v4.Addr().Is4() || !vlanRange4.Contains(v4.Addr()) || Subnet4.Overlaps(v4)) {
		return "", fmt.Errorf("address %v for %s VLAN %d: not in %v, or in the lab's %v", v4, h.Name, id, vlanRange4, Subnet4)
	}
	if v6.IsValid() && (!v6.Addr().Is6() || !vlanRange6.Contains(v6.Addr()) || Subnet6.Overlaps(v6)) {
		return "", fmt.Errorf("address %v for %s VLAN %d: not in %v, or in the lab's %v", v6, h.Name, id, vlanRange6, Subnet6)
	}
	name := h.Link + "." + strconv.Itoa(id)
	hn, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return "", fmt.Errorf("opening netlink in %s: %w", h.NS, err)
	}
	defer hn.Close()
	parent, err := hn.LinkByName(h.Link)
	if err != nil {
		return "", fmt.Errorf("looking up %s in %s: %w", h.Link, h.NS, err)
	}
	vl := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index}, VlanId: id}
	if err := hn.LinkAdd(vl); err != nil {
		return "", fmt.Errorf("creating %s in %s: %w", name, h.NS, err)
	}
	link, err := hn.LinkByName(name)
	if err == nil {
		err = hn.LinkSetUp(link)
	}
	if err == nil {
		err = waitOperUp(hn, name)
	}
	for _, p := range []netip.Prefix{v4, v6} {
		if err != nil || !p.IsValid() {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err = hn.AddrAdd(link, a); err != nil {
			err = fmt.Errorf("adding %v to %s in %s: %w", p, name, h.NS, err)
		}
	}
	if err == nil && v6.IsValid() {
		err = h.waitJoined(name, solicitedNode(v6.Addr()))
	}
	if err != nil {
		return "", errors.Join(err, l.DelVLAN(h, id))
	}
	return name, nil
}

// DelVLAN removes h's sub-interface for VLAN id; it is not an error when there is none.
func (l *Lab) DelVLAN(h *Host, id int) error {
	hn, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", h.NS, err)
	}
	defer hn.Close()
	name := h.Link + "." + strconv.Itoa(id)
	link, err := hn.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err == nil {
		err = hn.LinkDel(link)
	}
	if err != nil {
		return fmt.Errorf("removing %s in %s: %w", name, h.NS, err)
	}
	return nil
}
