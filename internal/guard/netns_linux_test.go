//go:build linux

package guard

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/heraldlb/herald/internal/netnstest"
	"github.com/heraldlb/herald/internal/wire"
)

// netnsLab is two namespaces, a and b, joined by the veth pair va/vb.
type netnsLab struct {
	a, b *netnstest.NS
	va   wire.Interface
}

var (
	labMACA = [6]byte{2, 0, 0, 0, 0, 0x0a}
	labMACB = [6]byte{2, 0, 0, 0, 0, 0x0b}
)

func newNetnsLab(t *testing.T) *netnsLab {
	t.Helper()
	netnstest.NeedRoot(t)
	netnstest.NeedTools(t, "ip", "arping")
	l := &netnsLab{a: netnstest.New(t, "guard-a"), b: netnstest.New(t, "guard-b")}
	netnstest.Run(t, "ip", "link", "add", "va", "netns", l.a.Name, "type", "veth", "peer", "name", "vb", "netns", l.b.Name)
	l.a.Run(t, "ip", "link", "set", "va", "address", net.HardwareAddr(labMACA[:]).String(), "up")
	l.b.Run(t, "ip", "link", "set", "vb", "address", net.HardwareAddr(labMACB[:]).String(), "up")
	l.a.Run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "va")
	l.b.Run(t, "ip", "addr", "add", "198.51.100.50/24", "dev", "vb")
	l.b.Run(t, "ip", "addr", "add", "2001:db8:100::50/64", "dev", "vb", "nodad")
	h, err := netlink.NewHandleAt(l.a.Handle)
	if err != nil {
		t.Fatalf("netlink.NewHandleAt: %v", err)
	}
	defer h.Close()
	link, err := h.LinkByName("va")
	if err != nil {
		t.Fatalf("LinkByName(va): %v", err)
	}
	l.va = wire.Interface{Index: link.Attrs().Index, Name: "va", MAC: link.Attrs().HardwareAddr}
	return l
}

// listen is a Config.Listen opening the real sockets inside a.
func (l *netnsLab) listen(ifi wire.Interface) (Conns, error) {
	var c Conns
	err := l.a.Do(func() error {
		var err error
		c, err = ListenInterface(ifi)
		return err
	})
	return c, err
}

// awaitObservation reads observations until one matches or 5s pass.
func awaitObservation(t *testing.T, w *Watcher, match func(Observation) bool) Observation {
	t.Helper()
	timeout := time.After(5 * time.Second)
	var seen []Observation
	for {
		select {
		case o := <-w.Observations():
			if match(o) {
				return o
			}
			seen = append(seen, o)
		case <-timeout:
			t.Fatalf("no matching observation; saw %+v", seen)
		}
	}
}

func TestNetns(t *testing.T) {
	lab := newNetnsLab(t)
	m := newTestMetrics()
	w := New(Config{Listen: lab.listen, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		w.Close()
		<-runErr
	})
	w.SetInterfaces([]wire.Interface{lab.va})
	macB := net.HardwareAddr(labMACB[:])
	macA := net.HardwareAddr(labMACA[:])
	pc := ProbeConfig{Count: 3, Interval: 30 * time.Millisecond, Wait: 200 * time.Millisecond}
	responders := func(rs []Responder) []Responder {
		out := make([]Responder, len(rs))
		for i, r := range rs {
			out[i] = Responder{MAC: r.MAC, Kind: r.Kind, Outgoing: r.Outgoing}
		}
		return out
	}

	t.Run("ARP probe answered by B's kernel", func(t *testing.T) {
		got, err := w.Probe(ctx, lab.va, mustAddr("198.51.100.50"), pc)
		if err != nil {
			t.Fatalf("Probe: %v", err)
		}
		if diff := cmp.Diff([]Responder{{MAC: macB, Kind: KindARPReply}}, responders(got)); diff != "" {
			t.Errorf("responders (-want +got):\n%s", diff)
		}
	})
	t.Run("ARP probe of an unowned address", func(t *testing.T) {
		got, err := w.Probe(ctx, lab.va, mustAddr("198.51.100.77"), pc)
		if err != nil || len(got) != 0 {
			t.Errorf("Probe = %+v, %v; want no responders", got, err)
		}
	})
	t.Run("DAD answered by B's kernel", func(t *testing.T) {
		got, err := w.Probe(ctx, lab.va, mustAddr("2001:db8:100::50"), pc)
		if err != nil {
			t.Fatalf("Probe: %v", err)
		}
		if diff := cmp.Diff([]Responder{{MAC: macB, Kind: KindNA}}, responders(got)); diff != "" {
			t.Errorf("responders (-want +got):\n%s", diff)
		}
	})
	t.Run("DAD of an unowned address", func(t *testing.T) {
		got, err := w.Probe(ctx, lab.va, mustAddr("2001:db8:100::77"), pc)
		if err != nil || len(got) != 0 {
			t.Errorf("Probe = %+v, %v; want no responders", got, err)
		}
	})

	w.SetVIPs([]netip.Addr{mustAddr("198.51.100.51"), mustAddr("198.51.100.1")})
	t.Run("gratuitous ARP from B", func(t *testing.T) {
		lab.b.Run(t, "ip", "addr", "add", "198.51.100.51/32", "dev", "vb")
		lab.b.Run(t, "arping", "-U", "-c", "1", "-I", "vb", "-s", "198.51.100.51", "198.51.100.51")
		o := awaitObservation(t, w, func(o Observation) bool { return o.VIP == mustAddr("198.51.100.51") })
		want := Observation{VIP: mustAddr("198.51.100.51"), MAC: macB, Kind: KindARPAnnouncement, Interface: "va", At: o.At}
		if diff := cmpDiff(want, o); diff != "" {
			t.Errorf("observation (-want +got):\n%s", diff)
		}
	})
	t.Run("our own kernel answering", func(t *testing.T) {
		lab.b.Run(t, "arping", "-c", "1", "-w", "2", "-I", "vb", "198.51.100.1")
		o := awaitObservation(t, w, func(o Observation) bool { return o.VIP == mustAddr("198.51.100.1") })
		want := Observation{VIP: mustAddr("198.51.100.1"), MAC: macA, Kind: KindARPReply, Interface: "va", Outgoing: true, At: o.At}
		if diff := cmpDiff(want, o); diff != "" {
			t.Errorf("observation (-want +got):\n%s", diff)
		}
	})
	// The filters keep ordinary requests out of user space: B's request for
	// 198.51.100.1 above never reached the reader as a frame.
	if got := frameCount(m, familyIPv4, resultNotManaged); got != 0 {
		t.Errorf("%v unmanaged ARP frames reached user space, want 0 (ordinary requests are filtered)", got)
	}
}
