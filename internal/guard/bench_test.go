package guard

import (
	"net/netip"
	"testing"

	"github.com/heraldlb/herald/internal/wire"
)

// benchLink returns a Watcher managing 10,000 VIPs (5,000 per family) and a
// link to hand frames to, with no reader running: the benchmarks call
// handle, the whole per-frame path after the read, directly.
func benchLink(tb testing.TB) (*Watcher, *link) {
	w := New(Config{Metrics: newTestMetrics()})
	vips := make([]netip.Addr, 0, 10000)
	for i := range 5000 {
		vips = append(vips, netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
		vips = append(vips, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
	}
	w.SetVIPs(vips)
	return w, &link{ifi: ifSelf, mac: macSelf}
}

// dropped are frames that pass the real filters but are dropped in user
// space: claims about unmanaged addresses and malformed frames.
func droppedFrames(tb testing.TB) []struct {
	f     family
	frame []byte
	want  result
} {
	return []struct {
		f     family
		frame []byte
		want  result
	}{
		{familyIPv4, unhex(tb, vecARPReplyKernel), resultNotManaged},
		{familyIPv4, unhex(tb, vecARPProbe), resultNotManaged},
		{familyIPv4, patch(tb, vecARPReplyKernel, 6, 2, 0, 0, 0, 0, 9), resultSpoofed},
		{familyIPv6, unhex(tb, vecNAUnsolicited), resultNotManaged},
		{familyIPv6, unhex(tb, vecDAD), resultNotManaged},
		{familyIPv6, patch(tb, vecNAKernel, wire.ICMPOffset+2, 0, 0), resultBadChecksum},
	}
}

func TestDroppedFramesDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	w, l := benchLink(t)
	for _, d := range droppedFrames(t) {
		if r := w.handle(l, d.f, d.frame, false); r != d.want {
			t.Fatalf("handle = %v, want %v", r, d.want)
		}
		if n := testing.AllocsPerRun(100, func() { w.metrics.frame(d.f, w.handle(l, d.f, d.frame, false)) }); n != 0 {
			t.Errorf("%v frame: %v allocations per frame, want 0", d.want, n)
		}
	}
}

// BenchmarkReader measures parse + lookup + count per frame, the reader's
// work after read(2), with 10,000 managed VIPs.
func BenchmarkReader(b *testing.B) {
	w, l := benchLink(b)
	b.Run("dropped", func(b *testing.B) {
		frames := droppedFrames(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			d := frames[i%len(frames)]
			w.metrics.frame(d.f, w.handle(l, d.f, d.frame, false))
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
	b.Run("managed_deduplicated", func(b *testing.B) {
		frame := marshalClaim(claim{vip: netip.AddrFrom4([4]byte{198, 18, 0, 7}), mac: macB, kind: KindARPReply})
		w.handle(l, familyIPv4, frame, false) // delivered once, then deduplicated
		b.ReportAllocs()
		for b.Loop() {
			w.metrics.frame(familyIPv4, w.handle(l, familyIPv4, frame, false))
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
}
