//go:build linux

package guard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var nsSeq atomic.Int64

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNamespace runs fn on a fresh OS thread switched to ns; the thread is
// never unlocked, so it dies with the goroutine and nothing else runs in ns.
func inNamespace(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// netnsLab is two namespaces, a and b, joined by the veth pair va/vb.
type netnsLab struct {
	a, b string
	aNS  netns.NsHandle
	va   Interface
}

var (
	labMACA = [6]byte{2, 0, 0, 0, 0, 0x0a}
	labMACB = [6]byte{2, 0, 0, 0, 0, 0x0b}
)

func newNetnsLab(t *testing.T) *netnsLab {
	t.Helper()
	needRoot(t)
	for _, tool := range []string{"ip", "arping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: %v", tool, err)
		}
	}
	n := nsSeq.Add(1)
	l := &netnsLab{a: fmt.Sprintf("htest-guard-%d-%d-a", os.Getpid(), n), b: fmt.Sprintf("htest-guard-%d-%d-b", os.Getpid(), n)}
	for _, ns := range []string{l.a, l.b} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "va", "netns", l.a, "type", "veth", "peer", "name", "vb", "netns", l.b)
	run(t, "ip", "-n", l.a, "link", "set", "va", "address", net.HardwareAddr(labMACA[:]).String(), "up")
	run(t, "ip", "-n", l.b, "link", "set", "vb", "address", net.HardwareAddr(labMACB[:]).String(), "up")
	run(t, "ip", "-n", l.a, "addr", "add", "198.51.100.1/24", "dev", "va")
	run(t, "ip", "-n", l.b, "addr", "add", "198.51.100.50/24", "dev", "vb")
	run(t, "ip", "-n", l.b, "addr", "add", "2001:db8:100::50/64", "dev", "vb", "nodad")
	var err error
	if l.aNS, err = netns.GetFromName(l.a); err != nil {
		t.Fatalf("netns.GetFromName(%s): %v", l.a, err)
	}
	t.Cleanup(func() { l.aNS.Close() })
	h, err := netlink.NewHandleAt(l.aNS)
	if err != nil {
		t.Fatalf("netlink.NewHandleAt: %v", err)
	}
	defer h.Close()
	link, err := h.LinkByName("va")
	if err != nil {
		t.Fatalf("LinkByName(va): %v", err)
	}
	l.va = Interface{Index: link.Attrs().Index, Name: "va", MAC: link.Attrs().HardwareAddr}
	return l
}

// listen is a Config.Listen opening the real sockets inside a.
func (l *netnsLab) listen(ifi Interface) (Conns, error) {
	var c Conns
	err := inNamespace(l.aNS, func() error {
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
	w.SetInterfaces([]Interface{lab.va})
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
		run(t, "ip", "-n", lab.b, "addr", "add", "198.51.100.51/32", "dev", "vb")
		run(t, "ip", "netns", "exec", lab.b, "arping", "-U", "-c", "1", "-I", "vb", "-s", "198.51.100.51", "198.51.100.51")
		o := awaitObservation(t, w, func(o Observation) bool { return o.VIP == mustAddr("198.51.100.51") })
		want := Observation{VIP: mustAddr("198.51.100.51"), MAC: macB, Kind: KindARPAnnouncement, Interface: "va", At: o.At}
		if diff := cmpDiff(want, o); diff != "" {
			t.Errorf("observation (-want +got):\n%s", diff)
		}
	})
	t.Run("our own kernel answering", func(t *testing.T) {
		run(t, "ip", "netns", "exec", lab.b, "arping", "-c", "1", "-w", "2", "-I", "vb", "198.51.100.1")
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
