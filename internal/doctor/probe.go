package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// ProbePeers opens a TCP connection to each peer's memberlist port, all at once, each giving up after timeout,
// and reports one memberlist_port finding per peer in the order given. Connections are made from the network
// namespace of the calling thread. UDP, which memberlist uses for gossip and probes, is not verified: it has
// no handshake to test without speaking memberlist's protocol.
func ProbePeers(ctx context.Context, peers []Peer, timeout time.Duration) []Finding {
	errs := make([]error, len(peers))
	// Goroutines do not inherit the caller's thread, so each joins the caller's namespace on a thread of its
	// own, which exits with it.
	origin, err := netns.Get()
	if err != nil {
		origin = netns.None()
	}
	defer origin.Close()
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			if origin.IsOpen() {
				runtime.LockOSThread() // never unlocked: the thread is discarded when the goroutine ends
				if err := netns.Set(origin); err != nil {
					errs[i] = fmt.Errorf("enter the caller's network namespace: %w", err)
					return
				}
			}
			errs[i] = dial(ctx, peerAddr(p), timeout)
		})
	}
	wg.Wait()
	return peerFindings(peers, errs)
}

// peerAddr is "host:port" of a peer.
func peerAddr(p Peer) string {
	return net.JoinHostPort(p.Addr, strconv.Itoa(portOf(p)))
}

func dial(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// peerFindings turns the outcome of each peer's probe (nil: connected) into findings.
func peerFindings(peers []Peer, errs []error) []Finding {
	out := make([]Finding, 0, len(peers))
	for i, p := range peers {
		addr := peerAddr(p)
		f := Finding{Check: CheckMemberlistPort, Subject: addr}
		err := errs[i]
		if err == nil {
			f.Severity = SeverityOK
			f.Message = "TCP " + addr + " accepts connections (UDP not verified)"
			out = append(out, f)
			continue
		}
		var why string
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			why = "the connection was refused: nothing listens there (is the speaker running on that node, " +
				"with the same --memberlist-port?) or a firewall rejects it"
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			why = "no answer in time: a firewall drops it, or the host is down"
		default:
			why = err.Error()
		}
		f.Severity = SeverityError
		f.Message = "cannot open a TCP connection to " + addr + ": " + why + "; speakers that cannot reach " +
			"each other each believe the other dead and both announce (UDP not verified)"
		f.Fix = fmt.Sprintf("allow TCP and UDP port %d between all nodes (host firewall, security groups), and "+
			"check the speaker runs on %s", portOf(p), p.Addr)
		out = append(out, f)
	}
	return out
}

func portOf(p Peer) int {
	if p.Port == 0 {
		return DefaultMemberlistPort
	}
	return p.Port
}
