package announce

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/heraldlb/herald/internal/wire"
)

// replayConn is a Config.Listen transport for benchmarks: every ReadFrom returns the same ARP request at once,
// until n were read, and WriteTo records how long after its read each reply was sent. Other frames sent
// (gratuitous ARPs for new addresses) are counted and dropped.
type replayConn struct {
	frame  []byte
	n      int64
	read   atomic.Int64
	readAt []time.Time // by read number; written by the reader alone
	lat    []time.Duration
	others atomic.Int64
	done   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newReplayConn(frame []byte, n int) *replayConn {
	return &replayConn{frame: frame, n: int64(n), readAt: make([]time.Time, n), lat: make([]time.Duration, 0, n),
		done: make(chan struct{}), closed: make(chan struct{})}
}

func (c *replayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	i := c.read.Load()
	if i >= c.n {
		<-c.closed
		return 0, nil, net.ErrClosed
	}
	c.read.Add(1)
	c.readAt[i] = time.Now()
	return copy(b, c.frame), nil, nil
}

func (c *replayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if pa, ok := addr.(*packet.Addr); !ok || pa.HardwareAddr.String() != net.HardwareAddr(c.frame[6:12]).String() {
		c.others.Add(1)
		return len(b), nil
	}
	// Replies are written by the responder goroutine that read the request, so the read count is its own.
	c.lat = append(c.lat, time.Since(c.readAt[c.read.Load()-1]))
	if int64(len(c.lat)) == c.n {
		close(c.done)
	}
	return len(b), nil
}

func (c *replayConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *replayConn) LocalAddr() net.Addr                   { return &packet.Addr{} }
func (c *replayConn) SetDeadline(time.Time) error           { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error       { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error      { return nil }
func (c *replayConn) JoinMulticast(net.HardwareAddr) error  { return nil }
func (c *replayConn) LeaveMulticast(net.HardwareAddr) error { return nil }

// BenchmarkReplyDuringStorm measures the responder's per-request work (read, VIP lookup, rate limiter, reply
// built and written) on a 10,000-address interface, alone and while another goroutine replaces the assignment as
// fast as it can, as the event loop does through a creation storm (each Set adds 100 new addresses, so the
// announcer also sends their gratuitous ARPs on the same socket). The reply path takes no lock Set takes and
// allocates nothing, so the storm should cost it no more than the CPU it shares. Reported: ns/op (the responder's
// throughput), p50-ns and p99-ns from a request's read to its reply's write, and sets (assignments applied
// during the run).
//
// go test -run '^$' -bench BenchmarkReplyDuringStorm -benchtime 200000x ./internal/announce/
func BenchmarkReplyDuringStorm(b *testing.B) {
	frame := unhex(b, vecARPRequestKernel)
	target := netip.AddrFrom4([4]byte(frame[38:42]))
	base := []netip.Addr{target}
	for i := 1; len(base) < 10000; i++ {
		base = append(base, netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
	}
	for _, storm := range []bool{false, true} {
		name := "quiet"
		if storm {
			name = "storm"
		}
		b.Run(name, func(b *testing.B) {
			conn := newReplayConn(frame, b.N)
			listen := func(wire.Interface) (Conns, error) { return Conns{ARP: conn}, nil }
			a := New(Config{Listen: listen, Fresh: func() bool { return true },
				RateLimit: Limits{PerRequester: -1, PerResponder: 1e12}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = a.Run(ctx) }()
			defer a.Close()
			ifi := wire.Interface{Name: "eth0", Index: 2, MAC: net.HardwareAddr(macA[:])}
			a.Set(Assignment{"eth0": {Interface: ifi, VIPs: base}})
			var sets atomic.Int64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if storm {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						vips := slices.Clone(base)
						for j := range 100 {
							vips = append(vips, netip.AddrFrom4([4]byte{203, 0, byte(i % 64), byte(j)}))
						}
						a.Set(Assignment{"eth0": {Interface: ifi, VIPs: vips}})
						sets.Add(1)
					}
				})
			}
			b.ResetTimer()
			select {
			case <-conn.done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d requests answered in 5 minutes", len(conn.lat), b.N)
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			lat := slices.Clone(conn.lat)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(sets.Load()), "sets")
		})
	}
}
