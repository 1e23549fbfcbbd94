//go:build linux

package iface

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/heraldlb/herald/internal/netnstest"
)

// testNS is a network namespace of one test, removed when it ends.
type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

// newTestNS creates the namespace with lo down, as a fresh namespace has it
// (netnstest brings it up; TestWatcherInNamespace watches it come up).
func newTestNS(t *testing.T) *testNS {
	t.Helper()
	ns := netnstest.New(t, "iface")
	h, err := netlink.NewHandleAt(ns.Handle)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", ns.Name, err)
	}
	t.Cleanup(h.Close)
	n := &testNS{name: ns.Name, ns: ns.Handle, h: h}
	n.must(t, "set down lo", h.LinkSetDown(n.link(t, "lo")))
	return n
}

func (n *testNS) must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s in %s: %v", what, n.name, err)
	}
}

func (n *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	n.must(t, "find link "+name, err)
	return l
}

// addVeth creates a veth pair and sets both ends up, so the first is
// operationally up.
func (n *testNS) addVeth(t *testing.T, name, peer string) netlink.Link {
	t.Helper()
	n.must(t, "add veth "+name, n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}))
	n.must(t, "set up "+peer, n.h.LinkSetUp(n.link(t, peer)))
	n.must(t, "set up "+name, n.h.LinkSetUp(n.link(t, name)))
	return n.link(t, name)
}

func (n *testNS) addAddr(t *testing.T, l netlink.Link, cidr string) {
	t.Helper()
	a := &netlink.Addr{IPNet: ipnet(cidr)}
	if strings.Contains(cidr, ":") {
		a.Flags = 0x02 // IFA_F_NODAD: usable at once
	}
	n.must(t, "add "+cidr+" to "+l.Attrs().Name, n.h.AddrAdd(l, a))
}

// snapshots runs a Watcher on ns and returns a function waiting for a
// snapshot satisfying ok.
func watch(t *testing.T, ns netns.NsHandle) func(what string, ok func([]Link) bool) []Link {
	t.Helper()
	w := NewWatcher(WatcherOptions{Namespace: ns, Logger: testr.New(t)})
	snaps := make(chan []Link, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(ls []Link) { snaps <- ls }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	var last []Link
	return func(what string, ok func([]Link) bool) []Link {
		t.Helper()
		timeout := time.After(waitTimeout)
		for {
			select {
			case s := <-snaps:
				last = s
				if ok(s) {
					return s
				}
			case <-timeout:
				t.Fatalf("no snapshot where %s within %v; last: %+v", what, waitTimeout, last)
			}
		}
	}
}
