//go:build linux

package announce

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/netnstest"
	"github.com/heraldlb/herald/internal/wire"
)

// lab is two network namespaces joined by veth pairs: the announcer runs
// on the "a" side, the kernel of the "b" side resolves its VIPs.
type lab struct {
	a, b *netnstest.NS
}

// newLab creates the namespaces, removed when t ends.
func newLab(t testing.TB) *lab {
	t.Helper()
	netnstest.NeedRoot(t)
	netnstest.NeedTools(t, "ip", "arping", "ndisc6", "ping")
	return &lab{a: netnstest.New(t, "announce-a"), b: netnstest.New(t, "announce-b")}
}

// veth joins a and b with a veth pair named aName/bName, gives them the
// MACs, puts prefixes (with nodad for IPv6) on the b side only and returns
// the a side as an Interface.
func (l *lab) veth(t testing.TB, aName, bName string, aMAC, bMAC [6]byte, bAddrs ...string) wire.Interface {
	t.Helper()
	netnstest.Run(t, "ip", "link", "add", aName, "netns", l.a.Name, "type", "veth", "peer", "name", bName, "netns", l.b.Name)
	l.a.Run(t, "ip", "link", "set", aName, "address", net.HardwareAddr(aMAC[:]).String(), "up")
	l.b.Run(t, "ip", "link", "set", bName, "address", net.HardwareAddr(bMAC[:]).String(), "up")
	for _, p := range bAddrs {
		args := []string{"addr", "add", p, "dev", bName}
		if strings.Contains(p, ":") {
			args = append(args, "nodad")
		}
		l.b.Run(t, "ip", args...)
	}
	h, err := netlink.NewHandleAt(l.a.Handle)
	if err != nil {
		t.Fatalf("netlink.NewHandleAt: %v", err)
	}
	defer h.Close()
	link, err := h.LinkByName(aName)
	if err != nil {
		t.Fatalf("LinkByName(%s) in %s: %v", aName, l.a.Name, err)
	}
	return wire.Interface{Index: link.Attrs().Index, Name: aName, MAC: link.Attrs().HardwareAddr}
}

// listenIn is a Config.Listen opening the real sockets inside ns.
func listenIn(ns *netnstest.NS) func(wire.Interface) (Conns, error) {
	return func(ifi wire.Interface) (Conns, error) {
		var c Conns
		err := ns.Do(func() error {
			var err error
			c, err = ListenInterface(ifi)
			return err
		})
		return c, err
	}
}

// run runs a command that may fail and returns its combined output; the
// tests that expect a failure look at it themselves.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// startAnnouncer runs an Announcer whose sockets live in ns.
func startAnnouncer(t testing.TB, ns *netnstest.NS, cfg Config) (*Announcer, *Metrics, *logSink) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	logs := &logSink{}
	cfg.Listen = listenIn(ns)
	cfg.Metrics = m
	cfg.Logger = logs.logger()
	a := New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- a.Run(context.Background()) }()
	t.Cleanup(func() {
		a.Close()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a, m, logs
}

var neighRE = regexp.MustCompile(`lladdr ([0-9a-f:]+) .*\b(REACHABLE|STALE|DELAY|PROBE|FAILED|INCOMPLETE|PERMANENT|NOARP)\b`)

// neigh returns the MAC and state of ip in namespace ns's neighbour table.
func neigh(t testing.TB, ns *netnstest.NS, dev string, ip netip.Addr) (string, string) {
	t.Helper()
	out := ns.Run(t, "ip", "neigh", "show", ip.String(), "dev", dev)
	m := neighRE.FindStringSubmatch(out)
	if m == nil {
		return "", strings.TrimSpace(out)
	}
	return m[1], m[2]
}

func TestKernelResolvesVIPs(t *testing.T) {
	l := newLab(t)
	ifi := l.veth(t, "va", "vb", macA, macB, "198.51.100.2/24", "2001:db8::2/64")
	a, m, _ := startAnnouncer(t, l.a, Config{GratuitousRepeats: -1})
	a.Set(Assignment{"va": {Interface: ifi, VIPs: []netip.Addr{vip4, vip6}}})
	eventually(t, "sockets open", func() bool { return len(a.Announced()) == 2 })
	ourMAC := net.HardwareAddr(macA[:]).String()

	// ping fails (nobody answers ICMP for the VIP here) but resolves it.
	for _, vip := range []netip.Addr{vip4, vip6} {
		run("ip", "netns", "exec", l.b.Name, "ping", "-c1", "-W1", vip.String())
		mac, state := neigh(t, l.b, "vb", vip)
		if mac != ourMAC || !(state == "REACHABLE" || state == "STALE" || state == "DELAY" || state == "PROBE") {
			t.Errorf("neighbour entry of %v in %s: lladdr %q state %q, want %s REACHABLE/STALE/DELAY", vip, l.b.Name, mac, state, ourMAC)
		}
	}
	// The NDP socket joined the VIP's solicited-node group on va.
	if out := l.a.Run(t, "ip", "maddr", "show", "dev", "va"); !strings.Contains(out, "33:33:ff:00:00:10") {
		t.Errorf("va's multicast list lacks 33:33:ff:00:00:10:\n%s", out)
	}
	upper := strings.ToUpper(ourMAC)
	out := l.b.Run(t, "arping", "-c", "2", "-I", "vb", vip4.String())
	if !strings.Contains(out, "["+upper+"]") || !strings.Contains(out, "Received 2 response(s)") {
		t.Errorf("arping: want 2 replies from %s, got:\n%s", upper, out)
	}
	out = l.b.Run(t, "ndisc6", vip6.String(), "vb")
	if !strings.Contains(out, "Target link-layer address: "+upper) {
		t.Errorf("ndisc6: want target link-layer address %s, got:\n%s", upper, out)
	}
	// An RFC 5227 probe for the VIP is answered: arping -D exits 1 on a duplicate.
	out, err := run("ip", "netns", "exec", l.b.Name, "arping", "-D", "-c", "1", "-w", "2", "-I", "vb", vip4.String())
	if code := exitCode(err); code != 1 || !strings.Contains(out, "Received 1 response(s)") {
		t.Errorf("arping -D: exit %d, want 1 with one reply:\n%s", code, out)
	}
	// Duplicate address detection in b fails for the VIP.
	l.b.Run(t, "ip", "addr", "add", "2001:db8::10/64", "dev", "vb")
	eventually(t, "DAD of 2001:db8::10 in b fails", func() bool {
		out := l.b.Run(t, "ip", "-6", "addr", "show", "dev", "vb", "to", "2001:db8::10/128")
		return strings.Contains(out, "dadfailed")
	})
	l.b.Run(t, "ip", "addr", "del", "2001:db8::10/64", "dev", "vb")

	// Only what may be answered reached user space: the BPF filters kept out
	// replies, advertisements, router solicitations, MLD and our own frames.
	for _, f := range []family{familyIPv4, familyIPv6} {
		for _, r := range []result{resultWrongType, resultWrongOpcode, resultOwnFrame, resultOtherHost} {
			if got := testutilValue(m.requests[f][r]); got != 0 {
				t.Errorf("requests_total{family=%s,result=%s} = %v, want 0", f, r, got)
			}
		}
	}
	if got := testutilValue(m.requests[familyIPv4][resultAnswered]); got < 4 {
		t.Errorf("ARP answered = %v, want at least 4 (ping, 2 arping, arping -D)", got)
	}
	if got := testutilValue(m.requests[familyIPv6][resultAnswered]); got < 3 {
		t.Errorf("NS answered = %v, want at least 3 (ping, ndisc6, DAD)", got)
	}

	// Removed: no answers any more.
	a.Set(Assignment{"va": {Interface: ifi}})
	out, err = run("ip", "netns", "exec", l.b.Name, "arping", "-c", "1", "-w", "1", "-I", "vb", vip4.String())
	if err == nil || !strings.Contains(out, "Received 0 response(s)") {
		t.Errorf("arping after removal: want no reply, got (err %v):\n%s", err, out)
	}
	out, err = run("ip", "netns", "exec", l.b.Name, "ndisc6", "-r", "1", "-w", "500", vip6.String(), "vb")
	if err == nil || strings.Contains(out, "Target link-layer address") {
		t.Errorf("ndisc6 after removal: want no reply, got (err %v):\n%s", err, out)
	}
	eventually(t, "va leaves 33:33:ff:00:00:10", func() bool {
		return !strings.Contains(l.a.Run(t, "ip", "maddr", "show", "dev", "va"), "33:33:ff:00:00:10")
	})
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestKernelAcceptsAnnouncements(t *testing.T) {
	l := newLab(t)
	ifi := l.veth(t, "va", "vb", macA, macB, "198.51.100.2/24", "2001:db8::2/64")
	// b has stale entries pointing elsewhere: only a valid gratuitous ARP /
	// unsolicited NA with the Override flag makes its kernel switch.
	for _, vip := range []netip.Addr{vip4, vip6} {
		l.b.Run(t, "ip", "neigh", "replace", vip.String(), "lladdr", "02:00:5e:10:00:99", "dev", "vb", "nud", "stale")
	}
	a, m, _ := startAnnouncer(t, l.a, Config{GratuitousRepeats: 1, GratuitousInterval: 300 * time.Millisecond})
	a.Set(Assignment{"va": {Interface: ifi, VIPs: []netip.Addr{vip4, vip6}}})
	ourMAC := net.HardwareAddr(macA[:]).String()
	for _, vip := range []netip.Addr{vip4, vip6} {
		eventually(t, fmt.Sprintf("b learns %v from the announcement", vip), func() bool {
			mac, _ := neigh(t, l.b, "vb", vip)
			return mac == ourMAC
		})
	}
	eventually(t, "both repeats sent", func() bool {
		return testutilValue(m.gratuitous[familyIPv4]) == 2 && testutilValue(m.gratuitous[familyIPv6]) == 2
	})
}

func TestDeletedLinkStopsOnlyItsResponder(t *testing.T) {
	l := newLab(t)
	ifi1 := l.veth(t, "va", "vb", macA, macB, "198.51.100.2/24")
	ifi2 := l.veth(t, "va2", "vb2", macC, mustMAC("02:00:5e:10:00:0d"), "203.0.113.2/24")
	a, m, logs := startAnnouncer(t, l.a, Config{GratuitousRepeats: -1, RetryInterval: 200 * time.Millisecond})
	a.Set(Assignment{
		"va":  {Interface: ifi1, VIPs: []netip.Addr{vip4}},
		"va2": {Interface: ifi2, VIPs: []netip.Addr{vip4b}},
	})
	eventually(t, "both open", func() bool { return len(a.Announced()) == 2 })
	l.a.Run(t, "ip", "link", "del", "va2")
	eventually(t, "read error counted", func() bool { return testutilValue(m.errors[opRead]) == 1 })
	eventually(t, "reopening fails", func() bool { return testutilValue(m.errors[opListen]) >= 2 })
	if got := logs.errorsLogged("responder stopped; interface will be reopened"); got != 1 {
		t.Errorf("logged the stop %d times, want once", got)
	}
	if got := logs.errorsLogged("cannot open interface; retrying"); got != 1 {
		t.Errorf("logged %d errors for repeated open failures, want 1", got)
	}
	out := l.b.Run(t, "arping", "-c", "1", "-I", "vb", vip4.String())
	if !strings.Contains(out, "Received 1 response(s)") {
		t.Errorf("va stopped answering after va2 was deleted:\n%s", out)
	}
	if diff := a.Announced(); len(diff) != 1 || diff[vip4] == nil {
		t.Errorf("Announced = %v, want only %v on va", diff, vip4)
	}
}

// TestRealPacketPathDoesNotAllocate measures, process-wide, the allocations
// of one ARP exchange through real sockets: the peer's write, the
// responder's read, handling and reply, and the peer's read.
func TestRealPacketPathDoesNotAllocate(t *testing.T) {
	l := newLab(t)
	ifi := l.veth(t, "va", "vb", macA, macB)
	// The limiter stays on (its path must not allocate either) but lets
	// every exchange through.
	a, m, _ := startAnnouncer(t, l.a, Config{GratuitousRepeats: -1, RateLimit: Limits{PerRequester: 1e6, Burst: 1000}})
	a.Set(Assignment{"va": {Interface: ifi, VIPs: []netip.Addr{vip4}}})
	eventually(t, "socket open", func() bool { return len(a.Announced()) == 1 })

	var peer *wire.Conn
	err := l.b.Do(func() error {
		ifb, err := net.InterfaceByName("vb")
		if err != nil {
			return err
		}
		peer, err = wire.Listen(ifb, wire.Config{EtherType: unix.ETH_P_ARP}) // no filter: sees replies
		return err
	})
	if err != nil {
		t.Fatalf("peer socket: %v", err)
	}
	defer peer.Close()
	peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	req := unhex(t, vecARPRequestKernel)
	want := unhex(t, vecARPReply)
	buf := make([]byte, 1514)
	exchange := func() {
		if _, err := peer.WriteTo(req, nil); err != nil {
			t.Fatalf("peer write: %v", err)
		}
		for {
			n, _, err := peer.ReadFrom(buf)
			if err != nil {
				t.Fatalf("peer read: %v", err)
			}
			if string(buf[:n]) == string(want) {
				return
			}
		}
	}
	exchange() // warm up
	allocs := testing.AllocsPerRun(200, exchange)
	t.Logf("allocations per real ARP exchange (process-wide): %v", allocs)
	if allocs != 0 && !raceEnabled {
		t.Errorf("%v allocations per exchange, want 0", allocs)
	}
	if got := testutilValue(m.requests[familyIPv4][resultAnswered]); got < 201 {
		t.Errorf("answered %v requests, want at least 201", got)
	}
}
