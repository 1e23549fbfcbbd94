//go:build linux

package announce

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/wire"
)

// The flood experiment: in a namespace pair, a flooder MAC asks for one VIP
// as fast as floodRate allows, while a client MAC asks every 10ms, cycling
// over clientVIPs VIPs so that it stays within the default per-requester
// limit (100 requests/s over 20 targets is 5/s per target).
const (
	floodRate    = 30000 // frames per second
	floodFor     = 2 * time.Second
	clientEvery  = 10 * time.Millisecond
	clientVIPs   = 20
	floodChild   = "HERALD_ANNOUNCE_FLOOD_CHILD" // "<interface>,<frames>" makes the test binary a flooder
	floodMACText = "02:00:5e:10:00:0e"
)

var macFlood = mustMAC(floodMACText)

// clientVIP is the i-th VIP the client asks for; clientVIP(0) is vip4.
func clientVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i%clientVIPs)})
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(floodChild); spec != "" {
		os.Exit(floodMain(spec))
	}
	os.Exit(m.Run())
}

// floodMain is the flooder process of BenchmarkFlood, started in the peer
// namespace by "ip netns exec": it sends the frames and prints how many.
func floodMain(spec string) int {
	name, count, ok := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if !ok || err != nil {
		fmt.Fprintf(os.Stderr, "bad %s=%q\n", floodChild, spec)
		return 2
	}
	c, err := rawARPConn(name, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	sent, err := flood(context.Background(), c, n)
	fmt.Printf("sent %d\n", sent)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// rawARPConn opens an AF_PACKET socket for ARP on the named interface of
// the current namespace, with an optional filter.
func rawARPConn(name string, filter []bpf.Instruction) (*wire.Conn, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	c, err := wire.Listen(ifi, wire.Config{EtherType: unix.ETH_P_ARP, Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", name, err)
	}
	return c, nil
}

// repliesTo passes incoming ARP replies whose Ethernet destination ends
// with mac's last four bytes (0x5e10000e for the flooder, and so on).
func repliesTo(mac [6]byte) []bpf.Instruction {
	tail := uint32(mac[2])<<24 | uint32(mac[3])<<16 | uint32(mac[4])<<8 | uint32(mac[5])
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 5},
		bpf.LoadAbsolute{Off: wire.ARPOpOffset, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.ARPReply, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 2, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: tail, SkipTrue: 1},
		bpf.RetConstant{Val: wire.KeepFrame},
		bpf.RetConstant{Val: 0},
	}
}

// flood sends n ARP requests for vip4 from macFlood at floodRate, in
// batches every millisecond, and returns how many it sent.
func flood(ctx context.Context, c net.PacketConn, n int) (int, error) {
	req := arpRequest(wire.BroadcastMAC, macFlood, netip.MustParseAddr("198.51.100.3"), vip4)
	start := time.Now()
	sent := 0
	for sent < n && ctx.Err() == nil {
		due := min(n, int(time.Since(start).Seconds()*floodRate)+1)
		for ; sent < due; sent++ {
			if _, err := c.WriteTo(req, nil); err != nil {
				if err == unix.ENOBUFS || strings.Contains(err.Error(), "no buffer space") {
					continue // the peer's backlog is full: a frame lost, as on a wire
				}
				return sent, err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return sent, nil
}

// clientResult is what the client saw.
type clientResult struct {
	asked, answered int
}

// runClient asks for clientVIP(i) every clientEvery from macB on c until
// ctx is done, and counts the replies read from rc (which must pass only
// replies to macB) up to grace after the last request.
func runClient(ctx context.Context, c, rc *wire.Conn, grace time.Duration) (clientResult, error) {
	rc.SetReadDeadline(time.Time{}) // undo the previous run's
	var answered atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1514)
		for {
			n, _, err := rc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, p, f := wire.ParseARP(buf[:n]); f == wire.OK && p.Op == wire.ARPReply && p.TargetMAC == macB {
				answered.Add(1)
			}
		}
	}()
	var res clientResult
	tick := time.NewTicker(clientEvery)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			req := arpRequest(wire.BroadcastMAC, macB, ipB4, clientVIP(res.asked))
			if _, err = c.WriteTo(req, nil); err != nil {
				break loop
			}
			res.asked++
		}
	}
	time.Sleep(grace) // replies still in flight
	rc.SetReadDeadline(time.Now())
	wg.Wait()
	res.answered = int(answered.Load())
	return res, err
}

// floodLab sets up the namespaces and an announcer (with cfg) answering
// the clientVIPs VIPs on va, and opens, in the peer namespace, the client's
// socket and one reading the replies to macB.
func floodLab(t testing.TB, cfg Config) (l *lab, m *Metrics, client, replies *wire.Conn) {
	t.Helper()
	l = newLab(t)
	ifi := l.veth(t, "va", "vb", macA, macB)
	cfg.GratuitousRepeats = -1
	a, m, _ := startAnnouncer(t, l.a, cfg)
	var vips []netip.Addr
	for i := range clientVIPs {
		vips = append(vips, clientVIP(i))
	}
	a.Set(Assignment{"va": {Interface: ifi, VIPs: vips}})
	eventually(t, "socket open", func() bool { return len(a.Announced()) == clientVIPs })
	err := l.b.Do(func() error {
		var err error
		if client, err = rawARPConn("vb", []bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
			return err
		}
		replies, err = rawARPConn("vb", repliesTo(macB))
		return err
	})
	if err != nil {
		t.Fatalf("client sockets: %v", err)
	}
	t.Cleanup(func() { client.Close(); replies.Close() })
	return l, m, client, replies
}

// countReplies counts the frames rc passes until it is closed or its read
// deadline passes.
func countReplies(rc *wire.Conn) (wait func() int) {
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1514)
		for {
			if _, _, err := rc.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return func() int {
		rc.SetReadDeadline(time.Now())
		<-done
		return int(n.Load())
	}
}

func TestFloodIsRateLimited(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a veth pair for 2s")
	}
	l, m, client, replies := floodLab(t, Config{})
	var flooder, floodReplies *wire.Conn
	err := l.b.Do(func() error {
		var err error
		if flooder, err = rawARPConn("vb", []bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
			return err
		}
		floodReplies, err = rawARPConn("vb", repliesTo(macFlood))
		return err
	})
	if err != nil {
		t.Fatalf("flooder sockets: %v", err)
	}
	defer flooder.Close()
	defer floodReplies.Close()
	floodAnswered := countReplies(floodReplies)

	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	defer cancel()
	type floodDone struct {
		sent int
		took time.Duration
		err  error
	}
	fc := make(chan floodDone, 1)
	go func() {
		start := time.Now()
		n, err := flood(ctx, flooder, 10*floodRate)
		fc <- floodDone{n, time.Since(start), err}
	}()
	res, err := runClient(ctx, client, replies, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	fd := <-fc
	if fd.err != nil {
		t.Fatalf("flooder: %v", fd.err)
	}
	got := floodAnswered()
	limited := testutilValue(m.requests[familyIPv4][resultRateLimited])
	t.Logf("flooder sent %d requests in %v (%.0f/s) and got %d replies; %v refused as rate_limited; client asked %d, answered %d",
		fd.sent, fd.took.Round(time.Millisecond), float64(fd.sent)/fd.took.Seconds(), got, limited, res.asked, res.answered)
	if fd.sent < 10000 {
		t.Errorf("flooder sent only %d requests in %v; the machine is too busy for this test to mean anything", fd.sent, fd.took)
	}
	// The limiter never refuses the client: every refusal is a flood frame. A few client requests may still be
	// lost before the responder reads them (the socket buffer overflows when the shared machine is busy running
	// other tests), so the client's answers are held to 95 %, not 100 %.
	// One exception: the limiter's table has 4096 buckets under a random seed, so one of the client's 20 targets
	// shares the flooder's bucket in about one run in 200; that target's requests (a twentieth of the client's)
	// are then refused with the flood's. More than that means the limiter refuses the client for its own sake.
	if refused, shared := float64(fd.sent-got), float64(res.asked/clientVIPs); limited > refused+shared {
		t.Errorf("%v requests refused as rate_limited but the flooder had only %v refused: the client was limited beyond one shared bucket (%v)", limited, refused, shared)
	}
	if res.asked < 100 || float64(res.answered) < 0.95*float64(res.asked) {
		t.Errorf("client asked %d times and got %d replies, want at least 95 %% of at least 100 answered", res.asked, res.answered)
	}
	// Allowed: the burst, the rate over the flood, and one token of slack
	// for the client's grace period.
	if limit := DefaultBurst + int(DefaultPerRequester*(fd.took+200*time.Millisecond).Seconds()) + 1; got > limit {
		t.Errorf("flooder got %d replies, want at most %d", got, limit)
	}
	if got == 0 {
		t.Error("flooder got no reply at all; the limiter should let its burst through")
	}
}

// cpuTime is the user plus system CPU time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFlood measures what a flood costs the announcer. The flooder is
// a separate process (this test binary re-executed with floodChild set,
// started by "ip netns exec" in the peer namespace), so getrusage
// (RUSAGE_SELF) of this process, read before and after, is the CPU time of
// the announcer's responder goroutines plus the client's (one request every
// 10ms and its reply reader) and the Go runtime's. The kernel work of
// transmitting over the veth pair, which runs in the sender's context, is
// the flooder's. The same 2s with the client alone, measured first, is the
// baseline. Reported per iteration (one 2s flood of floodRate frames/s):
//
//   - cpu-ms/100k-flood: this process's CPU time per 100,000 flood frames
//     sent, baseline subtracted;
//   - baseline-cpu-ms: this process's CPU time over the 2s without flood;
//   - client-answered: the fraction of the client's requests answered;
//   - flood-replies: replies the flooder received (from the metrics).
//
// Run it once: go test -run '^$' -bench BenchmarkFlood -benchtime 1x ./internal/announce/
func BenchmarkFlood(b *testing.B) {
	l, m, client, replies := floodLab(b, Config{})
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	// Baseline: the client alone.
	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	cpu0 := cpuTime(b)
	if _, err := runClient(ctx, client, replies, 100*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	baseline := cpuTime(b) - cpu0
	cancel()

	var cpuPer100k, answered, floodReplies float64
	iters := 0
	for b.Loop() {
		iters++
		answered0 := testutilValue(m.requests[familyIPv4][resultAnswered])
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.Command("ip", "netns", "exec", l.b.Name, exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=vb,%d", floodChild, int(floodRate*floodFor.Seconds())))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		cpu0 := cpuTime(b)
		if err := cmd.Start(); err != nil {
			b.Fatalf("start flooder: %v", err)
		}
		rc := make(chan clientResult, 1)
		go func() {
			res, err := runClient(ctx, client, replies, 100*time.Millisecond)
			if err != nil {
				b.Errorf("client: %v", err)
			}
			rc <- res
		}()
		werr := cmd.Wait()
		cancel()
		res := <-rc
		used := cpuTime(b) - cpu0
		if werr != nil {
			b.Fatalf("flooder: %v\n%s", werr, out.String())
		}
		var sent int
		if _, err := fmt.Sscanf(out.String(), "sent %d", &sent); err != nil || sent == 0 {
			b.Fatalf("flooder said %q", out.String())
		}
		time.Sleep(100 * time.Millisecond) // let the last replies be counted
		clientAnswered := min(res.answered, res.asked)
		// Flood replies: all answers minus the client's.
		floodReplies += testutilValue(m.requests[familyIPv4][resultAnswered]) - answered0 - float64(res.answered)
		cpuPer100k += float64((used - baseline).Milliseconds()) / float64(sent) * 1e5
		answered += float64(clientAnswered) / float64(res.asked)
		b.Logf("flood: %d frames; this process used %v CPU (baseline %v); client %d/%d answered",
			sent, used.Round(time.Millisecond), baseline.Round(time.Millisecond), res.answered, res.asked)
	}
	n := float64(iters)
	b.ReportMetric(cpuPer100k/n, "cpu-ms/100k-flood")
	b.ReportMetric(float64(baseline.Milliseconds()), "baseline-cpu-ms")
	b.ReportMetric(answered/n, "client-answered")
	b.ReportMetric(floodReplies/n, "flood-replies")
	b.ReportMetric(0, "ns/op")
}
