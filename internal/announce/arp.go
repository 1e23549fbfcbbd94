package announce

import "encoding/binary"

// ARP over Ethernet for IPv4 (RFC 826).
const (
	arpLen       = 28                    // ARP payload for hardware type 1, protocol IPv4
	arpFrameLen  = ethHeaderLen + arpLen // 42; the NIC pads to the 60-byte minimum on the wire
	arpHWEther   = 1
	arpOpRequest = 1
	arpOpReply   = 2
)

// arpPacket is a parsed Ethernet/IPv4 ARP packet.
type arpPacket struct {
	op       uint16
	sha, tha [6]byte // sender and target hardware addresses
	spa, tpa [4]byte // sender and target protocol (IPv4) addresses
}

// parseARP parses an Ethernet frame carrying ARP for IPv4 over Ethernet. It
// returns resultNone for a well-formed packet of any opcode, and otherwise
// resultWrongType or resultMalformed. It does not allocate; trailing bytes
// (Ethernet padding) are ignored.
func parseARP(frame []byte) (ethHeader, arpPacket, result) {
	var p arpPacket
	if len(frame) < ethHeaderLen {
		return ethHeader{}, p, resultMalformed
	}
	eth := parseEth(frame)
	if eth.etherType != etherTypeARP {
		return eth, p, resultWrongType
	}
	if len(frame) < arpFrameLen {
		return eth, p, resultMalformed
	}
	b := frame[ethHeaderLen:]
	if binary.BigEndian.Uint16(b[0:2]) != arpHWEther || binary.BigEndian.Uint16(b[2:4]) != etherTypeIPv4 ||
		b[4] != 6 || b[5] != 4 {
		return eth, p, resultMalformed
	}
	p.op = binary.BigEndian.Uint16(b[6:8])
	copy(p.sha[:], b[8:14])
	copy(p.spa[:], b[14:18])
	copy(p.tha[:], b[18:24])
	copy(p.tpa[:], b[24:28])
	return eth, p, resultNone
}

// etherTypeIPv4 is also ARP's protocol type for IPv4.
const etherTypeIPv4 = 0x0800

// putARP writes an Ethernet frame carrying p into b, which must hold
// arpFrameLen bytes, and returns arpFrameLen.
func putARP(b []byte, ethDst, ethSrc [6]byte, p *arpPacket) int {
	putEth(b, ethDst, ethSrc, etherTypeARP)
	a := b[ethHeaderLen:arpFrameLen]
	binary.BigEndian.PutUint16(a[0:2], arpHWEther)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], p.op)
	copy(a[8:14], p.sha[:])
	copy(a[14:18], p.spa[:])
	copy(a[18:24], p.tha[:])
	copy(a[24:28], p.tpa[:])
	return arpFrameLen
}

// handleARP decides whether frame is an ARP request this interface (MAC mac,
// VIPs vips) must answer and, if so, writes the reply into out (at least
// arpFrameLen bytes) and returns its length with resultAnswered. It takes no
// lock and does not allocate.
//
// Any request whose target is one of our VIPs is answered, broadcast or
// unicast to us, including:
//   - RFC 5227 probes (sender IP 0.0.0.0): replying is how an owner defends
//     its address; the prober sees a packet whose sender IP is the address
//     it probed and backs off. The reply's target is then 0.0.0.0 and the
//     prober's MAC, as the kernel answers.
//   - another host's gratuitous request for our VIP (sender = target): the
//     unicast reply tells that host the address is in use.
//
// The reply goes to the request's sender hardware address (RFC 826), from
// our MAC, with sender = (our MAC, VIP) and target = the requester.
//
// A request for a VIP is dropped, and nothing learnt from it, when its
// sender hardware address is multicast, broadcast or zero, or its sender IP
// is multicast, limited broadcast or loopback (resultMalformed: no host
// sends those, and answering would aim replies at a group), or when the
// sender hardware address differs from the Ethernet source (resultSpoofed:
// a reply would go to a third party, the classic ARP reflection). Proxy-ARP
// and MAC-rewriting bridges that forward requests without fixing the
// sender hardware address are therefore not answered.
func handleARP(frame []byte, mac [6]byte, vips *vipSet, out []byte) (int, result) {
	eth, req, r := parseARP(frame)
	if r != resultNone {
		return 0, r
	}
	if eth.src == mac {
		return 0, resultOwnFrame
	}
	if eth.dst != mac && eth.dst != broadcastMAC {
		return 0, resultOtherHost
	}
	if req.op != arpOpRequest {
		return 0, resultWrongOpcode
	}
	if !vips.has4(req.tpa) {
		return 0, resultNotOurs
	}
	if isMulticastMAC(req.sha) || req.sha == ([6]byte{}) || !validSenderIPv4(req.spa) {
		return 0, resultMalformed
	}
	if req.sha != eth.src {
		return 0, resultSpoofed
	}
	reply := arpPacket{op: arpOpReply, sha: mac, spa: req.tpa, tha: req.sha, tpa: req.spa}
	return putARP(out, req.sha, mac, &reply), resultAnswered
}

// putGratuitousARP writes a gratuitous ARP for vip into b (arpFrameLen bytes).
//
// It uses the ARP Request form of RFC 5227 §3 ("ARP Announcement"): sender
// and target IP both the VIP, target hardware address zero, broadcast. RFC
// 5227 recommends requests over replies for announcements because every
// IPv4 stack processes broadcast requests (they are how ARP normally
// arrives), while a broadcast reply is unusual and some stacks ignore it;
// Linux updates an existing neighbour entry from either form. It is also
// what `arping -U` sends. One form, not both, keeps the announcement to one
// frame per repeat.
func putGratuitousARP(b []byte, mac [6]byte, vip [4]byte) int {
	p := arpPacket{op: arpOpRequest, sha: mac, spa: vip, tpa: vip}
	return putARP(b, broadcastMAC, mac, &p)
}

// validSenderIPv4 reports whether an ARP request may come from ip: 0.0.0.0
// (an RFC 5227 probe) or a unicast address outside 127.0.0.0/8. Multicast
// (224.0.0.0/4) and the limited broadcast address are never a host's own.
func validSenderIPv4(ip [4]byte) bool {
	return ip[0] != 127 && ip[0]&0xf0 != 0xe0 && ip != [4]byte{255, 255, 255, 255}
}
