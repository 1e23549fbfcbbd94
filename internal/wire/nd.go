package wire

import "encoding/binary"

// IPv6 (RFC 8200) and the Neighbor Discovery messages of RFC 4861: Neighbor Solicitation (NS) and Neighbor
// Advertisement (NA), sent without extension headers.
const (
	IPv6HeaderLen  = 40
	IPv6Offset     = EthHeaderLen                 // 14
	ICMPOffset     = EthHeaderLen + IPv6HeaderLen // 54
	ProtoICMPv6    = 58
	NDHopLimit     = 255
	ICMPTypeNS     = 135
	ICMPTypeNA     = 136
	NDLen          = 24 // type, code, checksum, flags/reserved, target
	LinkAddrOptLen = 8  // a link-layer address option for Ethernet: type, length 1, 6-byte MAC (RFC 2464 §6)

	// NDFrameLen is an NS or NA frame without options; NDLinkFrameLen one with a link-layer address option.
	NDFrameLen        = ICMPOffset + NDLen          // 78
	NDLinkFrameLen    = NDFrameLen + LinkAddrOptLen // 86
	OptSourceLinkAddr = 1
	OptTargetLinkAddr = 2

	// Neighbor Advertisement flags, in the byte after the checksum (RFC 4861 §4.4).
	NAFlagRouter    = 0x80
	NAFlagSolicited = 0x40
	NAFlagOverride  = 0x20
)

// NDTypes says which messages ParseND accepts.
type NDTypes uint8

const (
	AcceptNS NDTypes = 1 << iota
	AcceptNA
)

// ND is a Neighbor Solicitation or Advertisement with its IPv6 and Ethernet headers. Traffic class and flow
// label are sent as zero and not parsed; the hop limit is always 255.
type ND struct {
	Eth      Ethernet
	Src, Dst [16]byte // IPv6 source and destination
	Type     uint8    // ICMPTypeNS or ICMPTypeNA
	Flags    uint8    // NA: NAFlagRouter|NAFlagSolicited|NAFlagOverride; 0 for NS
	Target   [16]byte

	// LinkAddr is the link-layer address option of the message's own direction (source for an NS, target for an
	// NA; RFC 4861 §4.6.1) when HasLinkAddr is set: the one option PutND writes, and the first one of 8 bytes
	// ParseND finds.
	LinkAddr    [6]byte
	HasLinkAddr bool

	// What ParseND saw of the options, for receivers stricter than RFC 4861 about them: LastLinkAddr is the last
	// option of LinkAddr's kind that holds 8 bytes (LinkAddr unless the option is repeated), LinkAddrOpts how many
	// options of that kind there are, whatever their length, and BadLinkOpts has bit 1<<OptSourceLinkAddr or
	// 1<<OptTargetLinkAddr set for a link-layer option of that kind whose length is not 8.
	LastLinkAddr [6]byte
	LinkAddrOpts int
	BadLinkOpts  uint8
}

// ParseND decodes an Ethernet frame carrying an NS or NA (as accept says) right behind the IPv6 header, and
// checks it as RFC 4861 §7.1 asks of every such message: hop limit 255, ICMPv6 checksum, code 0, message at
// least 24 bytes, every option of non-zero length and inside the message. At most maxOptions options are walked
// (0: all of them); more is FaultOption. The rest of §7.1 is Valid's. Bytes after the IPv6 payload (Ethernet
// padding) are ignored. The faults, in the order they are checked: FaultShort (Ethernet or IPv6 header),
// FaultEtherType, FaultMalformed (IP version), FaultNotND (next header), FaultShort (payload past the frame, or
// under 4 bytes), FaultNotND (ICMPv6 type), FaultHopLimit, FaultMalformed (code) or FaultShort (under 24 bytes),
// FaultChecksum, FaultOption. It does not allocate.
func ParseND(frame []byte, accept NDTypes, maxOptions int) (ND, Fault) {
	var m ND
	f := m.Parse(frame, accept, maxOptions)
	return m, f
}

// Parse is ParseND into m, which it overwrites whole: the packet paths parse into an ND of their own rather than
// copy one out.
func (m *ND) Parse(frame []byte, accept NDTypes, maxOptions int) Fault {
	*m = ND{}
	if len(frame) < EthHeaderLen {
		return FaultShort
	}
	m.Eth = parseEthernet(frame)
	if m.Eth.Type != EtherTypeIPv6 {
		return FaultEtherType
	}
	if len(frame) < ICMPOffset {
		return FaultShort
	}
	ip := frame[IPv6Offset:ICMPOffset]
	if ip[0]>>4 != 6 {
		return FaultMalformed
	}
	if ip[6] != ProtoICMPv6 {
		return FaultNotND
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen < 4 || ICMPOffset+plen > len(frame) {
		return FaultShort
	}
	msg := frame[ICMPOffset : ICMPOffset+plen]
	switch m.Type = msg[0]; {
	case m.Type == ICMPTypeNS && accept&AcceptNS != 0, m.Type == ICMPTypeNA && accept&AcceptNA != 0:
	default:
		return FaultNotND
	}
	if ip[7] != NDHopLimit {
		return FaultHopLimit
	}
	if msg[1] != 0 {
		return FaultMalformed
	}
	if plen < NDLen {
		return FaultShort
	}
	m.Src, m.Dst = [16]byte(ip[8:24]), [16]byte(ip[24:40])
	if ICMPv6Checksum(&m.Src, &m.Dst, msg) != 0 {
		return FaultChecksum
	}
	if m.Type == ICMPTypeNA {
		m.Flags = msg[4] & (NAFlagRouter | NAFlagSolicited | NAFlagOverride)
	}
	m.Target = [16]byte(msg[8:24])
	own := byte(OptSourceLinkAddr)
	if m.Type == ICMPTypeNA {
		own = OptTargetLinkAddr
	}
	n := 0
	for opts := msg[NDLen:]; len(opts) > 0; n++ {
		if (maxOptions > 0 && n == maxOptions) || len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return FaultOption
		}
		size := int(opts[1]) * 8
		switch typ := opts[0]; {
		case typ != OptSourceLinkAddr && typ != OptTargetLinkAddr:
		case size != LinkAddrOptLen:
			m.BadLinkOpts |= 1 << typ
			if typ == own {
				m.LinkAddrOpts++
			}
		case typ == own:
			m.LinkAddrOpts++
			m.LastLinkAddr = [6]byte(opts[2:8])
			if !m.HasLinkAddr {
				m.LinkAddr, m.HasLinkAddr = m.LastLinkAddr, true
			}
		}
		opts = opts[size:]
	}
	return OK
}

// Valid reports whether m passes the checks of RFC 4861 §7.1.1 and §7.1.2 that ParseND leaves out: target and
// source not multicast; an NA to a multicast address without the Solicited flag; an NS from the unspecified
// address (Duplicate Address Detection) sent to a solicited-node address without a source link-layer option.
func (m *ND) Valid() bool {
	if m.Target[0] == 0xff || m.Src[0] == 0xff {
		return false
	}
	switch m.Type {
	case ICMPTypeNA:
		return m.Dst[0] != 0xff || m.Flags&NAFlagSolicited == 0
	case ICMPTypeNS:
		return m.Src != [16]byte{} || (!m.HasLinkAddr && IsSolicitedNode(&m.Dst))
	}
	return true
}

// PutND writes m as an Ethernet frame into b (NDFrameLen bytes, NDLinkFrameLen with a link-layer option) and
// returns its length: m.Eth's addresses (its Type is not used), IPv6 with traffic class and flow label zero, hop
// limit 255, the ICMPv6 checksum computed, and one link-layer address option if m.HasLinkAddr. It does not
// allocate.
func PutND(b []byte, m *ND) int {
	n := NDFrameLen
	if m.HasLinkAddr {
		n += LinkAddrOptLen
	}
	eth := Ethernet{Dst: m.Eth.Dst, Src: m.Eth.Src, Type: EtherTypeIPv6}
	eth.put(b)
	ip := b[IPv6Offset:ICMPOffset]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28) // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip[4:6], uint16(n-ICMPOffset))
	ip[6], ip[7] = ProtoICMPv6, NDHopLimit
	copy(ip[8:24], m.Src[:])
	copy(ip[24:40], m.Dst[:])
	msg := b[ICMPOffset:n]
	msg[0], msg[1], msg[2], msg[3] = m.Type, 0, 0, 0
	msg[4], msg[5], msg[6], msg[7] = m.Flags, 0, 0, 0
	copy(msg[8:24], m.Target[:])
	if m.HasLinkAddr {
		msg[24], msg[25] = OptSourceLinkAddr, LinkAddrOptLen/8
		if m.Type == ICMPTypeNA {
			msg[24] = OptTargetLinkAddr
		}
		copy(msg[26:32], m.LinkAddr[:])
	}
	binary.BigEndian.PutUint16(msg[2:4], ICMPv6Checksum(&m.Src, &m.Dst, msg))
	return n
}

// AllNodes is ff02::1, where unsolicited Neighbor Advertisements go (RFC 4861 §7.2.6).
var AllNodes = [16]byte{0xff, 0x02, 15: 0x01}

// PutUnsolicitedNA writes an unsolicited Neighbor Advertisement for ip from mac into b (NDLinkFrameLen bytes)
// and returns its length (RFC 4861 §7.2.6): from ip to all nodes, Override set, Solicited and Router clear, the
// target link-layer option mac.
func PutUnsolicitedNA(b []byte, mac [6]byte, ip [16]byte) int {
	return PutND(b, &ND{Eth: Ethernet{Dst: AllNodesMAC, Src: mac}, Src: ip, Dst: AllNodes, Type: ICMPTypeNA,
		Flags: NAFlagOverride, Target: ip, LinkAddr: mac, HasLinkAddr: true})
}

// PutDAD writes an RFC 4862 §5.4.2 Duplicate Address Detection Neighbor Solicitation for ip from mac into b
// (NDFrameLen bytes) and returns its length: IPv6 source ::, destination the solicited-node address of ip (and
// its 33:33:ff MAC), target ip, no option.
func PutDAD(b []byte, mac [6]byte, ip [16]byte) int {
	group := SolicitedNode(ip)
	return PutND(b, &ND{Eth: Ethernet{Dst: MulticastMAC(group), Src: mac}, Dst: group, Type: ICMPTypeNS, Target: ip})
}

// IsSolicitedNode reports whether a is in ff02::1:ff00:0/104 (RFC 4291 §2.7.1).
func IsSolicitedNode(a *[16]byte) bool {
	return a[0] == 0xff && a[1] == 0x02 && a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9]|a[10] == 0 &&
		a[11] == 0x01 && a[12] == 0xff
}

// SolicitedNode returns the solicited-node multicast address of a (RFC 4291 §2.7.1): ff02::1:ff and a's last
// three bytes.
func SolicitedNode(a [16]byte) [16]byte {
	return [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
}

// SolicitedNodeMAC is the Ethernet address of a's solicited-node group (RFC 2464 §7): 33:33:ff and a's last
// three bytes.
func SolicitedNodeMAC(a [16]byte) [6]byte {
	return [6]byte{0x33, 0x33, 0xff, a[13], a[14], a[15]}
}

// MulticastMAC is the Ethernet address IPv6 multicast to group is sent to (RFC 2464 §7): 33:33 and group's last
// four bytes.
func MulticastMAC(group [16]byte) [6]byte {
	return [6]byte{0x33, 0x33, group[12], group[13], group[14], group[15]}
}
