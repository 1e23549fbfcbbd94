package guard

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/internal/wire"
)

// Frames captured with tcpdump on a veth pair between two network
// namespaces (A: 02:00:00:00:00:0a, 198.51.100.1, 2001:db8:100::1; B:
// 02:00:00:00:00:0b, 198.51.100.50, 2001:db8:100::50), Linux 6.x kernel,
// iputils arping and ndisc6. Veth frames carry no Ethernet padding.
const (
	// arping -U -c 1 -I vb -s 198.51.100.51 198.51.100.51 (in B)
	vecARPAnnounceRequest = "ffffffffffff02000000000b0806000108000604000102000000000bc6336433ffffffffffffc6336433"
	// arping -A -c 1 -I vb -s 198.51.100.52 198.51.100.52 (in B)
	vecARPAnnounceReply = "ffffffffffff02000000000b0806000108000604000202000000000bc633643402000000000bc6336434"
	// arping -D -c 1 -I vb 198.51.100.53 (in B)
	vecARPProbe = "ffffffffffff02000000000b0806000108000604000102000000000b00000000ffffffffffffc6336435"
	// arping -c 1 -I va 198.51.100.50 (in A): the request ...
	vecARPRequest = "ffffffffffff02000000000a0806000108000604000102000000000ac6336401ffffffffffffc6336432"
	// ... and B's kernel answering it.
	vecARPReplyKernel = "02000000000a02000000000b0806000108000604000202000000000bc633643202000000000ac6336401"
	// ndisc6 2001:db8:100::1 vb (in B): NS from B's link-local address ...
	vecNSResolve = "3333ff00000102000000000b86dd60055fec00203afffe80000000000000000000fffe00000bff0200000000000000000001ff00000187004b4d0000000020010db8010000000000000000000001010102000000000b"
	// ... and A's kernel answering it (solicited, override, target link-layer option).
	vecNAKernel = "02000000000b02000000000a86dd6000000000203aff20010db8010000000000000000000001fe80000000000000000000fffe00000b8800b8996000000020010db8010000000000000000000001020102000000000a"
	// ndisc6 -s 2001:db8:100::50 2001:db8:100::1 vb (in B): NS from an owned global address.
	vecNSFromOwner = "3333ff00000102000000000b86dd60071d0100203aff20010db8010000000000000000000050ff0200000000000000000001ff000001870019d00000000020010db8010000000000000000000001010102000000000b"
	// B's MAC changed to 02:00:00:00:00:0c with ndisc_notify=1: unsolicited NA for 2001:db8:100::50.
	vecNAUnsolicited = "33330000000102000000000c86dd6000000000203aff20010db8010000000000000000000050ff0200000000000000000000000000018800f6812000000020010db8010000000000000000000050020102000000000c"
	// ip addr add 2001:db8:100::60/64 dev vb (in B): DAD NS from ::, with a nonce option (RFC 7527).
	vecDAD = "3333ff00006002000000000c86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00006087003ded0000000020010db80100000000000000000000600e01da93bf636541"
)

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0x0a}
	macB = [6]byte{2, 0, 0, 0, 0, 0x0b}
	macC = [6]byte{2, 0, 0, 0, 0, 0x0c}
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex vector: %v", err)
	}
	return b
}

// patch returns vector v with b written at offset off.
func patch(t testing.TB, v string, off int, b ...byte) []byte {
	t.Helper()
	f := unhex(t, v)
	copy(f[off:], b)
	return f
}

// fixSum recomputes the ICMPv6 checksum of an IPv6 frame over its payload length.
func fixSum(f []byte) []byte {
	plen := int(binary.BigEndian.Uint16(f[wire.IPv6Offset+4 : wire.IPv6Offset+6]))
	if wire.ICMPOffset+plen > len(f) || plen < 4 {
		return f
	}
	msg := f[wire.ICMPOffset : wire.ICMPOffset+plen]
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:4], wire.ICMPv6Checksum((*[16]byte)(f[wire.IPv6Offset+8:wire.IPv6Offset+24]), (*[16]byte)(f[wire.IPv6Offset+24:wire.IPv6Offset+40]), msg))
	return f
}

// setPlen sets the IPv6 payload length.
func setPlen(f []byte, n int) []byte {
	binary.BigEndian.PutUint16(f[wire.IPv6Offset+4:wire.IPv6Offset+6], uint16(n))
	return f
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

type parseCase struct {
	name   string
	frame  []byte
	want   claim
	result result
}

func runParseCases(t *testing.T, parse func([]byte) (claim, result), tests []parseCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r := parse(tt.frame)
			if diff := cmp.Diff(tt.result.String(), r.String()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if r != resultNone {
				return
			}
			if diff := cmp.Diff(tt.want, c, cmp.AllowUnexported(claim{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("claim (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseARP(t *testing.T) {
	pad := func(s string) []byte { return append(unhex(t, s), make([]byte, 18)...) }
	tests := []parseCase{
		{name: "arping -U announcement request", frame: unhex(t, vecARPAnnounceRequest),
			want: claim{vip: mustAddr("198.51.100.51"), mac: macB, kind: KindARPAnnouncement}},
		{name: "arping -A announcement reply", frame: unhex(t, vecARPAnnounceReply),
			want: claim{vip: mustAddr("198.51.100.52"), mac: macB, kind: KindARPAnnouncement}},
		{name: "arping -D probe", frame: unhex(t, vecARPProbe),
			want: claim{vip: mustAddr("198.51.100.53"), mac: macB, kind: KindARPProbe}},
		{name: "kernel reply", frame: unhex(t, vecARPReplyKernel),
			want: claim{vip: mustAddr("198.51.100.50"), mac: macB, kind: KindARPReply}},
		{name: "kernel reply with Ethernet padding", frame: pad(vecARPReplyKernel),
			want: claim{vip: mustAddr("198.51.100.50"), mac: macB, kind: KindARPReply}},
		{name: "ordinary request claims its sender", frame: unhex(t, vecARPRequest),
			want: claim{vip: mustAddr("198.51.100.1"), mac: macA, kind: KindARPFromOwner}},
		{name: "shorter than Ethernet", frame: unhex(t, vecARPReplyKernel)[:13], result: resultMalformed},
		{name: "truncated ARP", frame: unhex(t, vecARPReplyKernel)[:41], result: resultMalformed},
		{name: "IPv6 EtherType", frame: patch(t, vecARPReplyKernel, 12, 0x86, 0xdd), result: resultWrongType},
		{name: "hardware type 6", frame: patch(t, vecARPReplyKernel, 14, 0, 6), result: resultWrongType},
		{name: "protocol type IPv6", frame: patch(t, vecARPReplyKernel, 16, 0x86, 0xdd), result: resultWrongType},
		{name: "hardware length 8", frame: patch(t, vecARPReplyKernel, 18, 8), result: resultMalformed},
		{name: "protocol length 16", frame: patch(t, vecARPReplyKernel, 19, 16), result: resultMalformed},
		{name: "multicast sender hardware address", frame: patch(t, vecARPReplyKernel, 6, 1, 0, 0x5e, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2, 1, 0, 0x5e, 0, 0, 1),
			result: resultMalformed},
		{name: "zero sender hardware address", frame: patch(t, vecARPReplyKernel, 6, 0, 0, 0, 0, 0, 0, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2, 0, 0, 0, 0, 0, 0),
			result: resultMalformed},
		{name: "sender hardware address differs from Ethernet source", frame: patch(t, vecARPReplyKernel, 6, 2, 0, 0, 0, 0, 0x0c),
			result: resultSpoofed},
		{name: "RARP opcode 3", frame: patch(t, vecARPReplyKernel, 21, 3), result: resultNotClaim},
		{name: "reply from 0.0.0.0", frame: patch(t, vecARPReplyKernel, 28, 0, 0, 0, 0), result: resultNotClaim},
		{name: "probe for 0.0.0.0", frame: patch(t, vecARPProbe, 38, 0, 0, 0, 0), result: resultNotClaim},
	}
	runParseCases(t, parseARP, tests)
}

func TestParseNDP(t *testing.T) {
	nsOpt := func(v string, opts ...byte) []byte { // replaces the options of v and fixes lengths and checksum
		f := append(unhex(t, v)[:wire.ICMPOffset+wire.NDLen], opts...)
		return fixSum(setPlen(f, wire.NDLen+len(opts)))
	}
	var manyOpts []byte
	for range maxNDOptions + 1 {
		manyOpts = append(manyOpts, 14, 1, 0, 0, 0, 0, 0, 0)
	}
	tests := []parseCase{
		{name: "kernel NA, solicited, target option", frame: unhex(t, vecNAKernel),
			want: claim{vip: mustAddr("2001:db8:100::1"), mac: macA, kind: KindNA}},
		{name: "unsolicited NA to all nodes", frame: unhex(t, vecNAUnsolicited),
			want: claim{vip: mustAddr("2001:db8:100::50"), mac: macC, kind: KindNA}},
		{name: "NA with Ethernet padding", frame: append(unhex(t, vecNAUnsolicited), 0, 0, 0, 0),
			want: claim{vip: mustAddr("2001:db8:100::50"), mac: macC, kind: KindNA}},
		{name: "NA without target option uses Ethernet source", frame: nsOpt(vecNAUnsolicited),
			want: claim{vip: mustAddr("2001:db8:100::50"), mac: macC, kind: KindNA}},
		{name: "NA target option differs from Ethernet source", frame: nsOpt(vecNAUnsolicited, 2, 1, 2, 0, 0, 0, 0, 0x0b),
			want: claim{vip: mustAddr("2001:db8:100::50"), mac: macB, kind: KindNA}},
		{name: "DAD NS with nonce option", frame: unhex(t, vecDAD),
			want: claim{vip: mustAddr("2001:db8:100::60"), mac: macC, kind: KindDAD}},
		{name: "NS from an owned global address", frame: unhex(t, vecNSFromOwner),
			want: claim{vip: mustAddr("2001:db8:100::50"), mac: macB, kind: KindNSFromOwner}},
		{name: "NS from link-local claims the link-local source", frame: unhex(t, vecNSResolve),
			want: claim{vip: mustAddr("fe80::ff:fe00:b"), mac: macB, kind: KindNSFromOwner}},
		{name: "shorter than Ethernet", frame: unhex(t, vecNAKernel)[:10], result: resultMalformed},
		{name: "ARP EtherType", frame: patch(t, vecNAKernel, 12, 0x08, 0x06), result: resultWrongType},
		{name: "truncated IPv6 header", frame: unhex(t, vecNAKernel)[:53], result: resultMalformed},
		{name: "IP version 4", frame: patch(t, vecNAKernel, wire.IPv6Offset, 0x40), result: resultMalformed},
		{name: "hop-by-hop extension header", frame: patch(t, vecNAKernel, wire.IPv6Offset+6, 0), result: resultWrongType},
		{name: "payload length beyond the frame", frame: unhex(t, vecNAKernel)[:85], result: resultMalformed},
		{name: "payload length below 4", frame: setPlen(unhex(t, vecNAKernel), 3), result: resultMalformed},
		{name: "echo request", frame: fixSum(patch(t, vecNAKernel, wire.ICMPOffset, 128)), result: resultWrongType},
		{name: "router solicitation", frame: fixSum(patch(t, vecNAKernel, wire.ICMPOffset, 133)), result: resultWrongType},
		{name: "hop limit 64", frame: patch(t, vecNAKernel, wire.IPv6Offset+7, 64), result: resultHopLimit},
		{name: "bad checksum", frame: patch(t, vecNAKernel, wire.ICMPOffset+2, 0, 0), result: resultBadChecksum},
		{name: "code 1", frame: fixSum(patch(t, vecNAKernel, wire.ICMPOffset+1, 1)), result: resultMalformed},
		{name: "message shorter than 24", frame: fixSum(setPlen(unhex(t, vecNAKernel), 20)), result: resultMalformed},
		{name: "multicast target", frame: fixSum(patch(t, vecNAKernel, wire.ICMPOffset+8, 0xff, 0x02)), result: resultMalformed},
		{name: "multicast source", frame: fixSum(patch(t, vecNSFromOwner, wire.IPv6Offset+8, 0xff, 0x02)), result: resultMalformed},
		{name: "multicast Ethernet source", frame: patch(t, vecNAKernel, 6, 0x03), result: resultMalformed},
		{name: "zero target link-layer address", frame: nsOpt(vecNAUnsolicited, 2, 1, 0, 0, 0, 0, 0, 0), result: resultMalformed},
		{name: "option of length 0", frame: nsOpt(vecNAUnsolicited, 2, 0, 0, 0, 0, 0, 0, 0), result: resultMalformed},
		{name: "option beyond the message", frame: nsOpt(vecNAUnsolicited, 2, 2, 2, 0, 0, 0, 0, 0x0c), result: resultMalformed},
		{name: "one-byte option", frame: nsOpt(vecNAUnsolicited, 2), result: resultMalformed},
		{name: "link-layer option of 16 bytes", frame: nsOpt(vecNAUnsolicited, 2, 2, 2, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0), result: resultMalformed},
		{name: "17 options", frame: nsOpt(vecNAUnsolicited, manyOpts...), result: resultMalformed},
		{name: "16 options", frame: nsOpt(vecNAUnsolicited, manyOpts[8:]...),
			want: claim{vip: mustAddr("2001:db8:100::50"), mac: macC, kind: KindNA}},
		{name: "solicited NA to all nodes", frame: fixSum(patch(t, vecNAUnsolicited, wire.ICMPOffset+4, 0x60)), result: resultMalformed},
		{name: "DAD NS with a source link-layer option", frame: nsOpt(vecDAD, 1, 1, 2, 0, 0, 0, 0, 0x0c), result: resultMalformed},
		{name: "DAD NS to all nodes", frame: fixSum(patch(t, vecDAD, wire.IPv6Offset+24+11, 0, 0, 0, 0, 1)), result: resultMalformed},
	}
	runParseCases(t, parseNDP, tests)
}

func TestProbeFrames(t *testing.T) {
	// arping -D from B for 198.51.100.53 with the target hardware address
	// zeroed (iputils sends ff:ff:ff:ff:ff:ff there; RFC 5227 §2.1.1 says
	// zeros) is what putARPProbe builds.
	want4 := patch(t, vecARPProbe, 32, 0, 0, 0, 0, 0, 0)
	var b [wire.ARPFrameLen]byte
	n := wire.PutARPProbe(b[:], macB, [4]byte{198, 51, 100, 53})
	if diff := cmp.Diff(hex.EncodeToString(want4), hex.EncodeToString(b[:n])); diff != "" {
		t.Errorf("ARP probe (-want +got):\n%s", diff)
	}
	// The kernel's DAD NS without its nonce option is what putDADProbe builds.
	want := fixSum(setPlen(unhex(t, vecDAD)[:wire.NDFrameLen], wire.NDLen))
	var d [wire.NDFrameLen]byte
	n = wire.PutDAD(d[:], macC, mustAddr("2001:db8:100::60").As16())
	if diff := cmp.Diff(hex.EncodeToString(want), hex.EncodeToString(d[:n])); diff != "" {
		t.Errorf("DAD NS (-want +got):\n%s", diff)
	}
	c, r := parseNDP(d[:n])
	if r != resultNone || c.kind != KindDAD || c.mac != macC {
		t.Errorf("parseNDP(DAD probe) = %+v, %v; want a KindDAD claim from %x", c, r, macC)
	}
}

// runFilter runs filter in bpf.VM with its two Linux extension loads
// (instructions 0 and 2, which the VM lacks) replaced by constants: the
// packet type and whether a VLAN tag was present.
func runFilter(t *testing.T, filter []bpf.Instruction, pktType uint32, vlan bool, frame []byte) int {
	t.Helper()
	prog := slices.Clone(filter)
	for i, ext := range map[int]bpf.Extension{0: bpf.ExtType, 2: bpf.ExtVLANTagPresent} {
		if l, ok := prog[i].(bpf.LoadExtension); !ok || l.Num != ext {
			t.Fatalf("instruction %d is %v, want the load of extension %v", i, prog[i], ext)
		}
	}
	prog[0] = bpf.LoadConstant{Dst: bpf.RegA, Val: pktType}
	prog[2] = bpf.LoadConstant{Dst: bpf.RegA}
	if vlan {
		prog[2] = bpf.LoadConstant{Dst: bpf.RegA, Val: 1}
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("vm.Run: %v", err)
	}
	return n
}

func TestFilters(t *testing.T) {
	const host, broadcast, multicast, otherHost, outgoing = 0, 1, 2, 3, wire.PacketOutgoing
	tests := []struct {
		name    string
		filter  []bpf.Instruction
		pktType uint32
		vlan    bool
		frame   []byte
		pass    bool
	}{
		{name: "ARP reply", filter: arpFilter(), pktType: host, frame: unhex(t, vecARPReplyKernel), pass: true},
		{name: "our kernel's ARP reply going out", filter: arpFilter(), pktType: outgoing, frame: unhex(t, vecARPReplyKernel), pass: true},
		{name: "gratuitous request", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPAnnounceRequest), pass: true},
		{name: "gratuitous reply", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPAnnounceReply), pass: true},
		{name: "probe", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPProbe), pass: true},
		{name: "ordinary request", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPRequest)},
		{name: "RARP opcode 3", filter: arpFilter(), pktType: broadcast, frame: patch(t, vecARPReplyKernel, 21, 3)},
		{name: "ARP reply seen in promiscuous mode", filter: arpFilter(), pktType: otherHost, frame: unhex(t, vecARPReplyKernel)},
		{name: "ARP reply that carried a VLAN tag", filter: arpFilter(), pktType: host, vlan: true, frame: unhex(t, vecARPReplyKernel)},
		{name: "IPv6 frame on the ARP socket", filter: arpFilter(), pktType: host, frame: unhex(t, vecNAKernel)},
		{name: "ARP truncated before the target IP", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPProbe)[:40]},
		{name: "NA", filter: ndpFilter(), pktType: host, frame: unhex(t, vecNAKernel), pass: true},
		{name: "our own NA going out", filter: ndpFilter(), pktType: outgoing, frame: unhex(t, vecNAUnsolicited), pass: true},
		{name: "DAD NS", filter: ndpFilter(), pktType: multicast, frame: unhex(t, vecDAD), pass: true},
		{name: "NS", filter: ndpFilter(), pktType: multicast, frame: unhex(t, vecNSFromOwner), pass: true},
		{name: "NA seen in promiscuous mode", filter: ndpFilter(), pktType: otherHost, frame: unhex(t, vecNAKernel)},
		{name: "NA behind a hop-by-hop header", filter: ndpFilter(), pktType: host, frame: patch(t, vecNAKernel, wire.IPv6Offset+6, 0)},
		{name: "echo request", filter: ndpFilter(), pktType: host, frame: patch(t, vecNAKernel, wire.ICMPOffset, 128)},
		{name: "router solicitation", filter: ndpFilter(), pktType: multicast, frame: patch(t, vecNAKernel, wire.ICMPOffset, 133)},
		{name: "NA that carried a VLAN tag", filter: ndpFilter(), pktType: multicast, vlan: true, frame: unhex(t, vecNAUnsolicited)},
		{name: "ARP frame on the IPv6 socket", filter: ndpFilter(), pktType: broadcast, frame: unhex(t, vecARPProbe)},
		{name: "IPv4 frame on the IPv6 socket", filter: ndpFilter(), pktType: host, frame: patch(t, vecNAKernel, 12, 0x08, 0x00)},
		{name: "IPv6 truncated before ICMPv6", filter: ndpFilter(), pktType: host, frame: unhex(t, vecNAKernel)[:54]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := runFilter(t, tt.filter, tt.pktType, tt.vlan, tt.frame)
			if diff := cmp.Diff(tt.pass, n > 0); diff != "" {
				t.Errorf("pass (-want +got), filter returned %d:\n%s", n, diff)
			}
			if tt.pass && n < len(tt.frame) {
				t.Errorf("filter keeps %d bytes, want the whole %d-byte frame", n, len(tt.frame))
			}
		})
	}
	for _, f := range [][]bpf.Instruction{arpFilter(), ndpFilter()} {
		if _, err := bpf.Assemble(f); err != nil {
			t.Errorf("bpf.Assemble: %v", err)
		}
	}
}
