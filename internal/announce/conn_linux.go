//go:build linux

package announce

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/wire"
)

// ListenInterface opens the real sockets of ifi: two AF_PACKET SOCK_RAW
// sockets (wire.Conn) bound to ifi.Index, one for EtherType 0x0806 passing
// only ARP requests and one for 0x86DD passing only ICMPv6 Neighbor
// Solicitations (classic BPF filters attached before bind, so nothing else
// is ever queued). Reading and writing them does not allocate. It needs
// CAP_NET_RAW. It is Config.Listen's default.
func ListenInterface(ifi wire.Interface) (Conns, error) {
	nifi := ifi.Net()
	arp, err := wire.Listen(nifi, wire.Config{EtherType: unix.ETH_P_ARP, Filter: arpFilter(), ReadBuffer: readBufferBytes})
	if err != nil {
		return Conns{}, fmt.Errorf("listen for ARP on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	ndp, err := wire.Listen(nifi, wire.Config{EtherType: unix.ETH_P_IPV6, Filter: nsFilter(), ReadBuffer: readBufferBytes})
	if err != nil {
		arp.Close()
		return Conns{}, fmt.Errorf("listen for IPv6 on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	return Conns{ARP: arp, NDP: ndp}, nil
}

// readBufferBytes is the receive buffer asked for each socket: under a
// flood the kernel drops whatever arrives while the buffer is full, before
// the rate limiter can tell a flooder's requests from a client's, so the
// buffer must outlast a responder being off the CPU for a while. 4 MiB
// holds about 5,000 small frames (the kernel counts about 768 bytes per
// frame), 170ms of a 30,000 frames/s flood; it is only used while frames
// wait.
const readBufferBytes = 4 << 20
