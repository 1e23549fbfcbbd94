package announce

import "github.com/heraldlb/herald/internal/wire"

// maxNSOptions is the most options a Neighbor Solicitation may carry. RFC
// 4861 defines one for NS (source link-layer address) and SEND (RFC 3971)
// adds four; a longer list is not a real solicitation, and walking it costs
// time on the packet path.
const maxNSOptions = 16

// loopback6 is ::1, never the source of a packet on a link (RFC 4291 §2.5.3).
var loopback6 = [16]byte{15: 1}

// parseNS parses into ns an Ethernet frame carrying an IPv6 Neighbor Solicitation
// and validates it per RFC 4861 §7.1.1 (wire.ParseND and ND.Valid: hop limit
// 255, ICMPv6 checksum, code 0, ICMP length >= 24, target not multicast,
// source not multicast, every option of non-zero length and within the
// packet, for an unspecified source (DAD) a solicited-node destination and no
// source link-layer option), and more strictly: at most maxNSOptions options,
// at most one source link-layer option and that of 8 bytes, and a source
// other than ::1. It returns resultNone for a valid NS, else resultWrongType,
// resultMalformed, resultHopLimit or resultBadChecksum. Packets with IPv6
// extension headers are reported as resultWrongType (NS are sent without
// them). It does not allocate.
func parseNS(ns *wire.ND, frame []byte) result {
	if f := ns.Parse(frame, wire.AcceptNS, maxNSOptions); f != wire.OK {
		return faultResults[f]
	}
	if ns.BadLinkOpts&(1<<wire.OptSourceLinkAddr) != 0 || ns.LinkAddrOpts > 1 || ns.Src == loopback6 || !ns.Valid() {
		return resultMalformed
	}
	return resultNone
}

// handleNS decides whether frame is a Neighbor Solicitation this interface
// (MAC mac, VIPs vips) must answer and, if so, writes the Neighbor
// Advertisement into out (at least wire.NDLinkFrameLen bytes) and returns its
// length with resultAnswered. It takes no lock and does not allocate.
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
func handleNS(frame []byte, mac [6]byte, vips *wire.VIPSet, out []byte) (int, result) {
	var ns wire.ND
	if r := parseNS(&ns, frame); r != resultNone {
		return 0, r
	}
	if ns.Eth.Src == mac {
		return 0, resultOwnFrame
	}
	if ns.Eth.Dst != mac && !wire.IsMulticastMAC(ns.Eth.Dst) {
		return 0, resultOtherHost
	}
	if !vips.Has6(ns.Target) {
		return 0, resultNotOurs
	}
	na := wire.ND{Eth: wire.Ethernet{Src: mac}, Src: ns.Target, Type: wire.ICMPTypeNA, Target: ns.Target,
		LinkAddr: mac, HasLinkAddr: true}
	if ns.Src == ([16]byte{}) {
		na.Eth.Dst, na.Dst, na.Flags = wire.AllNodesMAC, wire.AllNodes, wire.NAFlagOverride
		return wire.PutND(out, &na), resultAnswered
	}
	na.Eth.Dst = ns.Eth.Src
	if ns.HasLinkAddr {
		na.Eth.Dst = ns.LinkAddr
	}
	if wire.IsMulticastMAC(na.Eth.Dst) || na.Eth.Dst == ([6]byte{}) {
		return 0, resultMalformed
	}
	na.Dst, na.Flags = ns.Src, wire.NAFlagSolicited|wire.NAFlagOverride
	return wire.PutND(out, &na), resultAnswered
}
