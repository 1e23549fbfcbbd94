package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/heraldlb/herald/internal/wire"
)

// segment is a fake Ethernet segment behind a net.PacketConn: frames the Prober writes are recorded on writes,
// frames injected by the test are read by the Prober in order.
type segment struct {
	writes chan written

	mu      sync.Mutex // guards the fields below; cond signals their changes
	cond    *sync.Cond
	queue   [][]byte
	reading bool  // the reader waits in ReadFrom on an empty queue
	readErr error // returned by ReadFrom once the queue is empty
	closed  bool
}

type written struct {
	frame []byte
	dst   net.HardwareAddr
}

func newSegment() *segment {
	s := &segment{writes: make(chan written, 100)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *segment) ReadFrom(b []byte) (int, net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.closed && s.readErr == nil {
		s.reading = true
		s.cond.Broadcast()
		s.cond.Wait()
	}
	s.reading = false
	switch {
	case s.closed:
		return 0, nil, net.ErrClosed
	case len(s.queue) == 0:
		return 0, nil, s.readErr
	}
	n := copy(b, s.queue[0])
	s.queue = s.queue[1:]
	return n, &packet.Addr{}, nil
}

func (s *segment) WriteTo(b []byte, addr net.Addr) (int, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	s.writes <- written{frame: append([]byte(nil), b...), dst: addr.(*packet.Addr).HardwareAddr}
	return len(b), nil
}

func (s *segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
	return nil
}

func (s *segment) LocalAddr() net.Addr              { return &packet.Addr{} }
func (s *segment) SetDeadline(time.Time) error      { return nil }
func (s *segment) SetReadDeadline(time.Time) error  { return nil }
func (s *segment) SetWriteDeadline(time.Time) error { return nil }

// inject queues frames for the Prober to read.
func (s *segment) inject(frames ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, frames...)
	s.cond.Broadcast()
}

// settle waits until the Prober has read every injected frame and waits for more: it has handled them all.
func (s *segment) settle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 || !s.reading {
		s.cond.Wait()
	}
}

func (s *segment) failReads(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readErr = err
	s.cond.Broadcast()
}

func (s *segment) nextWrite(t *testing.T) written {
	t.Helper()
	select {
	case w := <-s.writes:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("the prober sent nothing")
		return written{}
	}
}

var (
	otherMAC = mustMAC("02:00:c6:33:64:0c")
	clientIf = wire.Interface{Index: 2, Name: "eth0", MAC: clientMAC}
	t0       = time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC)
)

// arpReplyFrom is the kernel's reply of vecARPReply as sent by another host claiming ip with mac.
func arpReplyFrom(t *testing.T, mac net.HardwareAddr, ip, to netip.Addr) []byte {
	t.Helper()
	b := make([]byte, wire.ARPFrameLen)
	wire.PutARP(b, [6]byte(clientMAC), [6]byte(mac), &wire.ARP{Op: wire.ARPReply, SenderMAC: [6]byte(mac), SenderIP: ip.As4(),
		TargetMAC: [6]byte(clientMAC), TargetIP: to.As4()})
	return b
}

func naFrom(t *testing.T, mac net.HardwareAddr, target, to netip.Addr, ethSrc net.HardwareAddr, opt net.HardwareAddr) []byte {
	t.Helper()
	n := wire.ND{Eth: wire.Ethernet{Dst: [6]byte(clientMAC), Src: [6]byte(ethSrc)}, Src: target.As16(), Dst: to.As16(),
		Type: wire.ICMPTypeNA, Flags: wire.NAFlagSolicited | wire.NAFlagOverride, Target: target.As16()}
	if opt != nil {
		n.LinkAddr, n.HasLinkAddr = [6]byte(opt), true
	}
	b := make([]byte, wire.NDLinkFrameLen)
	return b[:wire.PutND(b, &n)]
}

func TestOnce(t *testing.T) {
	allNodes := netip.MustParseAddr("ff02::1")
	tests := []struct {
		name    string
		src     netip.Addr
		target  netip.Addr
		wantReq []byte
		wantDst net.HardwareAddr
		answers func(t *testing.T) [][]byte
		want    []net.HardwareAddr
	}{
		{
			name: "IPv4 one answer", src: clientV4, target: nodeV4, wantReq: vecARPRequest, wantDst: net.HardwareAddr(wire.BroadcastMAC[:]),
			answers: func(*testing.T) [][]byte { return [][]byte{vecARPReply} },
			want:    []net.HardwareAddr{nodeMAC},
		},
		{
			name: "IPv4 two answers, one repeated", src: clientV4, target: nodeV4, wantReq: vecARPRequest, wantDst: net.HardwareAddr(wire.BroadcastMAC[:]),
			answers: func(t *testing.T) [][]byte {
				return [][]byte{vecARPReply, arpReplyFrom(t, otherMAC, nodeV4, clientV4), vecARPReply}
			},
			want: []net.HardwareAddr{nodeMAC, otherMAC, nodeMAC},
		},
		{
			name: "IPv4 answers for others ignored", src: clientV4, target: nodeV4, wantReq: vecARPRequest, wantDst: net.HardwareAddr(wire.BroadcastMAC[:]),
			answers: func(t *testing.T) [][]byte {
				return [][]byte{
					vecARPRequest, // a request, and our own
					arpReplyFrom(t, otherMAC, netip.MustParseAddr("198.51.100.12"), clientV4), // another address
					arpReplyFrom(t, otherMAC, nodeV4, netip.MustParseAddr("198.51.100.4")),    // to another asker
					arpReplyFrom(t, clientMAC, nodeV4, clientV4),                              // sent by ourselves
					vecNA,
				}
			},
		},
		{
			name: "IPv6 one answer", src: clientV6, target: nodeV6, wantReq: vecNS, wantDst: mustMAC("33:33:ff:00:00:11"),
			answers: func(*testing.T) [][]byte { return [][]byte{vecNA} },
			want:    []net.HardwareAddr{nodeMAC},
		},
		{
			name: "IPv6 answer without option gives the Ethernet source", src: clientV6, target: nodeV6, wantReq: vecNS,
			wantDst: mustMAC("33:33:ff:00:00:11"),
			answers: func(t *testing.T) [][]byte { return [][]byte{naFrom(t, otherMAC, nodeV6, clientV6, otherMAC, nil)} },
			want:    []net.HardwareAddr{otherMAC},
		},
		{
			name: "IPv6 answers for others ignored", src: clientV6, target: nodeV6, wantReq: vecNS,
			wantDst: mustMAC("33:33:ff:00:00:11"),
			answers: func(t *testing.T) [][]byte {
				return [][]byte{
					vecNS,
					naFrom(t, otherMAC, nodeV6, allNodes, otherMAC, otherMAC),                                  // unsolicited
					naFrom(t, otherMAC, netip.MustParseAddr("2001:db8:100::12"), clientV6, otherMAC, otherMAC), // another address
					naFrom(t, otherMAC, nodeV6, clientV6, clientMAC, otherMAC),                                 // sent by ourselves
					vecARPReply,
				}
			},
		},
		{
			name: "no answer", src: clientV4, target: netip.MustParseAddr("198.51.100.99"), wantDst: net.HardwareAddr(wire.BroadcastMAC[:]),
			wantReq: mustHex(`ffff ffff ffff 0200 c633 6403 0806 0001 0800 0604 0001 0200 c633 6403 c633 6403
				0000 0000 0000 c633 6463`),
			answers: func(*testing.T) [][]byte { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seg := newSegment()
			fc := testingclock.NewFakeClock(t0)
			p := NewWithConn(clientIf, tt.src, seg, WithClock(fc))
			t.Cleanup(func() { p.Close() })

			type result struct {
				replies []Reply
				err     error
			}
			done := make(chan result, 1)
			go func() {
				r, err := p.Once(context.Background(), tt.target, 100*time.Millisecond)
				done <- result{r, err}
			}()
			w := seg.nextWrite(t)
			if diff := cmp.Diff(tt.wantReq, w.frame); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDst, w.dst); diff != "" {
				t.Errorf("request destination (-want +got):\n%s", diff)
			}
			fc.Step(3 * time.Millisecond)
			seg.inject(tt.answers(t)...)
			seg.settle()
			fc.Step(97 * time.Millisecond)
			r := <-done
			if r.err != nil {
				t.Fatalf("Once: %v", r.err)
			}
			var want []Reply
			for _, m := range tt.want {
				want = append(want, Reply{MAC: m, At: t0.Add(3 * time.Millisecond), RTT: 3 * time.Millisecond, Seq: 1})
			}
			if diff := cmp.Diff(want, r.replies); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOnceErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, p *Prober, seg *segment, fc *testingclock.FakeClock) error
		want string
	}{
		{
			name: "family mismatch",
			run: func(t *testing.T, p *Prober, _ *segment, _ *testingclock.FakeClock) error {
				_, err := p.Once(context.Background(), nodeV6, time.Second)
				return err
			},
			want: "target 2001:db8:100::11 and source 198.51.100.3 on eth0 are not of one family",
		},
		{
			name: "read failure",
			run: func(t *testing.T, p *Prober, seg *segment, _ *testingclock.FakeClock) error {
				seg.failReads(errors.New("link gone"))
				_, err := p.Once(context.Background(), nodeV4, time.Hour)
				return err
			},
			want: "reading on eth0: link gone",
		},
		{
			name: "context cancelled",
			run: func(t *testing.T, p *Prober, seg *segment, _ *testingclock.FakeClock) error {
				ctx, cancel := context.WithCancel(context.Background())
				go func() { <-seg.writes; cancel() }()
				_, err := p.Once(ctx, nodeV4, time.Hour)
				return err
			},
			want: context.Canceled.Error(),
		},
		{
			name: "closed",
			run: func(t *testing.T, p *Prober, _ *segment, _ *testingclock.FakeClock) error {
				if err := p.Close(); err != nil {
					return err
				}
				if err := p.Close(); err != nil { // idempotent
					return err
				}
				_, err := p.Once(context.Background(), nodeV4, time.Hour)
				return err
			},
			want: "sending a request for 198.51.100.11 on eth0: use of closed network connection",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seg := newSegment()
			fc := testingclock.NewFakeClock(t0)
			p := NewWithConn(clientIf, clientV4, seg, WithClock(fc))
			t.Cleanup(func() { p.Close() })
			err := tt.run(t, p, seg, fc)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		ifi  wire.Interface
		src  netip.Addr
	}{
		{name: "no MAC", ifi: wire.Interface{Name: "tun0"}, src: clientV4},
		{name: "no source", ifi: clientIf},
		{name: "IPv6 unspecified", ifi: clientIf, src: netip.IPv6Unspecified()},
		{name: "IPv6 multicast", ifi: clientIf, src: netip.MustParseAddr("ff02::1")},
		{name: "zone", ifi: clientIf, src: netip.MustParseAddr("fe80::1%eth0")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newProber(tt.ifi, tt.src, newSegment(), nil); err == nil {
				t.Error("newProber accepted it")
			}
		})
	}
}

// TestWatch drives a Watch with a fake clock through answered requests, an outage of three requests, a request
// answered by two MACs (a failover's overlap) and a new owner.
func TestWatch(t *testing.T) {
	const every = 10 * time.Millisecond
	answers := map[int][]net.HardwareAddr{
		1: {nodeMAC}, 2: {nodeMAC}, 6: {nodeMAC, otherMAC}, 7: {otherMAC}, 8: {otherMAC, otherMAC},
	}
	const last = 8

	seg := newSegment()
	fc := testingclock.NewFakeClock(t0)
	p := NewWithConn(clientIf, clientV4, seg, WithClock(fc))
	t.Cleanup(func() { p.Close() })

	type call struct {
		seq     int
		sent    time.Time
		replies []Reply
	}
	calls := make(chan call, 1)
	var series Series
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() {
		watched <- p.Watch(ctx, nodeV4, every, func(seq int, sent time.Time, replies []Reply) {
			series.Add(seq, sent, replies)
			calls <- call{seq, sent, replies}
		})
	}()
	for seq := 1; seq <= last; seq++ {
		w := seg.nextWrite(t)
		if diff := cmp.Diff(vecARPRequest, w.frame); diff != "" {
			t.Fatalf("request %d (-want +got):\n%s", seq, diff)
		}
		fc.Step(2 * time.Millisecond)
		var frames [][]byte
		for _, m := range answers[seq] {
			frames = append(frames, arpReplyFrom(t, m, nodeV4, clientV4))
		}
		seg.inject(frames...)
		seg.settle()
		fc.Step(every - 2*time.Millisecond)
		c := <-calls
		sent := t0.Add(time.Duration(seq-1) * every)
		var want []Reply
		for _, m := range answers[seq] {
			want = append(want, Reply{MAC: m, At: sent.Add(2 * time.Millisecond), RTT: 2 * time.Millisecond, Seq: seq})
		}
		if diff := cmp.Diff(call{seq, sent, want}, c, cmp.AllowUnexported(call{})); diff != "" {
			t.Fatalf("interval %d (-want +got):\n%s", seq, diff)
		}
	}
	cancel()
	if err := <-watched; err != nil {
		t.Fatalf("Watch: %v", err)
	}

	type summary struct {
		Len, Unanswered, Duplicates int
		LongestGap                  time.Duration
		MACs, Last                  []net.HardwareAddr
	}
	got := summary{series.Len(), series.Unanswered(), series.Duplicates(), series.LongestGap(), series.MACs(), series.Last()}
	want := summary{Len: 8, Unanswered: 3, Duplicates: 1, LongestGap: 3 * every,
		MACs: []net.HardwareAddr{nodeMAC, otherMAC}, Last: []net.HardwareAddr{otherMAC}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

// TestWatchLateReply checks that an answer read after the next request went out counts for that request.
func TestWatchLateReply(t *testing.T) {
	const every = 10 * time.Millisecond
	seg := newSegment()
	fc := testingclock.NewFakeClock(t0)
	p := NewWithConn(clientIf, clientV6, seg, WithClock(fc))
	t.Cleanup(func() { p.Close() })
	calls := make(chan []Reply, 1)
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- p.Watch(ctx, nodeV6, every, func(_ int, _ time.Time, r []Reply) { calls <- r }) }()
	defer func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()

	seg.nextWrite(t)
	seg.settle()
	fc.Step(every)
	if diff := cmp.Diff([]Reply(nil), <-calls); diff != "" {
		t.Errorf("request 1 (-want +got):\n%s", diff)
	}
	seg.nextWrite(t) // request 2 is out; the answer to request 1 arrives only now
	fc.Step(time.Millisecond)
	seg.inject(vecNA)
	seg.settle()
	fc.Step(every - time.Millisecond)
	want := []Reply{{MAC: nodeMAC, At: t0.Add(every + time.Millisecond), RTT: time.Millisecond, Seq: 2}}
	if diff := cmp.Diff(want, <-calls); diff != "" {
		t.Errorf("request 2 (-want +got):\n%s", diff)
	}
}
