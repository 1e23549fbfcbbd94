package probe

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/internal/wire"
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

// TestARPVectors: the shared codec reads the captured frames as a Prober needs them, and builds a Prober's
// request and the kernel's reply byte for byte.
func TestARPVectors(t *testing.T) {
	client, node := [6]byte(clientMAC), [6]byte(nodeMAC)
	tests := []struct {
		name    string
		frame   []byte
		wantEth wire.Ethernet
		want    wire.ARP
	}{
		{
			name:    "arping request",
			frame:   vecARPingRequest,
			wantEth: wire.Ethernet{Dst: wire.BroadcastMAC, Src: client, Type: wire.EtherTypeARP},
			want: wire.ARP{Op: wire.ARPRequest, SenderMAC: client, SenderIP: clientV4.As4(), TargetMAC: wire.BroadcastMAC,
				TargetIP: nodeV4.As4()},
		},
		{
			name:    "prober request",
			frame:   vecARPRequest,
			wantEth: wire.Ethernet{Dst: wire.BroadcastMAC, Src: client, Type: wire.EtherTypeARP},
			want:    wire.ARP{Op: wire.ARPRequest, SenderMAC: client, SenderIP: clientV4.As4(), TargetIP: nodeV4.As4()},
		},
		{
			name:    "kernel reply",
			frame:   vecARPReply,
			wantEth: wire.Ethernet{Dst: client, Src: node, Type: wire.EtherTypeARP},
			want: wire.ARP{Op: wire.ARPReply, SenderMAC: node, SenderIP: nodeV4.As4(), TargetMAC: client,
				TargetIP: clientV4.As4()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Ethernet pads short frames: padding is not part of the packet.
			for _, frame := range [][]byte{tt.frame, append(append([]byte(nil), tt.frame...), make([]byte, 18)...)} {
				eth, got, f := wire.ParseARP(frame)
				if f != wire.OK {
					t.Fatalf("ParseARP: %v", f)
				}
				if diff := cmp.Diff(tt.wantEth, eth); diff != "" {
					t.Errorf("Ethernet header (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("ParseARP (-want +got):\n%s", diff)
				}
			}
			b := make([]byte, wire.ARPFrameLen)
			wire.PutARP(b, tt.wantEth.Dst, tt.wantEth.Src, &tt.want)
			if diff := cmp.Diff(tt.frame, b); diff != "" {
				t.Errorf("PutARP (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNDPVectors(t *testing.T) {
	client, node := [6]byte(clientMAC), [6]byte(nodeMAC)
	tests := []struct {
		name  string
		frame []byte
		want  wire.ND
	}{
		{
			name:  "solicitation",
			frame: vecNS,
			want: wire.ND{Eth: wire.Ethernet{Dst: [6]byte(mustMAC("33:33:ff:00:00:11")), Src: client, Type: wire.EtherTypeIPv6},
				Src: clientV6.As16(), Dst: netip.MustParseAddr("ff02::1:ff00:11").As16(), Type: wire.ICMPTypeNS,
				Target: nodeV6.As16(), LinkAddr: client, HasLinkAddr: true, LastLinkAddr: client, LinkAddrOpts: 1},
		},
		{
			name:  "advertisement",
			frame: vecNA,
			want: wire.ND{Eth: wire.Ethernet{Dst: client, Src: node, Type: wire.EtherTypeIPv6}, Src: nodeV6.As16(),
				Dst: clientV6.As16(), Type: wire.ICMPTypeNA, Flags: wire.NAFlagSolicited | wire.NAFlagOverride,
				Target: nodeV6.As16(), LinkAddr: node, HasLinkAddr: true, LastLinkAddr: node, LinkAddrOpts: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f := wire.ParseND(tt.frame, wire.AcceptNS|wire.AcceptNA, 0)
			if f != wire.OK {
				t.Fatalf("ParseND: %v", f)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseND (-want +got):\n%s", diff)
			}
			b := make([]byte, wire.NDLinkFrameLen)
			if diff := cmp.Diff(tt.frame, b[:wire.PutND(b, &tt.want)]); diff != "" {
				t.Errorf("PutND (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseRejects: what the shared parsers make of damaged captures; a Prober drops every such frame.
func TestParseRejects(t *testing.T) {
	flip := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	arp := func(b []byte) wire.Fault { _, _, f := wire.ParseARP(b); return f }
	nd := func(b []byte) wire.Fault { _, f := wire.ParseND(b, wire.AcceptNS|wire.AcceptNA, 0); return f }
	tests := []struct {
		name  string
		parse func([]byte) wire.Fault
		frame []byte
		want  wire.Fault
	}{
		{name: "ARP short", parse: arp, frame: vecARPReply[:41], want: wire.FaultShort},
		{name: "ARP other EtherType", parse: arp, frame: flip(vecARPReply, 13, 0x35), want: wire.FaultEtherType},
		{name: "ARP not IPv4", parse: arp, frame: flip(vecARPReply, 17, 0xdd), want: wire.FaultARPType},
		{name: "ARP hardware length", parse: arp, frame: flip(vecARPReply, 18, 8), want: wire.FaultMalformed},
		{name: "NDP short", parse: nd, frame: vecNA[:77], want: wire.FaultShort},
		{name: "NDP payload length past frame", parse: nd, frame: flip(vecNA, 19, 0x28), want: wire.FaultShort},
		{name: "NDP hop limit 64", parse: nd, frame: flip(vecNA, 21, 64), want: wire.FaultHopLimit},
		{name: "NDP not ICMPv6", parse: nd, frame: flip(vecNA, 20, 17), want: wire.FaultNotND},
		{name: "NDP echo request", parse: nd, frame: flip(vecNA, 54, 128), want: wire.FaultNotND},
		{name: "NDP code 1", parse: nd, frame: flip(vecNA, 55, 1), want: wire.FaultMalformed},
		{name: "NDP bad checksum", parse: nd, frame: flip(vecNA, 57, 0x15), want: wire.FaultChecksum},
		{name: "NDP target changed", parse: nd, frame: flip(vecNA, 77, 0x12), want: wire.FaultChecksum},
		{name: "NDP option length 0", parse: nd, frame: fixChecksum(flip(vecNA, 79, 0)), want: wire.FaultOption},
		{name: "NDP option past end", parse: nd, frame: fixChecksum(flip(vecNA, 79, 2)), want: wire.FaultOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.parse(tt.frame); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// fixChecksum recomputes the ICMPv6 checksum of an Ethernet/IPv6/ICMPv6 frame whose lengths are right.
func fixChecksum(b []byte) []byte {
	m := b[wire.ICMPOffset:]
	m[2], m[3] = 0, 0
	c := wire.ICMPv6Checksum((*[16]byte)(b[22:38]), (*[16]byte)(b[38:54]), m)
	m[2], m[3] = byte(c>>8), byte(c)
	return b
}

func TestNDPOptions(t *testing.T) {
	// An advertisement without options (allowed in answer to a unicast solicitation), and one with an unknown
	// option before the target link-layer address.
	bare := wire.ND{Eth: wire.Ethernet{Dst: [6]byte(clientMAC), Src: [6]byte(nodeMAC), Type: wire.EtherTypeIPv6},
		Src: nodeV6.As16(), Dst: clientV6.As16(), Type: wire.ICMPTypeNA, Flags: wire.NAFlagSolicited, Target: nodeV6.As16()}
	b := make([]byte, wire.NDLinkFrameLen)
	got, f := wire.ParseND(b[:wire.PutND(b, &bare)], wire.AcceptNA, 0)
	if f != wire.OK {
		t.Fatal(f)
	}
	if diff := cmp.Diff(bare, got); diff != "" {
		t.Errorf("without options (-want +got):\n%s", diff)
	}

	// vecNA with a nonce option (RFC 3971 type 14, 8 bytes) inserted before the TLLAO.
	withNonce := append(append(append([]byte(nil), vecNA[:78]...), 14, 1, 1, 2, 3, 4, 5, 6), vecNA[78:]...)
	withNonce[wire.EthHeaderLen+5] += 8 // payload length
	got, f = wire.ParseND(fixChecksum(withNonce), wire.AcceptNA, 0)
	if f != wire.OK {
		t.Fatal(f)
	}
	if !got.HasLinkAddr || got.LinkAddr != [6]byte(nodeMAC) {
		t.Errorf("TLLAO after an unknown option: %v, %v; want %v", got.HasLinkAddr, net.HardwareAddr(got.LinkAddr[:]), nodeMAC)
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
	udp[wire.NextHeaderOffset] = 17
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
