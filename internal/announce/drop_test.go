package announce

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/wire"
)

// TestDropReasons has one row per reason a handler refuses a frame (and,
// around the new checks, the accepted neighbours that show where the line
// is). A dropped frame writes nothing into the reply buffer.
func TestDropReasons(t *testing.T) {
	vips := wire.NewVIPSet([]netip.Addr{vip4, vip6})
	sn := netip.MustParseAddr("ff02::1:ff00:10")
	sllao := macB
	base := nsSpec{ethDst: mustMAC("33:33:ff:00:00:10"), ethSrc: macB, src: ipB6, dst: sn, target: vip6, sllao: &sllao}
	ns := func(f func(*nsSpec)) []byte {
		s := base
		f(&s)
		return buildNS(s)
	}
	// opts returns n unknown options (type 14, one 8-octet unit each).
	opts := func(n int) []byte {
		return bytes.Repeat([]byte{14, 1, 0, 0, 0, 0, 0, 0}, n)
	}
	arpFrom := func(spa string) []byte { return arpRequest(wire.BroadcastMAC, macB, netip.MustParseAddr(spa), vip4) }
	tests := []struct {
		name   string
		handle func([]byte, [6]byte, *wire.VIPSet, []byte) (int, result)
		frame  []byte
		want   result
	}{
		// ARP.
		{name: "ARP wrong hardware type", handle: handleARP, frame: patch(t, vecARPRequestKernel, 15, 6), want: resultMalformed},
		{name: "ARP wrong protocol type", handle: handleARP, frame: patch(t, vecARPRequestKernel, 16, 0x86, 0xdd), want: resultMalformed},
		{name: "ARP wrong hardware length", handle: handleARP, frame: patch(t, vecARPRequestKernel, 18, 8), want: resultMalformed},
		{name: "ARP wrong protocol length", handle: handleARP, frame: patch(t, vecARPRequestKernel, 19, 16), want: resultMalformed},
		{name: "ARP truncated", handle: handleARP, frame: unhex(t, vecARPRequestKernel)[:41], want: resultMalformed},
		{name: "ARP wrong EtherType", handle: handleARP, frame: patch(t, vecARPRequestKernel, 12, 0x08, 0x00), want: resultWrongType},
		{name: "ARP wrong opcode", handle: handleARP, frame: patch(t, vecARPRequestKernel, 21, 2), want: resultWrongOpcode},
		{name: "ARP own frame", handle: handleARP, frame: unhex(t, vecGARP), want: resultOwnFrame},
		{name: "ARP to another host", handle: handleARP, frame: arpRequest(macC, macB, ipB4, vip4), want: resultOtherHost},
		{name: "ARP not ours", handle: handleARP, frame: arpRequest(wire.BroadcastMAC, macB, ipB4, vip4b), want: resultNotOurs},
		{name: "ARP spoofed sender hardware address", handle: handleARP, frame: patch(t, vecARPRequestKernel, 22, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x0c), want: resultSpoofed},
		{name: "ARP spoofed Ethernet source", handle: handleARP, frame: patch(t, vecARPRequestKernel, 6, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x0c), want: resultSpoofed},
		{name: "ARP multicast sender hardware address", handle: handleARP, frame: patch(t, vecARPRequestKernel, 22, 0x01), want: resultMalformed},
		{name: "ARP multicast sender IP", handle: handleARP, frame: arpFrom("224.0.0.251"), want: resultMalformed},
		{name: "ARP multicast sender IP 239/8", handle: handleARP, frame: arpFrom("239.255.255.250"), want: resultMalformed},
		{name: "ARP broadcast sender IP", handle: handleARP, frame: arpFrom("255.255.255.255"), want: resultMalformed},
		{name: "ARP loopback sender IP", handle: handleARP, frame: arpFrom("127.0.0.1"), want: resultMalformed},
		{name: "ARP probe from 0.0.0.0 is answered", handle: handleARP, frame: arpFrom("0.0.0.0"), want: resultAnswered},
		{name: "ARP from 223.255.255.254 is answered", handle: handleARP, frame: arpFrom("223.255.255.254"), want: resultAnswered},
		// Neighbor Solicitation.
		{name: "NS bad checksum", handle: handleNS, frame: patch(t, vecNSKernel, 56, 0xbd, 0xee), want: resultBadChecksum},
		{name: "NS hop limit 64", handle: handleNS, frame: ns(func(s *nsSpec) { s.hopLimit = 64 }), want: resultHopLimit},
		{name: "NS truncated", handle: handleNS, frame: unhex(t, vecNSKernel)[:77], want: resultMalformed},
		{name: "NS wrong IP version", handle: handleNS, frame: patch(t, vecNSKernel, 14, 0x40), want: resultMalformed},
		{name: "NS code 1", handle: handleNS, frame: fixNSChecksum(patch(t, vecNSKernel, 55, 1)), want: resultMalformed},
		{name: "NS 17 options", handle: handleNS, frame: ns(func(s *nsSpec) { s.extraOpts = opts(16) }), want: resultMalformed},
		{name: "NS 16 options is answered", handle: handleNS, frame: ns(func(s *nsSpec) { s.extraOpts = opts(15) }), want: resultAnswered},
		{name: "NS option running past the packet", handle: handleNS, frame: ns(func(s *nsSpec) { s.extraOpts = []byte{14, 2, 0, 0, 0, 0, 0, 0} }), want: resultMalformed},
		{name: "NS option of length zero", handle: handleNS, frame: ns(func(s *nsSpec) { s.extraOpts = []byte{14, 0, 0, 0, 0, 0, 0, 0} }), want: resultMalformed},
		{name: "NS two source link-layer options", handle: handleNS, frame: ns(func(s *nsSpec) { s.extraOpts = []byte{1, 1, 2, 0, 0x5e, 0x10, 0, 0x0c} }), want: resultMalformed},
		{name: "NS multicast target", handle: handleNS, frame: ns(func(s *nsSpec) { s.target = sn }), want: resultMalformed},
		{name: "NS loopback source", handle: handleNS, frame: ns(func(s *nsSpec) { s.src = netip.IPv6Loopback() }), want: resultMalformed},
		{name: "NS DAD with SLLAO", handle: handleNS, frame: ns(func(s *nsSpec) { s.src = netip.IPv6Unspecified() }), want: resultMalformed},
		{name: "NS not ours", handle: handleNS, frame: ns(func(s *nsSpec) { s.target = ipB6 }), want: resultNotOurs},
		{name: "NS own frame", handle: handleNS, frame: ns(func(s *nsSpec) { s.ethSrc = macA }), want: resultOwnFrame},
		{name: "NS to another host", handle: handleNS, frame: ns(func(s *nsSpec) { s.ethDst = macC }), want: resultOtherHost},
		{name: "NS wrong type", handle: handleNS, frame: unhex(t, vecNAKernel), want: resultWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := bytes.Repeat([]byte{0xaa}, wire.NDLinkFrameLen)
			n, r := tt.handle(tt.frame, macA, vips, out)
			if diff := cmp.Diff(tt.want.String(), r.String()); diff != "" {
				t.Fatalf("result (-want +got):\n%s", diff)
			}
			if r != resultAnswered && (n != 0 || !bytes.Equal(out, bytes.Repeat([]byte{0xaa}, wire.NDLinkFrameLen))) {
				t.Errorf("dropped frame wrote %d bytes: %x", n, out)
			}
		})
	}
}
