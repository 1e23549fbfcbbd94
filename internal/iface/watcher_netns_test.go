//go:build linux

package iface

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestWatcherInNamespace follows a namespace through links appearing, gaining
// addresses, going down, joining a bridge or bond, and disappearing.
func TestWatcherInNamespace(t *testing.T) {
	n := newTestNS(t)
	wait := watch(t, n.ns)

	first := wait("lo is listed", func(ls []Link) bool { _, ok := find(ls, "lo"); return ok })
	if diff := cmp.Diff([]string{"lo"}, names(first)); diff != "" {
		t.Errorf("first snapshot (-want +got):\n%s", diff)
	}
	n.must(t, "set up lo", n.h.LinkSetUp(n.link(t, "lo")))
	wait("lo up (operstate unknown)", func(ls []Link) bool { l, _ := find(ls, "lo"); return l.Up && l.Loopback })

	v := n.addVeth(t, "htv0", "htv1")
	got := wait("htv0 up", func(ls []Link) bool { l, _ := find(ls, "htv0"); return l.Up })
	l, _ := find(got, "htv0")
	if diff := cmp.Diff(Link{Index: v.Attrs().Index, Name: "htv0", MAC: v.Attrs().HardwareAddr, Kind: "veth", Up: true}, l, cmpLinks,
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Prefixes" }, cmp.Ignore())); diff != "" {
		t.Errorf("htv0 (-want +got):\n%s", diff)
	}
	if l.Unusable() != "" {
		t.Errorf("htv0 unusable: %s", l.Unusable())
	}

	n.addAddr(t, v, "198.51.100.2/24")
	n.addAddr(t, v, "2001:db8:1::2/64")
	want := prefixes("198.51.100.2/24", "2001:db8:1::2/64")
	wait("htv0 has its addresses", func(ls []Link) bool {
		l, _ := find(ls, "htv0")
		return !slices.ContainsFunc(want, func(p netip.Prefix) bool { return !slices.Contains(l.Prefixes, p) })
	})
	n.must(t, "delete address", n.h.AddrDel(v, &netlink.Addr{IPNet: ipnet("198.51.100.2/24")}))
	wait("htv0 lost 198.51.100.2/24", func(ls []Link) bool {
		l, _ := find(ls, "htv0")
		return !slices.Contains(l.Prefixes, netip.MustParsePrefix("198.51.100.2/24")) && slices.Contains(l.Prefixes, netip.MustParsePrefix("2001:db8:1::2/64"))
	})

	n.must(t, "set down htv0", n.h.LinkSetDown(v))
	got = wait("htv0 down", func(ls []Link) bool { l, ok := find(ls, "htv0"); return ok && !l.Up })
	if l, _ := find(got, "htv0"); l.Unusable() != ReasonDown {
		t.Errorf("htv0 down: Unusable = %q, want %q", l.Unusable(), ReasonDown)
	}

	n.must(t, "add bridge", n.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "htbr0"}}))
	br := n.link(t, "htbr0")
	n.must(t, "enslave htv1", n.h.LinkSetMaster(n.link(t, "htv1"), br))
	got = wait("htv1 is a bridge port", func(ls []Link) bool { l, _ := find(ls, "htv1"); return l.MasterKind == "bridge" })
	if l, _ := find(got, "htv1"); l.MasterIndex != br.Attrs().Index || l.Unusable() != ReasonBridgePort {
		t.Errorf("htv1 master index %d (want %d), unusable %q", l.MasterIndex, br.Attrs().Index, l.Unusable())
	}
	n.must(t, "release htv1", n.h.LinkSetNoMaster(n.link(t, "htv1")))
	wait("htv1 left the bridge", func(ls []Link) bool {
		l, ok := find(ls, "htv1")
		return ok && l.MasterIndex == 0 && l.MasterKind == ""
	})

	t.Run("bond slave", func(t *testing.T) {
		err := n.h.LinkAdd(netlink.NewLinkBond(netlink.LinkAttrs{Name: "htbond0"}))
		if err != nil {
			t.Skipf("this kernel cannot create a bond (bonding module missing?): %v", err)
		}
		s := n.addVeth(t, "htv2", "htv3")
		n.must(t, "set down htv2", n.h.LinkSetDown(s))
		n.must(t, "enslave htv2", n.h.LinkSetMaster(s, n.link(t, "htbond0")))
		got := wait("htv2 is a bond slave", func(ls []Link) bool { l, _ := find(ls, "htv2"); return l.MasterKind == "bond" })
		if l, _ := find(got, "htv2"); l.Unusable() != ReasonBondSlave {
			t.Errorf("htv2 unusable %q, want %q", l.Unusable(), ReasonBondSlave)
		}
	})

	n.must(t, "delete htv0", n.h.LinkDel(v))
	got = wait("the veth pair is gone", func(ls []Link) bool {
		_, a := find(ls, "htv0")
		_, b := find(ls, "htv1")
		return !a && !b
	})
	if _, ok := find(got, "htbr0"); !ok {
		t.Errorf("htbr0 missing after deleting the veth: %v", names(got))
	}
}

// TestListAndSelectInNamespace lists a namespace whose routing table
// disagrees with its addresses and checks that Select follows the addresses.
func TestListAndSelectInNamespace(t *testing.T) {
	n := newTestNS(t)
	a := n.addVeth(t, "hta0", "hta1")
	b := n.addVeth(t, "htb0", "htb1")
	d := n.addVeth(t, "htdecoy0", "htdecoy1")
	n.addAddr(t, a, "198.51.100.2/24")
	n.addAddr(t, a, "2001:db8:1::2/64")
	n.addAddr(t, b, "203.0.113.2/24")
	n.addAddr(t, d, "198.51.100.77/32")
	n.addAddr(t, d, "2001:db8:1::77/128")
	// Stray routes, as DHCP clients and CNIs leave them: the VIP and subnets
	// routed out of the wrong links.
	for _, r := range []struct {
		link netlink.Link
		dst  string
	}{
		{b, "198.51.100.10/32"},
		{d, "198.51.100.0/25"},
		{d, "203.0.113.0/26"},
		{b, "2001:db8:1::10/128"},
	} {
		n.must(t, "route "+r.dst, n.h.RouteAdd(&netlink.Route{LinkIndex: r.link.Attrs().Index, Dst: ipnet(r.dst), Scope: netlink.SCOPE_LINK}))
	}

	links, err := List(n.ns)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hta0", "hta1", "htb0", "htb1", "htdecoy0", "htdecoy1", "lo"}, names(links)); diff != "" {
		t.Fatalf("List names (-want +got):\n%s", diff)
	}
	if l, _ := find(links, "hta0"); !slices.Equal(l.MAC, a.Attrs().HardwareAddr) || !l.Up || l.Kind != "veth" || l.Index != a.Attrs().Index {
		t.Errorf("hta0 = %+v", l)
	}

	tests := []struct {
		addr string
		want []string
	}{
		{addr: "198.51.100.10", want: []string{"hta0"}},
		{addr: "198.51.100.77", want: []string{"hta0", "htdecoy0"}},
		{addr: "203.0.113.10", want: []string{"htb0"}},
		{addr: "2001:db8:1::10", want: []string{"hta0"}},
		{addr: "2001:db8:1::77", want: []string{"hta0", "htdecoy0"}},
		{addr: "2001:db8:2::10", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			choices, _ := Select(netip.MustParseAddr(tc.addr), links, nil)
			var got []string
			for _, c := range choices {
				got = append(got, c.Link.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCurrentNamespace lists and watches the test's own namespace, read only.
func TestCurrentNamespace(t *testing.T) {
	for _, ns := range []netns.NsHandle{0, netns.None()} {
		links, err := List(ns)
		if err != nil {
			t.Fatalf("List(%d): %v", ns, err)
		}
		if !slices.ContainsFunc(links, func(l Link) bool { return l.Loopback }) {
			t.Errorf("List(%d) has no loopback: %v", ns, names(links))
		}
	}
	w := NewWatcher(WatcherOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	snaps := make(chan []Link, 100)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(ls []Link) { snaps <- ls }) }()
	select {
	case s := <-snaps:
		if !slices.ContainsFunc(s, func(l Link) bool { return l.Loopback }) {
			t.Errorf("first snapshot has no loopback: %v", names(s))
		}
	case <-time.After(waitTimeout):
		t.Fatal("no snapshot")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}
