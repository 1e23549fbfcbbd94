package announce

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
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
	f.Fuzz(func(t *testing.T, frame []byte) {
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
	f.Fuzz(func(t *testing.T, frame []byte) {
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
		if icmpChecksum(&src, &dst, out[icmpOff:n]) != 0 {
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
