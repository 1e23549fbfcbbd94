package wire

import "encoding/binary"

// Ethernet II framing (IEEE 802.3 clause 3.2 with an EtherType).
const (
	EthHeaderLen  = 14
	EtherTypeIPv4 = 0x0800 // also ARP's protocol type for IPv4
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
)

var (
	// BroadcastMAC is ff:ff:ff:ff:ff:ff.
	BroadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// AllNodesMAC is the Ethernet address of ff02::1 (RFC 2464 §7).
	AllNodesMAC = [6]byte{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

// Ethernet is an Ethernet II header.
type Ethernet struct {
	Dst, Src [6]byte
	Type     uint16 // EtherType
}

// parseEthernet reads the header of frame, which must hold EthHeaderLen bytes.
func parseEthernet(frame []byte) Ethernet {
	return Ethernet{Dst: [6]byte(frame[0:6]), Src: [6]byte(frame[6:12]), Type: binary.BigEndian.Uint16(frame[12:14])}
}

// put writes h into b[:EthHeaderLen].
func (h *Ethernet) put(b []byte) {
	copy(b[0:6], h.Dst[:])
	copy(b[6:12], h.Src[:])
	binary.BigEndian.PutUint16(b[12:14], h.Type)
}

// IsMulticastMAC reports whether m's group bit is set (broadcast included).
func IsMulticastMAC(m [6]byte) bool { return m[0]&1 != 0 }

// Fault is why a frame does not decode as the parser's protocol. Each package that reads frames turns it into a
// verdict of its own.
type Fault uint8

const (
	// OK: the frame decoded.
	OK Fault = iota
	// FaultShort: shorter than its headers (Ethernet, ARP, IPv6, a Neighbor Discovery message) or than the
	// IPv6 payload length says.
	FaultShort
	// FaultEtherType: another EtherType.
	FaultEtherType
	// FaultARPType: ARP, but not for IPv4 over Ethernet (hardware type 1, protocol type 0x0800).
	FaultARPType
	// FaultNotND: IPv6, but not an accepted Neighbor Discovery message right behind the IPv6 header (another
	// next header, extension headers included, or another ICMPv6 type).
	FaultNotND
	// FaultMalformed: inconsistent: ARP address lengths other than 6 and 4, IPv6 version other than 6, ICMPv6
	// code other than 0.
	FaultMalformed
	// FaultHopLimit: a Neighbor Discovery message whose hop limit is not 255 (RFC 4861 §7.1).
	FaultHopLimit
	// FaultChecksum: an ICMPv6 checksum that does not verify.
	FaultChecksum
	// FaultOption: a Neighbor Discovery option of length zero or past the message, or more options than the
	// parser was told to walk.
	FaultOption
	NumFaults
)

var faultNames = [NumFaults]string{
	OK:             "ok",
	FaultShort:     "short",
	FaultEtherType: "ether_type",
	FaultARPType:   "arp_type",
	FaultNotND:     "not_nd",
	FaultMalformed: "malformed",
	FaultHopLimit:  "hop_limit",
	FaultChecksum:  "checksum",
	FaultOption:    "option",
}

func (f Fault) String() string {
	if f < NumFaults {
		return faultNames[f]
	}
	return "unknown"
}
