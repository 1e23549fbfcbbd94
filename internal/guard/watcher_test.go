package guard

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	testclock "k8s.io/utils/clock/testing"

	"github.com/heraldlb/herald/internal/wire"
)

var (
	macSelf = [6]byte{2, 0, 0, 0, 0, 1}
	ifSelf  = wire.Interface{Index: 2, Name: "eth0", MAC: net.HardwareAddr(macSelf[:])}
	epoch   = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// cmpDiff is cmp.Diff for this package's values (netip.Addr compared by ==).
func cmpDiff(want, got any) string {
	return cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.AllowUnexported(probeResult{}))
}

// harness runs a Watcher on fake sockets and a fake clock.
type harness struct {
	w      *Watcher
	clk    *testclock.FakeClock
	net    *fakeNet
	m      *Metrics
	runErr chan error
	cancel context.CancelFunc
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{clk: testclock.NewFakeClock(epoch), net: newFakeNet(), m: newTestMetrics(), runErr: make(chan error, 1)}
	cfg.Clock, cfg.Metrics, cfg.Listen = h.clk, h.m, h.net.listen
	h.w = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- h.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		h.w.Close()
	})
	return h
}

// watch watches ifSelf and returns its sockets.
func (h *harness) watch(t *testing.T) *fakeLink {
	t.Helper()
	h.w.SetInterfaces([]wire.Interface{ifSelf})
	return h.net.next(t)
}

// waitWaiters waits until n timers wait on the fake clock.
func (h *harness) waitWaiters(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for h.clk.Waiters() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers wait on the clock, want %d", h.clk.Waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// injectResult injects frame and returns the result it was counted under.
func (h *harness) injectResult(t *testing.T, c *fakeConn, f family, frame []byte, outgoing bool) result {
	t.Helper()
	var before [numResults]float64
	for r := range numResults {
		if r != resultNone {
			before[r] = frameCount(h.m, f, r)
		}
	}
	c.inject(t, frame, outgoing)
	got := resultNone
	for r := range numResults {
		if r == resultNone {
			continue
		}
		switch d := frameCount(h.m, f, r) - before[r]; {
		case d == 1 && got == resultNone:
			got = r
		case d != 0:
			t.Fatalf("frame counted %v times under %v (and maybe %v)", d, r, got)
		}
	}
	return got
}

func (h *harness) observation() (Observation, bool) {
	select {
	case o := <-h.w.Observations():
		return o, true
	default:
		return Observation{}, false
	}
}

func TestObservations(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	h.w.SetVIPs([]netip.Addr{
		mustAddr("198.51.100.50"), mustAddr("198.51.100.51"), mustAddr("198.51.100.52"), mustAddr("198.51.100.53"),
		mustAddr("2001:db8:100::1"), mustAddr("2001:db8:100::50"), mustAddr("2001:db8:100::60"),
	})
	var ownProbe, selfMACProbe [wire.ARPFrameLen]byte
	wire.PutARPProbe(ownProbe[:], macSelf, [4]byte{198, 51, 100, 53})
	wire.PutARPProbe(selfMACProbe[:], macSelf, [4]byte{198, 51, 100, 53})
	obs := func(vip string, mac [6]byte, k Kind, outgoing bool) *Observation {
		return &Observation{VIP: mustAddr(vip), MAC: net.HardwareAddr(mac[:]), Kind: k, Interface: "eth0", Outgoing: outgoing}
	}
	tests := []struct {
		name     string
		f        family
		frame    []byte
		outgoing bool
		want     *Observation
		result   result
	}{
		{name: "gratuitous request", frame: unhex(t, vecARPAnnounceRequest), want: obs("198.51.100.51", macB, KindARPAnnouncement, false), result: resultObserved},
		{name: "gratuitous reply", frame: unhex(t, vecARPAnnounceReply), want: obs("198.51.100.52", macB, KindARPAnnouncement, false), result: resultObserved},
		{name: "another host's probe", frame: unhex(t, vecARPProbe), want: obs("198.51.100.53", macB, KindARPProbe, false), result: resultObserved},
		{name: "reply", frame: unhex(t, vecARPReplyKernel), want: obs("198.51.100.50", macB, KindARPReply, false), result: resultObserved},
		{name: "our kernel's reply going out", frame: unhex(t, vecARPReplyKernel), outgoing: true, want: obs("198.51.100.50", macB, KindARPReply, true), result: resultObserved},
		{name: "request from an unmanaged address", frame: unhex(t, vecARPRequest), result: resultNotManaged},
		{name: "spoofed reply", frame: patch(t, vecARPReplyKernel, 6, 2, 0, 0, 0, 0, 9), result: resultSpoofed},
		{name: "truncated ARP", frame: unhex(t, vecARPReplyKernel)[:30], result: resultMalformed},
		{name: "our own probe going out", frame: ownProbe[:], outgoing: true, result: resultOwnProbe},
		{name: "a probe from our MAC coming in", frame: selfMACProbe[:], want: obs("198.51.100.53", macSelf, KindARPProbe, false), result: resultObserved},
		{name: "solicited NA", f: familyIPv6, frame: unhex(t, vecNAKernel), want: obs("2001:db8:100::1", macA, KindNA, false), result: resultObserved},
		{name: "unsolicited NA", f: familyIPv6, frame: unhex(t, vecNAUnsolicited), want: obs("2001:db8:100::50", macC, KindNA, false), result: resultObserved},
		{name: "DAD", f: familyIPv6, frame: unhex(t, vecDAD), want: obs("2001:db8:100::60", macC, KindDAD, false), result: resultObserved},
		{name: "NS from an owner", f: familyIPv6, frame: unhex(t, vecNSFromOwner), want: obs("2001:db8:100::50", macB, KindNSFromOwner, false), result: resultObserved},
		{name: "NS from a link-local address", f: familyIPv6, frame: unhex(t, vecNSResolve), result: resultNotManaged},
		{name: "bad checksum", f: familyIPv6, frame: patch(t, vecNAKernel, wire.ICMPOffset+2, 0, 0), result: resultBadChecksum},
		{name: "hop limit 1", f: familyIPv6, frame: patch(t, vecNAKernel, wire.IPv6Offset+7, 1), result: resultHopLimit},
		{name: "echo request", f: familyIPv6, frame: fixSum(patch(t, vecNAKernel, wire.ICMPOffset, 128)), result: resultWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.clk.Step(time.Second) // past any deduplication
			conn := l.arp
			if tt.f == familyIPv6 {
				conn = l.ndp
			}
			if diff := cmpDiff(tt.result.String(), h.injectResult(t, conn, tt.f, tt.frame, tt.outgoing).String()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			got, ok := h.observation()
			if tt.want == nil {
				if ok {
					t.Errorf("unexpected observation %+v", got)
				}
				return
			}
			want := *tt.want
			want.At = h.clk.Now()
			if diff := cmpDiff(want, got); diff != "" {
				t.Errorf("observation (-want +got):\n%s", diff)
			}
		})
	}
	if got := testutil.ToFloat64(h.m.observations[KindARPReply][1]); got != 1 {
		t.Errorf(`herald_guard_observations_total{kind="arp_reply",outgoing="true"} = %v, want 1`, got)
	}
}

func TestDedup(t *testing.T) {
	h := newHarness(t, Config{DedupInterval: 100 * time.Millisecond})
	l := h.watch(t)
	h.w.SetVIPs([]netip.Addr{mustAddr("198.51.100.50")})
	reply := unhex(t, vecARPReplyKernel)
	steps := []struct {
		name     string
		step     time.Duration
		outgoing bool
		frame    []byte
		want     result
	}{
		{name: "first", want: resultObserved},
		{name: "same claim at once", want: resultDeduplicated},
		{name: "same claim 99ms later", step: 99 * time.Millisecond, want: resultDeduplicated},
		{name: "same claim outgoing", outgoing: true, want: resultObserved},
		{name: "same claim by another kind", frame: unhex(t, vecARPAnnounceReply)[:0], want: resultObserved},
		{name: "same claim 100ms after the first", step: time.Millisecond, want: resultObserved},
		{name: "and again at once", want: resultDeduplicated},
	}
	// A gratuitous reply for 198.51.100.50 from B: same VIP and MAC as the reply, another kind.
	announce := patch(t, vecARPReplyKernel, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	copy(announce[38:42], announce[28:32])
	for _, s := range steps {
		h.clk.Step(s.step)
		frame := reply
		if s.frame != nil {
			frame = announce
		}
		if diff := cmpDiff(s.want.String(), h.injectResult(t, l.arp, familyIPv4, frame, s.outgoing).String()); diff != "" {
			t.Errorf("%s: result (-want +got):\n%s", s.name, diff)
		}
	}
	if got, want := len(h.w.Observations()), 4; got != want {
		t.Errorf("%d observations queued, want %d", got, want)
	}
}

func TestOverflow(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	const n = ObservationBuffer + 6
	vips := make([]netip.Addr, n)
	for i := range vips {
		vips[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	h.w.SetVIPs(vips)
	for _, v := range vips {
		l.arp.inject(t, marshalClaim(claim{vip: v, mac: macB, kind: KindARPReply}), false)
	}
	if got := frameCount(h.m, familyIPv4, resultOverflow); got != 6 {
		t.Errorf("overflow count %v, want 6", got)
	}
	if got := frameCount(h.m, familyIPv4, resultObserved); got != ObservationBuffer {
		t.Errorf("observed count %v, want %d", got, ObservationBuffer)
	}
	// Overflowed claims were not delivered, so they are not deduplicated.
	<-h.w.Observations()
	if r := h.injectResult(t, l.arp, familyIPv4, marshalClaim(claim{vip: vips[n-1], mac: macB, kind: KindARPReply}), false); r != resultObserved {
		t.Errorf("after the consumer caught up: result %v, want observed", r)
	}
	o := <-h.w.Observations()
	if diff := cmpDiff(vips[1], o.VIP); diff != "" {
		t.Errorf("oldest queued observation (-want +got):\n%s", diff)
	}
}

func TestSetVIPs(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	reply := unhex(t, vecARPReplyKernel)
	tests := []struct {
		name string
		vips []netip.Addr
		want result
	}{
		{name: "none", want: resultNotManaged},
		{name: "another address", vips: []netip.Addr{mustAddr("198.51.100.51"), mustAddr("2001:db8:100::50")}, want: resultNotManaged},
		{name: "IPv4-mapped form", vips: []netip.Addr{mustAddr("::ffff:198.51.100.50")}, want: resultObserved},
		{name: "replaced by an empty set", vips: []netip.Addr{}, want: resultNotManaged},
		{name: "among invalid ones", vips: []netip.Addr{{}, mustAddr("0.0.0.0"), mustAddr("224.0.0.1"), mustAddr("198.51.100.50")}, want: resultObserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.clk.Step(time.Second)
			h.w.SetVIPs(tt.vips)
			if diff := cmpDiff(tt.want.String(), h.injectResult(t, l.arp, familyIPv4, reply, false).String()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// probeResult is what a Probe returned.
type probeResult struct {
	resp []Responder
	err  error
}

func (h *harness) startProbe(ctx context.Context, ifi wire.Interface, vip string, pc ProbeConfig) chan probeResult {
	ch := make(chan probeResult, 1)
	go func() {
		r, err := h.w.Probe(ctx, ifi, mustAddr(vip), pc)
		ch <- probeResult{r, err}
	}()
	return ch
}

func wait(t *testing.T, ch chan probeResult) probeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(liveness):
		t.Fatal("Probe did not return")
		return probeResult{}
	}
}

var defaultProbe = ProbeConfig{Count: 3, Interval: 30 * time.Millisecond, Wait: 40 * time.Millisecond}

func TestProbeIPv4(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	t0 := h.clk.Now()
	done := h.startProbe(context.Background(), ifSelf, "198.51.100.50", defaultProbe)
	var want [wire.ARPFrameLen]byte
	wire.PutARPProbe(want[:], macSelf, [4]byte{198, 51, 100, 50})
	if diff := cmpDiff(hex.EncodeToString(want[:]), hex.EncodeToString(l.arp.nextWrite(t))); diff != "" {
		t.Errorf("first probe (-want +got):\n%s", diff)
	}
	// Not managed, only probed.
	if r := h.injectResult(t, l.arp, familyIPv4, unhex(t, vecARPReplyKernel), false); r != resultProbed {
		t.Errorf("B's reply counted %v, want probed", r)
	}
	// Our own probe seen by the socket (as another of our sockets would) is not a responder.
	if r := h.injectResult(t, l.arp, familyIPv4, want[:], true); r != resultOwnProbe {
		t.Errorf("our own probe counted %v, want own_probe", r)
	}
	for i := 1; i < 3; i++ {
		h.waitWaiters(t, 1)
		h.clk.Step(30 * time.Millisecond)
		if got := l.arp.nextWrite(t); hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
			t.Errorf("probe %d is %x, want %x", i+1, got, want)
		}
	}
	t1 := h.clk.Now()
	// Another host probing for the same address at the same time, and B again.
	l.arp.inject(t, marshalClaim(claim{vip: mustAddr("198.51.100.50"), mac: macC, kind: KindARPProbe}), false)
	l.arp.inject(t, unhex(t, vecARPReplyKernel), false)
	// A claim for another address and one on the IPv6 socket are not responders.
	l.arp.inject(t, unhex(t, vecARPAnnounceRequest), false)
	h.waitWaiters(t, 1)
	h.clk.Step(39 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("Probe returned %+v before Wait ended", r)
	default:
	}
	h.clk.Step(time.Millisecond)
	got := wait(t, done)
	wantResp := []Responder{
		{MAC: net.HardwareAddr(macB[:]), Kind: KindARPReply, At: t0},
		{MAC: net.HardwareAddr(macC[:]), Kind: KindARPProbe, At: t1},
	}
	if got.err != nil {
		t.Fatalf("Probe: %v", got.err)
	}
	if diff := cmpDiff(wantResp, got.resp); diff != "" {
		t.Errorf("responders (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(h.m.probes[familyIPv4][1]); got != 1 {
		t.Errorf(`herald_guard_probes_total{family="ipv4",outcome="claimed"} = %v, want 1`, got)
	}
	// After the probe the address is neither probed nor managed.
	if r := h.injectResult(t, l.arp, familyIPv4, unhex(t, vecARPReplyKernel), false); r != resultNotManaged {
		t.Errorf("B's reply after the probe counted %v, want not_managed", r)
	}
}

// TestProbeSendFails: a probe whose sends fail now and then (ENOBUFS: a full queue, a drop on the way out) sends
// in the next slots instead, so that all its probes go out and it listens its whole window; one that sends
// nothing fails. It used to fail at the first failed send, and the speaker then answered without having checked
// the wire (the soak, seed 1207: two nodes answering one address under 18 % loss).
func TestProbeSendFails(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	l.arp.failWrites(2)
	done := h.startProbe(context.Background(), ifSelf, "198.51.100.50", defaultProbe)
	// The sends: failed, failed, then the three probes, each 30 ms after the one before.
	for range 4 {
		h.waitWaiters(t, 1)
		h.clk.Step(30 * time.Millisecond)
	}
	for range 3 {
		l.arp.nextWrite(t)
	}
	l.arp.inject(t, unhex(t, vecARPReplyKernel), false)
	h.waitWaiters(t, 1)
	h.clk.Step(40 * time.Millisecond)
	got := wait(t, done)
	if got.err != nil || len(got.resp) != 1 {
		t.Fatalf("Probe with two failed sends: %+v, %v; want the reply heard and no error", got.resp, got.err)
	}

	l.arp.failWrites(6)
	done = h.startProbe(context.Background(), ifSelf, "198.51.100.51", defaultProbe)
	for range 5 {
		h.waitWaiters(t, 1)
		h.clk.Step(30 * time.Millisecond)
	}
	got = wait(t, done)
	if !errors.Is(got.err, syscall.ENOBUFS) {
		t.Errorf("Probe with every send failing: %+v, %v; want ENOBUFS", got.resp, got.err)
	}
}

func TestProbeIPv6(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	h.w.SetVIPs([]netip.Addr{mustAddr("2001:db8:100::50")})
	t0 := h.clk.Now()
	done := h.startProbe(context.Background(), ifSelf, "2001:db8:100::50", ProbeConfig{Count: 1, Wait: 50 * time.Millisecond})
	var want [wire.NDFrameLen]byte
	wire.PutDAD(want[:], macSelf, mustAddr("2001:db8:100::50").As16())
	if diff := cmpDiff(hex.EncodeToString(want[:]), hex.EncodeToString(l.ndp.nextWrite(t))); diff != "" {
		t.Errorf("DAD probe (-want +got):\n%s", diff)
	}
	if diff := cmpDiff(map[string]int{"33:33:ff:00:00:50": 1}, l.ndp.memberships()); diff != "" {
		t.Errorf("multicast memberships during the probe (-want +got):\n%s", diff)
	}
	// Managed and probed: delivered as an Observation too.
	if r := h.injectResult(t, l.ndp, familyIPv6, unhex(t, vecNAUnsolicited), false); r != resultObserved {
		t.Errorf("NA counted %v, want observed", r)
	}
	h.waitWaiters(t, 1)
	h.clk.Step(50 * time.Millisecond)
	got := wait(t, done)
	if diff := cmpDiff(probeResult{resp: []Responder{{MAC: net.HardwareAddr(macC[:]), Kind: KindNA, At: t0}}}, got); diff != "" {
		t.Errorf("Probe (-want +got):\n%s", diff)
	}
	if diff := cmpDiff(map[string]int{}, l.ndp.memberships()); diff != "" {
		t.Errorf("multicast memberships after the probe (-want +got):\n%s", diff)
	}
	// An unclaimed address.
	done = h.startProbe(context.Background(), ifSelf, "2001:db8:100::99", ProbeConfig{Count: 1, Wait: 50 * time.Millisecond})
	l.ndp.nextWrite(t)
	h.waitWaiters(t, 1)
	h.clk.Step(50 * time.Millisecond)
	if got := wait(t, done); got.err != nil || got.resp != nil {
		t.Errorf("Probe of an unclaimed address = %+v, want no responders and no error", got)
	}
	if got := testutil.ToFloat64(h.m.probes[familyIPv6][0]); got != 1 {
		t.Errorf(`herald_guard_probes_total{family="ipv6",outcome="clear"} = %v, want 1`, got)
	}
}

func TestProbeConcurrent(t *testing.T) {
	h := newHarness(t, Config{ProbeRate: 1_000_000}) // no pacing: every first probe goes out at once
	l := h.watch(t)
	ctx := context.Background()
	const many = 200
	var runs []chan probeResult
	for range many {
		runs = append(runs, h.startProbe(ctx, ifSelf, "198.51.100.50", defaultProbe))
	}
	v6 := h.startProbe(ctx, ifSelf, "2001:db8:100::50", defaultProbe)
	clear4 := h.startProbe(ctx, ifSelf, "198.51.100.77", defaultProbe)
	for range many + 1 {
		l.arp.nextWrite(t)
	}
	l.ndp.nextWrite(t)
	l.arp.inject(t, unhex(t, vecARPReplyKernel), false)
	l.ndp.inject(t, unhex(t, vecNAUnsolicited), false)
	l.ndp.inject(t, unhex(t, vecNAKernel), false) // another address
	all := append(append([]chan probeResult{}, runs...), v6, clear4)
	results := make([]probeResult, len(all))
	got := 0
	deadline := time.Now().Add(liveness)
	for got < len(all) {
		for i, ch := range all {
			select {
			case r := <-ch:
				results[i] = r
				all[i] = nil
				got++
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d probes returned", got, len(all))
		}
		if h.clk.HasWaiters() {
			h.clk.Step(10 * time.Millisecond)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	b := []Responder{{MAC: net.HardwareAddr(macB[:]), Kind: KindARPReply, At: epoch}}
	for i := range many {
		if diff := cmpDiff(probeResult{resp: b}, results[i]); diff != "" {
			t.Fatalf("probe %d of 198.51.100.50 (-want +got):\n%s", i, diff)
		}
	}
	c := []Responder{{MAC: net.HardwareAddr(macC[:]), Kind: KindNA, At: epoch}}
	if diff := cmpDiff(probeResult{resp: c}, results[many]); diff != "" {
		t.Errorf("probe of 2001:db8:100::50 (-want +got):\n%s", diff)
	}
	if diff := cmpDiff(probeResult{}, results[many+1]); diff != "" {
		t.Errorf("probe of 198.51.100.77 (-want +got):\n%s", diff)
	}
	if n := len(l.arp.writes); n != 2*(many+1) {
		t.Errorf("%d more ARP probes written, want %d", n, 2*(many+1))
	}
}

func TestProbeCancel(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := h.startProbe(ctx, ifSelf, "198.51.100.50", defaultProbe)
	l.arp.nextWrite(t)
	l.arp.inject(t, unhex(t, vecARPReplyKernel), false)
	cancel()
	got := wait(t, done)
	if !errors.Is(got.err, context.Canceled) {
		t.Errorf("Probe error %v, want context.Canceled", got.err)
	}
	if diff := cmpDiff([]Responder{{MAC: net.HardwareAddr(macB[:]), Kind: KindARPReply, At: epoch}}, got.resp); diff != "" {
		t.Errorf("responders so far (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(h.m.probes[familyIPv4][1]) + testutil.ToFloat64(h.m.probes[familyIPv4][0]); n != 0 {
		t.Errorf("a cancelled probe was counted as completed (%v)", n)
	}
}

func TestProbeUnwatchedInterface(t *testing.T) {
	h := newHarness(t, Config{})
	eth1 := wire.Interface{Index: 3, Name: "eth1", MAC: net.HardwareAddr(macSelf[:])}
	done := h.startProbe(context.Background(), eth1, "198.51.100.50", ProbeConfig{Count: 1, Wait: time.Millisecond})
	l := h.net.next(t)
	if diff := cmpDiff(eth1, l.ifi); diff != "" {
		t.Errorf("opened interface (-want +got):\n%s", diff)
	}
	l.arp.nextWrite(t)
	h.waitWaiters(t, 1)
	h.clk.Step(time.Millisecond)
	if got := wait(t, done); got.err != nil {
		t.Fatalf("Probe: %v", got.err)
	}
	select { // closed again once the probe no longer needs it
	case <-l.arp.closed:
	case <-time.After(liveness):
		t.Error("the probe's sockets were not closed after it")
	}

	h.net.mu.Lock()
	h.net.fails = 1
	h.net.mu.Unlock()
	got := wait(t, h.startProbe(context.Background(), wire.Interface{Index: 4, Name: "eth2", MAC: eth1.MAC}, "198.51.100.50", defaultProbe))
	if got.err == nil {
		t.Error("Probe on an interface that cannot be opened succeeded")
	}
	// Invalid arguments.
	for _, tt := range []struct {
		name string
		ifi  wire.Interface
		vip  string
	}{
		{name: "multicast address", ifi: ifSelf, vip: "224.0.0.1"},
		{name: "unspecified address", ifi: ifSelf, vip: "::"},
		{name: "no MAC", ifi: wire.Interface{Index: 2, Name: "eth0"}, vip: "198.51.100.50"},
	} {
		if got := wait(t, h.startProbe(context.Background(), tt.ifi, tt.vip, defaultProbe)); got.err == nil {
			t.Errorf("%s: Probe succeeded", tt.name)
		}
	}
}

func TestCloseAndRun(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	h.w.Close()
	if err := h.w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case err := <-h.runErr:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Run returned %v, want ErrClosed", err)
		}
	default:
		t.Error("Run had not returned when Close did")
	}
	if !l.arp.isClosed() || !l.ndp.isClosed() {
		t.Error("sockets still open after Close")
	}
	if got := wait(t, h.startProbe(context.Background(), ifSelf, "198.51.100.50", defaultProbe)); !errors.Is(got.err, ErrClosed) {
		t.Errorf("Probe after Close: %v, want ErrClosed", got.err)
	}
	if err := h.w.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}

	// Cancelling Run's context.
	h2 := newHarness(t, Config{})
	l2 := h2.watch(t)
	h2.cancel()
	select {
	case err := <-h2.runErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(liveness):
		t.Fatal("Run did not return")
	}
	if !l2.arp.isClosed() || !l2.ndp.isClosed() {
		t.Error("sockets still open after Run returned")
	}
	if err := h2.w.Close(); err != nil {
		t.Errorf("Close after Run returned: %v", err)
	}
}

func TestCloseDuringProbe(t *testing.T) {
	h := newHarness(t, Config{})
	l := h.watch(t)
	done := h.startProbe(context.Background(), ifSelf, "198.51.100.50", defaultProbe)
	l.arp.nextWrite(t)
	h.w.Close()
	if got := wait(t, done); !errors.Is(got.err, ErrClosed) {
		t.Errorf("Probe error %v, want ErrClosed", got.err)
	}
}

func TestSetInterfaces(t *testing.T) {
	h := newHarness(t, Config{})
	eth1 := wire.Interface{Index: 3, Name: "eth1", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}}
	h.w.SetInterfaces([]wire.Interface{ifSelf, eth1})
	opened := map[string]*fakeLink{}
	for range 2 {
		l := h.net.next(t)
		opened[l.ifi.Name] = l
	}
	h.w.SetInterfaces([]wire.Interface{ifSelf})
	select {
	case <-opened["eth1"].arp.closed:
	case <-time.After(liveness):
		t.Fatal("eth1 not closed after it was removed")
	}
	if opened["eth0"].arp.isClosed() {
		t.Error("eth0 closed though still watched")
	}
	// A changed MAC reopens the interface.
	moved := ifSelf
	moved.MAC = net.HardwareAddr{2, 0, 0, 0, 0, 9}
	h.w.SetInterfaces([]wire.Interface{moved})
	l := h.net.next(t)
	if diff := cmpDiff(moved, l.ifi); diff != "" {
		t.Errorf("reopened interface (-want +got):\n%s", diff)
	}
	if !opened["eth0"].arp.isClosed() {
		t.Error("the old eth0 sockets are still open")
	}
}

func TestRetry(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: 5 * time.Second})
	h.net.fails = 1
	h.w.SetInterfaces([]wire.Interface{ifSelf})
	h.waitWaiters(t, 1) // Run's retry timer
	if got := testutil.ToFloat64(h.m.errors[opListen]); got != 1 {
		t.Errorf(`herald_guard_errors_total{op="listen"} = %v, want 1`, got)
	}
	h.clk.Step(5 * time.Second)
	l := h.net.next(t)

	// A read error closes the interface and reopens it after RetryInterval.
	l.arp.readErr <- errors.New("network is down")
	h.waitWaiters(t, 1)
	if !l.arp.isClosed() || !l.ndp.isClosed() {
		t.Error("sockets of a failed interface still open")
	}
	h.clk.Step(5 * time.Second)
	h.net.next(t)
	if got := testutil.ToFloat64(h.m.errors[opRead]); got != 1 {
		t.Errorf(`herald_guard_errors_total{op="read"} = %v, want 1`, got)
	}
}

func TestProbePaced(t *testing.T) {
	h := newHarness(t, Config{ProbeRate: 1000}) // 1ms apart, bursts of 20
	l := h.watch(t)
	const n = 30
	var runs []chan probeResult
	for i := range n {
		runs = append(runs, h.startProbe(context.Background(), ifSelf, netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}).String(), ProbeConfig{Count: 1, Wait: time.Second}))
	}
	for range 21 { // the burst
		l.arp.nextWrite(t)
	}
	h.waitWaiters(t, n) // 21 probes wait for Wait, 9 for their send slot
	if got := len(l.arp.writes); got != 0 {
		t.Errorf("%d probes beyond the burst sent without waiting", got)
	}
	h.clk.Step(5 * time.Millisecond)
	for range 5 {
		l.arp.nextWrite(t)
	}
	h.waitWaiters(t, n-4) // the 4 still paced, the others in Wait
	if got := len(l.arp.writes); got != 0 {
		t.Errorf("%d probes sent after 5ms, want 5", got+5)
	}
	h.clk.Step(2 * time.Second)
	for range 4 {
		l.arp.nextWrite(t)
	}
	for deadline := time.Now().Add(liveness); time.Now().Before(deadline); {
		if h.clk.HasWaiters() {
			h.clk.Step(time.Second)
		}
		done := 0
		for _, ch := range runs {
			if len(ch) == 1 {
				done++
			}
		}
		if done == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("not every paced probe returned")
}

func TestPacer(t *testing.T) {
	clk := testclock.NewFakeClock(epoch)
	p := newPacer(clk, 100) // 10ms apart, bursts of 2 intervals
	var got []time.Duration
	for range 5 {
		got = append(got, max(0, p.reserve()))
	}
	want := []time.Duration{0, 0, 0, 10 * time.Millisecond, 20 * time.Millisecond}
	if diff := cmpDiff(want, got); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	clk.Step(time.Second) // an idle second earns only the burst back
	got = got[:0]
	for range 4 {
		got = append(got, max(0, p.reserve()))
	}
	if diff := cmpDiff(want[:4], got); diff != "" {
		t.Errorf("waits after idling (-want +got):\n%s", diff)
	}
}
