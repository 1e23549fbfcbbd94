package announce

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldlb/herald/internal/wire"
)

var (
	vip4b  = netip.MustParseAddr("203.0.113.7")
	vip6b  = netip.MustParseAddr("2001:db8::abcd:ef12")
	macC   = mustMAC("02:00:5e:10:00:0c")
	cmpIPs = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
)

// sameFrame fails t unless got is the frame want (hex) sent to its own
// Ethernet destination.
func sameFrame(t *testing.T, what string, got sentFrame, want []byte) {
	t.Helper()
	if diff := cmp.Diff(want, got.Frame); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
	if dst := net.HardwareAddr(got.Frame[:6]).String(); got.Dst != dst {
		t.Errorf("%s: WriteTo address %s, frame destination %s", what, got.Dst, dst)
	}
}

func garp(mac [6]byte, vip netip.Addr) []byte {
	b := make([]byte, wire.ARPFrameLen)
	wire.PutARPAnnouncement(b, mac, vip.As4())
	return b
}

func unsolicitedNA(mac [6]byte, vip netip.Addr) []byte {
	b := make([]byte, wire.NDLinkFrameLen)
	wire.PutUnsolicitedNA(b, mac, vip.As16())
	return b
}

// solicitedNA is our answer to b's NS for vip.
func solicitedNA(mac [6]byte, vip netip.Addr) []byte {
	b := make([]byte, wire.NDLinkFrameLen)
	v := vip.As16()
	wire.PutND(b, &wire.ND{Eth: wire.Ethernet{Dst: macB, Src: mac}, Src: v, Dst: ipB6.As16(), Type: wire.ICMPTypeNA,
		Flags: wire.NAFlagSolicited | wire.NAFlagOverride, Target: v, LinkAddr: mac, HasLinkAddr: true})
	return b
}

func arpReply(mac [6]byte, vip netip.Addr) []byte {
	b := make([]byte, wire.ARPFrameLen)
	wire.PutARP(b, macB, mac, &wire.ARP{Op: wire.ARPReply, SenderMAC: mac, SenderIP: vip.As4(), TargetMAC: macB, TargetIP: ipB4.As4()})
	return b
}

func TestResponderAnswers(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	h.a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4, vip6}}})
	p := h.listen.waitOpen(t)
	sameFrame(t, "first ARP announcement", p.arp.next(t), unhex(t, vecGARP))
	sameFrame(t, "first NDP announcement", p.ndp.next(t), unhex(t, vecNAUnsolicited))

	sentinel := map[family][]byte{familyIPv4: unhex(t, vecARPRequestKernel), familyIPv6: unhex(t, vecNSKernel)}
	sentinelReply := map[family][]byte{familyIPv4: unhex(t, vecARPReply), familyIPv6: unhex(t, vecNAKernel)}
	tests := []struct {
		name   string
		fam    family
		frame  []byte
		want   string // "" = no answer
		result result
	}{
		{name: "ARP broadcast request", fam: familyIPv4, frame: unhex(t, vecARPRequestArping), want: vecARPReply, result: resultAnswered},
		{name: "ARP unicast request", fam: familyIPv4, frame: arpRequest(macA, macB, ipB4, vip4), want: vecARPReply, result: resultAnswered},
		{name: "ARP probe", fam: familyIPv4, frame: unhex(t, vecARPProbe), want: vecARPProbeReply, result: resultAnswered},
		{name: "ARP for another address", fam: familyIPv4, frame: arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b), result: resultNotOurs},
		{name: "ARP reply", fam: familyIPv4, frame: arpReplyFromB(), result: resultWrongOpcode},
		{name: "own gratuitous ARP", fam: familyIPv4, frame: unhex(t, vecGARP), result: resultOwnFrame},
		{name: "NS multicast", fam: familyIPv6, frame: unhex(t, vecNSNdisc6), want: vecNANdisc6, result: resultAnswered},
		{name: "NS unicast NUD without SLLAO", fam: familyIPv6, frame: unhex(t, vecNSNUD), want: vecNAKernel, result: resultAnswered},
		{name: "NS DAD", fam: familyIPv6, frame: unhex(t, vecNSDAD), want: vecNAUnsolicited, result: resultAnswered},
		{name: "NS hop limit 254", fam: familyIPv6, frame: patch(t, vecNSKernel, 21, 254), result: resultHopLimit},
		{name: "NS bad checksum", fam: familyIPv6, frame: patch(t, vecNSKernel, 56, 0), result: resultBadChecksum},
		{name: "own unsolicited NA", fam: familyIPv6, frame: unhex(t, vecNAUnsolicited), result: resultWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := p.arp
			if tt.fam == familyIPv6 {
				conn = p.ndp
			}
			before := h.requests(tt.fam, tt.result)
			conn.inject(t, tt.frame)
			if tt.want == "" {
				// Frames are handled in order: the sentinel's answer coming
				// first proves the frame before it got none.
				conn.inject(t, sentinel[tt.fam])
				sameFrame(t, "answer to the sentinel", conn.next(t), sentinelReply[tt.fam])
			} else {
				sameFrame(t, "answer", conn.next(t), unhex(t, tt.want))
			}
			if got := h.requests(tt.fam, tt.result) - before; got != 1 {
				t.Errorf("requests_total{result=%q} grew by %v, want 1", tt.result, got)
			}
		})
	}
	if diff := cmp.Diff(map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}
}

func TestRemovedVIPIsNotAnsweredAfterSetReturns(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	ifi := iface("eth0", 2, macA)
	h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4, vip4b, vip6, vip6b}}})
	p := h.listen.waitOpen(t)
	p.arp.next(t)
	p.arp.next(t)
	p.ndp.next(t)
	p.ndp.next(t)
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	sameFrame(t, "answer before removal", p.arp.next(t), unhex(t, vecARPReply))
	p.ndp.inject(t, unhex(t, vecNSKernel))
	sameFrame(t, "NA before removal", p.ndp.next(t), unhex(t, vecNAKernel))

	h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4b, vip6b}}})
	// No waiting: the very next frames must go unanswered.
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	p.ndp.inject(t, unhex(t, vecNSKernel))
	p.arp.inject(t, arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b))
	sameFrame(t, "answer for the remaining VIP", p.arp.next(t), arpReply(macA, vip4b))
	p.ndp.inject(t, buildNS(nsSpec{ethDst: macA, ethSrc: macB, src: ipB6, dst: vip6b, target: vip6b}))
	sameFrame(t, "NA for the remaining VIP", p.ndp.next(t), solicitedNA(macA, vip6b))
	if got := h.requests(familyIPv4, resultNotOurs); got != 1 {
		t.Errorf("ARP not_ours = %v, want 1", got)
	}
	if got := h.requests(familyIPv6, resultNotOurs); got != 1 {
		t.Errorf("NS not_ours = %v, want 1", got)
	}
	if diff := cmp.Diff(map[netip.Addr][]string{vip4b: {"eth0"}, vip6b: {"eth0"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}
}

// TestSetWaitsForReplyInFlight: a reply the responder decided on before Set removed its VIP, and is still
// sending, is sent before Set returns: after Set nothing answers the VIP, so a node taking it over (a handoff)
// never answers beside this one.
func TestSetWaitsForReplyInFlight(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	ifi := iface("eth0", 2, macA)
	h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4}}})
	p := h.listen.waitOpen(t)
	p.arp.next(t) // the gratuitous ARP
	gate := make(chan struct{})
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	defer release() // a failing test must not leave the responder (and Close) blocked
	p.arp.mu.Lock()
	p.arp.gate = gate
	p.arp.mu.Unlock()
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	eventually(t, "the responder is sending its reply", func() bool { return handlingNow(h.a) })
	returned := make(chan struct{})
	go func() {
		h.a.Set(Assignment{})
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("Set returned while the reply it made stale was still being sent")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Set did not return after the reply was sent")
	}
	sameFrame(t, "the reply in flight", p.arp.next(t), unhex(t, vecARPReply))
	if pending := p.arp.pending(); len(pending) != 0 {
		t.Errorf("%d frames sent after Set returned", len(pending))
	}
}

func TestAnnouncementSchedule(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		cfg     Config
		want    []time.Duration // first announcements' offsets from Set
		endless bool            // Refresh set: announcements never stop
	}{
		{name: "defaults: two repeats 500ms apart", cfg: Config{}, want: []time.Duration{0, 500 * ms, 1000 * ms}},
		{name: "no repeats", cfg: Config{GratuitousRepeats: -1}, want: []time.Duration{0}},
		{name: "five repeats 1s apart", cfg: Config{GratuitousRepeats: 5, GratuitousInterval: time.Second},
			want: []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second}},
		{name: "repeat then refresh", cfg: Config{GratuitousRepeats: 1, GratuitousInterval: time.Second, Refresh: time.Minute},
			want: []time.Duration{0, time.Second, 61 * time.Second, 121 * time.Second}, endless: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			ifi := iface("eth0", 2, macA)
			h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4, vip6}}})
			p := h.listen.waitOpen(t)
			var got4, got6 []time.Duration
			take := func() {
				f := p.arp.next(t)
				sameFrame(t, "gratuitous ARP", f, unhex(t, vecGARP))
				got4 = append(got4, f.At.Sub(t0))
				f = p.ndp.next(t)
				sameFrame(t, "unsolicited NA", f, unhex(t, vecNAUnsolicited))
				got6 = append(got6, f.At.Sub(t0))
			}
			take()
			for _, off := range tt.want[1:] {
				// One millisecond early nothing may be sent; a frame sent then
				// would carry that time and fail the comparison below.
				h.waitWaiters(t)
				h.clk.SetTime(t0.Add(off - ms))
				h.clk.SetTime(t0.Add(off))
				take()
			}
			if diff := cmp.Diff(tt.want, got4); diff != "" {
				t.Errorf("gratuitous ARP times (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got6); diff != "" {
				t.Errorf("unsolicited NA times (-want +got):\n%s", diff)
			}
			if tt.endless {
				return
			}
			// Nothing more, however long we wait: after an hour, a new VIP's
			// first announcement is the next frame on each socket.
			h.clk.Step(time.Hour)
			h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4, vip6, vip4b, vip6b}}})
			sameFrame(t, "next ARP frame", p.arp.next(t), garp(macA, vip4b))
			sameFrame(t, "next NDP frame", p.ndp.next(t), unsolicitedNA(macA, vip6b))
			// Counted after the write returns: wait for the count to reach
			// what is expected, then check it did not pass it.
			for _, f := range []family{familyIPv4, familyIPv6} {
				want := float64(len(tt.want) + 1)
				eventually(t, "gratuitous_total counted", func() bool { return h.gratuitous(f) >= want })
				if got := h.gratuitous(f); got != want {
					t.Errorf("gratuitous_total{family=%s} = %v, want %v", f, got, want)
				}
			}
		})
	}
}

func TestRemovalCancelsPendingAnnouncements(t *testing.T) {
	for _, removeInterface := range []bool{false, true} {
		name := "VIPs removed"
		if removeInterface {
			name = "interface removed"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{GratuitousRepeats: 3, GratuitousInterval: time.Second})
			ifi := iface("eth0", 2, macA)
			h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4, vip6}}})
			p := h.listen.waitOpen(t)
			sameFrame(t, "first ARP", p.arp.next(t), garp(macA, vip4))
			sameFrame(t, "first NA", p.ndp.next(t), unsolicitedNA(macA, vip6))
			h.waitWaiters(t)
			if removeInterface {
				h.a.Set(Assignment{})
				eventually(t, "sockets of the removed interface closed", func() bool { return p.arp.isClosed() && p.ndp.isClosed() })
			} else {
				h.a.Set(Assignment{"eth0": {Interface: ifi}})
			}
			for range 5 {
				h.clk.Step(time.Second)
			}
			h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: []netip.Addr{vip4b, vip6b}}})
			if removeInterface {
				p2 := h.listen.waitOpen(t)
				if extra := append(p.arp.pending(), p.ndp.pending()...); len(extra) != 0 {
					t.Errorf("%d frames sent after the interface was removed", len(extra))
				}
				p = p2
			}
			sameFrame(t, "next ARP frame", p.arp.next(t), garp(macA, vip4b))
			sameFrame(t, "next NDP frame", p.ndp.next(t), unsolicitedNA(macA, vip6b))
			eventually(t, "gratuitous_total counted", func() bool { return h.gratuitous(familyIPv4)+h.gratuitous(familyIPv6) >= 4 })
			if got := h.gratuitous(familyIPv4) + h.gratuitous(familyIPv6); got != 4 {
				t.Errorf("gratuitous_total = %v, want 4 (no repeat of removed VIPs)", got)
			}
		})
	}
}

func TestSolicitedNodeGroups(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	ifi := iface("eth0", 2, macA)
	twin := netip.MustParseAddr("2001:db8::1:0:10") // same solicited-node group as vip6
	set := func(vips ...netip.Addr) { h.a.Set(Assignment{"eth0": {Interface: ifi, VIPs: vips}}) }

	set(vip4, vip6, twin, vip6b)
	p := h.listen.waitOpen(t)
	for range 3 {
		p.ndp.next(t)
	}
	p.arp.next(t)
	check := func(want map[string]int, wantEvents []string) {
		t.Helper()
		g, ev := p.ndp.membership()
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("groups (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantEvents, ev); diff != "" {
			t.Errorf("join/leave calls (-want +got):\n%s", diff)
		}
	}
	check(map[string]int{"33:33:ff:00:00:10": 1, "33:33:ff:cd:ef:12": 1},
		[]string{"join 33:33:ff:00:00:10", "join 33:33:ff:cd:ef:12"})

	// Dropping vip6 keeps the group its twin still needs.
	extra := netip.MustParseAddr("2001:db8::77")
	set(twin, vip6b, extra)
	sameFrame(t, "NA for the new VIP", p.ndp.next(t), unsolicitedNA(macA, extra))
	check(map[string]int{"33:33:ff:00:00:10": 1, "33:33:ff:cd:ef:12": 1, "33:33:ff:00:00:77": 1},
		[]string{"join 33:33:ff:00:00:10", "join 33:33:ff:cd:ef:12", "join 33:33:ff:00:00:77"})

	last := netip.MustParseAddr("2001:db8::99")
	set(last)
	sameFrame(t, "NA for the last VIP", p.ndp.next(t), unsolicitedNA(macA, last))
	g, ev := p.ndp.membership()
	if diff := cmp.Diff(map[string]int{"33:33:ff:00:00:99": 1}, g); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if n := len(ev); n != 7 || ev[6] != "join 33:33:ff:00:00:99" {
		t.Errorf("join/leave calls %q: want 3 leaves then join 33:33:ff:00:00:99", ev)
	}
	for _, e := range ev[3:6] {
		if !strings.HasPrefix(e, "leave ") {
			t.Errorf("call %q, want a leave", e)
		}
	}
	if _, ev := p.arp.membership(); len(ev) != 0 {
		t.Errorf("membership calls on the ARP socket: %q, want none", ev)
	}
}

func TestInterfaceLifecycle(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	eth0, eth1 := iface("eth0", 2, macA), iface("eth1", 3, macC)
	both := Assignment{
		"eth0": {Interface: eth0, VIPs: []netip.Addr{vip4}},
		"eth1": {Interface: eth1, VIPs: []netip.Addr{vip4b, vip4}},
	}
	h.a.Set(both)
	p0, p1 := h.listen.waitOpen(t), h.listen.waitOpen(t)
	if p0.ifi.Name != "eth0" || p1.ifi.Name != "eth1" {
		t.Fatalf("opened %s then %s, want eth0 then eth1", p0.ifi.Name, p1.ifi.Name)
	}
	p0.arp.next(t)
	p1.arp.next(t)
	p1.arp.next(t)
	if diff := cmp.Diff(map[netip.Addr][]string{vip4: {"eth0", "eth1"}, vip4b: {"eth1"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}

	// eth1 leaves: it stops answering at once and its sockets close.
	h.a.Set(Assignment{"eth0": both["eth0"]})
	p1.arp.inject(t, arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b))
	eventually(t, "eth1 sockets closed", func() bool { return p1.arp.isClosed() && p1.ndp.isClosed() })
	if diff := cmp.Diff(map[netip.Addr][]string{vip4: {"eth0"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced after eth1 left (-want +got):\n%s", diff)
	}
	p0.arp.inject(t, unhex(t, vecARPRequestKernel))
	sameFrame(t, "eth0 still answers", p0.arp.next(t), unhex(t, vecARPReply))

	// eth1 returns: new sockets, answered at once, announced again.
	h.a.Set(both)
	p1b := h.listen.waitOpen(t)
	if p1b.ifi.Name != "eth1" {
		t.Fatalf("opened %s, want eth1", p1b.ifi.Name)
	}
	if extra := p1.arp.pending(); len(extra) != 0 {
		t.Errorf("removed eth1 sent %d frames after Set returned", len(extra))
	}
	p1b.arp.inject(t, arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b))
	var got [][]byte
	for range 3 {
		got = append(got, p1b.arp.next(t).Frame)
	}
	want := [][]byte{arpReply(macC, vip4b), garp(macC, vip4), garp(macC, vip4b)}
	sortFrames := cmp.Transformer("sort", func(in [][]byte) []string {
		out := make([]string, len(in))
		for i, f := range in {
			out[i] = string(f)
		}
		return sortedStrings(out)
	})
	if diff := cmp.Diff(want, got, sortFrames); diff != "" {
		t.Errorf("frames from the returning eth1, any order (-want +got):\n%s", diff)
	}

	// The same name with another index and MAC is a new link.
	eth0b := iface("eth0", 7, macC)
	h.a.Set(Assignment{"eth0": {Interface: eth0b, VIPs: []netip.Addr{vip4}}})
	p0b := h.listen.waitOpen(t)
	if p0b.ifi.Index != 7 {
		t.Fatalf("reopened eth0 with index %d, want 7", p0b.ifi.Index)
	}
	eventually(t, "old eth0 sockets closed", func() bool { return p0.arp.isClosed() && p0.ndp.isClosed() })
	sameFrame(t, "announcement from the new MAC", p0b.arp.next(t), garp(macC, vip4))
	p0b.arp.inject(t, unhex(t, vecARPRequestKernel))
	sameFrame(t, "answer from the new MAC", p0b.arp.next(t), arpReply(macC, vip4))
}

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestReadErrorStopsOnlyThatInterface(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	eth0, eth1 := iface("eth0", 2, macA), iface("eth1", 3, macC)
	h.a.Set(Assignment{
		"eth0": {Interface: eth0, VIPs: []netip.Addr{vip4, vip6}},
		"eth1": {Interface: eth1, VIPs: []netip.Addr{vip4b}},
	})
	p0, p1 := h.listen.waitOpen(t), h.listen.waitOpen(t)
	p0.arp.next(t)
	p0.ndp.next(t)
	p1.arp.next(t)

	p0.arp.readErr <- &net.OpError{Op: "read", Net: "packet", Err: errors.New("network is down")}
	eventually(t, "eth0 sockets closed", func() bool { return p0.arp.isClosed() && p0.ndp.isClosed() })
	if diff := cmp.Diff(map[netip.Addr][]string{vip4b: {"eth1"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}
	p1.arp.inject(t, arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b))
	sameFrame(t, "eth1 still answers", p1.arp.next(t), arpReply(macC, vip4b))
	if got := h.logs.errorsLogged("responder stopped; interface will be reopened"); got != 1 {
		t.Errorf("logged the stop %d times, want once", got)
	}
	if got := h.errorCount(opRead); got != 1 {
		t.Errorf("errors_total{op=read} = %v, want 1", got)
	}

	// eth0 was opened at t0; it is reopened RetryInterval later, not before.
	h.waitWaiters(t)
	h.clk.Step(DefaultRetryInterval - time.Millisecond)
	h.clk.Step(time.Millisecond)
	p0b := h.listen.waitOpen(t)
	if p0b.ifi.Name != "eth0" {
		t.Fatalf("reopened %s, want eth0", p0b.ifi.Name)
	}
	f := p0b.arp.next(t)
	sameFrame(t, "announcement after reopening", f, garp(macA, vip4))
	if !f.At.Equal(t0.Add(DefaultRetryInterval)) {
		t.Errorf("reopened at %v, want %v", f.At.Sub(t0), DefaultRetryInterval)
	}
	sameFrame(t, "NA after reopening", p0b.ndp.next(t), unsolicitedNA(macA, vip6))
	if diff := cmp.Diff(map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}, vip4b: {"eth1"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced after reopening (-want +got):\n%s", diff)
	}
	if got := h.listen.callCount(); got != 3 {
		t.Errorf("Listen called %d times, want 3", got)
	}
}

func TestListenFailureIsRetried(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1, RetryInterval: 10 * time.Second})
	h.listen.failNext("eth0", 2)
	h.a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4}}})
	eventually(t, "first failure counted", func() bool { return h.errorCount(opListen) == 1 })
	if got := h.a.Announced(); len(got) != 0 {
		t.Errorf("Announced = %v while the interface cannot be opened, want empty", got)
	}
	h.waitWaiters(t)
	h.clk.Step(10 * time.Second)
	eventually(t, "second failure counted", func() bool { return h.errorCount(opListen) == 2 })
	h.waitWaiters(t)
	h.clk.Step(10 * time.Second)
	p := h.listen.waitOpen(t)
	f := p.arp.next(t)
	sameFrame(t, "announcement once open", f, garp(macA, vip4))
	if !f.At.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("opened at %v, want 20s", f.At.Sub(t0))
	}
	if got := h.logs.errorsLogged("cannot open interface; retrying"); got != 1 {
		t.Errorf("logged %d errors for consecutive failures, want 1", got)
	}
	if got := h.logs.count("interface open again"); got != 1 {
		t.Errorf("logged recovery %d times, want 1", got)
	}
	if diff := cmp.Diff(map[netip.Addr][]string{vip4: {"eth0"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}
}

func TestSetValidatesAndCopies(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1})
	mac := net.HardwareAddr(append([]byte(nil), macA[:]...))
	vips := []netip.Addr{vip4, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("ff02::1"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::ffff:203.0.113.7")}
	h.a.Set(Assignment{
		"eth0": {Interface: wire.Interface{Index: 2, MAC: mac}, VIPs: vips}, // Name defaults to the key
		"eth1": {Interface: wire.Interface{Index: 0, Name: "eth1", MAC: mac}},
		"eth2": {Interface: wire.Interface{Index: 3, Name: "other", MAC: mac}},
		"eth3": {Interface: wire.Interface{Index: 4, Name: "eth3", MAC: append(mac, 0, 0)}},
	})
	// The caller may reuse its slices at once.
	mac[0], vips[0] = 0xff, vip4b
	p := h.listen.waitOpen(t)
	got := [][]byte{p.arp.next(t).Frame, p.arp.next(t).Frame}
	want := [][]byte{garp(macA, vip4), garp(macA, vip4b)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
	if got := h.errorCount(opInvalid); got != 6 {
		t.Errorf("errors_total{op=invalid} = %v, want 6 (3 VIPs, 3 entries)", got)
	}
	if got := h.listen.callCount(); got != 1 {
		t.Errorf("Listen called %d times, want 1", got)
	}
	if diff := cmp.Diff(map[netip.Addr][]string{vip4: {"eth0"}, vip4b: {"eth0"}}, h.a.Announced(), cmpIPs); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}
}

func TestCloseAndRun(t *testing.T) {
	t.Run("Close before Run", func(t *testing.T) {
		a := New(Config{Listen: newFakeListener(nil).listen})
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := a.Run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("Close stops Run and closes sockets", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4}}})
		p := h.listen.waitOpen(t)
		p.arp.next(t)
		if err := h.a.Run(context.Background()); err == nil {
			t.Error("second Run returned nil, want an error")
		}
		done := make(chan struct{})
		go func() {
			h.a.Close()
			h.a.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		if !p.arp.isClosed() || !p.ndp.isClosed() {
			t.Error("sockets open after Close returned")
		}
		if got := h.a.Announced(); len(got) != 0 {
			t.Errorf("Announced after Close = %v, want empty", got)
		}
	})
	t.Run("context cancel stops Run", func(t *testing.T) {
		l := newFakeListener(nil)
		ctx, cancel := context.WithCancel(context.Background())
		a := New(Config{Listen: l.listen, GratuitousRepeats: -1})
		errc := make(chan error, 1)
		go func() { errc <- a.Run(ctx) }()
		a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4}}})
		p := l.waitOpen(t)
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if !p.arp.isClosed() || !p.ndp.isClosed() {
			t.Error("sockets open after Run returned")
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close after Run returned: %v", err)
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	for name, want := range map[string]int{
		"herald_announce_requests_total":           2 * (int(numResults) - 1),
		"herald_announce_gratuitous_total":         2,
		"herald_announce_gratuitous_stalled_total": 2,
		"herald_announce_errors_total":             int(numOps),
	} {
		if got := testutil.CollectAndCount(reg, name); got != want {
			t.Errorf("%s has %d series, want %d", name, got, want)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// A nil *Metrics records nothing and does not panic.
	var m *Metrics
	m.request(familyIPv4, resultAnswered)
	m.sentGratuitous(familyIPv6)
	m.stalledGratuitous(familyIPv4)
	m.failed(opWrite)
}
