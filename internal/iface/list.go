package iface

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// dumpRetries is how often a dump the kernel interrupted (the set changed
// while it was read) is retried before List fails.
const dumpRetries = 5

// isCurrent reports whether ns means the caller's own namespace: 0 (as
// documented) or -1 (netns.None()).
func isCurrent(ns netns.NsHandle) bool { return ns <= 0 }

// nsName describes ns for error messages.
func nsName(ns netns.NsHandle) string {
	if isCurrent(ns) {
		return "current namespace"
	}
	return "namespace " + ns.String()
}

// List returns the links of namespace ns (0 = current) with their addresses,
// sorted by name.
func List(ns netns.NsHandle) ([]Link, error) {
	h, err := newHandle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, addrs, err := dump(h)
	if err != nil {
		return nil, fmt.Errorf("list interfaces in %s: %w", nsName(ns), err)
	}
	return build(links, addrs).snapshot(), nil
}

func newHandle(ns netns.NsHandle) (*netlink.Handle, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if isCurrent(ns) {
		h, err = netlink.NewHandle()
	} else {
		h, err = netlink.NewHandleAt(ns)
	}
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink in %s: %w", nsName(ns), err)
	}
	return h, nil
}

// dump lists all links and all addresses, retrying interrupted dumps.
func dump(h *netlink.Handle) ([]netlink.Link, []netlink.Addr, error) {
	var err error
	for range dumpRetries {
		var (
			links []netlink.Link
			addrs []netlink.Addr
		)
		if links, err = h.LinkList(); err != nil {
			err = fmt.Errorf("dump links: %w", err)
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				continue
			}
			return nil, nil, err
		}
		if addrs, err = h.AddrList(nil, netlink.FAMILY_ALL); err != nil {
			err = fmt.Errorf("dump addresses: %w", err)
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				continue
			}
			return nil, nil, err
		}
		return links, addrs, nil
	}
	return nil, nil, err
}

// build makes an inventory from dumped links and addresses.
func build(links []netlink.Link, addrs []netlink.Addr) *inventory {
	inv := newInventory()
	for _, l := range links {
		inv.setLink(l)
	}
	for _, a := range addrs {
		inv.setAddr(a.LinkIndex, a.IPNet, a.Scope, true)
	}
	return inv
}
