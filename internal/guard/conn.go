package guard

import (
	"net"

	"github.com/heraldlb/herald/internal/wire"
)

// Conns are the two link-layer sockets of one interface. Both carry whole
// Ethernet frames: ReadFrom returns a frame starting with its Ethernet
// header and, as its address, an *Addr (any other address type means "not
// outgoing"); WriteTo sends a complete frame (its address is ignored by the
// real sockets). The real ones are AF_PACKET sockets (see
// ListenInterface); tests inject in-memory fakes. ReadFrom is called by
// one goroutine at a time; WriteTo by many.
//
// If NDP also implements MulticastMembership, a Probe for an IPv6 address
// joins the address's solicited-node group through it for its duration. A
// nil ARP or NDP conn disables that family on the interface.
type Conns struct {
	ARP net.PacketConn // ARP frames (EtherType 0x0806)
	NDP net.PacketConn // IPv6 frames carrying Neighbor Solicitations and Advertisements (EtherType 0x86DD)
}

// Addr is the address ReadFrom of a Conns socket returns: the frame's
// Ethernet source, and whether this host sent the frame (Linux
// PACKET_OUTGOING: our own responder, our kernel, or another of our
// sockets). The real sockets reuse one Addr per socket.
type Addr = wire.Addr

// MulticastMembership is implemented by an NDP conn whose NIC must be told
// to accept a link-layer multicast group (see wire.MulticastMembership).
type MulticastMembership = wire.MulticastMembership
