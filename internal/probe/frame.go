package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Ethernet (IEEE 802.3) framing.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
)

// ARP over Ethernet for IPv4 (RFC 826).
const (
	arpLen     = 28 // htype, ptype, hlen, plen, op, two hardware and two protocol addresses
	arpRequest = 1
	arpReply   = 2
)

// IPv6 (RFC 8200) and the Neighbor Discovery messages of RFC 4861.
const (
	ipv6HeaderLen   = 40
	protoICMPv6     = 58
	ndpHopLimit     = 255 // RFC 4861 section 7.1: anything else did not come from the link
	ndpBodyLen      = 24  // type, code, checksum, flags/reserved, target address
	icmpNS          = 135 // Neighbor Solicitation
	icmpNA          = 136 // Neighbor Advertisement
	optSourceLLAddr = 1
	optTargetLLAddr = 2

	// Neighbor Advertisement flags, in the first byte after the checksum (RFC 4861 section 4.4).
	naRouter    = 0x80
	naSolicited = 0x40
	naOverride  = 0x20
)

var (
	errShort     = errors.New("frame too short")
	errNotARP    = errors.New("not an Ethernet/IPv4 ARP packet")
	errNotNDP    = errors.New("not an IPv6 neighbor discovery message")
	errChecksum  = errors.New("bad ICMPv6 checksum")
	errBadOption = errors.New("malformed neighbor discovery option")
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpPacket is an ARP packet for IPv4 over Ethernet (RFC 826) with its Ethernet header.
type arpPacket struct {
	EthDst, EthSrc net.HardwareAddr
	Op             uint16
	SenderMAC      net.HardwareAddr
	SenderIP       netip.Addr
	TargetMAC      net.HardwareAddr
	TargetIP       netip.Addr
}

// marshal returns the packet as an Ethernet frame (without padding or FCS).
func (p *arpPacket) marshal() ([]byte, error) {
	for _, m := range []net.HardwareAddr{p.EthDst, p.EthSrc, p.SenderMAC, p.TargetMAC} {
		if len(m) != 6 {
			return nil, fmt.Errorf("ARP: hardware address %q is not 6 bytes", m)
		}
	}
	if !p.SenderIP.Is4() || !p.TargetIP.Is4() {
		return nil, fmt.Errorf("ARP: addresses %v, %v are not both IPv4", p.SenderIP, p.TargetIP)
	}
	b := make([]byte, ethHeaderLen+arpLen)
	copy(b[0:6], p.EthDst)
	copy(b[6:12], p.EthSrc)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], 1) // hardware type: Ethernet
	binary.BigEndian.PutUint16(a[2:4], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], p.Op)
	copy(a[8:14], p.SenderMAC)
	sip, tip := p.SenderIP.As4(), p.TargetIP.As4()
	copy(a[14:18], sip[:])
	copy(a[18:24], p.TargetMAC)
	copy(a[24:28], tip[:])
	return b, nil
}

// parseARP parses an Ethernet frame holding an Ethernet/IPv4 ARP packet; trailing bytes (padding) are ignored.
func parseARP(b []byte) (arpPacket, error) {
	if len(b) < ethHeaderLen+arpLen {
		return arpPacket{}, errShort
	}
	if binary.BigEndian.Uint16(b[12:14]) != etherTypeARP {
		return arpPacket{}, errNotARP
	}
	a := b[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return arpPacket{}, errNotARP
	}
	return arpPacket{
		EthDst:    cloneMAC(b[0:6]),
		EthSrc:    cloneMAC(b[6:12]),
		Op:        binary.BigEndian.Uint16(a[6:8]),
		SenderMAC: cloneMAC(a[8:14]),
		SenderIP:  netip.AddrFrom4([4]byte(a[14:18])),
		TargetMAC: cloneMAC(a[18:24]),
		TargetIP:  netip.AddrFrom4([4]byte(a[24:28])),
	}, nil
}

// ndpPacket is a Neighbor Solicitation or Advertisement (RFC 4861 sections 4.3, 4.4) with its IPv6 and Ethernet
// headers. The hop limit is always 255; traffic class and flow label are sent as zero and ignored when parsed.
type ndpPacket struct {
	EthDst, EthSrc net.HardwareAddr
	Src, Dst       netip.Addr // IPv6 header
	Type           uint8      // icmpNS or icmpNA
	Flags          uint8      // NA: naRouter|naSolicited|naOverride; NS: 0
	Target         netip.Addr
	// LinkAddr is the source (NS) or target (NA) link-layer address option; nil when absent.
	LinkAddr net.HardwareAddr
}

// marshal returns the message as an Ethernet frame with the ICMPv6 checksum filled in.
func (p *ndpPacket) marshal() ([]byte, error) {
	if len(p.EthDst) != 6 || len(p.EthSrc) != 6 {
		return nil, fmt.Errorf("NDP: Ethernet addresses %q, %q are not 6 bytes", p.EthDst, p.EthSrc)
	}
	if !p.Src.Is6() || !p.Dst.Is6() || !p.Target.Is6() {
		return nil, fmt.Errorf("NDP: addresses %v, %v, %v are not all IPv6", p.Src, p.Dst, p.Target)
	}
	if p.Type != icmpNS && p.Type != icmpNA {
		return nil, fmt.Errorf("NDP: ICMPv6 type %d is not a neighbor solicitation or advertisement", p.Type)
	}
	if p.LinkAddr != nil && len(p.LinkAddr) != 6 {
		return nil, fmt.Errorf("NDP: link-layer address option %q is not 6 bytes", p.LinkAddr)
	}
	icmpLen := ndpBodyLen
	if p.LinkAddr != nil {
		icmpLen += 8
	}
	b := make([]byte, ethHeaderLen+ipv6HeaderLen+icmpLen)
	copy(b[0:6], p.EthDst)
	copy(b[6:12], p.EthSrc)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(icmpLen))
	ip[6] = protoICMPv6
	ip[7] = ndpHopLimit
	src, dst, tgt := p.Src.As16(), p.Dst.As16(), p.Target.As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	m := ip[ipv6HeaderLen:]
	m[0] = p.Type
	m[4] = p.Flags
	copy(m[8:24], tgt[:])
	if p.LinkAddr != nil {
		m[24] = optSourceLLAddr
		if p.Type == icmpNA {
			m[24] = optTargetLLAddr
		}
		m[25] = 1 // length in units of 8 bytes
		copy(m[26:32], p.LinkAddr)
	}
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(p.Src, p.Dst, m))
	return b, nil
}

// parseNDP parses an Ethernet frame holding a Neighbor Solicitation or Advertisement, validated as RFC 4861
// section 7.1 asks (hop limit 255, code 0, checksum, option lengths). Extension headers are not followed:
// a message behind one is refused. Bytes after the IPv6 payload (padding) are ignored.
func parseNDP(b []byte) (ndpPacket, error) {
	if len(b) < ethHeaderLen+ipv6HeaderLen+ndpBodyLen {
		return ndpPacket{}, errShort
	}
	if binary.BigEndian.Uint16(b[12:14]) != etherTypeIPv6 {
		return ndpPacket{}, errNotNDP
	}
	ip := b[ethHeaderLen:]
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != ndpHopLimit {
		return ndpPacket{}, errNotNDP
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen < ndpBodyLen || ipv6HeaderLen+plen > len(ip) {
		return ndpPacket{}, errShort
	}
	m := ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	if (m[0] != icmpNS && m[0] != icmpNA) || m[1] != 0 {
		return ndpPacket{}, errNotNDP
	}
	p := ndpPacket{
		EthDst: cloneMAC(b[0:6]),
		EthSrc: cloneMAC(b[6:12]),
		Src:    netip.AddrFrom16([16]byte(ip[8:24])),
		Dst:    netip.AddrFrom16([16]byte(ip[24:40])),
		Type:   m[0],
		Target: netip.AddrFrom16([16]byte(m[8:24])),
	}
	if icmpv6Checksum(p.Src, p.Dst, m) != 0 {
		// Summing a message that carries its correct checksum yields zero.
		return ndpPacket{}, errChecksum
	}
	if p.Type == icmpNA {
		p.Flags = m[4] & (naRouter | naSolicited | naOverride)
	}
	want := uint8(optSourceLLAddr)
	if p.Type == icmpNA {
		want = optTargetLLAddr
	}
	for opts := m[ndpBodyLen:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return ndpPacket{}, errBadOption
		}
		n := int(opts[1]) * 8
		if opts[0] == want && n == 8 && p.LinkAddr == nil {
			p.LinkAddr = cloneMAC(opts[2:8])
		}
		opts = opts[n:]
	}
	return p, nil
}

// icmpv6Checksum is the Internet checksum (RFC 1071) of the IPv6 pseudo-header (RFC 8200 section 8.1) and msg.
// With msg's checksum field zero it is the value to put there; over a message carrying a correct checksum it is 0.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[0:4], uint32(len(msg)))
	tail[7] = protoICMPv6
	add(tail[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// solicitedNode is the solicited-node multicast address of a (RFC 4291 section 2.7.1): ff02::1:ffXX:XXXX.
func solicitedNode(a netip.Addr) netip.Addr {
	t := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
}

// multicastMAC is the Ethernet address IPv6 multicast to a is sent to (RFC 2464 section 7): 33:33 and its last
// four bytes.
func multicastMAC(a netip.Addr) net.HardwareAddr {
	t := a.As16()
	return net.HardwareAddr{0x33, 0x33, t[12], t[13], t[14], t[15]}
}

func cloneMAC(b []byte) net.HardwareAddr {
	return append(net.HardwareAddr(nil), b...)
}
