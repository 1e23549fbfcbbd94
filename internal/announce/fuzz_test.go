package announce

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"

	"github.com/heraldlb/herald/internal/wire"
)

var fuzzVIPs = newVIPSet([]netip.Addr{vip4, vip6})

// FuzzParseARP: parsing never panics; a parsed packet rebuilt with putARP
// gives back the frame's first 42 bytes and parses to the same fields; a
// reply is a well-formed ARP reply from our MAC to the requester.
func FuzzParseARP(f *testing.F) {
	for _, v := range []string{vecARPRequestArping, vecARPRequestKernel, vecARPReply, vecARPProbe, vecARPProbeReply, vecGARP} {
		f.Add(unhex(f, v))
	}
	f.Add([]byte{})
	f.Add(arpRequest(broadcastMAC, macB, netip.MustParseAddr("224.0.0.1"), vip4))
	f.Add(arpRequest(broadcastMAC, macB, netip.MustParseAddr("127.0.0.1"), vip4))
	f.Add(arpRequest(broadcastMAC, macB, netip.MustParseAddr("0.0.0.0"), vip4))
	f.Add(arpRequest(broadcastMAC, macC, ipB4, vip4b))
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkHandlers(t, frame)
		eth, p, r := parseARP(frame)
		if r == resultNone {
			b := make([]byte, arpFrameLen)
			putARP(b, eth.dst, eth.src, &p)
			if !bytes.Equal(b, frame[:arpFrameLen]) {
				t.Fatalf("rebuilt frame differs:\n got %x\nwant %x", b, frame[:arpFrameLen])
			}
			eth2, p2, r2 := parseARP(b)
			if r2 != resultNone || eth2 != eth || p2 != p {
				t.Fatalf("round trip: %v %+v %+v, want none %+v %+v", r2, eth2, p2, eth, p)
			}
		}
		out := make([]byte, naFrameLen)
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
		reth, rp, rr := parseARP(out[:n])
		if rr != resultNone || rp.op != arpOpReply || rp.sha != macA || reth.src != macA || reth.dst != p.sha ||
			rp.tha != p.sha || rp.tpa != p.spa || rp.spa != p.tpa || !fuzzVIPs.has4(rp.spa) {
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
	f.Add(buildNS(nsSpec{ethDst: solicitedNodeMAC(vip6.As16()), ethSrc: macB, src: ipB6, dst: sn, target: vip6, sllao: &sllao,
		extraOpts: bytes.Repeat([]byte{14, 1, 0, 0, 0, 0, 0, 0}, 15)}))
	f.Add(buildNS(nsSpec{ethDst: macA, ethSrc: macB, src: ipB6, dst: vip6b, target: vip6b, extraOpts: []byte{1, 1, 2, 0, 0x5e, 0x10, 0, 0x0c}}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkHandlers(t, frame)
		eth, ns, r := parseNS(frame)
		if r == resultNone {
			s := nsSpec{
				ethDst: eth.dst, ethSrc: eth.src,
				src: netip.AddrFrom16(ns.src), dst: netip.AddrFrom16(ns.dst), target: netip.AddrFrom16(ns.target),
			}
			if ns.hasSLLAO {
				s.sllao = &ns.sllao
			}
			eth2, ns2, r2 := parseNS(buildNS(s))
			if r2 != resultNone || eth2 != eth {
				t.Fatalf("round trip: %v %+v, want none %+v", r2, eth2, eth)
			}
			if diff := cmp.Diff(ns, ns2, cmp.AllowUnexported(nsPacket{})); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		}
		out := make([]byte, naFrameLen)
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
		if wire.ICMPv6Checksum(&src, &dst, out[icmpOff:n]) != 0 {
			t.Fatalf("reply checksum does not verify: %x", out[:n])
		}
		m, err := ndp.ParseMessage(out[icmpOff:n])
		if err != nil {
			t.Fatalf("ndp.ParseMessage(reply): %v", err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != netip.AddrFrom16(ns.target) || !fuzzVIPs.has6(ns.target) || !na.Override {
			t.Fatalf("reply %+v to NS for %v", m, netip.AddrFrom16(ns.target))
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
		handle func([]byte, [6]byte, *vipSet, []byte) (int, result)
		check  func(t *testing.T, frame, reply []byte)
	}{
		{name: "handleARP", handle: handleARP, check: checkARPReply},
		{name: "handleNS", handle: handleNS, check: checkNAReply},
	} {
		out := make([]byte, naFrameLen)
		n, r := h.handle(frame, macA, fuzzVIPs, out)
		switch {
		case r == resultNone || r >= numResults || r == resultRateLimited || r == resultStalled:
			t.Fatalf("%s returned %v, which is not a handler verdict", h.name, r)
		case r != resultAnswered && n != 0:
			t.Fatalf("%s: %v with %d bytes written", h.name, r, n)
		case r != resultAnswered && !bytes.Equal(out, make([]byte, naFrameLen)):
			t.Fatalf("%s: %v wrote into the reply buffer", h.name, r)
		case r == resultAnswered:
			h.check(t, frame, out[:n])
		}
	}
}

func checkARPReply(t *testing.T, frame, reply []byte) {
	t.Helper()
	reth, rp, rr := parseARP(reply)
	req := [6]byte(frame[6:12])
	bad := rr != resultNone || len(reply) != arpFrameLen || rp.op != arpOpReply || reth.src != macA || rp.sha != macA ||
		!fuzzVIPs.has4(rp.spa) || reth.dst != req || rp.tha != req || isMulticastMAC(req) || req == ([6]byte{}) ||
		!validSenderIPv4(rp.tpa)
	if bad {
		t.Fatalf("handleARP answered %x with the invalid reply %x", frame, reply)
	}
}

func checkNAReply(t *testing.T, frame, reply []byte) {
	t.Helper()
	var src, dst [16]byte
	copy(src[:], reply[22:38])
	copy(dst[:], reply[38:54])
	if len(reply) != naFrameLen || wire.ICMPv6Checksum(&src, &dst, reply[icmpOff:]) != 0 || reply[21] != ndHopLimit {
		t.Fatalf("handleNS answered %x with a bad IPv6/ICMPv6 frame %x", frame, reply)
	}
	m, err := ndp.ParseMessage(reply[icmpOff:])
	if err != nil {
		t.Fatalf("handleNS reply %x: ndp.ParseMessage: %v", reply, err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || !na.Override || na.Router || !fuzzVIPs.has6(na.TargetAddress.As16()) || len(na.Options) != 1 {
		t.Fatalf("handleNS answered %x with %+v", frame, m)
	}
	lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
	ethDst := [6]byte(reply[0:6])
	dad := ethDst == allNodesMAC && dst == allNodes && !na.Solicited
	unicast := !isMulticastMAC(ethDst) && ethDst != ([6]byte{}) && dst[0] != 0xff && na.Solicited
	if !ok || lla.Direction != ndp.Target || [6]byte(lla.Addr) != macA || [6]byte(reply[6:12]) != macA || !(dad || unicast) {
		t.Fatalf("handleNS answered %x with %x (%+v)", frame, reply, m)
	}
}
