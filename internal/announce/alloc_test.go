package announce

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/wire"
)

// manyVIPs returns a set of n IPv4 and n IPv6 VIPs, the test VIPs among them.
func manyVIPs(n int) *wire.VIPSet {
	addrs := []netip.Addr{vip4, vip6}
	for i := 1; i < n; i++ {
		addrs = append(addrs,
			netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 1, 14: byte(i >> 8), 15: byte(i)}))
	}
	return wire.NewVIPSet(addrs)
}

// TestHandlersDoNotAllocate checks the per-frame work of a responder
// (handler, VIP lookup, metrics) allocates nothing, answered or dropped.
func TestHandlersDoNotAllocate(t *testing.T) {
	m := NewMetrics(nil)
	vips := manyVIPs(10000)
	if !vips.Has(vip4) || !vips.Has(vip6) {
		t.Fatal("VIP set lacks the test VIPs")
	}
	tests := []struct {
		name   string
		handle func([]byte, [6]byte, *wire.VIPSet, []byte) (int, result)
		fam    family
		frame  []byte
		want   result
	}{
		{name: "ARP answered", handle: handleARP, fam: familyIPv4, frame: unhex(t, vecARPRequestKernel), want: resultAnswered},
		{name: "ARP probe answered", handle: handleARP, fam: familyIPv4, frame: unhex(t, vecARPProbe), want: resultAnswered},
		{name: "ARP not ours", handle: handleARP, fam: familyIPv4, frame: arpRequest(wire.BroadcastMAC, macB, ipB4, ipB4), want: resultNotOurs},
		{name: "ARP malformed", handle: handleARP, fam: familyIPv4, frame: unhex(t, vecARPRequestKernel)[:30], want: resultMalformed},
		{name: "NS answered", handle: handleNS, fam: familyIPv6, frame: unhex(t, vecNSKernel), want: resultAnswered},
		{name: "NS DAD answered", handle: handleNS, fam: familyIPv6, frame: unhex(t, vecNSDAD), want: resultAnswered},
		{name: "NS NUD answered", handle: handleNS, fam: familyIPv6, frame: unhex(t, vecNSNUD), want: resultAnswered},
		{name: "NS not ours", handle: handleNS, fam: familyIPv6, frame: fixNSChecksum(patch(t, vecNSKernel, 77, 0x11)), want: resultNotOurs},
		{name: "NS bad checksum", handle: handleNS, fam: familyIPv6, frame: patch(t, vecNSKernel, 77, 0x11), want: resultBadChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]byte, wire.NDLinkFrameLen)
			var r result
			allocs := testing.AllocsPerRun(1000, func() {
				_, r = tt.handle(tt.frame, macA, vips, out)
				m.request(tt.fam, r)
			})
			if r != tt.want {
				t.Fatalf("result %v, want %v", r, tt.want)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per frame, want 0", allocs)
			}
		})
	}
}

func benchmarkHandler(b *testing.B, handle func([]byte, [6]byte, *wire.VIPSet, []byte) (int, result), frame []byte, want result) {
	for _, n := range []int{1, 10000} {
		vips := manyVIPs(n)
		if n4, n6 := vips.Len(); n4 != n || n6 != n {
			b.Fatalf("set has %d IPv4 and %d IPv6 VIPs, want %d each", n4, n6, n)
		}
		b.Run(fmt.Sprintf("vips=%d", n), func(b *testing.B) {
			out := make([]byte, wire.NDLinkFrameLen)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, r := handle(frame, macA, vips, out); r != want {
					b.Fatalf("result %v, want %v", r, want)
				}
			}
		})
	}
}

func BenchmarkHandleARP(b *testing.B) {
	b.Run("answered", func(b *testing.B) { benchmarkHandler(b, handleARP, unhex(b, vecARPRequestKernel), resultAnswered) })
	b.Run("not_ours", func(b *testing.B) {
		benchmarkHandler(b, handleARP, arpRequest(wire.BroadcastMAC, macB, ipB4, ipB4), resultNotOurs)
	})
}

func BenchmarkHandleNS(b *testing.B) {
	b.Run("answered", func(b *testing.B) { benchmarkHandler(b, handleNS, unhex(b, vecNSKernel), resultAnswered) })
	b.Run("not_ours", func(b *testing.B) {
		benchmarkHandler(b, handleNS, fixNSChecksum(patch(b, vecNSKernel, 77, 0x11)), resultNotOurs)
	})
}

// TestAdmitDoesNotAllocate checks the rest of a responder's per-frame work
// after the handler: the Fresh gate, the clock and the rate limiter.
func TestAdmitDoesNotAllocate(t *testing.T) {
	a := New(Config{Fresh: func() bool { return true }, RateLimit: Limits{PerRequester: -1, PerResponder: 1e9}})
	l := &link{opened: time.Now()}
	vips := manyVIPs(10)
	for _, tt := range []struct {
		name   string
		handle func([]byte, [6]byte, *wire.VIPSet, []byte) (int, result)
		fam    family
		frame  []byte
	}{
		{name: "ARP", handle: handleARP, fam: familyIPv4, frame: unhex(t, vecARPRequestKernel)},
		{name: "NS", handle: handleNS, fam: familyIPv6, frame: unhex(t, vecNSKernel)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim := newRandomLimiter(a.cfg.RateLimit)
			out := make([]byte, wire.NDLinkFrameLen)
			if _, r := tt.handle(tt.frame, macA, vips, out); r != resultAnswered {
				t.Fatalf("handler result %v, want answered", r)
			}
			var r result
			allocs := testing.AllocsPerRun(1000, func() { r = l.admit(a, lim, tt.fam, tt.frame, out) })
			if r != resultAnswered {
				t.Fatalf("admit = %v, want answered", r)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per frame, want 0", allocs)
			}
		})
	}
}
