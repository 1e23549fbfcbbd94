package announce

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/mdlayher/packet"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/heraldlb/herald/internal/wire"
)

// unhex decodes a hex string, ignoring spaces and newlines.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func mustMAC(s string) [6]byte {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		panic(fmt.Sprintf("bad MAC %q", s))
	}
	return [6]byte(hw)
}

var (
	// The MACs of the captured vectors: "a" is the announcer, "b" the peer.
	macA = mustMAC("02:00:5e:10:00:0a")
	macB = mustMAC("02:00:5e:10:00:0b")
	vip4 = netip.MustParseAddr("198.51.100.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
	ipB4 = netip.MustParseAddr("198.51.100.2")
	ipB6 = netip.MustParseAddr("2001:db8::2")
)

// arpRequest builds an ARP request frame from b asking for tpa.
func arpRequest(ethDst [6]byte, sha [6]byte, spa, tpa netip.Addr) []byte {
	b := make([]byte, wire.ARPFrameLen)
	wire.PutARP(b, ethDst, sha, &wire.ARP{Op: wire.ARPRequest, SenderMAC: sha, SenderIP: spa.As4(), TargetIP: tpa.As4()})
	return b
}

// nsSpec describes a Neighbor Solicitation for buildNS.
type nsSpec struct {
	ethDst, ethSrc [6]byte
	hopLimit       uint8 // 0 means 255
	src, dst       netip.Addr
	target         netip.Addr
	sllao          *[6]byte
	extraOpts      []byte // appended after the SLLAO, verbatim
}

// buildNS builds an Ethernet frame carrying the NS s with a correct
// checksum. It is written independently of wire.PutND.
func buildNS(s nsSpec) []byte {
	icmp := []byte{wire.ICMPTypeNS, 0, 0, 0, 0, 0, 0, 0}
	icmp = append(icmp, s.target.AsSlice()...)
	if s.sllao != nil {
		icmp = append(icmp, wire.OptSourceLinkAddr, 1)
		icmp = append(icmp, s.sllao[:]...)
	}
	icmp = append(icmp, s.extraOpts...)
	src, dst := s.src.As16(), s.dst.As16()
	binary.BigEndian.PutUint16(icmp[2:4], wire.ICMPv6Checksum(&src, &dst, icmp))
	hl := s.hopLimit
	if hl == 0 {
		hl = 255
	}
	f := append([]byte{}, s.ethDst[:]...)
	f = append(f, s.ethSrc[:]...)
	f = append(f, 0x86, 0xdd, 0x60, 0, 0, 0, byte(len(icmp)>>8), byte(len(icmp)), wire.ProtoICMPv6, hl)
	f = append(f, src[:]...)
	f = append(f, dst[:]...)
	return append(f, icmp...)
}

// fixNSChecksum recomputes the ICMPv6 checksum of an NS frame after a test
// changed its bytes.
func fixNSChecksum(f []byte) []byte {
	var src, dst [16]byte
	copy(src[:], f[22:38])
	copy(dst[:], f[38:54])
	plen := int(binary.BigEndian.Uint16(f[18:20]))
	icmp := f[wire.ICMPOffset : wire.ICMPOffset+plen]
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:4], wire.ICMPv6Checksum(&src, &dst, icmp))
	return f
}

// sentFrame is a frame a fakeConn was asked to send.
type sentFrame struct {
	At    time.Time
	Dst   string // the *packet.Addr given to WriteTo
	Frame []byte
}

// fakeConn is an in-memory Ethernet-frame net.PacketConn: tests push frames
// with inject and read what was sent from out. It also records multicast
// memberships. It is safe for concurrent use.
type fakeConn struct {
	clk     clock.PassiveClock
	in      chan []byte
	readErr chan error
	out     chan sentFrame
	closed  chan struct{}
	once    sync.Once

	mu     sync.Mutex // guards groups, events and gate
	groups map[string]int
	events []string
	// gate, when set, holds every WriteTo until it is closed (or receives).
	gate chan struct{}
}

func newFakeConn(clk clock.PassiveClock) *fakeConn {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &fakeConn{
		clk:     clk,
		in:      make(chan []byte, 64),
		readErr: make(chan error, 1),
		out:     make(chan sentFrame, 4096),
		closed:  make(chan struct{}),
		groups:  map[string]int{},
	}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.closed:
		return 0, nil, net.ErrClosed
	default:
	}
	select {
	case f := <-c.in:
		n := copy(b, f)
		return n, &packet.Addr{HardwareAddr: net.HardwareAddr(f[6:12])}, nil
	case err := <-c.readErr:
		return 0, nil, err
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	pa, ok := addr.(*packet.Addr)
	if !ok {
		return 0, fmt.Errorf("fakeConn: address %T, want *packet.Addr", addr)
	}
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c.out <- sentFrame{At: c.clk.Now(), Dst: pa.HardwareAddr.String(), Frame: append([]byte(nil), b...)}
	return len(b), nil
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *fakeConn) LocalAddr() net.Addr              { return &packet.Addr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *fakeConn) JoinMulticast(m net.HardwareAddr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[m.String()]++
	c.events = append(c.events, "join "+m.String())
	return nil
}
func (c *fakeConn) LeaveMulticast(m net.HardwareAddr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[m.String()] == 0 {
		return fmt.Errorf("fakeConn: leave %v: not joined", m)
	}
	c.groups[m.String()]--
	if c.groups[m.String()] == 0 {
		delete(c.groups, m.String())
	}
	c.events = append(c.events, "leave "+m.String())
	return nil
}

func (c *fakeConn) membership() (map[string]int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := map[string]int{}
	for k, v := range c.groups {
		g[k] = v
	}
	return g, append([]string(nil), c.events...)
}

// inject queues a frame for the responder to read.
func (c *fakeConn) inject(t testing.TB, f []byte) {
	t.Helper()
	select {
	case c.in <- append([]byte(nil), f...):
	case <-time.After(10 * time.Second):
		t.Fatal("inject: responder is not reading")
	}
}

// next returns the next frame sent, failing t after a deadline.
func (c *fakeConn) next(t testing.TB) sentFrame {
	t.Helper()
	select {
	case f := <-c.out:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame sent within 10s")
		return sentFrame{}
	}
}

// pending returns frames already sent and not yet read, without waiting.
func (c *fakeConn) pending() []sentFrame {
	var out []sentFrame
	for {
		select {
		case f := <-c.out:
			out = append(out, f)
		default:
			return out
		}
	}
}

// fakePair is what one Listen call returned.
type fakePair struct {
	ifi      wire.Interface
	arp, ndp *fakeConn
}

// fakeListener is a Config.Listen that hands out fakeConns and can be told
// to fail.
type fakeListener struct {
	clk    clock.PassiveClock
	opened chan *fakePair

	mu    sync.Mutex     // guards fail and calls
	fail  map[string]int // interface name -> Listen calls still to fail
	calls []string
}

func newFakeListener(clk clock.PassiveClock) *fakeListener {
	return &fakeListener{clk: clk, opened: make(chan *fakePair, 64), fail: map[string]int{}}
}

func (f *fakeListener) listen(ifi wire.Interface) (Conns, error) {
	f.mu.Lock()
	f.calls = append(f.calls, ifi.Name)
	if f.fail[ifi.Name] > 0 {
		f.fail[ifi.Name]--
		f.mu.Unlock()
		return Conns{}, fmt.Errorf("listen on %s: %w", ifi.Name, errors.New("no such device"))
	}
	f.mu.Unlock()
	p := &fakePair{ifi: ifi, arp: newFakeConn(f.clk), ndp: newFakeConn(f.clk)}
	f.opened <- p
	return Conns{ARP: p.arp, NDP: p.ndp}, nil
}

func (f *fakeListener) failNext(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[name] = n
}

func (f *fakeListener) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// waitOpen returns the next opened pair, failing t after a deadline.
func (f *fakeListener) waitOpen(t testing.TB) *fakePair {
	t.Helper()
	select {
	case p := <-f.opened:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no interface opened within 10s")
		return nil
	}
}

// logSink records log lines.
type logSink struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lines = append(s.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

// count returns how many lines contain every one of subs.
func (s *logSink) count(subs ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
next:
	for _, l := range s.lines {
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				continue next
			}
		}
		n++
	}
	return n
}

// harness runs an Announcer on fakes with a fake clock.
type harness struct {
	clk     *clocktesting.FakeClock
	listen  *fakeListener
	metrics *Metrics
	reg     *prometheus.Registry
	logs    *logSink
	a       *Announcer
	runErr  chan error
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		clk:    clocktesting.NewFakeClock(t0),
		reg:    prometheus.NewRegistry(),
		logs:   &logSink{},
		runErr: make(chan error, 1),
	}
	h.listen = newFakeListener(h.clk)
	h.metrics = NewMetrics(h.reg)
	cfg.Clock = h.clk
	cfg.Listen = h.listen.listen
	cfg.Metrics = h.metrics
	cfg.Logger = h.logs.logger()
	h.a = New(cfg)
	go func() { h.runErr <- h.a.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := h.a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-h.runErr:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	return h
}

// waitWaiters waits until Run has armed a timer on the fake clock.
func (h *harness) waitWaiters(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("Run armed no timer within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// eventually polls cond until it holds, failing t after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) requests(f family, r result) float64 {
	return testutil.ToFloat64(h.metrics.requests[f][r])
}
func (h *harness) gratuitous(f family) float64 { return testutil.ToFloat64(h.metrics.gratuitous[f]) }
func (h *harness) errorCount(o op) float64     { return testutil.ToFloat64(h.metrics.errors[o]) }

func iface(name string, index int, mac [6]byte) wire.Interface {
	return wire.Interface{Index: index, Name: name, MAC: net.HardwareAddr(mac[:])}
}

// errorsLogged counts Error-level lines (funcr gives them no "level") with msg.
func (s *logSink) errorsLogged(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, `"msg"="`+msg+`"`) && !strings.Contains(l, `"level"=`) {
			n++
		}
	}
	return n
}

// testutilValue reads a counter.
func testutilValue(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

// handlingNow says whether an ARP responder of a is in the middle of a frame.
func handlingNow(a *Announcer) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.links {
		if l.handling[familyIPv4].Load()%2 == 1 {
			return true
		}
	}
	return false
}
