//go:build linux

package guard

import (
	"fmt"
	"net"

	"github.com/heraldlb/herald/internal/wire"
)

// readBufferBytes is each socket's receive buffer: frames claiming addresses queue there while the speaker
// does not run (a stall), and the speaker judges from them, once it runs again, which addresses others probed
// or claimed meanwhile. 16 MiB holds about 16,000 frames: a peer's takeover probes of thousands of addresses
// during a stall of up to a second (speaker.stallTrustWire).
const readBufferBytes = 16 << 20

// ListenInterface opens the real sockets of ifi: two AF_PACKET SOCK_RAW
// sockets (wire.Conn) bound to ifi.Index and ETH_P_ALL (the only binding
// that also receives this host's outgoing frames), each with a classic BPF
// filter attached before bind that passes only possible claims (see
// arpFilter and ndpFilter), so ordinary ARP requests and all other traffic
// never reach user space. The IPv6 socket joins the all-nodes group
// 33:33:00:00:00:01. Each has a readBufferBytes receive buffer. ReadFrom returns an *Addr whose Outgoing is
// PACKET_OUTGOING, and does not allocate. It needs CAP_NET_RAW. It is
// Config.Listen's default.
func ListenInterface(ifi wire.Interface) (Conns, error) {
	nifi := ifi.Net()
	arp, err := wire.Listen(nifi, wire.Config{Filter: arpFilter(), ReadBuffer: readBufferBytes})
	if err != nil {
		return Conns{}, fmt.Errorf("listen for ARP on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	ndp, err := wire.Listen(nifi, wire.Config{Filter: ndpFilter(), ReadBuffer: readBufferBytes})
	if err != nil {
		arp.Close()
		return Conns{}, fmt.Errorf("listen for IPv6 on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	// The all-nodes group is where unsolicited Neighbor Advertisements and answers to DAD go.
	if err := ndp.JoinMulticast(net.HardwareAddr(wire.AllNodesMAC[:])); err != nil {
		arp.Close()
		ndp.Close()
		return Conns{}, fmt.Errorf("listen for IPv6 on %s: %w", ifi.Name, err)
	}
	return Conns{ARP: arp, NDP: ndp}, nil
}
