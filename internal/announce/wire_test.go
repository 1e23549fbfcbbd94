package announce

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/heraldlb/herald/internal/wire"
)

// Frames captured with tcpdump -xx on a veth pair between two network
// namespaces: "a" (02:00:5e:10:00:0a) owned 198.51.100.10 and
// 2001:db8::10, "b" (02:00:5e:10:00:0b, 198.51.100.2, 2001:db8::2) resolved
// them with arping, ndisc6, ping and arping -D. The kernel's replies are the
// byte-exact answers ours must match.
const (
	// arping -I vb 198.51.100.10: broadcast request, target MAC ff:ff:ff:ff:ff:ff.
	vecARPRequestArping = "ffffffffffff 02005e10000b 0806 0001 0800 06 04 0001 02005e10000b c6336402 ffffffffffff c633640a"
	// ping: the kernel's broadcast request, target MAC zero.
	vecARPRequestKernel = "ffffffffffff 02005e10000b 0806 0001 0800 06 04 0001 02005e10000b c6336402 000000000000 c633640a"
	// The kernel's reply to both.
	vecARPReply = "02005e10000b 02005e10000a 0806 0001 0800 06 04 0002 02005e10000a c633640a 02005e10000b c6336402"
	// arping -D: RFC 5227 probe, sender IP 0.0.0.0.
	vecARPProbe = "ffffffffffff 02005e10000b 0806 0001 0800 06 04 0001 02005e10000b 00000000 ffffffffffff c633640a"
	// The kernel's defence of its address: reply to the prober, target IP 0.0.0.0.
	vecARPProbeReply = "02005e10000b 02005e10000a 0806 0001 0800 06 04 0002 02005e10000a c633640a 02005e10000b 00000000"

	// ndisc6 2001:db8::10 vb: multicast NS from a link-local source, with a flow label and SLLAO.
	vecNSNdisc6 = "3333ff000010 02005e10000b 86dd 600556a6 0020 3a ff fe80000000000000 00005efffe10000b ff020000000000000000 0001ff000010" +
		" 87 00 900e 00000000 20010db8000000000000000000000010 01 01 02005e10000b"
	// The kernel's NA for it: from the target, S|O, TLLAO.
	vecNANdisc6 = "02005e10000b 02005e10000a 86dd 60000000 0020 3a ff 20010db8000000000000000000000010 fe80000000000000 00005efffe10000b" +
		" 88 00 fe5a 60000000 20010db8000000000000000000000010 02 01 02005e10000a"
	// ping -6: the kernel's multicast NS from its global address.
	vecNSKernel = "3333ff000010 02005e10000b 86dd 60000000 0020 3a ff 20010db8000000000000000000000002 ff0200000000000000000001ff000010" +
		" 87 00 bdef 00000000 20010db8000000000000000000000010 01 01 02005e10000b"
	// The kernel's NA for it.
	vecNAKernel = "02005e10000b 02005e10000a 86dd 60000000 0020 3a ff 20010db8000000000000000000000010 20010db8000000000000000000000002" +
		" 88 00 2c3c 60000000 20010db8000000000000000000000010 02 01 02005e10000a"

	// Hand-written vectors; checksums computed with an independent Python
	// implementation of RFC 4443 §2.3 (which reproduces the kernel's 2c3c
	// above).
	// A DAD probe for 2001:db8::10: source ::, to its solicited-node group, no options.
	vecNSDAD = "3333ff000010 02005e10000b 86dd 60000000 0018 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000010" +
		" 87 00 4ccf 00000000 20010db8000000000000000000000010"
	// A unicast NUD probe without SLLAO, from 2001:db8::2 to 2001:db8::10.
	vecNSNUD = "02005e10000a 02005e10000b 86dd 60000000 0018 3a ff 20010db8000000000000000000000002 20010db8000000000000000000000010" +
		" 87 00 ef5f 00000000 20010db8000000000000000000000010"
	// Our unsolicited NA for 2001:db8::10 (and our answer to a DAD probe):
	// to ff02::1 / 33:33:00:00:00:01, O set, S clear, TLLAO.
	vecNAUnsolicited = "333300000001 02005e10000a 86dd 60000000 0020 3a ff 20010db8000000000000000000000010 ff020000000000000000000000000001" +
		" 88 00 9af3 20000000 20010db8000000000000000000000010 02 01 02005e10000a"
	// Our gratuitous ARP for 198.51.100.10: RFC 5227 announcement (request form, target MAC zero).
	vecGARP = "ffffffffffff 02005e10000a 0806 0001 0800 06 04 0001 02005e10000a c633640a 000000000000 c633640a"
)

// TestParseARP: the shared parser reads the captured frames as the handlers
// need them.
func TestParseARP(t *testing.T) {
	arpEth := func(dst, src [6]byte) wire.Ethernet {
		return wire.Ethernet{Dst: dst, Src: src, Type: wire.EtherTypeARP}
	}
	tests := []struct {
		name    string
		frame   string
		wantEth wire.Ethernet
		wantARP wire.ARP
	}{
		{
			name:    "arping request",
			frame:   vecARPRequestArping,
			wantEth: arpEth(wire.BroadcastMAC, macB),
			wantARP: wire.ARP{Op: 1, SenderMAC: macB, SenderIP: ipB4.As4(), TargetMAC: wire.BroadcastMAC, TargetIP: vip4.As4()},
		},
		{
			name:    "kernel reply",
			frame:   vecARPReply,
			wantEth: arpEth(macB, macA),
			wantARP: wire.ARP{Op: 2, SenderMAC: macA, SenderIP: vip4.As4(), TargetMAC: macB, TargetIP: ipB4.As4()},
		},
		{
			name:    "probe",
			frame:   vecARPProbe,
			wantEth: arpEth(wire.BroadcastMAC, macB),
			wantARP: wire.ARP{Op: 1, SenderMAC: macB, TargetMAC: wire.BroadcastMAC, TargetIP: vip4.As4()},
		},
		{
			name:    "padded to 60 bytes",
			frame:   vecARPRequestKernel + " 000000000000000000000000000000000000",
			wantEth: arpEth(wire.BroadcastMAC, macB),
			wantARP: wire.ARP{Op: 1, SenderMAC: macB, SenderIP: ipB4.As4(), TargetIP: vip4.As4()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eth, p, f := wire.ParseARP(unhex(t, tt.frame))
			if f != wire.OK {
				t.Fatalf("ParseARP fault = %v, want ok", f)
			}
			if diff := cmp.Diff(tt.wantEth, eth); diff != "" {
				t.Errorf("Ethernet header (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantARP, p); diff != "" {
				t.Errorf("ARP packet (-want +got):\n%s", diff)
			}
		})
	}
}

// patch returns a copy of the hex frame with b written at off.
func patch(t testing.TB, frame string, off int, b ...byte) []byte {
	f := unhex(t, frame)
	copy(f[off:], b)
	return f
}

func TestHandleARP(t *testing.T) {
	vips := wire.NewVIPSet([]netip.Addr{vip4, netip.MustParseAddr("203.0.113.7"), vip6})
	other := netip.MustParseAddr("198.51.100.11")
	tests := []struct {
		name      string
		frame     []byte
		want      result
		wantReply string
	}{
		{name: "arping broadcast request", frame: unhex(t, vecARPRequestArping), want: resultAnswered, wantReply: vecARPReply},
		{name: "kernel broadcast request", frame: unhex(t, vecARPRequestKernel), want: resultAnswered, wantReply: vecARPReply},
		{name: "unicast request to our MAC", frame: arpRequest(macA, macB, ipB4, vip4), want: resultAnswered, wantReply: vecARPReply},
		{name: "RFC 5227 probe is defended", frame: unhex(t, vecARPProbe), want: resultAnswered, wantReply: vecARPProbeReply},
		{
			name:      "gratuitous request for our VIP from another host",
			frame:     arpRequest(wire.BroadcastMAC, macB, vip4, vip4),
			want:      resultAnswered,
			wantReply: "02005e10000b 02005e10000a 0806 0001 0800 06 04 0002 02005e10000a c633640a 02005e10000b c633640a",
		},
		{
			name:      "padded frame",
			frame:     append(unhex(t, vecARPRequestKernel), make([]byte, 18)...),
			want:      resultAnswered,
			wantReply: vecARPReply,
		},
		{
			name:      "second VIP",
			frame:     arpRequest(wire.BroadcastMAC, macB, ipB4, netip.MustParseAddr("203.0.113.7")),
			want:      resultAnswered,
			wantReply: "02005e10000b 02005e10000a 0806 0001 0800 06 04 0002 02005e10000a cb007107 02005e10000b c6336402",
		},
		{name: "not our address", frame: arpRequest(wire.BroadcastMAC, macB, ipB4, other), want: resultNotOurs},
		{name: "IPv6 VIP bytes as IPv4 target", frame: arpRequest(wire.BroadcastMAC, macB, ipB4, netip.MustParseAddr("32.1.13.184")), want: resultNotOurs},
		{name: "reply, not request", frame: arpReplyFromB(), want: resultWrongOpcode},
		{name: "opcode 3 (RARP request)", frame: patch(t, vecARPRequestKernel, 21, 3), want: resultWrongOpcode},
		{name: "our own gratuitous ARP looped back", frame: unhex(t, vecGARP), want: resultOwnFrame},
		{name: "unicast to another host", frame: arpRequest(mustMAC("02:00:5e:10:00:0c"), macB, ipB4, vip4), want: resultOtherHost},
		{name: "multicast sender hardware address", frame: patch(t, vecARPRequestKernel, 22, 0x01), want: resultMalformed},
		{name: "zero sender hardware address", frame: patch(t, vecARPRequestKernel, 22, 0, 0, 0, 0, 0, 0), want: resultMalformed},
		{name: "truncated by one byte", frame: unhex(t, vecARPRequestKernel)[:41], want: resultMalformed},
		{name: "Ethernet header only", frame: unhex(t, vecARPRequestKernel)[:14], want: resultMalformed},
		{name: "shorter than an Ethernet header", frame: unhex(t, "ffffffffffff02005e10"), want: resultMalformed},
		{name: "empty", frame: nil, want: resultMalformed},
		{name: "hardware type IEEE 802", frame: patch(t, vecARPRequestKernel, 15, 6), want: resultMalformed},
		{name: "protocol type not IPv4", frame: patch(t, vecARPRequestKernel, 16, 0x86, 0xdd), want: resultMalformed},
		{name: "hardware length 8", frame: patch(t, vecARPRequestKernel, 18, 8), want: resultMalformed},
		{name: "protocol length 16", frame: patch(t, vecARPRequestKernel, 19, 16), want: resultMalformed},
		{name: "EtherType IPv6", frame: patch(t, vecARPRequestKernel, 12, 0x86, 0xdd), want: resultWrongType},
		{name: "VLAN tagged", frame: patch(t, vecARPRequestKernel, 12, 0x81, 0x00), want: resultWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]byte, wire.NDLinkFrameLen)
			n, r := handleARP(tt.frame, macA, vips, out)
			if r != tt.want {
				t.Fatalf("handleARP result = %v, want %v", r, tt.want)
			}
			var want []byte
			if tt.wantReply != "" {
				want = unhex(t, tt.wantReply)
			}
			if diff := cmp.Diff(want, out[:n:n], cmpBytes); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if r == resultAnswered {
				crossCheckARP(t, out[:n], 2, macA)
			}
		})
	}
}

// arpReplyFromB is b's reply to a's request for 198.51.100.2.
func arpReplyFromB() []byte {
	b := make([]byte, wire.ARPFrameLen)
	wire.PutARP(b, macA, macB, &wire.ARP{Op: wire.ARPReply, SenderMAC: macB, SenderIP: ipB4.As4(), TargetMAC: macA, TargetIP: vip4.As4()})
	return b
}

// cmpBytes treats nil and empty byte slices alike.
var cmpBytes = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })

// crossCheckARP decodes frame with mdlayher/ethernet and mdlayher/arp and
// checks what a peer sees: our MAC as sender, the wanted opcode, and an
// Ethernet destination equal to the ARP target hardware address (replies)
// or broadcast (announcements).
func crossCheckARP(t *testing.T, frame []byte, wantOp arp.Operation, mac [6]byte) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		t.Fatalf("ethernet.Frame.UnmarshalBinary: %v", err)
	}
	if f.EtherType != ethernet.EtherTypeARP || !bytes.Equal(f.Source, mac[:]) {
		t.Errorf("Ethernet: type %v source %v, want ARP from %v", f.EtherType, f.Source, net.HardwareAddr(mac[:]))
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatalf("arp.Packet.UnmarshalBinary: %v", err)
	}
	if p.Operation != wantOp || !bytes.Equal(p.SenderHardwareAddr, mac[:]) {
		t.Errorf("ARP: op %v sender %v, want op %v sender %v", p.Operation, p.SenderHardwareAddr, wantOp, net.HardwareAddr(mac[:]))
	}
	wantDst := p.TargetHardwareAddr
	if wantOp == arp.OperationRequest {
		wantDst = net.HardwareAddr(wire.BroadcastMAC[:])
	}
	if !bytes.Equal(f.Destination, wantDst) {
		t.Errorf("Ethernet destination %v, want %v", f.Destination, wantDst)
	}
}

func TestGratuitousARP(t *testing.T) {
	out := make([]byte, wire.NDLinkFrameLen)
	n := wire.PutARPAnnouncement(out, macA, vip4.As4())
	if diff := cmp.Diff(unhex(t, vecGARP), out[:n]); diff != "" {
		t.Errorf("gratuitous ARP (-want +got):\n%s", diff)
	}
	crossCheckARP(t, out[:n], arp.OperationRequest, macA)
	var f ethernet.Frame
	var p arp.Packet
	if err := f.UnmarshalBinary(out[:n]); err != nil {
		t.Fatal(err)
	}
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	if p.SenderIP != vip4 || p.TargetIP != vip4 || !bytes.Equal(p.TargetHardwareAddr, make([]byte, 6)) {
		t.Errorf("gratuitous ARP sender IP %v target IP %v target MAC %v, want %v, %v, zero", p.SenderIP, p.TargetIP, p.TargetHardwareAddr, vip4, vip4)
	}
}

func TestParseNS(t *testing.T) {
	sn := netip.MustParseAddr("ff02::1:ff00:10").As16()
	// want is the NS a parse of the frame gives: from ethSrc to ethDst, with
	// the source link-layer option sllao unless it is nil.
	want := func(ethDst [6]byte, src, dst [16]byte, sllao *[6]byte) wire.ND {
		m := wire.ND{Eth: wire.Ethernet{Dst: ethDst, Src: macB, Type: wire.EtherTypeIPv6}, Src: src, Dst: dst,
			Type: wire.ICMPTypeNS, Target: vip6.As16()}
		if sllao != nil {
			m.LinkAddr, m.LastLinkAddr, m.HasLinkAddr, m.LinkAddrOpts = *sllao, *sllao, true, 1
		}
		return m
	}
	sllaoB := macB
	tests := []struct {
		name  string
		frame []byte
		want  wire.ND
	}{
		{
			name:  "ndisc6 from link-local",
			frame: unhex(t, vecNSNdisc6),
			want:  want(mustMAC("33:33:ff:00:00:10"), netip.MustParseAddr("fe80::5eff:fe10:b").As16(), sn, &sllaoB),
		},
		{
			name:  "kernel from global",
			frame: unhex(t, vecNSKernel),
			want:  want(mustMAC("33:33:ff:00:00:10"), ipB6.As16(), sn, &sllaoB),
		},
		{
			name:  "DAD",
			frame: unhex(t, vecNSDAD),
			want:  want(mustMAC("33:33:ff:00:00:10"), [16]byte{}, sn, nil),
		},
		{
			name:  "unicast NUD without SLLAO",
			frame: unhex(t, vecNSNUD),
			want:  want(macA, ipB6.As16(), vip6.As16(), nil),
		},
		{
			name:  "Ethernet padding after the IPv6 payload",
			frame: append(unhex(t, vecNSNUD), 0, 0, 0, 0),
			want:  want(macA, ipB6.As16(), vip6.As16(), nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ns wire.ND
			if r := parseNS(&ns, tt.frame); r != resultNone {
				t.Fatalf("parseNS result = %v, want none", r)
			}
			if diff := cmp.Diff(tt.want, ns); diff != "" {
				t.Errorf("NS (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandleNS(t *testing.T) {
	vips := wire.NewVIPSet([]netip.Addr{vip4, vip6, netip.MustParseAddr("2001:db8::1:0:10")})
	sn := netip.MustParseAddr("ff02::1:ff00:10")
	snMAC := mustMAC("33:33:ff:00:00:10")
	sllao := macB
	base := nsSpec{ethDst: snMAC, ethSrc: macB, src: ipB6, dst: sn, target: vip6, sllao: &sllao}
	with := func(f func(*nsSpec)) []byte {
		s := base
		f(&s)
		return buildNS(s)
	}
	tests := []struct {
		name      string
		frame     []byte
		want      result
		wantReply string
	}{
		{name: "ndisc6 multicast NS from link-local", frame: unhex(t, vecNSNdisc6), want: resultAnswered, wantReply: vecNANdisc6},
		{name: "kernel multicast NS", frame: unhex(t, vecNSKernel), want: resultAnswered, wantReply: vecNAKernel},
		{name: "built like the kernel's", frame: buildNS(base), want: resultAnswered, wantReply: vecNAKernel},
		{name: "unicast NUD without SLLAO goes to the Ethernet source", frame: unhex(t, vecNSNUD), want: resultAnswered, wantReply: vecNAKernel},
		{name: "DAD probe answered to all nodes, S clear", frame: unhex(t, vecNSDAD), want: resultAnswered, wantReply: vecNAUnsolicited},
		{
			name: "SLLAO wins over the Ethernet source",
			frame: with(func(s *nsSpec) {
				s.ethSrc = mustMAC("02:00:5e:10:00:0c")
			}),
			want:      resultAnswered,
			wantReply: vecNAKernel,
		},
		{
			name:      "unknown option is skipped",
			frame:     with(func(s *nsSpec) { s.extraOpts = []byte{14, 1, 1, 2, 3, 4, 5, 6} }),
			want:      resultAnswered,
			wantReply: vecNAKernel,
		},
		{name: "padding after the payload", frame: append(unhex(t, vecNSKernel), 0, 0), want: resultAnswered, wantReply: vecNAKernel},
		{name: "target not ours", frame: with(func(s *nsSpec) { s.target = netip.MustParseAddr("2001:db8::11") }), want: resultNotOurs},
		{name: "IPv4 VIP as mapped target", frame: with(func(s *nsSpec) { s.target = netip.MustParseAddr("::ffff:198.51.100.10") }), want: resultNotOurs},
		{name: "hop limit 254", frame: with(func(s *nsSpec) { s.hopLimit = 254 }), want: resultHopLimit},
		{name: "hop limit 1", frame: patch(t, vecNSKernel, 21, 1), want: resultHopLimit},
		{name: "bad checksum", frame: patch(t, vecNSKernel, 56, 0xbd, 0xee), want: resultBadChecksum},
		{name: "target changed after checksum", frame: patch(t, vecNSKernel, 77, 0x11), want: resultBadChecksum},
		{name: "our own frame", frame: with(func(s *nsSpec) { s.ethSrc = macA }), want: resultOwnFrame},
		{name: "unicast to another host", frame: with(func(s *nsSpec) { s.ethDst = mustMAC("02:00:5e:10:00:0c") }), want: resultOtherHost},
		{name: "Neighbor Advertisement", frame: unhex(t, vecNAKernel), want: resultWrongType},
		{name: "echo request", frame: fixNSChecksum(patch(t, vecNSKernel, 54, 128)), want: resultWrongType},
		{name: "hop-by-hop extension header", frame: patch(t, vecNSKernel, 20, 0), want: resultWrongType},
		{name: "UDP", frame: patch(t, vecNSKernel, 20, 17), want: resultWrongType},
		{name: "EtherType ARP", frame: unhex(t, vecARPRequestKernel), want: resultWrongType},
		{name: "IP version 4 in an IPv6 EtherType", frame: patch(t, vecNSKernel, 14, 0x45), want: resultMalformed},
		{name: "code 1", frame: fixNSChecksum(patch(t, vecNSKernel, 55, 1)), want: resultMalformed},
		{name: "payload length beyond the frame", frame: patch(t, vecNSKernel, 18, 0, 0x28), want: resultMalformed},
		{name: "truncated", frame: unhex(t, vecNSKernel)[:70], want: resultMalformed},
		{name: "IPv6 header only", frame: unhex(t, vecNSKernel)[:54], want: resultMalformed},
		{name: "half an IPv6 header", frame: unhex(t, vecNSKernel)[:40], want: resultMalformed},
		{name: "ICMPv6 shorter than an NS", frame: fixNSChecksum(patch(t, vecNSKernel, 18, 0, 0x10)), want: resultMalformed},
		{name: "option length zero", frame: fixNSChecksum(patch(t, vecNSKernel, 79, 0)), want: resultMalformed},
		{name: "option longer than the packet", frame: fixNSChecksum(patch(t, vecNSKernel, 79, 2)), want: resultMalformed},
		{name: "multicast NS without SLLAO answers the Ethernet source", frame: with(func(s *nsSpec) { s.sllao = nil }), want: resultAnswered, wantReply: vecNAKernel},
		{name: "truncated option header", frame: with(func(s *nsSpec) { s.extraOpts = []byte{14} }), want: resultMalformed},
		{
			name: "two-unit SLLAO",
			frame: with(func(s *nsSpec) {
				s.sllao = nil
				s.extraOpts = []byte{1, 2, 2, 0, 0x5e, 0x10, 0, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0}
			}),
			want: resultMalformed,
		},
		{name: "multicast target", frame: with(func(s *nsSpec) { s.target = sn }), want: resultMalformed},
		{name: "multicast source", frame: with(func(s *nsSpec) { s.src = netip.MustParseAddr("ff02::1") }), want: resultMalformed},
		{
			name: "DAD with SLLAO",
			frame: with(func(s *nsSpec) {
				s.src = netip.IPv6Unspecified()
			}),
			want: resultMalformed,
		},
		{
			name: "DAD to a unicast destination",
			frame: with(func(s *nsSpec) {
				s.src, s.sllao, s.dst, s.ethDst = netip.IPv6Unspecified(), nil, vip6, macA
			}),
			want: resultMalformed,
		},
		{
			name: "SLLAO multicast",
			frame: with(func(s *nsSpec) {
				m := mustMAC("33:33:00:00:00:01")
				s.sllao = &m
			}),
			want: resultMalformed,
		},
		{name: "empty", frame: nil, want: resultMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]byte, wire.NDLinkFrameLen)
			n, r := handleNS(tt.frame, macA, vips, out)
			if r != tt.want {
				t.Fatalf("handleNS result = %v, want %v", r, tt.want)
			}
			var want []byte
			if tt.wantReply != "" {
				want = unhex(t, tt.wantReply)
			}
			if diff := cmp.Diff(want, out[:n:n], cmpBytes); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if r == resultAnswered {
				crossCheckNA(t, out[:n], macA)
			}
		})
	}
}

// crossCheckNA decodes an NA frame with mdlayher/ethernet, x/net/ipv6 and
// mdlayher/ndp, and checks the checksum against ndp's own marshalling
// (x/net/icmp's pseudo-header checksum), the hop limit and that the
// Ethernet destination matches the IPv6 destination.
func crossCheckNA(t *testing.T, frame []byte, mac [6]byte) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		t.Fatalf("ethernet.Frame.UnmarshalBinary: %v", err)
	}
	if f.EtherType != ethernet.EtherTypeIPv6 || !bytes.Equal(f.Source, mac[:]) {
		t.Errorf("Ethernet: type %v source %v, want IPv6 from %v", f.EtherType, f.Source, net.HardwareAddr(mac[:]))
	}
	h, err := ipv6.ParseHeader(f.Payload)
	if err != nil {
		t.Fatalf("ipv6.ParseHeader: %v", err)
	}
	if h.HopLimit != 255 || h.NextHeader != 58 || h.PayloadLen != len(f.Payload)-40 {
		t.Errorf("IPv6 header %+v: want hop limit 255, next header 58, payload length %d", h, len(f.Payload)-40)
	}
	if h.Dst.IsMulticast() {
		want := net.HardwareAddr{0x33, 0x33, h.Dst[12], h.Dst[13], h.Dst[14], h.Dst[15]}
		if !bytes.Equal(f.Destination, want) {
			t.Errorf("Ethernet destination %v for %v, want %v", f.Destination, h.Dst, want)
		}
	}
	m, err := ndp.ParseMessage(f.Payload[40:])
	if err != nil {
		t.Fatalf("ndp.ParseMessage: %v", err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("ndp.ParseMessage = %T, want *ndp.NeighborAdvertisement", m)
	}
	src, _ := netip.AddrFromSlice(h.Src)
	dst, _ := netip.AddrFromSlice(h.Dst)
	if na.Router || !na.Override || na.Solicited == dst.IsMulticast() {
		t.Errorf("flags R=%v S=%v O=%v to %v: want R clear, O set, S set only for unicast", na.Router, na.Solicited, na.Override, dst)
	}
	if src != na.TargetAddress {
		t.Errorf("IPv6 source %v, want the target %v", src, na.TargetAddress)
	}
	var tllao net.HardwareAddr
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			tllao = lla.Addr
		}
	}
	if !bytes.Equal(tllao, mac[:]) {
		t.Errorf("target link-layer option %v, want %v", tllao, net.HardwareAddr(mac[:]))
	}
	want, err := ndp.MarshalMessageChecksum(na, src, dst)
	if err != nil {
		t.Fatalf("ndp.MarshalMessageChecksum: %v", err)
	}
	if diff := cmp.Diff(want, f.Payload[40:]); diff != "" {
		t.Errorf("ICMPv6 message vs ndp.MarshalMessageChecksum (-want +got):\n%s", diff)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	out := make([]byte, wire.NDLinkFrameLen)
	n := wire.PutUnsolicitedNA(out, macA, vip6.As16())
	if diff := cmp.Diff(unhex(t, vecNAUnsolicited), out[:n]); diff != "" {
		t.Errorf("unsolicited NA (-want +got):\n%s", diff)
	}
	crossCheckNA(t, out[:n], macA)
}

func TestICMPChecksum(t *testing.T) {
	for _, v := range []struct{ name, frame string }{
		{"ndisc6 NS", vecNSNdisc6}, {"kernel NA", vecNANdisc6}, {"kernel NS", vecNSKernel}, {"kernel NA 2", vecNAKernel},
		{"DAD NS", vecNSDAD}, {"NUD NS", vecNSNUD}, {"unsolicited NA", vecNAUnsolicited},
	} {
		t.Run(v.name, func(t *testing.T) {
			f := unhex(t, v.frame)
			var src, dst [16]byte
			copy(src[:], f[22:38])
			copy(dst[:], f[38:54])
			if got := wire.ICMPv6Checksum(&src, &dst, f[wire.ICMPOffset:]); got != 0 {
				t.Errorf("checksum over a correct message = %#04x, want 0", got)
			}
			want := binary.BigEndian.Uint16(f[56:58])
			f[56], f[57] = 0, 0
			if got := wire.ICMPv6Checksum(&src, &dst, f[wire.ICMPOffset:]); got != want {
				t.Errorf("checksum = %#04x, want %#04x", got, want)
			}
		})
	}
	// Odd length and carries: compare with a direct RFC 1071 sum.
	src, dst := ipB6.As16(), vip6.As16()
	msg := bytes.Repeat([]byte{0xff}, 1001)
	var sum uint64
	for _, b := range [][]byte{src[:], dst[:], {0, 0, 0x03, 0xe9, 0, 0, 0, 58}, append(msg, 0)} {
		for i := 0; i < len(b); i += 2 {
			sum += uint64(b[i])<<8 | uint64(b[i+1])
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if got, want := wire.ICMPv6Checksum(&src, &dst, msg), ^uint16(sum); got != want {
		t.Errorf("checksum of 1001 bytes of 0xff = %#04x, want %#04x", got, want)
	}
}
