package wire

import "encoding/binary"

// ARP for IPv4 over Ethernet (RFC 826).
const (
	ARPLen      = 28                    // ARP payload for hardware type 1, protocol IPv4
	ARPFrameLen = EthHeaderLen + ARPLen // 42; the NIC pads to the 60-byte minimum on the wire

	ARPRequest = 1
	ARPReply   = 2

	// Offsets in an Ethernet frame, for socket filters.
	ARPOpOffset       = EthHeaderLen + 6  // 20
	ARPSenderIPOffset = EthHeaderLen + 14 // 28
	ARPTargetIPOffset = EthHeaderLen + 24 // 38

	arpHWEther = 1
)

// ARP is an ARP packet for IPv4 over Ethernet.
type ARP struct {
	Op                   uint16
	SenderMAC, TargetMAC [6]byte
	SenderIP, TargetIP   [4]byte
}

// ParseARP decodes an Ethernet frame carrying ARP for IPv4 over Ethernet, of any opcode. Bytes after the ARP
// packet (Ethernet padding) are ignored. It fails with FaultShort, FaultEtherType, FaultARPType (hardware or
// protocol type) or FaultMalformed (address lengths), in that order. It does not allocate.
func ParseARP(frame []byte) (Ethernet, ARP, Fault) {
	var eth Ethernet
	var p ARP
	f := p.Parse(frame, &eth)
	return eth, p, f
}

// Parse is ParseARP into p and eth, which it overwrites whole: the packet paths parse into values of their own
// rather than copy them out.
func (p *ARP) Parse(frame []byte, eth *Ethernet) Fault {
	*p, *eth = ARP{}, Ethernet{}
	if len(frame) < EthHeaderLen {
		return FaultShort
	}
	*eth = parseEthernet(frame)
	if eth.Type != EtherTypeARP {
		return FaultEtherType
	}
	if len(frame) < ARPFrameLen {
		return FaultShort
	}
	a := frame[EthHeaderLen:ARPFrameLen]
	if binary.BigEndian.Uint16(a[0:2]) != arpHWEther || binary.BigEndian.Uint16(a[2:4]) != EtherTypeIPv4 {
		return FaultARPType
	}
	if a[4] != 6 || a[5] != 4 {
		return FaultMalformed
	}
	p.Op = binary.BigEndian.Uint16(a[6:8])
	p.SenderMAC = [6]byte(a[8:14])
	p.SenderIP = [4]byte(a[14:18])
	p.TargetMAC = [6]byte(a[18:24])
	p.TargetIP = [4]byte(a[24:28])
	return OK
}

// PutARP writes an Ethernet frame from ethSrc to ethDst carrying p into b, which must hold ARPFrameLen bytes,
// and returns ARPFrameLen. It does not allocate.
func PutARP(b []byte, ethDst, ethSrc [6]byte, p *ARP) int {
	eth := Ethernet{Dst: ethDst, Src: ethSrc, Type: EtherTypeARP}
	eth.put(b)
	a := b[EthHeaderLen:ARPFrameLen]
	binary.BigEndian.PutUint16(a[0:2], arpHWEther)
	binary.BigEndian.PutUint16(a[2:4], EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], p.Op)
	copy(a[8:14], p.SenderMAC[:])
	copy(a[14:18], p.SenderIP[:])
	copy(a[18:24], p.TargetMAC[:])
	copy(a[24:28], p.TargetIP[:])
	return ARPFrameLen
}

// PutARPAnnouncement writes a gratuitous ARP for ip from mac into b (ARPFrameLen bytes) and returns its length.
//
// It uses the ARP Request form of RFC 5227 §3 ("ARP Announcement"): sender and target IP both ip, target
// hardware address zero, broadcast. RFC 5227 recommends requests over replies for announcements because every
// IPv4 stack processes broadcast requests (they are how ARP normally arrives), while a broadcast reply is unusual
// and some stacks ignore it; Linux updates an existing neighbour entry from either form. It is also what `arping
// -U` sends. One form, not both, keeps an announcement to one frame.
func PutARPAnnouncement(b []byte, mac [6]byte, ip [4]byte) int {
	return PutARP(b, BroadcastMAC, mac, &ARP{Op: ARPRequest, SenderMAC: mac, SenderIP: ip, TargetIP: ip})
}

// PutARPProbe writes an RFC 5227 §2.1.1 ARP probe for ip from mac into b (ARPFrameLen bytes) and returns its
// length: broadcast request, sender (mac, 0.0.0.0), target (00:00:00:00:00:00, ip).
func PutARPProbe(b []byte, mac [6]byte, ip [4]byte) int {
	return PutARP(b, BroadcastMAC, mac, &ARP{Op: ARPRequest, SenderMAC: mac, TargetIP: ip})
}
