package probe

import (
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
)

// The vectors are frames captured with tcpdump -xx on a veth between two network namespaces: arping (iputils)
// and ndisc6 asking from 198.51.100.3 / 2001:db8:100::3 (02:00:c6:33:64:03) who has 198.51.100.11 /
// 2001:db8:100::11 (02:00:c6:33:64:0b), and the Linux kernel's answers.
var (
	clientMAC = mustMAC("02:00:c6:33:64:03")
	nodeMAC   = mustMAC("02:00:c6:33:64:0b")
	clientV4  = netip.MustParseAddr("198.51.100.3")
	nodeV4    = netip.MustParseAddr("198.51.100.11")
	clientV6  = netip.MustParseAddr("2001:db8:100::3")
	nodeV6    = netip.MustParseAddr("2001:db8:100::11")

	// arping's request; it puts ff:ff:ff:ff:ff:ff in the target hardware address.
	vecARPingRequest = mustHex(`ffff ffff ffff 0200 c633 6403 0806 0001 0800 0604 0001 0200 c633 6403 c633 6403
		ffff ffff ffff c633 640b`)
	// The same request as a Prober sends it: target hardware address zero (RFC 5227 section 2.1.1).
	vecARPRequest = mustHex(`ffff ffff ffff 0200 c633 6403 0806 0001 0800 0604 0001 0200 c633 6403 c633 6403
		0000 0000 0000 c633 640b`)
	// The kernel's reply.
	vecARPReply = mustHex(`0200 c633 6403 0200 c633 640b 0806 0001 0800 0604 0002 0200 c633 640b c633 640b
		0200 c633 6403 c633 6403`)
	// ndisc6's solicitation with its random flow label (0x55401) zeroed, as a Prober sends it; the checksum
	// does not cover the flow label.
	vecNS = mustHex(`3333 ff00 0011 0200 c633 6403 86dd 6000 0000 0020 3aff 2001 0db8 0100 0000 0000
		0000 0000 0003 ff02 0000 0000 0000 0000 0001 ff00 0011 8700 efd0 0000 0000 2001
		0db8 0100 0000 0000 0000 0000 0011 0101 0200 c633 6403`)
	// The kernel's solicited advertisement, flags S and O, with the target link-layer address option.
	vecNA = mustHex(`0200 c633 6403 0200 c633 640b 86dd 6000 0000 0020 3aff 2001 0db8 0100 0000 0000
		0000 0000 0011 2001 0db8 0100 0000 0000 0000 0000 0003 8800 5d14 6000 0000 2001
		0db8 0100 0000 0000 0000 0000 0011 0201 0200 c633 640b`)
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestARPVectors(t *testing.T) {
	zero := make(net.HardwareAddr, 6)
	tests := []struct {
		name  string
		frame []byte
		want  arpPacket
	}{
		{
			name:  "arping request",
			frame: vecARPingRequest,
			want: arpPacket{EthDst: broadcastMAC, EthSrc: clientMAC, Op: arpRequest, SenderMAC: clientMAC,
				SenderIP: clientV4, TargetMAC: broadcastMAC, TargetIP: nodeV4},
		},
		{
			name:  "prober request",
			frame: vecARPRequest,
			want: arpPacket{EthDst: broadcastMAC, EthSrc: clientMAC, Op: arpRequest, SenderMAC: clientMAC,
				SenderIP: clientV4, TargetMAC: zero, TargetIP: nodeV4},
		},
		{
			name:  "kernel reply",
			frame: vecARPReply,
			want: arpPacket{EthDst: clientMAC, EthSrc: nodeMAC, Op: arpReply, SenderMAC: nodeMAC,
				SenderIP: nodeV4, TargetMAC: clientMAC, TargetIP: clientV4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseARP(tt.frame)
			if err != nil {
				t.Fatalf("parseARP: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("parseARP (-want +got):\n%s", diff)
			}
			b, err := tt.want.marshal()
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if diff := cmp.Diff(tt.frame, b); diff != "" {
				t.Errorf("marshal (-want +got):\n%s", diff)
			}
			// Ethernet pads short frames: padding is not part of the packet.
			padded, err := parseARP(append(append([]byte(nil), tt.frame...), make([]byte, 18)...))
			if err != nil {
				t.Fatalf("parseARP with padding: %v", err)
			}
			if diff := cmp.Diff(tt.want, padded, cmpAddr); diff != "" {
				t.Errorf("parseARP with padding (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNDPVectors(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  ndpPacket
	}{
		{
			name:  "solicitation",
			frame: vecNS,
			want: ndpPacket{EthDst: mustMAC("33:33:ff:00:00:11"), EthSrc: clientMAC, Src: clientV6,
				Dst: netip.MustParseAddr("ff02::1:ff00:11"), Type: icmpNS, Target: nodeV6, LinkAddr: clientMAC},
		},
		{
			name:  "advertisement",
			frame: vecNA,
			want: ndpPacket{EthDst: clientMAC, EthSrc: nodeMAC, Src: nodeV6, Dst: clientV6, Type: icmpNA,
				Flags: naSolicited | naOverride, Target: nodeV6, LinkAddr: nodeMAC},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNDP(tt.frame)
			if err != nil {
				t.Fatalf("parseNDP: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("parseNDP (-want +got):\n%s", diff)
			}
			b, err := tt.want.marshal()
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if diff := cmp.Diff(tt.frame, b); diff != "" {
				t.Errorf("marshal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNDPSolicitedNode(t *testing.T) {
	tests := []struct {
		name      string
		target    string
		wantGroup string
		wantMAC   string
	}{
		{name: "lab node", target: "2001:db8:100::11", wantGroup: "ff02::1:ff00:11", wantMAC: "33:33:ff:00:00:11"},
		{name: "low 24 bits", target: "2001:db8::abcd:ef12:3456", wantGroup: "ff02::1:ff12:3456", wantMAC: "33:33:ff:12:34:56"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := solicitedNode(netip.MustParseAddr(tt.target))
			if diff := cmp.Diff(tt.wantGroup, g.String()); diff != "" {
				t.Errorf("solicitedNode (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMAC, multicastMAC(g).String()); diff != "" {
				t.Errorf("multicastMAC (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	flip := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	tests := []struct {
		name  string
		parse func([]byte) error
		frame []byte
		want  error
	}{
		{name: "ARP short", parse: parseARPErr, frame: vecARPReply[:41], want: errShort},
		{name: "ARP other EtherType", parse: parseARPErr, frame: flip(vecARPReply, 13, 0x35), want: errNotARP},
		{name: "ARP not IPv4", parse: parseARPErr, frame: flip(vecARPReply, 17, 0xdd), want: errNotARP},
		{name: "ARP hardware length", parse: parseARPErr, frame: flip(vecARPReply, 18, 8), want: errNotARP},
		{name: "NDP short", parse: parseNDPErr, frame: vecNA[:77], want: errShort},
		{name: "NDP payload length past frame", parse: parseNDPErr, frame: flip(vecNA, 19, 0x28), want: errShort},
		{name: "NDP hop limit 64", parse: parseNDPErr, frame: flip(vecNA, 21, 64), want: errNotNDP},
		{name: "NDP not ICMPv6", parse: parseNDPErr, frame: flip(vecNA, 20, 17), want: errNotNDP},
		{name: "NDP echo request", parse: parseNDPErr, frame: flip(vecNA, 54, 128), want: errNotNDP},
		{name: "NDP code 1", parse: parseNDPErr, frame: flip(vecNA, 55, 1), want: errNotNDP},
		{name: "NDP bad checksum", parse: parseNDPErr, frame: flip(vecNA, 57, 0x15), want: errChecksum},
		{name: "NDP target changed", parse: parseNDPErr, frame: flip(vecNA, 77, 0x12), want: errChecksum},
		{name: "NDP option length 0", parse: parseNDPErr, frame: fixChecksum(flip(vecNA, 79, 0)), want: errBadOption},
		{name: "NDP option past end", parse: parseNDPErr, frame: fixChecksum(flip(vecNA, 79, 2)), want: errBadOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.frame); !errors.Is(err, tt.want) {
				t.Errorf("got error %v, want %v", err, tt.want)
			}
		})
	}
}

func parseARPErr(b []byte) error { _, err := parseARP(b); return err }
func parseNDPErr(b []byte) error { _, err := parseNDP(b); return err }

// fixChecksum recomputes the ICMPv6 checksum of an Ethernet/IPv6/ICMPv6 frame whose lengths are right.
func fixChecksum(b []byte) []byte {
	ip := b[ethHeaderLen:]
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	m := ip[ipv6HeaderLen:]
	m[2], m[3] = 0, 0
	c := icmpv6Checksum(src, dst, m)
	m[2], m[3] = byte(c>>8), byte(c)
	return b
}

func TestNDPOptions(t *testing.T) {
	// An advertisement without options (allowed in answer to a unicast solicitation), and one with an unknown
	// option before the target link-layer address.
	bare := ndpPacket{EthDst: clientMAC, EthSrc: nodeMAC, Src: nodeV6, Dst: clientV6, Type: icmpNA,
		Flags: naSolicited, Target: nodeV6}
	b, err := bare.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseNDP(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(bare, got, cmpAddr); diff != "" {
		t.Errorf("without options (-want +got):\n%s", diff)
	}

	// vecNA with a nonce option (RFC 3971 type 14, 8 bytes) inserted before the TLLAO.
	withNonce := append(append(append([]byte(nil), vecNA[:78]...), 14, 1, 1, 2, 3, 4, 5, 6), vecNA[78:]...)
	withNonce[ethHeaderLen+5] += 8 // payload length
	got, err = parseNDP(fixChecksum(withNonce))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(nodeMAC, got.LinkAddr); diff != "" {
		t.Errorf("TLLAO after an unknown option (-want +got):\n%s", diff)
	}
}

func TestReplyFilter(t *testing.T) {
	if _, err := replyFilter(); err != nil {
		t.Fatalf("replyFilter: %v", err)
	}
	vm, err := bpf.NewVM(replyFilterBody())
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	udp := append([]byte(nil), vecNA...)
	udp[ethHeaderLen+6] = 17
	tests := []struct {
		name   string
		frame  []byte
		accept bool
	}{
		{name: "ARP request", frame: vecARPRequest, accept: false},
		{name: "ARP reply", frame: vecARPReply, accept: true},
		{name: "neighbor solicitation", frame: vecNS, accept: false},
		{name: "neighbor advertisement", frame: vecNA, accept: true},
		{name: "IPv6 UDP", frame: udp, accept: false},
		{name: "IPv4", frame: mustHex("ffff ffff ffff 0200 c633 6403 0800 4500 0014 0000 4000 4006 0000"), accept: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if diff := cmp.Diff(tt.accept, n > 0); diff != "" {
				t.Errorf("accepted (-want +got):\n%s", diff)
			}
			if tt.accept && n < len(tt.frame) {
				t.Errorf("accepted %d bytes of %d: the frame is cut", n, len(tt.frame))
			}
		})
	}
}

// cmpAddr compares netip.Addr values by value.
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func FuzzARPRoundTrip(f *testing.F) {
	for _, v := range [][]byte{vecARPingRequest, vecARPRequest, vecARPReply, vecNA} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseARP(b)
		if err != nil {
			return
		}
		out, err := p.marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed packet: %v", err)
		}
		// Every byte of an Ethernet/IPv4 ARP packet is held by the struct: marshal gives the input back.
		if diff := cmp.Diff(b[:len(out)], out); diff != "" {
			t.Fatalf("round trip (-in +out):\n%s", diff)
		}
	})
}

func FuzzNDPRoundTrip(f *testing.F) {
	for _, v := range [][]byte{vecNS, vecNA, vecARPReply} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseNDP(b)
		if err != nil {
			return
		}
		out, err := p.marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed message: %v", err)
		}
		// Flow label, reserved bits and unknown options are not kept: compare what the struct holds.
		again, err := parseNDP(out)
		if err != nil {
			t.Fatalf("parse of a marshalled message: %v", err)
		}
		if diff := cmp.Diff(p, again, cmpAddr); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
