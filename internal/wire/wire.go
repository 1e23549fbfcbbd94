// Package wire is the link layer the announcer, the guard and the prober share: the Ethernet, ARP (RFC 826,
// RFC 5227) and Neighbor Discovery (RFC 4861, RFC 4862 DAD) frames they parse and build without allocating, with
// the Fault each parser reports; the link they use (Interface); the set of addresses their packet paths look up
// (VIPSet, NormalizeVIP); and an AF_PACKET socket carrying whole Ethernet frames whose reads and writes do not
// allocate (Conn, Linux only). What a frame means to each (an answer, a claim, a reply) stays in its package.
package wire

import "net"

// Addr is the address Conn.ReadFrom returns: the frame's Ethernet source,
// and whether this host sent it (Linux PACKET_OUTGOING: one of our own
// sockets or our kernel). A Conn reuses one Addr for all its reads.
type Addr struct {
	HardwareAddr net.HardwareAddr
	Outgoing     bool
}

// Network returns "packet".
func (a *Addr) Network() string { return "packet" }

// String returns the hardware address, with " (outgoing)" appended for
// outgoing frames.
func (a *Addr) String() string {
	if a.Outgoing {
		return a.HardwareAddr.String() + " (outgoing)"
	}
	return a.HardwareAddr.String()
}

// MulticastMembership is implemented by a conn whose NIC must be told to
// accept a link-layer multicast group, e.g. 33:33:ff:xx:xx:xx for a
// solicited-node address (RFC 2464 §7). The kernel counts memberships, so
// each Join needs its own Leave; all end when the conn is closed.
type MulticastMembership interface {
	JoinMulticast(mac net.HardwareAddr) error
	LeaveMulticast(mac net.HardwareAddr) error
}

// protoICMPv6 is ICMPv6's Next Header value in the pseudo-header.
const protoICMPv6 = 58

// ICMPv6Checksum is the ICMPv6 checksum (RFC 4443 §2.3) of msg from src to
// dst, with the RFC 8200 §8.1 pseudo-header: over a message whose checksum
// field is zero it is the value to store there; over a message carrying a
// correct checksum it is 0. It does not allocate.
func ICMPv6Checksum(src, dst *[16]byte, msg []byte) uint16 {
	sum := sum16(0, src[:])
	sum = sum16(sum, dst[:])
	sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + protoICMPv6
	sum = sum16(sum, msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// sum16 adds b to sum as big-endian 16-bit words, an odd last byte padded
// with zero, folding before sum can overflow.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if sum >= 0xffff0000 {
			sum = sum&0xffff + sum>>16
		}
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
