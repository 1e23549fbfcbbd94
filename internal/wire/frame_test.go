package wire

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	testMAC  = [6]byte{2, 0, 0x5e, 0x10, 0, 0x0a}
	peerMAC  = [6]byte{2, 0, 0x5e, 0x10, 0, 0x0b}
	testIPv4 = [4]byte{198, 51, 100, 10}
	peerIPv4 = [4]byte{198, 51, 100, 2}
	testIPv6 = netip.MustParseAddr("2001:db8::10").As16()
	peerIPv6 = netip.MustParseAddr("2001:db8::2").As16()
)

// arpReq is a request from the peer for testIPv4.
func arpReq() []byte {
	b := make([]byte, ARPFrameLen)
	PutARP(b, BroadcastMAC, peerMAC, &ARP{Op: ARPRequest, SenderMAC: peerMAC, SenderIP: peerIPv4, TargetIP: testIPv4})
	return b
}

// nsFrame is a multicast NS from the peer for testIPv6 with its source link-layer option and the raw options
// extra after it.
func nsFrame(extra ...byte) []byte {
	group := SolicitedNode(testIPv6)
	b := make([]byte, NDLinkFrameLen)
	PutND(b, &ND{Eth: Ethernet{Dst: MulticastMAC(group), Src: peerMAC}, Src: peerIPv6, Dst: group, Type: ICMPTypeNS,
		Target: testIPv6, LinkAddr: peerMAC, HasLinkAddr: true})
	return fixND(append(b, extra...))
}

// fixND sets the IPv6 payload length of an NS or NA frame to the rest of the frame and recomputes its checksum.
func fixND(f []byte) []byte {
	binary.BigEndian.PutUint16(f[IPv6Offset+4:IPv6Offset+6], uint16(len(f)-ICMPOffset))
	msg := f[ICMPOffset:]
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:4], ICMPv6Checksum((*[16]byte)(f[22:38]), (*[16]byte)(f[38:54]), msg))
	return f
}

// set returns a copy of f with b written at off.
func set(f []byte, off int, b ...byte) []byte {
	c := bytes.Clone(f)
	copy(c[off:], b)
	return c
}

func TestParseARPFaults(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  Fault
	}{
		{name: "request", frame: arpReq(), want: OK},
		{name: "padded", frame: append(arpReq(), make([]byte, 18)...), want: OK},
		{name: "empty", want: FaultShort},
		{name: "shorter than Ethernet", frame: arpReq()[:13], want: FaultShort},
		{name: "IPv6 EtherType", frame: set(arpReq(), 12, 0x86, 0xdd), want: FaultEtherType},
		{name: "IPv6 EtherType, short", frame: set(arpReq(), 12, 0x86, 0xdd)[:20], want: FaultEtherType},
		{name: "truncated by one byte", frame: arpReq()[:41], want: FaultShort},
		{name: "hardware type 6", frame: set(arpReq(), 14, 0, 6), want: FaultARPType},
		{name: "protocol type IPv6", frame: set(arpReq(), 16, 0x86, 0xdd), want: FaultARPType},
		{name: "hardware length 8", frame: set(arpReq(), 18, 8), want: FaultMalformed},
		{name: "protocol length 16", frame: set(arpReq(), 19, 16), want: FaultMalformed},
		{name: "opcode 3 decodes", frame: set(arpReq(), 21, 3), want: OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, f := ParseARP(tt.frame); f != tt.want {
				t.Errorf("ParseARP = %v, want %v", f, tt.want)
			}
		})
	}
}

func TestARPBuilders(t *testing.T) {
	for _, tt := range []struct {
		name string
		put  func(b []byte, mac [6]byte, ip [4]byte) int
		want ARP
	}{
		{name: "announcement", put: PutARPAnnouncement,
			want: ARP{Op: ARPRequest, SenderMAC: testMAC, SenderIP: testIPv4, TargetIP: testIPv4}},
		{name: "probe", put: PutARPProbe,
			want: ARP{Op: ARPRequest, SenderMAC: testMAC, TargetIP: testIPv4}},
	} {
		b := bytes.Repeat([]byte{0xaa}, ARPFrameLen) // a reused buffer: every byte must be written
		eth, p, f := ParseARP(b[:tt.put(b, testMAC, testIPv4)])
		if f != OK || eth != (Ethernet{Dst: BroadcastMAC, Src: testMAC, Type: EtherTypeARP}) {
			t.Errorf("%s: %v, %+v", tt.name, f, eth)
		}
		if diff := cmp.Diff(tt.want, p); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestParseNDFaults(t *testing.T) {
	na := make([]byte, NDLinkFrameLen)
	PutND(na, &ND{Eth: Ethernet{Dst: peerMAC, Src: testMAC}, Src: testIPv6, Dst: peerIPv6, Type: ICMPTypeNA,
		Flags: NAFlagSolicited | NAFlagOverride, Target: testIPv6, LinkAddr: testMAC, HasLinkAddr: true})
	unknown := func(n int) []byte { return bytes.Repeat([]byte{14, 1, 0, 0, 0, 0, 0, 0}, n) }
	tests := []struct {
		name       string
		frame      []byte
		accept     NDTypes
		maxOptions int
		want       Fault
	}{
		{name: "NS", frame: nsFrame(), accept: AcceptNS, want: OK},
		{name: "NA", frame: na, accept: AcceptNA, want: OK},
		{name: "padded", frame: append(nsFrame(), 0, 0, 0, 0), accept: AcceptNS, want: OK},
		{name: "NA when only NS is accepted", frame: na, accept: AcceptNS, want: FaultNotND},
		{name: "NA with hop limit 64 when only NS is accepted", frame: set(na, 21, 64), accept: AcceptNS, want: FaultNotND},
		{name: "NS when only NA is accepted", frame: nsFrame(), accept: AcceptNA, want: FaultNotND},
		{name: "empty", accept: AcceptNS, want: FaultShort},
		{name: "ARP EtherType", frame: set(nsFrame(), 12, 0x08, 0x06), accept: AcceptNS, want: FaultEtherType},
		{name: "half an IPv6 header", frame: nsFrame()[:40], accept: AcceptNS, want: FaultShort},
		{name: "IP version 4", frame: set(nsFrame(), 14, 0x45), accept: AcceptNS, want: FaultMalformed},
		{name: "hop-by-hop header", frame: set(nsFrame(), 20, 0), accept: AcceptNS, want: FaultNotND},
		{name: "payload past the frame", frame: nsFrame()[:85], accept: AcceptNS, want: FaultShort},
		{name: "payload under 4 bytes", frame: set(nsFrame(), 18, 0, 3), accept: AcceptNS, want: FaultShort},
		{name: "echo request", frame: fixND(set(nsFrame(), 54, 128)), accept: AcceptNS | AcceptNA, want: FaultNotND},
		{name: "hop limit 64", frame: set(nsFrame(), 21, 64), accept: AcceptNS, want: FaultHopLimit},
		{name: "code 1", frame: fixND(set(nsFrame(), 55, 1)), accept: AcceptNS, want: FaultMalformed},
		{name: "message under 24 bytes", frame: fixND(nsFrame()[:ICMPOffset+20]), accept: AcceptNS, want: FaultShort},
		{name: "bad checksum", frame: set(nsFrame(), 56, 0, 0), accept: AcceptNS, want: FaultChecksum},
		{name: "option of length 0", frame: fixND(set(nsFrame(), 79, 0)), accept: AcceptNS, want: FaultOption},
		{name: "option past the message", frame: fixND(set(nsFrame(), 79, 2)), accept: AcceptNS, want: FaultOption},
		{name: "one-byte option", frame: nsFrame(14), accept: AcceptNS, want: FaultOption},
		{name: "16 options", frame: nsFrame(unknown(15)...), accept: AcceptNS, maxOptions: 16, want: OK},
		{name: "17 options", frame: nsFrame(unknown(16)...), accept: AcceptNS, maxOptions: 16, want: FaultOption},
		{name: "17 options, no bound", frame: nsFrame(unknown(16)...), accept: AcceptNS, want: OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, f := ParseND(tt.frame, tt.accept, tt.maxOptions); f != tt.want {
				t.Errorf("ParseND = %v, want %v", f, tt.want)
			}
		})
	}
}

func TestNDLinkOptions(t *testing.T) {
	other := [6]byte{2, 0, 0x5e, 0x10, 0, 0x0c}
	lla := func(typ byte, mac [6]byte) []byte { return append([]byte{typ, 1}, mac[:]...) }
	tests := []struct {
		name  string
		extra []byte
		want  ND // only the option fields
	}{
		{name: "one", want: ND{LinkAddr: peerMAC, LastLinkAddr: peerMAC, HasLinkAddr: true, LinkAddrOpts: 1}},
		{name: "repeated", extra: lla(OptSourceLinkAddr, other),
			want: ND{LinkAddr: peerMAC, LastLinkAddr: other, HasLinkAddr: true, LinkAddrOpts: 2}},
		{name: "a target option in an NS is not the NS's", extra: lla(OptTargetLinkAddr, other),
			want: ND{LinkAddr: peerMAC, LastLinkAddr: peerMAC, HasLinkAddr: true, LinkAddrOpts: 1}},
		{name: "16-byte source option", extra: append([]byte{OptSourceLinkAddr, 2}, make([]byte, 14)...),
			want: ND{LinkAddr: peerMAC, LastLinkAddr: peerMAC, HasLinkAddr: true, LinkAddrOpts: 2, BadLinkOpts: 1 << OptSourceLinkAddr}},
		{name: "16-byte target option", extra: append([]byte{OptTargetLinkAddr, 2}, make([]byte, 14)...),
			want: ND{LinkAddr: peerMAC, LastLinkAddr: peerMAC, HasLinkAddr: true, LinkAddrOpts: 1, BadLinkOpts: 1 << OptTargetLinkAddr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := ParseND(nsFrame(tt.extra...), AcceptNS, 0)
			if f != OK {
				t.Fatal(f)
			}
			got := ND{LinkAddr: m.LinkAddr, LastLinkAddr: m.LastLinkAddr, HasLinkAddr: m.HasLinkAddr,
				LinkAddrOpts: m.LinkAddrOpts, BadLinkOpts: m.BadLinkOpts}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNDValid(t *testing.T) {
	group := SolicitedNode(testIPv6)
	multicast := netip.MustParseAddr("ff02::1").As16()
	tests := []struct {
		name string
		m    ND
		want bool
	}{
		{name: "NS", m: ND{Type: ICMPTypeNS, Src: peerIPv6, Dst: group, Target: testIPv6, HasLinkAddr: true}, want: true},
		{name: "DAD", m: ND{Type: ICMPTypeNS, Dst: group, Target: testIPv6}, want: true},
		{name: "DAD with a source option", m: ND{Type: ICMPTypeNS, Dst: group, Target: testIPv6, HasLinkAddr: true}},
		{name: "DAD to a unicast address", m: ND{Type: ICMPTypeNS, Dst: testIPv6, Target: testIPv6}},
		{name: "multicast target", m: ND{Type: ICMPTypeNS, Src: peerIPv6, Dst: group, Target: group}},
		{name: "multicast source", m: ND{Type: ICMPTypeNA, Src: multicast, Dst: peerIPv6, Target: testIPv6}},
		{name: "solicited NA", m: ND{Type: ICMPTypeNA, Src: testIPv6, Dst: peerIPv6, Target: testIPv6, Flags: NAFlagSolicited}, want: true},
		{name: "unsolicited NA to all nodes", m: ND{Type: ICMPTypeNA, Src: testIPv6, Dst: AllNodes, Target: testIPv6, Flags: NAFlagOverride}, want: true},
		{name: "solicited NA to all nodes", m: ND{Type: ICMPTypeNA, Src: testIPv6, Dst: AllNodes, Target: testIPv6, Flags: NAFlagSolicited}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Valid(); got != tt.want {
				t.Errorf("Valid = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNDBuilders(t *testing.T) {
	b := bytes.Repeat([]byte{0xaa}, NDLinkFrameLen) // a reused buffer: every byte must be written
	n := PutUnsolicitedNA(b, testMAC, testIPv6)
	m, f := ParseND(b[:n], AcceptNA, 0)
	want := ND{Eth: Ethernet{Dst: AllNodesMAC, Src: testMAC, Type: EtherTypeIPv6}, Src: testIPv6, Dst: AllNodes,
		Type: ICMPTypeNA, Flags: NAFlagOverride, Target: testIPv6, LinkAddr: testMAC, HasLinkAddr: true,
		LastLinkAddr: testMAC, LinkAddrOpts: 1}
	if diff := cmp.Diff(want, m); f != OK || !m.Valid() || diff != "" {
		t.Errorf("unsolicited NA: %v, valid %v (-want +got):\n%s", f, m.Valid(), diff)
	}
	b = bytes.Repeat([]byte{0xaa}, NDFrameLen)
	n = PutDAD(b, testMAC, testIPv6)
	m, f = ParseND(b[:n], AcceptNS, 0)
	group := SolicitedNode(testIPv6)
	want = ND{Eth: Ethernet{Dst: SolicitedNodeMAC(testIPv6), Src: testMAC, Type: EtherTypeIPv6}, Dst: group,
		Type: ICMPTypeNS, Target: testIPv6}
	if diff := cmp.Diff(want, m); f != OK || !m.Valid() || diff != "" || n != NDFrameLen {
		t.Errorf("DAD: %v, valid %v, %d bytes (-want +got):\n%s", f, m.Valid(), n, diff)
	}
}

func TestBuildersDoNotAllocate(t *testing.T) {
	b := make([]byte, NDLinkFrameLen)
	ns := nsFrame()
	n := testing.AllocsPerRun(100, func() {
		PutARPAnnouncement(b, testMAC, testIPv4)
		ParseARP(b[:ARPFrameLen])
		PutUnsolicitedNA(b, testMAC, testIPv6)
		ParseND(ns, AcceptNS|AcceptNA, 16)
	})
	if n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

func TestSolicitedNode(t *testing.T) {
	tests := []struct {
		name      string
		addr      string
		want      bool
		wantGroup string
		wantMAC   string
	}{
		{name: "group of 2001:db8::10", addr: "ff02::1:ff00:10", want: true, wantGroup: "ff02::1:ff00:10", wantMAC: "33:33:ff:00:00:10"},
		{name: "group of 2001:db8::abcd:ef12", addr: "ff02::1:ffcd:ef12", want: true, wantGroup: "ff02::1:ffcd:ef12", wantMAC: "33:33:ff:cd:ef:12"},
		{name: "all nodes", addr: "ff02::1", want: false, wantGroup: "ff02::1:ff00:1", wantMAC: "33:33:ff:00:00:01"},
		{name: "site-local scope", addr: "ff05::1:ff00:10", want: false, wantGroup: "ff02::1:ff00:10", wantMAC: "33:33:ff:00:00:10"},
		{name: "unicast", addr: "2001:db8::10", want: false, wantGroup: "ff02::1:ff00:10", wantMAC: "33:33:ff:00:00:10"},
		{name: "low 24 bits", addr: "2001:db8::abcd:ef12:3456", want: false, wantGroup: "ff02::1:ff12:3456", wantMAC: "33:33:ff:12:34:56"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr).As16()
			if got := IsSolicitedNode(&a); got != tt.want {
				t.Errorf("IsSolicitedNode(%s) = %v, want %v", tt.addr, got, tt.want)
			}
			g := SolicitedNode(a)
			if got := netip.AddrFrom16(g).String(); got != tt.wantGroup || !IsSolicitedNode(&g) {
				t.Errorf("SolicitedNode(%s) = %s, want %s", tt.addr, got, tt.wantGroup)
			}
			m := SolicitedNodeMAC(a)
			if got := net.HardwareAddr(m[:]).String(); got != tt.wantMAC {
				t.Errorf("SolicitedNodeMAC(%s) = %s, want %s", tt.addr, got, tt.wantMAC)
			}
			if m2 := MulticastMAC(g); m2 != m {
				t.Errorf("MulticastMAC(%s) = %x, want %x", tt.wantGroup, m2, m)
			}
		})
	}
}

func TestFaultString(t *testing.T) {
	for f := OK; f < NumFaults; f++ {
		if f.String() == "" || f.String() == "unknown" {
			t.Errorf("Fault %d has no name", f)
		}
	}
	if NumFaults.String() != "unknown" {
		t.Error("NumFaults has a name")
	}
}

// FuzzARPRoundTrip: parsing never panics, and every byte of an Ethernet/IPv4 ARP packet is held by what ParseARP
// returns: PutARP gives the input back.
func FuzzARPRoundTrip(f *testing.F) {
	f.Add(arpReq())
	f.Add(nsFrame())
	f.Fuzz(func(t *testing.T, b []byte) {
		eth, p, fault := ParseARP(b)
		if fault != OK {
			return
		}
		out := make([]byte, ARPFrameLen)
		if n := PutARP(out, eth.Dst, eth.Src, &p); n != ARPFrameLen {
			t.Fatalf("PutARP returned %d", n)
		}
		if diff := cmp.Diff(b[:ARPFrameLen], out); diff != "" {
			t.Fatalf("round trip (-in +out):\n%s", diff)
		}
	})
}

// FuzzNDRoundTrip: parsing never panics, and PutND of a parsed message parses to the same message. Flow label,
// reserved bits and options other than the first link-layer option of the message's own kind are not kept, so
// what is compared is what PutND writes.
func FuzzNDRoundTrip(f *testing.F) {
	f.Add(nsFrame())
	f.Add(nsFrame(OptTargetLinkAddr, 1, 1, 2, 3, 4, 5, 6, 14, 1, 0, 0, 0, 0, 0, 0))
	f.Add(arpReq())
	b := make([]byte, NDLinkFrameLen)
	f.Add(b[:PutUnsolicitedNA(b, testMAC, testIPv6)])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, fault := ParseND(b, AcceptNS|AcceptNA, 16)
		if fault != OK {
			return
		}
		out := make([]byte, NDLinkFrameLen)
		again, fault := ParseND(out[:PutND(out, &m)], AcceptNS|AcceptNA, 16)
		if fault != OK {
			t.Fatalf("parse of a written message: %v", fault)
		}
		want := m
		want.LastLinkAddr, want.LinkAddrOpts, want.BadLinkOpts = m.LinkAddr, 0, 0
		if m.HasLinkAddr {
			want.LinkAddrOpts = 1
		}
		if diff := cmp.Diff(want, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
