package guard

import (
	"net/netip"

	"github.com/heraldlb/herald/internal/wire"
)

// maxNDOptions is the most options a Neighbor Solicitation or Advertisement may carry: more than any real one
// carries; beyond it the frame is malformed.
const maxNDOptions = 16

// claim is what a parser found: a frame claiming vip for mac.
type claim struct {
	vip  netip.Addr
	mac  [6]byte
	kind Kind
}

// faultResults is the verdict on a frame the wire parsers refuse.
var faultResults = [wire.NumFaults]result{
	wire.OK:             resultNone,
	wire.FaultShort:     resultMalformed,
	wire.FaultEtherType: resultWrongType,
	wire.FaultARPType:   resultWrongType,
	wire.FaultNotND:     resultWrongType,
	wire.FaultMalformed: resultMalformed,
	wire.FaultHopLimit:  resultHopLimit,
	wire.FaultChecksum:  resultBadChecksum,
	wire.FaultOption:    resultMalformed,
}

// badMAC reports whether m cannot be a host's address: a group address
// (broadcast included) or all zeros.
func badMAC(m [6]byte) bool { return wire.IsMulticastMAC(m) || m == [6]byte{} }

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
	var eth wire.Ethernet
	var p wire.ARP
	if f := p.Parse(frame, &eth); f != wire.OK {
		return c, faultResults[f]
	}
	c.mac = p.SenderMAC
	if badMAC(c.mac) {
		return c, resultMalformed
	}
	if eth.Src != c.mac {
		return c, resultSpoofed
	}
	spa, tpa := p.SenderIP, p.TargetIP
	switch op := p.Op; {
	case spa == [4]byte{} && (op != wire.ARPRequest || tpa == [4]byte{}):
		return c, resultNotClaim
	case op == wire.ARPReply && spa == tpa:
		c.kind, c.vip = KindARPAnnouncement, netip.AddrFrom4(spa)
	case op == wire.ARPReply:
		c.kind, c.vip = KindARPReply, netip.AddrFrom4(spa)
	case op != wire.ARPRequest:
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
// RFC 4861 §7.1 (wire.ParseND and ND.Valid): IPv6 version 6, payload inside
// the frame (bytes after it are padding), hop limit 255 (else
// resultHopLimit), ICMPv6 checksum (else resultBadChecksum), code 0, message
// at least 24 bytes, target not multicast, source not multicast, at most 16
// options each of non-zero length inside the message, a multicast-destined
// NA without the Solicited flag, and a DAD NS (source ::) sent to a
// solicited-node address without a source link-layer option; and more
// strictly, link-layer options of either kind exactly 8 bytes and an
// Ethernet source that is not a group address. Any other frame is
// resultWrongType or resultMalformed.
//
//   - NA: KindNA of the target; claimant the target link-layer option (the
//     last, if repeated), else the Ethernet source.
//   - NS from :: : KindDAD of the target; claimant the Ethernet source.
//   - other NS: KindNSFromOwner of the IPv6 source; claimant the source
//     link-layer option (the last, if repeated), else the Ethernet source.
//
// A claimant that is a group or zero MAC is resultMalformed. Unlike ARP, the
// link-layer option is not compared with the Ethernet source: it is what
// neighbours will use, whoever relayed the frame. It does not allocate.
func parseNDP(frame []byte) (claim, result) {
	var c claim
	var m wire.ND
	if f := m.Parse(frame, wire.AcceptNS|wire.AcceptNA, maxNDOptions); f != wire.OK {
		return c, faultResults[f]
	}
	if wire.IsMulticastMAC(m.Eth.Src) || m.BadLinkOpts != 0 || !m.Valid() {
		return c, resultMalformed
	}
	c.mac = m.Eth.Src
	if m.HasLinkAddr {
		c.mac = m.LastLinkAddr
	}
	switch {
	case m.Type == wire.ICMPTypeNA:
		c.kind, c.vip = KindNA, netip.AddrFrom16(m.Target)
	case m.Src == [16]byte{}:
		c.kind, c.vip = KindDAD, netip.AddrFrom16(m.Target)
	default:
		c.kind, c.vip = KindNSFromOwner, netip.AddrFrom16(m.Src)
	}
	if badMAC(c.mac) {
		return claim{}, resultMalformed
	}
	return c, resultNone
}
