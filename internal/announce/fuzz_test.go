package announce

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"

	"github.com/heraldlb/herald/internal/wire"
)

var fuzzVIPs = wire.NewVIPSet([]netip.Addr{vip4, vip6})

// FuzzParseARP: parsing never panics; a parsed packet rebuilt with
// wire.PutARP gives back the frame's first 42 bytes and parses to the same
// fields; a reply is a well-formed ARP reply from our MAC to the requester.
func FuzzParseARP(f *testing.F) {
	for _, v := range []string{vecARPRequestArping, vecARPRequestKernel, vecARPReply, vecARPProbe, vecARPProbeReply, vecGARP} {
		f.Add(unhex(f, v))
	}
	f.Add([]byte{})
	f.Add(arpRequest(wire.BroadcastMAC, macB, netip.MustParseAddr("224.0.0.1"), vip4))
	f.Add(arpRequest(wire.BroadcastMAC, macB, netip.MustParseAddr("127.0.0.1"), vip4))
	f.Add(arpRequest(wire.BroadcastMAC, macB, netip.MustParseAddr("0.0.0.0"), vip4))
	f.Add(arpRequest(wire.BroadcastMAC, macC, ipB4, vip4b))
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkHandlers(t, frame)
		eth, p, pf := wire.ParseARP(frame)
		if pf == wire.OK {
			b := make([]byte, wire.ARPFrameLen)
			wire.PutARP(b, eth.Dst, eth.Src, &p)
			if !bytes.Equal(b, frame[:wire.ARPFrameLen]) {
				t.Fatalf("rebuilt frame differs:\n got %x\nwant %x", b, frame[:wire.ARPFrameLen])
			}
			eth2, p2, f2 := wire.ParseARP(b)
			if f2 != wire.OK || eth2 != eth || p2 != p {
				t.Fatalf("round trip: %v %+v %+v, want ok %+v %+v", f2, eth2, p2, eth, p)
			}
		}
		out := make([]byte, wire.NDLinkFrameLen)
		n, hr := handleARP(frame, macA, fuzzVIPs, out)
		if hr == resultNone {
			t.Fatal("handleARP returned no verdict")
		}
		if hr != resultAnswered {
			if n != 0 {
				t.Fatalf("handleARP %v wrote %d bytes", hr, n)
			}
			return
		}
		reth, rp, rf := wire.ParseARP(out[:n])
		if rf != wire.OK || rp.Op != wire.ARPReply || rp.SenderMAC != macA || reth.Src != macA || reth.Dst != p.SenderMAC ||
			rp.TargetMAC != p.SenderMAC || rp.TargetIP != p.SenderIP || rp.SenderIP != p.TargetIP || !fuzzVIPs.Has4(rp.SenderIP) {
			t.Fatalf("bad reply %x to %x", out[:n], frame)
		}
	})
}

// FuzzParseNS: parsing never panics; a parsed NS rebuilt by buildNS (with
// only the source link-layer option) parses to the same fields; a reply is
// an NA that mdlayher/ndp decodes, whose checksum verifies, for the
// solicited target.
func FuzzParseNS(f *testing.F) {
	for _, v := range []string{vecNSNdisc6, vecNSKernel, vecNSDAD, vecNSNUD, vecNAKernel, vecNAUnsolicited} {
		f.Add(unhex(f, v))
	}
	f.Add([]byte{})
	sllao := macB
	sn := netip.MustParseAddr("ff02::1:ff00:10")
	f.Add(buildNS(nsSpec{ethDst: wire.SolicitedNodeMAC(vip6.As16()), ethSrc: macB, src: ipB6, dst: sn, target: vip6, sllao: &sllao,
		extraOpts: bytes.Repeat([]byte{14, 1, 0, 0, 0, 0, 0, 0}, 15)}))
	f.Add(buildNS(nsSpec{ethDst: macA, ethSrc: macB, src: ipB6, dst: vip6b, target: vip6b, extraOpts: []byte{1, 1, 2, 0, 0x5e, 0x10, 0, 0x0c}}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkHandlers(t, frame)
		var ns wire.ND
		if r := parseNS(&ns, frame); r == resultNone {
			s := nsSpec{
				ethDst: ns.Eth.Dst, ethSrc: ns.Eth.Src,
				src: netip.AddrFrom16(ns.Src), dst: netip.AddrFrom16(ns.Dst), target: netip.AddrFrom16(ns.Target),
			}
			if ns.HasLinkAddr {
				s.sllao = &ns.LinkAddr
			}
			var ns2 wire.ND
			if r2 := parseNS(&ns2, buildNS(s)); r2 != resultNone {
				t.Fatalf("round trip: %v, want none", r2)
			}
			want := ns
			want.BadLinkOpts = 0 // target link-layer options of other lengths, which buildNS does not write
			if diff := cmp.Diff(want, ns2); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		}
		out := make([]byte, wire.NDLinkFrameLen)
		n, hr := handleNS(frame, macA, fuzzVIPs, out)
		if hr == resultNone {
			t.Fatal("handleNS returned no verdict")
		}
		if hr != resultAnswered {
			if n != 0 {
				t.Fatalf("handleNS %v wrote %d bytes", hr, n)
			}
			return
		}
		var src, dst [16]byte
		copy(src[:], out[22:38])
		copy(dst[:], out[38:54])
		if wire.ICMPv6Checksum(&src, &dst, out[wire.ICMPOffset:n]) != 0 {
			t.Fatalf("reply checksum does not verify: %x", out[:n])
		}
		m, err := ndp.ParseMessage(out[wire.ICMPOffset:n])
		if err != nil {
			t.Fatalf("ndp.ParseMessage(reply): %v", err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != netip.AddrFrom16(ns.Target) || !fuzzVIPs.Has6(ns.Target) || !na.Override {
			t.Fatalf("reply %+v to NS for %v", m, netip.AddrFrom16(ns.Target))
		}
	})
}

// checkHandlers runs every handler on frame: each either returns a verdict
// other than answered and writes nothing, or answers with a reply that
// parses as a valid reply, from our MAC, for a VIP in the set, to a unicast
// requester (or, for NDP DAD, to all nodes). None may panic.
func checkHandlers(t *testing.T, frame []byte) {
	t.Helper()
	for _, h := range []struct {
		name   string
		handle func([]byte, [6]byte, *wire.VIPSet, []byte) (int, result)
		check  func(t *testing.T, frame, reply []byte)
	}{
		{name: "handleARP", handle: handleARP, check: checkARPReply},
		{name: "handleNS", handle: handleNS, check: checkNAReply},
	} {
		out := make([]byte, wire.NDLinkFrameLen)
		n, r := h.handle(frame, macA, fuzzVIPs, out)
		switch {
		case r == resultNone || r >= numResults || r == resultRateLimited || r == resultStalled:
			t.Fatalf("%s returned %v, which is not a handler verdict", h.name, r)
		case r != resultAnswered && n != 0:
			t.Fatalf("%s: %v with %d bytes written", h.name, r, n)
		case r != resultAnswered && !bytes.Equal(out, make([]byte, wire.NDLinkFrameLen)):
			t.Fatalf("%s: %v wrote into the reply buffer", h.name, r)
		case r == resultAnswered:
			h.check(t, frame, out[:n])
		}
	}
}

func checkARPReply(t *testing.T, frame, reply []byte) {
	t.Helper()
	reth, rp, rf := wire.ParseARP(reply)
	req := [6]byte(frame[6:12])
	bad := rf != wire.OK || len(reply) != wire.ARPFrameLen || rp.Op != wire.ARPReply || reth.Src != macA || rp.SenderMAC != macA ||
		!fuzzVIPs.Has4(rp.SenderIP) || reth.Dst != req || rp.TargetMAC != req || wire.IsMulticastMAC(req) || req == ([6]byte{}) ||
		!validSenderIPv4(rp.TargetIP)
	if bad {
		t.Fatalf("handleARP answered %x with the invalid reply %x", frame, reply)
	}
}

func checkNAReply(t *testing.T, frame, reply []byte) {
	t.Helper()
	var src, dst [16]byte
	copy(src[:], reply[22:38])
	copy(dst[:], reply[38:54])
	if len(reply) != wire.NDLinkFrameLen || wire.ICMPv6Checksum(&src, &dst, reply[wire.ICMPOffset:]) != 0 || reply[21] != wire.NDHopLimit {
		t.Fatalf("handleNS answered %x with a bad IPv6/ICMPv6 frame %x", frame, reply)
	}
	m, err := ndp.ParseMessage(reply[wire.ICMPOffset:])
	if err != nil {
		t.Fatalf("handleNS reply %x: ndp.ParseMessage: %v", reply, err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || !na.Override || na.Router || !fuzzVIPs.Has6(na.TargetAddress.As16()) || len(na.Options) != 1 {
		t.Fatalf("handleNS answered %x with %+v", frame, m)
	}
	lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
	ethDst := [6]byte(reply[0:6])
	dad := ethDst == wire.AllNodesMAC && dst == wire.AllNodes && !na.Solicited
	unicast := !wire.IsMulticastMAC(ethDst) && ethDst != ([6]byte{}) && dst[0] != 0xff && na.Solicited
	if !ok || lla.Direction != ndp.Target || [6]byte(lla.Addr) != macA || [6]byte(reply[6:12]) != macA || !(dad || unicast) {
		t.Fatalf("handleNS answered %x with %x (%+v)", frame, reply, m)
	}
}
