package guard

import (
	"encoding/binary"
	"testing"

	"github.com/heraldlb/herald/internal/wire"
)

// marshalClaim builds a canonical frame that makes the parsers report c: an
// independent encoder for the round-trip fuzz targets.
func marshalClaim(c claim) []byte {
	switch c.kind {
	case KindARPReply, KindARPAnnouncement, KindARPFromOwner, KindARPProbe:
		vip := c.vip.As4()
		other := [4]byte{198, 18, 0, 1}
		if other == vip {
			other[3] = 2
		}
		op, spa, tpa := uint16(wire.ARPRequest), vip, vip
		switch c.kind {
		case KindARPReply:
			op, tpa = wire.ARPReply, other
		case KindARPFromOwner:
			tpa = other
		case KindARPProbe:
			spa = [4]byte{}
		}
		f := make([]byte, 60) // padded to the Ethernet minimum
		copy(f[0:6], wire.BroadcastMAC[:])
		copy(f[6:12], c.mac[:])
		binary.BigEndian.PutUint16(f[12:14], wire.EtherTypeARP)
		binary.BigEndian.PutUint16(f[14:16], 1)
		binary.BigEndian.PutUint16(f[16:18], 0x0800)
		f[18], f[19] = 6, 4
		binary.BigEndian.PutUint16(f[20:22], op)
		copy(f[22:28], c.mac[:])
		copy(f[28:32], spa[:])
		copy(f[38:42], tpa[:])
		return f
	case KindNA:
		t := c.vip.As16()
		allNodes := [16]byte{0xff, 0x02, 15: 1}
		return ndFrame(c.mac, wire.ICMPTypeNA, 0x20, t, allNodes, t, wire.OptTargetLinkAddr, c.mac)
	case KindNSFromOwner:
		target := mustAddr("2001:db8::1").As16()
		dst := wire.SolicitedNode(target)
		return ndFrame(c.mac, wire.ICMPTypeNS, 0, c.vip.As16(), dst, target, wire.OptSourceLinkAddr, c.mac)
	case KindDAD:
		t := c.vip.As16()
		dst := wire.SolicitedNode(t)
		return ndFrame(c.mac, wire.ICMPTypeNS, 0, [16]byte{}, dst, t, 0, [6]byte{})
	}
	return nil
}

// ndFrame builds an NS or NA from ethSrc with one link-layer option of
// type opt (none if 0) and a valid checksum.
func ndFrame(ethSrc [6]byte, typ, flags byte, src, dst, target [16]byte, opt byte, lla [6]byte) []byte {
	n := wire.NDLen
	if opt != 0 {
		n += wire.LinkAddrOptLen
	}
	f := make([]byte, wire.ICMPOffset+n)
	copy(f[0:6], []byte{0x33, 0x33, dst[12], dst[13], dst[14], dst[15]})
	copy(f[6:12], ethSrc[:])
	binary.BigEndian.PutUint16(f[12:14], wire.EtherTypeIPv6)
	f[14] = 0x60
	binary.BigEndian.PutUint16(f[18:20], uint16(n))
	f[20], f[21] = wire.ProtoICMPv6, 255
	copy(f[22:38], src[:])
	copy(f[38:54], dst[:])
	m := f[wire.ICMPOffset:]
	m[0], m[4] = typ, flags
	copy(m[8:24], target[:])
	if opt != 0 {
		m[24], m[25] = opt, 1
		copy(m[26:32], lla[:])
	}
	binary.BigEndian.PutUint16(m[2:4], wire.ICMPv6Checksum(&src, &dst, m))
	return f
}

// fuzzParser checks that parse never panics, that a claim it reports is
// sane, and that re-marshalling the claim parses to the same claim.
func fuzzParser(t *testing.T, parse func([]byte) (claim, result), frame []byte, want4 bool) {
	c, r := parse(frame)
	if r >= numResults {
		t.Fatalf("result %d out of range", r)
	}
	if r != resultNone {
		return
	}
	if !c.vip.IsValid() || c.vip.Is4() != want4 || badMAC(c.mac) || c.kind == kindNone || c.kind >= numKinds {
		t.Fatalf("parsed an invalid claim %+v from %x", c, frame)
	}
	again, r := parse(marshalClaim(c))
	if r != resultNone || again != c {
		t.Fatalf("round trip of %+v from %x: got %+v, %v", c, frame, again, r)
	}
}

func FuzzParseARP(f *testing.F) {
	for _, v := range []string{vecARPAnnounceRequest, vecARPAnnounceReply, vecARPProbe, vecARPRequest, vecARPReplyKernel} {
		f.Add(unhex(f, v))
	}
	f.Fuzz(func(t *testing.T, frame []byte) { fuzzParser(t, parseARP, frame, true) })
}

func FuzzParseNDP(f *testing.F) {
	for _, v := range []string{vecNSResolve, vecNAKernel, vecNSFromOwner, vecNAUnsolicited, vecDAD} {
		f.Add(unhex(f, v))
	}
	f.Fuzz(func(t *testing.T, frame []byte) { fuzzParser(t, parseNDP, frame, false) })
}

// TestMarshalClaim checks the fuzz encoder on one claim of every kind.
func TestMarshalClaim(t *testing.T) {
	for k := KindARPReply; k < numKinds; k++ {
		t.Run(k.String(), func(t *testing.T) {
			c := claim{vip: mustAddr("198.51.100.7"), mac: macB, kind: k}
			parse := parseARP
			if k >= KindNA {
				c.vip, parse = mustAddr("2001:db8:100::7"), parseNDP
			}
			got, r := parse(marshalClaim(c))
			if r != resultNone || got != c {
				t.Errorf("parse(marshalClaim(%+v)) = %+v, %v", c, got, r)
			}
		})
	}
}
