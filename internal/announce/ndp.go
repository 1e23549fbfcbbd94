package announce

import (
	"encoding/binary"

	"github.com/heraldlb/herald/internal/wire"
)

// IPv6 (RFC 8200) and ICMPv6 Neighbor Discovery (RFC 4861) constants.
const (
	ipv6HeaderLen   = 40
	ipv6Off         = ethHeaderLen
	icmpOff         = ethHeaderLen + ipv6HeaderLen // 54
	protoICMPv6     = 58
	ndHopLimit      = 255
	icmpTypeNS      = 135
	icmpTypeNA      = 136
	nsLen           = 24 // type, code, checksum, reserved, target
	naLen           = 24 // type, code, checksum, flags+reserved, target
	optSourceLLA    = 1
	optTargetLLA    = 2
	llaOptLen       = 8                           // one 8-octet unit: type, length, 6-byte MAC (RFC 2464 §6)
	naFrameLen      = icmpOff + naLen + llaOptLen // 86
	naFlagRouter    = 0x80
	naFlagSolicited = 0x40
	naFlagOverride  = 0x20
)

// maxNSOptions is the most options a Neighbor Solicitation may carry. RFC
// 4861 defines one for NS (source link-layer address) and SEND (RFC 3971)
// adds four; a longer list is not a real solicitation, and walking it costs
// time on the packet path.
const maxNSOptions = 16

// loopback6 is ::1, never the source of a packet on a link (RFC 4291 §2.5.3).
var loopback6 = [16]byte{15: 1}

// allNodes is ff02::1, the destination of unsolicited Neighbor Advertisements.
var allNodes = [16]byte{0xff, 0x02, 15: 0x01}

// nsPacket is a parsed Neighbor Solicitation with the IPv6 fields that
// decide the answer.
type nsPacket struct {
	src, dst [16]byte // IPv6 source and destination
	target   [16]byte
	sllao    [6]byte // source link-layer address option, if hasSLLAO
	hasSLLAO bool
}

// parseNS parses an Ethernet frame carrying an IPv6 Neighbor Solicitation
// and validates it per RFC 4861 §7.1.1: hop limit 255, ICMPv6 checksum,
// code 0, ICMP length >= 24, target not multicast, source neither
// multicast nor ::1, every option of non-zero
// length and within the packet, at most maxNSOptions options, at most one
// source link-layer option, and for an unspecified source (DAD) a
// solicited-node destination and no source link-layer option. It returns
// resultNone for a valid NS, else resultWrongType, resultMalformed,
// resultHopLimit or resultBadChecksum. Packets with IPv6 extension headers
// are reported as resultWrongType (NS are sent without them). It does not
// allocate; bytes after the IPv6 payload length (padding) are ignored.
func parseNS(frame []byte) (ethHeader, nsPacket, result) {
	var p nsPacket
	if len(frame) < ethHeaderLen {
		return ethHeader{}, p, resultMalformed
	}
	eth := parseEth(frame)
	if eth.etherType != etherTypeIPv6 {
		return eth, p, resultWrongType
	}
	if len(frame) < icmpOff {
		return eth, p, resultMalformed
	}
	ip := frame[ipv6Off:icmpOff]
	if ip[0]>>4 != 6 {
		return eth, p, resultMalformed
	}
	if ip[6] != protoICMPv6 {
		return eth, p, resultWrongType
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if icmpOff+plen > len(frame) || plen < 4 {
		return eth, p, resultMalformed
	}
	icmp := frame[icmpOff : icmpOff+plen]
	if icmp[0] != icmpTypeNS {
		return eth, p, resultWrongType
	}
	if ip[7] != ndHopLimit {
		return eth, p, resultHopLimit
	}
	if icmp[1] != 0 || plen < nsLen {
		return eth, p, resultMalformed
	}
	copy(p.src[:], ip[8:24])
	copy(p.dst[:], ip[24:40])
	if wire.ICMPv6Checksum(&p.src, &p.dst, icmp) != 0 {
		return eth, p, resultBadChecksum
	}
	copy(p.target[:], icmp[8:24])
	if p.target[0] == 0xff || p.src[0] == 0xff || p.src == loopback6 {
		return eth, p, resultMalformed
	}
	nopts := 0
	for opts := icmp[nsLen:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return eth, p, resultMalformed
		}
		if nopts++; nopts > maxNSOptions {
			return eth, p, resultMalformed
		}
		n := int(opts[1]) * 8
		if opts[0] == optSourceLLA {
			if n != llaOptLen || p.hasSLLAO {
				return eth, p, resultMalformed
			}
			copy(p.sllao[:], opts[2:8])
			p.hasSLLAO = true
		}
		opts = opts[n:]
	}
	if p.src == ([16]byte{}) && (p.hasSLLAO || !isSolicitedNode(&p.dst)) {
		return eth, p, resultMalformed
	}
	return eth, p, resultNone
}

// isSolicitedNode reports whether a is in ff02::1:ff00:0/104 (RFC 4291 §2.7.1).
func isSolicitedNode(a *[16]byte) bool {
	return a[0] == 0xff && a[1] == 0x02 && a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9]|a[10] == 0 &&
		a[11] == 0x01 && a[12] == 0xff
}

// solicitedNodeMAC is the Ethernet multicast address (RFC 2464 §7) of the
// solicited-node group of target: 33:33:ff and target's last three bytes.
func solicitedNodeMAC(target [16]byte) [6]byte {
	return [6]byte{0x33, 0x33, 0xff, target[13], target[14], target[15]}
}

// handleNS decides whether frame is a Neighbor Solicitation this interface
// (MAC mac, VIPs vips) must answer and, if so, writes the Neighbor
// Advertisement into out (at least naFrameLen bytes) and returns its length
// with resultAnswered. It takes no lock and does not allocate.
//
// The advertisement always carries the target link-layer option and the
// Override flag (we are the owner; RFC 4861 §7.2.4), never the Router flag.
// Its IPv6 source is the VIP itself, not a link-local address of the
// interface: that is what Linux sends for an address it owns (the source
// is the solicited target), needs no address on the interface, and
// receivers do not check it beyond hop limit 255. Destinations:
//   - source set, with a source link-layer option: solicited (S) unicast
//     to that option's MAC and the NS's IPv6 source;
//   - source set, no option (unicast NUD probe): solicited unicast to the
//     frame's Ethernet source and the NS's IPv6 source;
//   - source unspecified (DAD probe): to ff02::1 with S clear, so the
//     prober sees the address is taken (RFC 4861 §7.2.4).
func handleNS(frame []byte, mac [6]byte, vips *vipSet, out []byte) (int, result) {
	eth, ns, r := parseNS(frame)
	if r != resultNone {
		return 0, r
	}
	if eth.src == mac {
		return 0, resultOwnFrame
	}
	if eth.dst != mac && !isMulticastMAC(eth.dst) {
		return 0, resultOtherHost
	}
	if !vips.has6(ns.target) {
		return 0, resultNotOurs
	}
	if ns.src == ([16]byte{}) {
		return putNA(out, mac, allNodesMAC, &ns.target, &allNodes, &ns.target, naFlagOverride), resultAnswered
	}
	dstMAC := eth.src
	if ns.hasSLLAO {
		dstMAC = ns.sllao
	}
	if isMulticastMAC(dstMAC) || dstMAC == ([6]byte{}) {
		return 0, resultMalformed
	}
	return putNA(out, mac, dstMAC, &ns.target, &ns.src, &ns.target, naFlagSolicited|naFlagOverride), resultAnswered
}

// putNA writes an Ethernet frame with a Neighbor Advertisement for target,
// with a target link-layer option of mac, into b (at least naFrameLen
// bytes), and returns naFrameLen.
func putNA(b []byte, mac, ethDst [6]byte, src, dst, target *[16]byte, flags byte) int {
	putEth(b, ethDst, mac, etherTypeIPv6)
	ip := b[ipv6Off:icmpOff]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28) // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip[4:6], naLen+llaOptLen)
	ip[6] = protoICMPv6
	ip[7] = ndHopLimit
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	icmp := b[icmpOff:naFrameLen]
	icmp[0], icmp[1], icmp[2], icmp[3] = icmpTypeNA, 0, 0, 0
	icmp[4], icmp[5], icmp[6], icmp[7] = flags, 0, 0, 0
	copy(icmp[8:24], target[:])
	icmp[24], icmp[25] = optTargetLLA, llaOptLen/8
	copy(icmp[26:32], mac[:])
	binary.BigEndian.PutUint16(icmp[2:4], wire.ICMPv6Checksum(src, dst, icmp))
	return naFrameLen
}

// putUnsolicitedNA writes an unsolicited Neighbor Advertisement for vip to
// all nodes (RFC 4861 §7.2.6): Override set, Solicited clear, target
// link-layer option, source the VIP.
func putUnsolicitedNA(b []byte, mac [6]byte, vip [16]byte) int {
	return putNA(b, mac, allNodesMAC, &vip, &allNodes, &vip, naFlagOverride)
}
