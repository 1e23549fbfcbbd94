package announce

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/wire"
)

// frameTimes returns the offsets from t0 at which frames were sent.
func frameTimes(fs []sentFrame) []time.Duration {
	var out []time.Duration
	for _, f := range fs {
		out = append(out, f.At.Sub(t0))
	}
	return out
}

func TestFreshGate(t *testing.T) {
	var fresh atomic.Bool
	fresh.Store(true)
	h := newHarness(t, Config{GratuitousRepeats: 2, GratuitousInterval: 500 * time.Millisecond, Fresh: fresh.Load})
	h.a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4, vip6}}})
	p := h.listen.waitOpen(t)
	sameFrame(t, "first ARP announcement", p.arp.next(t), garp(macA, vip4))
	sameFrame(t, "first NDP announcement", p.ndp.next(t), unsolicitedNA(macA, vip6))

	fresh.Store(false)
	// Requests that would be answered are not, and count as stalled.
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	p.ndp.inject(t, unhex(t, vecNSKernel))
	eventually(t, "stalled ARP counted", func() bool { return h.requests(familyIPv4, resultStalled) == 1 })
	eventually(t, "stalled NS counted", func() bool { return h.requests(familyIPv6, resultStalled) == 1 })
	// Requests that would not be answered keep their own verdict.
	p.arp.inject(t, arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b))
	eventually(t, "not_ours counted", func() bool { return h.requests(familyIPv4, resultNotOurs) == 1 })

	// The repeat due at 500ms is dropped, not sent, and not sent late.
	h.waitWaiters(t)
	h.clk.Step(500 * time.Millisecond)
	eventually(t, "dropped announcements counted", func() bool {
		return testutilValue(h.metrics.suppressed[familyIPv4]) == 1 && testutilValue(h.metrics.suppressed[familyIPv6]) == 1
	})
	// Reannounce is gated too.
	h.a.Reannounce(vip4)
	eventually(t, "dropped re-announcement counted", func() bool { return testutilValue(h.metrics.suppressed[familyIPv4]) == 2 })

	fresh.Store(true)
	h.waitWaiters(t)
	h.clk.Step(500 * time.Millisecond)
	// The re-announcement at 500ms restarted vip4's schedule: its next
	// repeat is at 1s like vip6's.
	sameFrame(t, "ARP repeat after the stall", p.arp.next(t), garp(macA, vip4))
	sameFrame(t, "NDP repeat after the stall", p.ndp.next(t), unsolicitedNA(macA, vip6))
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	sameFrame(t, "ARP reply once fresh", p.arp.next(t), unhex(t, vecARPReply))
	p.ndp.inject(t, unhex(t, vecNSKernel))
	sameFrame(t, "NA once fresh", p.ndp.next(t), unhex(t, vecNAKernel))

	got := map[string]float64{
		"ipv4 answered": h.requests(familyIPv4, resultAnswered),
		"ipv4 stalled":  h.requests(familyIPv4, resultStalled),
		"ipv6 answered": h.requests(familyIPv6, resultAnswered),
		"ipv6 stalled":  h.requests(familyIPv6, resultStalled),
		"ipv4 sent":     h.gratuitous(familyIPv4),
		"ipv6 sent":     h.gratuitous(familyIPv6),
	}
	want := map[string]float64{
		"ipv4 answered": 1, "ipv4 stalled": 1, "ipv6 answered": 1, "ipv6 stalled": 1,
		"ipv4 sent": 2, "ipv6 sent": 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if extra := append(p.arp.pending(), p.ndp.pending()...); len(extra) != 0 {
		t.Errorf("unexpected frames sent at %v", frameTimes(extra))
	}
}

func TestReannounce(t *testing.T) {
	ms := time.Millisecond
	h := newHarness(t, Config{GratuitousRepeats: 2, GratuitousInterval: 500 * ms})
	h.a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4, vip6}}})
	p := h.listen.waitOpen(t)
	arpAt := []time.Duration{p.arp.next(t).At.Sub(t0)}
	ndpAt := []time.Duration{p.ndp.next(t).At.Sub(t0)}

	h.waitWaiters(t)
	h.clk.Step(200 * ms)
	h.a.Reannounce(vip4, vip4b) // vip4b is not answered: ignored
	f := p.arp.next(t)
	sameFrame(t, "re-announcement", f, garp(macA, vip4))
	arpAt = append(arpAt, f.At.Sub(t0))
	h.a.Reannounce(vip4)                                             // within a second: ignored
	h.a.Reannounce(netip.MustParseAddr("::ffff:" + "198.51.100.10")) // the same VIP, mapped: ignored
	h.a.Reannounce(vip6)
	f = p.ndp.next(t)
	sameFrame(t, "IPv6 re-announcement", f, unsolicitedNA(macA, vip6))
	ndpAt = append(ndpAt, f.At.Sub(t0))
	if extra := p.arp.pending(); len(extra) != 0 {
		t.Fatalf("ignored re-announcements sent frames at %v", frameTimes(extra))
	}

	// The schedule restarted at 200ms: repeats at 700ms and 1.2s, none at
	// 500ms.
	for _, step := range []time.Duration{300 * ms, 200 * ms, 500 * ms} {
		h.waitWaiters(t)
		h.clk.Step(step)
		if h.clk.Since(t0) == 500*ms {
			continue
		}
		arpAt = append(arpAt, p.arp.next(t).At.Sub(t0))
		ndpAt = append(ndpAt, p.ndp.next(t).At.Sub(t0))
	}
	// A second after the last accepted one, a re-announcement goes out again.
	h.a.Reannounce(vip4, vip6)
	arpAt = append(arpAt, p.arp.next(t).At.Sub(t0))
	ndpAt = append(ndpAt, p.ndp.next(t).At.Sub(t0))

	want := []time.Duration{0, 200 * ms, 700 * ms, 1200 * ms, 1200 * ms}
	if diff := cmp.Diff(want, arpAt); diff != "" {
		t.Errorf("gratuitous ARP times (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, ndpAt); diff != "" {
		t.Errorf("unsolicited NA times (-want +got):\n%s", diff)
	}
	if extra := append(p.arp.pending(), p.ndp.pending()...); len(extra) != 0 {
		t.Errorf("unexpected frames sent at %v", frameTimes(extra))
	}
}

func TestReannounceWithoutRunDoesNotBlock(t *testing.T) {
	a := New(Config{Listen: newFakeListener(nil).listen})
	done := make(chan struct{})
	go func() {
		for range 3 {
			a.Reannounce(vip4, vip6)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Reannounce blocked without Run")
	}
}

func TestResponderRateLimit(t *testing.T) {
	h := newHarness(t, Config{GratuitousRepeats: -1, RateLimit: Limits{PerRequester: 1, Burst: 2}, limiterSeed: testSeed})
	h.a.Set(Assignment{"eth0": {Interface: iface("eth0", 2, macA), VIPs: []netip.Addr{vip4, vip6}}})
	p := h.listen.waitOpen(t)
	p.arp.next(t)
	p.ndp.next(t)

	fromC := arpRequest(wire.BroadcastMAC, macC, ipB4, vip4)
	for i := range 4 {
		p.arp.inject(t, unhex(t, vecARPRequestKernel))
		p.ndp.inject(t, unhex(t, vecNSKernel))
		if i < 2 {
			sameFrame(t, "ARP reply within the burst", p.arp.next(t), unhex(t, vecARPReply))
			sameFrame(t, "NA within the burst", p.ndp.next(t), unhex(t, vecNAKernel))
		}
	}
	eventually(t, "ARP over the limit counted", func() bool { return h.requests(familyIPv4, resultRateLimited) == 2 })
	eventually(t, "NS over the limit counted", func() bool { return h.requests(familyIPv6, resultRateLimited) == 2 })
	// Another requester is not affected.
	p.arp.inject(t, fromC)
	if f := p.arp.next(t); net6(f.Frame[:6]) != net6(macC[:]) {
		t.Errorf("reply to the second requester went to %x", f.Frame[:6])
	}
	// A second later the first requester gets one more reply.
	h.clk.Step(time.Second)
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	sameFrame(t, "ARP reply a second later", p.arp.next(t), unhex(t, vecARPReply))
	p.arp.inject(t, unhex(t, vecARPRequestKernel))
	eventually(t, "next one over the limit", func() bool { return h.requests(familyIPv4, resultRateLimited) == 3 })
	if diff := cmp.Diff([]float64{4, 2}, []float64{h.requests(familyIPv4, resultAnswered), h.requests(familyIPv6, resultAnswered)}); diff != "" {
		t.Errorf("answered ipv4, ipv6 (-want +got):\n%s", diff)
	}
	if extra := append(p.arp.pending(), p.ndp.pending()...); len(extra) != 0 {
		t.Errorf("%d unexpected frames sent", len(extra))
	}
}

func net6(b []byte) [6]byte { return [6]byte(b) }
