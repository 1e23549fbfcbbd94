package guard

import (
	"encoding/binary"
	"net/netip"

	"github.com/heraldlb/herald/internal/wire"
)

// Ethernet II framing, ARP for IPv4 over Ethernet (RFC 826) and IPv6
// Neighbor Discovery (RFC 8200, RFC 4861) offsets and constants.
const (
	ethHeaderLen  = 14
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800 // also ARP's protocol type for IPv4
	etherTypeIPv6 = 0x86dd

	arpLen       = 28
	arpFrameLen  = ethHeaderLen + arpLen // 42
	arpHWEther   = 1
	arpOpRequest = 1
	arpOpReply   = 2
	arpOpOff     = ethHeaderLen + 6  // 20
	arpSPAOff    = ethHeaderLen + 14 // 28
	arpTPAOff    = ethHeaderLen + 24 // 38

	ipv6HeaderLen = 40
	ipv6Off       = ethHeaderLen
	icmpOff       = ethHeaderLen + ipv6HeaderLen // 54
	protoICMPv6   = 58
	ndHopLimit    = 255
	icmpTypeNS    = 135
	icmpTypeNA    = 136
	ndMsgLen      = 24 // type, code, checksum, flags/reserved, target
	optSourceLLA  = 1
	optTargetLLA  = 2
	llaOptLen     = 8  // type, length 1, 6-byte MAC (RFC 2464 §6)
	maxNDOptions  = 16 // more options than any real NS/NA carries; beyond it the frame is malformed
	naFlagSolicit = 0x40
	dadFrameLen   = icmpOff + ndMsgLen // 78: a DAD NS carries no option
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// claim is what a parser found: a frame claiming vip for mac.
type claim struct {
	vip  netip.Addr
	mac  [6]byte
	kind Kind
}

func isMulticastMAC(m [6]byte) bool { return m[0]&1 != 0 }

// badMAC reports whether m cannot be a host's address: a group address
// (broadcast included) or all zeros.
func badMAC(m [6]byte) bool { return isMulticastMAC(m) || m == [6]byte{} }

// parseARP classifies an Ethernet frame carrying ARP. It validates hardware
// type 1 and protocol type 0x0800 (else resultWrongType), address lengths 6
// and 4 and the frame length (trailing Ethernet padding is ignored), then the sender hardware address:
// a group or zero address is resultMalformed, and one that differs from the
// Ethernet source is resultSpoofed. A valid frame is classified by the
// addresses it claims:
//   - reply (opcode 2) with sender IP = target IP: KindARPAnnouncement of
//     the sender IP; any other reply: KindARPReply of the sender IP;
//   - request (opcode 1) with sender IP = target IP: KindARPAnnouncement;
//     with sender IP 0.0.0.0: KindARPProbe of the target IP; otherwise
//     KindARPFromOwner of the sender IP.
//
// Other opcodes, a reply from 0.0.0.0 and a probe for 0.0.0.0 are
// resultNotClaim. The claimant is the sender hardware address. It does not
// allocate.
func parseARP(frame []byte) (claim, result) {
	var c claim
	if len(frame) < ethHeaderLen {
		return c, resultMalformed
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return c, resultWrongType
	}
	if len(frame) < arpFrameLen {
		return c, resultMalformed
	}
	a := frame[ethHeaderLen:arpFrameLen]
	if binary.BigEndian.Uint16(a[0:2]) != arpHWEther || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 {
		return c, resultWrongType
	}
	if a[4] != 6 || a[5] != 4 {
		return c, resultMalformed
	}
	copy(c.mac[:], a[8:14])
	if badMAC(c.mac) {
		return c, resultMalformed
	}
	if [6]byte(frame[6:12]) != c.mac {
		return c, resultSpoofed
	}
	spa, tpa := [4]byte(a[14:18]), [4]byte(a[24:28])
	switch op := binary.BigEndian.Uint16(a[6:8]); {
	case spa == [4]byte{} && (op != arpOpRequest || tpa == [4]byte{}):
		return c, resultNotClaim
	case op == arpOpReply && spa == tpa:
		c.kind, c.vip = KindARPAnnouncement, netip.AddrFrom4(spa)
	case op == arpOpReply:
		c.kind, c.vip = KindARPReply, netip.AddrFrom4(spa)
	case op != arpOpRequest:
		return c, resultNotClaim
	case spa == tpa:
		c.kind, c.vip = KindARPAnnouncement, netip.AddrFrom4(spa)
	case spa == [4]byte{}:
		c.kind, c.vip = KindARPProbe, netip.AddrFrom4(tpa)
	default:
		c.kind, c.vip = KindARPFromOwner, netip.AddrFrom4(spa)
	}
	return c, resultNone
}

// parseNDP classifies an Ethernet frame carrying an IPv6 Neighbor
// Solicitation or Advertisement without extension headers, validated per
// RFC 4861 §7.1: IPv6 version 6, payload inside the frame (bytes after it
// are padding), hop limit 255 (else resultHopLimit), ICMPv6 checksum (else
// resultBadChecksum), code 0, message at least 24 bytes, target not
// multicast, source not multicast, at most 16 options each of non-zero
// length inside the message, link-layer options exactly 8 bytes, a
// multicast-destined NA without the Solicited flag, and a DAD NS (source ::)
// sent to a solicited-node address without a source link-layer option. Any
// other frame is resultWrongType or resultMalformed.
//
//   - NA: KindNA of the target; claimant the target link-layer option, else
//     the Ethernet source.
//   - NS from :: : KindDAD of the target; claimant the Ethernet source.
//   - other NS: KindNSFromOwner of the IPv6 source; claimant the source
//     link-layer option, else the Ethernet source.
//
// A claimant that is a group or zero MAC, or an Ethernet source that is a
// group address, is resultMalformed. Unlike ARP, the link-layer option is
// not compared with the Ethernet source: it is what neighbours will use,
// whoever relayed the frame. It does not allocate.
func parseNDP(frame []byte) (claim, result) {
	var c claim
	if len(frame) < ethHeaderLen {
		return c, resultMalformed
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 {
		return c, resultWrongType
	}
	if len(frame) < icmpOff {
		return c, resultMalformed
	}
	ip := frame[ipv6Off:icmpOff]
	if ip[0]>>4 != 6 {
		return c, resultMalformed
	}
	if ip[6] != protoICMPv6 {
		return c, resultWrongType
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen < 4 || icmpOff+plen > len(frame) {
		return c, resultMalformed
	}
	msg := frame[icmpOff : icmpOff+plen]
	typ := msg[0]
	if typ != icmpTypeNS && typ != icmpTypeNA {
		return c, resultWrongType
	}
	if ip[7] != ndHopLimit {
		return c, resultHopLimit
	}
	if msg[1] != 0 || plen < ndMsgLen {
		return c, resultMalformed
	}
	src, dst := (*[16]byte)(ip[8:24]), (*[16]byte)(ip[24:40])
	if wire.ICMPv6Checksum(src, dst, msg) != 0 {
		return c, resultBadChecksum
	}
	target := [16]byte(msg[8:24])
	if target[0] == 0xff || src[0] == 0xff {
		return c, resultMalformed
	}
	ethSrc := [6]byte(frame[6:12])
	if isMulticastMAC(ethSrc) {
		return c, resultMalformed
	}
	var lla [6]byte
	hasLLA := false
	wantLLA := byte(optSourceLLA)
	if typ == icmpTypeNA {
		wantLLA = optTargetLLA
	}
	opts := msg[ndMsgLen:]
	for i := 0; len(opts) > 0; i++ {
		if i == maxNDOptions || len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return c, resultMalformed
		}
		n := int(opts[1]) * 8
		if opts[0] == optSourceLLA || opts[0] == optTargetLLA {
			if n != llaOptLen {
				return c, resultMalformed
			}
			if opts[0] == wantLLA {
				copy(lla[:], opts[2:8])
				hasLLA = true
			}
		}
		opts = opts[n:]
	}
	c.mac = ethSrc
	if hasLLA {
		c.mac = lla
	}
	switch {
	case typ == icmpTypeNA:
		if dst[0] == 0xff && msg[4]&naFlagSolicit != 0 {
			return c, resultMalformed
		}
		c.kind, c.vip = KindNA, netip.AddrFrom16(target)
	case *src == [16]byte{}:
		if hasLLA || !isSolicitedNode(dst) {
			return c, resultMalformed
		}
		c.kind, c.vip = KindDAD, netip.AddrFrom16(target)
	default:
		c.kind, c.vip = KindNSFromOwner, netip.AddrFrom16(*src)
	}
	if badMAC(c.mac) {
		return claim{}, resultMalformed
	}
	return c, resultNone
}

// isSolicitedNode reports whether a is in ff02::1:ff00:0/104 (RFC 4291 §2.7.1).
func isSolicitedNode(a *[16]byte) bool {
	return a[0] == 0xff && a[1] == 0x02 && a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9]|a[10] == 0 &&
		a[11] == 0x01 && a[12] == 0xff
}

// solicitedNode returns the solicited-node multicast address of target
// (RFC 4291 §2.7.1) and its Ethernet address 33:33:ff:xx:xx:xx (RFC 2464 §7).
func solicitedNode(target [16]byte) ([16]byte, [6]byte) {
	ip := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: target[13], 14: target[14], 15: target[15]}
	return ip, [6]byte{0x33, 0x33, 0xff, target[13], target[14], target[15]}
}

// putARPProbe writes an RFC 5227 §2.1.1 ARP probe for vip from mac into b
// (at least arpFrameLen bytes) and returns arpFrameLen: broadcast, request,
// sender (mac, 0.0.0.0), target (00:00:00:00:00:00, vip).
func putARPProbe(b []byte, mac [6]byte, vip [4]byte) int {
	copy(b[0:6], broadcastMAC[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[ethHeaderLen:arpFrameLen]
	binary.BigEndian.PutUint16(a[0:2], arpHWEther)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], arpOpRequest)
	copy(a[8:14], mac[:])
	clear(a[14:24]) // sender IP, target hardware address
	copy(a[24:28], vip[:])
	return arpFrameLen
}

// putDADProbe writes an RFC 4862 §5.4.2 Duplicate Address Detection
// Neighbor Solicitation for vip from mac into b (at least dadFrameLen
// bytes) and returns dadFrameLen: IPv6 source ::, destination the
// solicited-node address of vip (and its 33:33:ff MAC), hop limit 255,
// target vip, no source link-layer option, ICMPv6 checksum set.
func putDADProbe(b []byte, mac [6]byte, vip [16]byte) int {
	dstIP, dstMAC := solicitedNode(vip)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ipv6Off:icmpOff]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28)
	binary.BigEndian.PutUint16(ip[4:6], ndMsgLen)
	ip[6], ip[7] = protoICMPv6, ndHopLimit
	var src [16]byte
	copy(ip[8:24], src[:])
	copy(ip[24:40], dstIP[:])
	msg := b[icmpOff:dadFrameLen]
	msg[0] = icmpTypeNS
	clear(msg[1:8])
	copy(msg[8:24], vip[:])
	binary.BigEndian.PutUint16(msg[2:4], wire.ICMPv6Checksum(&src, &dstIP, msg))
	return dadFrameLen
}
