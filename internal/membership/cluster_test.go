package membership

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/memberlist"
)

var (
	testKey  = []byte("herald-test-key-0123456789abcdef") // 32 bytes
	otherKey = []byte("herald-other-key-0123456789abcde") // 32 bytes
)

// testLogger discards logs unless HERALD_TEST_LOG is set. It writes to
// stderr rather than t.Log: memberlist goroutines may log after a test ends.
func testLogger() logr.Logger {
	if os.Getenv("HERALD_TEST_LOG") == "" {
		return logr.Discard()
	}
	v := 0
	if os.Getenv("HERALD_TEST_LOG") == "debug" {
		v = 1
	}
	return funcr.New(func(prefix, args string) {
		fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, args)
	}, funcr.Options{Verbosity: v})
}

// macFor returns a MAC derived from a member name.
func macFor(name string) net.HardwareAddr {
	var s byte
	for _, c := range []byte(name) {
		s = s*31 + c
	}
	return net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, s}
}

// pumpTransport is a memberlist.MockTransport whose inbound packets and
// streams are moved by a goroutine into buffered channels. MockTransport
// delivers on unbuffered channels, and memberlist answers a ping from the
// goroutine that reads packets, so two members pinging each other at the
// same moment block each other forever; a real UDP socket has a buffer and
// drops when it is full, and so does this. A dead pumpTransport (a crashed
// host) drops packets and closes incoming streams. A stalled one (stall)
// holds what arrives and what its member sends until the stall ends.
type pumpTransport struct {
	*memberlist.MockTransport
	packets   chan *memberlist.Packet
	streams   chan net.Conn
	dead      atomic.Bool
	packetsIn atomic.Int64 // packets delivered to memberlist
	bytesIn   atomic.Int64 // their bytes
	// What the member sent: packets (UDP) and their bytes, and the bytes it
	// wrote on streams (TCP: joins, push/pull, fallback pings), whichever
	// side opened them. All encrypted memberlist payload, before headers.
	packetsOut  atomic.Int64
	bytesOut    atomic.Int64
	streamBytes atomic.Int64

	stalled atomic.Bool   // see stall
	resume  chan struct{} // capacity 1: a stall ended, deliver what was held

	gateMu sync.Mutex    // guards gate
	gate   chan struct{} // when not nil, sends wait until it is closed
}

// blockSends makes every packet and stream this transport sends wait until
// unblockSends: a network that takes nothing, so that memberlist's
// goroutines stall in their sends and UpdateNode waits for its broadcast
// until it times out.
func (t *pumpTransport) blockSends() {
	t.gateMu.Lock()
	defer t.gateMu.Unlock()
	if t.gate == nil {
		t.gate = make(chan struct{})
	}
}

// unblockSends releases the sends blockSends holds.
func (t *pumpTransport) unblockSends() {
	t.gateMu.Lock()
	defer t.gateMu.Unlock()
	if t.gate != nil {
		close(t.gate)
		t.gate = nil
	}
}

func (t *pumpTransport) waitGate() {
	t.gateMu.Lock()
	g := t.gate
	t.gateMu.Unlock()
	if g != nil {
		<-g
	}
}

// stall models the member's process not running for d: from outside, a
// SIGSTOP, a long GC pause or a CPU quota exhausted. Packets that arrive
// meanwhile are held, as a socket buffer holds them, up to the channel's
// capacity, and delivered when it ends; so are incoming streams (the
// kernel completes TCP handshakes for a stopped process). Everything the
// member sends waits (blockSends), so its probes, acks, gossip and
// push/pull stall in their sends. What this does not stop: memberlist's
// timers keep firing in the stalled member (a suspicion timer may expire,
// a probe's ack timeout passes), work that sends nothing still runs, and
// the whole simulation shares one machine's cores, so healthy members also
// run late when it is busy. stall returns when the stall has ended.
func (t *pumpTransport) stall(d time.Duration) {
	t.blockSends()
	t.stalled.Store(true)
	time.Sleep(d)
	t.stalled.Store(false)
	t.unblockSends()
	select {
	case t.resume <- struct{}{}:
	default:
	}
}

func (t *pumpTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.waitGate()
	t.packetsOut.Add(1)
	t.bytesOut.Add(int64(len(b)))
	return t.MockTransport.WriteTo(b, addr)
}

func (t *pumpTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.waitGate()
	t.packetsOut.Add(1)
	t.bytesOut.Add(int64(len(b)))
	return t.MockTransport.WriteToAddress(b, a)
}

func (t *pumpTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	t.waitGate()
	return t.counted(t.MockTransport.DialTimeout(addr, timeout))
}

func (t *pumpTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	t.waitGate()
	return t.counted(t.MockTransport.DialAddressTimeout(a, timeout))
}

func (t *pumpTransport) counted(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, n: &t.streamBytes}, nil
}

// countingConn adds the bytes written on a stream to n.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (t *pumpTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *pumpTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *pumpTransport) pump(stop <-chan struct{}) {
	var heldPackets []*memberlist.Packet // arrived during a stall
	var heldConns []net.Conn
	deliver := func(p *memberlist.Packet) {
		select {
		case t.packets <- p:
			t.packetsIn.Add(1)
			t.bytesIn.Add(int64(len(p.Buf)))
		default: // buffer full: dropped, as UDP would be
		}
	}
	accept := func(conn net.Conn) {
		select {
		case t.streams <- countingConn{Conn: conn, n: &t.streamBytes}:
		default:
			conn.Close()
		}
	}
	for {
		// Until the pump has handed over what a stall held, newer arrivals
		// queue behind it.
		holding := t.stalled.Load() || len(heldPackets) > 0 || len(heldConns) > 0
		select {
		case <-stop:
			for _, c := range heldConns {
				c.Close()
			}
			return
		case <-t.resume:
			if t.stalled.Load() {
				continue
			}
			for _, p := range heldPackets {
				deliver(p)
			}
			for _, c := range heldConns {
				accept(c)
			}
			heldPackets, heldConns = nil, nil
		case p := <-t.MockTransport.PacketCh():
			switch {
			case t.dead.Load():
			case holding:
				if len(heldPackets) < cap(t.packets) { // beyond: the socket buffer is full
					heldPackets = append(heldPackets, p)
				}
			default:
				deliver(p)
			}
		case conn := <-t.MockTransport.StreamCh():
			switch {
			case t.dead.Load():
				conn.Close()
			case holding:
				heldConns = append(heldConns, conn)
			default:
				accept(conn)
			}
		}
	}
}

// cluster is a set of members on one memberlist.MockNetwork. MockNetwork's
// maps are not locked, so every transport is created up front, before any
// member starts.
type cluster struct {
	t     testing.TB
	net   *memberlist.MockNetwork
	tr    map[string]*pumpTransport
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex // guards lists, raw
	lists map[string]*List
	raw   map[string]*memberlist.Memberlist
	once  sync.Once
	// mod, if set, adjusts every configuration config returns.
	mod func(*Config)
}

func newCluster(t testing.TB, names ...string) *cluster {
	c := &cluster{
		t:     t,
		net:   &memberlist.MockNetwork{},
		tr:    make(map[string]*pumpTransport),
		stop:  make(chan struct{}),
		lists: make(map[string]*List),
		raw:   make(map[string]*memberlist.Memberlist),
	}
	for _, n := range names {
		tr := &pumpTransport{
			MockTransport: c.net.NewTransport(n),
			packets:       make(chan *memberlist.Packet, 1024),
			streams:       make(chan net.Conn, 64),
			resume:        make(chan struct{}, 1),
		}
		c.tr[n] = tr
		c.wg.Go(func() { tr.pump(c.stop) })
	}
	t.Cleanup(c.close)
	return c
}

// config returns the configuration of member name with default timings.
func (c *cluster) config(name string) Config {
	tr, ok := c.tr[name]
	if !ok {
		c.t.Fatalf("no transport for %q", name)
	}
	cfg := Config{
		NodeName:  name,
		Key:       testKey,
		MACs:      []net.HardwareAddr{macFor(name)},
		Logger:    testLogger().WithValues("self", name),
		Transport: tr,
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	return cfg
}

func (c *cluster) start(cfg Config) *List {
	c.t.Helper()
	l, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	c.mu.Lock()
	c.lists[cfg.NodeName] = l
	c.mu.Unlock()
	return l
}

// startAll starts the named members with default configurations and joins
// all but the first through the first, then waits until everyone sees
// everyone.
func (c *cluster) startAll(names ...string) []*List {
	c.t.Helper()
	var ls []*List
	for _, n := range names {
		ls = append(ls, c.start(c.config(n)))
	}
	for _, l := range ls[1:] {
		if n, err := l.Join([]string{c.addr(names[0])}); err != nil || n != 1 {
			c.t.Fatalf("Join: %d, %v", n, err)
		}
	}
	c.waitAllSee(ls, names)
	return ls
}

// waitAllSee waits until each of ls sees exactly the named members, with
// their addresses and MACs. It first waits for the counts, which is cheap
// with a hundred members, then compares.
func (c *cluster) waitAllSee(ls []*List, names []string) {
	c.t.Helper()
	// Generous: a member that misses the join gossip under heavy CPU
	// contention learns the rest at its next push/pull (10s, 30s from 33
	// members on; five times that in the slow-motion runs), and a hundred
	// members joining at once take a minute to settle on two cores.
	deadline := time.Now().Add(3 * time.Minute)
	for _, l := range ls {
		for l.NumMembers() != len(names) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
	want := c.members(names...)
	for _, l := range ls {
		eventually(c.t, time.Until(deadline)+time.Second, func() string {
			return cmp.Diff(want, l.Members(), cmpAddr)
		}, "%s sees all members", l.LocalMember().Name)
	}
}

// addr returns the "host:port" of member name on the mock network.
func (c *cluster) addr(name string) string {
	ip, port, err := c.tr[name].FinalAdvertiseAddr("", 0)
	if err != nil {
		c.t.Fatal(err)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}

// member returns what the others should see of member name.
func (c *cluster) member(name string, macs ...net.HardwareAddr) Member {
	ip, port, err := c.tr[name].FinalAdvertiseAddr("", 0)
	if err != nil {
		c.t.Fatal(err)
	}
	a, _ := netip.AddrFromSlice(ip)
	if len(macs) == 0 {
		macs = []net.HardwareAddr{macFor(name)}
	}
	return Member{Name: name, Addr: a.Unmap(), Port: port, MACs: macs}
}

func (c *cluster) members(names ...string) []Member {
	var out []Member
	for _, n := range names {
		out = append(out, c.member(n))
	}
	return out
}

// crash shuts member name down without leaving.
func (c *cluster) crash(name string) {
	c.mu.Lock()
	l := c.lists[name]
	c.mu.Unlock()
	c.kill(name)
	if err := l.shutdown(false); err != nil {
		c.t.Errorf("crash %s: %v", name, err)
	}
}

// closeMember closes member name gracefully.
func (c *cluster) closeMember(name string) {
	c.mu.Lock()
	l := c.lists[name]
	c.mu.Unlock()
	if err := l.Close(); err != nil {
		c.t.Errorf("Close %s: %v", name, err)
	}
	c.kill(name)
}

// kill makes member name's transport behave like a crashed host.
func (c *cluster) kill(name string) { c.tr[name].dead.Store(true) }

func (c *cluster) close() {
	c.once.Do(func() {
		for _, tr := range c.tr {
			tr.unblockSends()
		}
		c.mu.Lock()
		lists := make(map[string]*List, len(c.lists))
		for n, l := range c.lists {
			lists[n] = l
		}
		raw := make(map[string]*memberlist.Memberlist, len(c.raw))
		for n, m := range c.raw {
			raw[n] = m
		}
		c.mu.Unlock()
		for n, l := range lists {
			if err := l.shutdown(false); err != nil {
				c.t.Errorf("close %s: %v", n, err)
			}
			c.kill(n)
		}
		for n, m := range raw {
			m.Shutdown()
			c.kill(n)
		}
		close(c.stop)
		c.wg.Wait()
	})
}

// eventually polls diff until it returns "" or timeout passes.
func eventually(t testing.TB, timeout time.Duration, diff func() string, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := diff()
		if d == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, not true: %s:\n%s", timeout, fmt.Sprintf(format, args...), d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// memberNames returns the member names in ms.
func memberNames(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

// cmpAddr lets cmp compare netip.Addr and netip.Prefix values with ==.
var cmpAddr = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// TestSend: a message Send writes reaches the named member's Messages, whole, and only that member;
// a name that is not a live member, an empty message and a closed list are refused with the reason.
func TestSend(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	ls := c.startAll("a", "b", "c")
	big := bytes.Repeat([]byte("x"), 100_000) // far beyond a UDP packet
	for _, m := range [][]byte{[]byte("first"), big, []byte("last")} {
		if err := ls[0].Send("b", m); err != nil {
			t.Fatalf("Send to b: %v", err)
		}
	}
	// Each Send is a stream of its own: they arrive whole, not necessarily in the order sent.
	got := map[string]bool{}
	for range 3 {
		select {
		case m := <-ls[1].Messages():
			got[string(m)] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("b received %d messages within 10 s, want 3", len(got))
		}
	}
	if !got["first"] || !got[string(big)] || !got["last"] {
		t.Fatalf("b did not receive the three messages whole (%d distinct)", len(got))
	}
	select {
	case got := <-ls[2].Messages():
		t.Fatalf("c received %q, sent to b", got)
	case <-time.After(100 * time.Millisecond):
	}
	for _, tc := range []struct {
		to   string
		msg  []byte
		want string
	}{
		{"nobody", []byte("x"), "not a live member"},
		{"b", nil, "message of 0 bytes"},
		{"b", make([]byte, MaxMessageSize+1), "message of 1048577 bytes"},
	} {
		if err := ls[0].Send(tc.to, tc.msg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Send(%q, %d bytes) = %v, want an error saying %q", tc.to, len(tc.msg), err, tc.want)
		}
	}
	if err := ls[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := ls[2].Send("a", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

// TestMessagesDropWhenFull: a receiver that does not take its messages loses those that do not fit, counted, and
// never blocks memberlist.
func TestMessagesDropWhenFull(t *testing.T) {
	c := newCluster(t, "a", "b")
	ls := c.startAll("a", "b")
	for i := range messageQueue + 3 {
		if err := ls[0].Send("b", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() string {
		if d := ls[1].MessagesDropped(); d != 3 {
			return fmt.Sprintf("dropped %d, want 3", d)
		}
		return ""
	}, "b drops what does not fit")
	if n := len(ls[1].Messages()); n != messageQueue {
		t.Errorf("%d messages wait, want %d", n, messageQueue)
	}
}
