package announce

import "encoding/binary"

// Ethernet II framing (IEEE 802.3 clause 3.2 with an EtherType).
const (
	ethHeaderLen  = 14
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

var (
	broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// allNodesMAC is the Ethernet address of ff02::1 (RFC 2464 §7).
	allNodesMAC = [6]byte{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

// ethHeader is a parsed Ethernet II header.
type ethHeader struct {
	dst, src  [6]byte
	etherType uint16
}

// parseEth reads the Ethernet header of frame, which must be at least
// ethHeaderLen bytes long.
func parseEth(frame []byte) ethHeader {
	var h ethHeader
	copy(h.dst[:], frame[0:6])
	copy(h.src[:], frame[6:12])
	h.etherType = binary.BigEndian.Uint16(frame[12:14])
	return h
}

// putEth writes an Ethernet II header into b[:ethHeaderLen].
func putEth(b []byte, dst, src [6]byte, etherType uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// isMulticastMAC reports whether the group bit is set (broadcast included).
func isMulticastMAC(m [6]byte) bool { return m[0]&1 != 0 }
