package guard

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldlb/herald/internal/wire"
)

// liveness bounds waits for goroutines in the fakes; no test asserts on it.
const liveness = 10 * time.Second

// fakeFrame is one frame handed to a fakeConn's reader.
type fakeFrame struct {
	b        []byte
	outgoing bool
}

// fakeConn is an in-memory Conns socket. inject hands a frame to the
// reader and returns once the reader has processed it (called ReadFrom
// again), so tests need no sleeps.
type fakeConn struct {
	in      chan fakeFrame
	done    chan struct{}
	closed  chan struct{}
	once    sync.Once
	pending bool        // reader side only
	from    Addr        // reader side only
	readErr chan error  // a value makes ReadFrom fail
	writes  chan []byte // every frame written

	mu       sync.Mutex // guards joined and failNext
	joined   map[string]int
	failNext int // how many of the next writes fail with ENOBUFS, as a full queue's do
}

func newFakeConn() *fakeConn {
	return &fakeConn{
		in:      make(chan fakeFrame),
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
		readErr: make(chan error, 1),
		writes:  make(chan []byte, 4096),
		joined:  make(map[string]int),
	}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.pending {
		c.pending = false
		select {
		case c.done <- struct{}{}:
		case <-c.closed:
			return 0, nil, net.ErrClosed
		}
	}
	select {
	case f := <-c.in:
		c.pending = true
		n := copy(b, f.b)
		c.from = Addr{HardwareAddr: net.HardwareAddr(f.b[6:12]), Outgoing: f.outgoing}
		return n, &c.from, nil
	case err := <-c.readErr:
		return 0, nil, err
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

// inject delivers frame to the reader and waits until it is processed.
func (c *fakeConn) inject(t *testing.T, frame []byte, outgoing bool) {
	t.Helper()
	select {
	case c.in <- fakeFrame{b: frame, outgoing: outgoing}:
	case <-time.After(liveness):
		t.Fatal("no reader took the frame")
	}
	select {
	case <-c.done:
	case <-time.After(liveness):
		t.Fatal("the reader did not finish the frame")
	}
}

// nextWrite returns the next frame written.
func (c *fakeConn) nextWrite(t *testing.T) []byte {
	t.Helper()
	select {
	case b := <-c.writes:
		return b
	case <-time.After(liveness):
		t.Fatal("nothing was written")
		return nil
	}
}

func (c *fakeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.mu.Lock()
	fail := c.failNext > 0
	if fail {
		c.failNext--
	}
	c.mu.Unlock()
	if fail {
		return 0, syscall.ENOBUFS
	}
	select {
	case c.writes <- append([]byte(nil), b...):
	default:
		return 0, errors.New("fake conn: too many writes")
	}
	return len(b), nil
}

func (c *fakeConn) JoinMulticast(mac net.HardwareAddr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.joined[mac.String()]++
	return nil
}

func (c *fakeConn) LeaveMulticast(mac net.HardwareAddr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joined[mac.String()] == 0 {
		return fmt.Errorf("leave %v: not joined", mac)
	}
	c.joined[mac.String()]--
	if c.joined[mac.String()] == 0 {
		delete(c.joined, mac.String())
	}
	return nil
}

func (c *fakeConn) memberships() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.joined))
	for k, v := range c.joined {
		m[k] = v
	}
	return m
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *fakeConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &Addr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// fakeLink is one opening of an interface's fake sockets.
type fakeLink struct {
	ifi      wire.Interface
	arp, ndp *fakeConn
}

// fakeNet is a Config.Listen handing out fake conns.
type fakeNet struct {
	opened chan *fakeLink // every successful opening

	mu    sync.Mutex // guards fails
	fails int        // Listen calls still to fail
}

func newFakeNet() *fakeNet { return &fakeNet{opened: make(chan *fakeLink, 64)} }

func (n *fakeNet) listen(ifi wire.Interface) (Conns, error) {
	n.mu.Lock()
	if n.fails > 0 {
		n.fails--
		n.mu.Unlock()
		return Conns{}, errors.New("fake listen failure")
	}
	n.mu.Unlock()
	l := &fakeLink{ifi: ifi, arp: newFakeConn(), ndp: newFakeConn()}
	n.opened <- l
	return Conns{ARP: l.arp, NDP: l.ndp}, nil
}

// next returns the next opened link.
func (n *fakeNet) next(t *testing.T) *fakeLink {
	t.Helper()
	select {
	case l := <-n.opened:
		return l
	case <-time.After(liveness):
		t.Fatal("no interface was opened")
		return nil
	}
}

// frameCount reads herald_guard_frames_total{family,result}.
func frameCount(m *Metrics, f family, r result) float64 { return testutil.ToFloat64(m.frames[f][r]) }

func newTestMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

// failWrites makes the next n writes fail with ENOBUFS.
func (c *fakeConn) failWrites(n int) {
	c.mu.Lock()
	c.failNext = n
	c.mu.Unlock()
}
