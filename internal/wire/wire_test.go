package wire

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// TestICMPv6Checksum compares ICMPv6Checksum with golang.org/x/net/icmp's
// marshalling over random messages of odd and even lengths, and checks that
// a message carrying its checksum sums to 0 and a flipped bit does not.
func TestICMPv6Checksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 3, 20, 23, 32, 1231} {
		var src, dst [16]byte
		for i := range src {
			src[i], dst[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		m := icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: body}}
		want, err := m.Marshal(icmp.IPv6PseudoHeader(net.IP(src[:]), net.IP(dst[:])))
		if err != nil {
			t.Fatal(err)
		}
		msg := append([]byte(nil), want...)
		msg[2], msg[3] = 0, 0
		if got, w := ICMPv6Checksum(&src, &dst, msg), binary.BigEndian.Uint16(want[2:4]); got != w {
			t.Errorf("%d-byte body: checksum %#04x, x/net/icmp %#04x", size, got, w)
		}
		if got := ICMPv6Checksum(&src, &dst, want); got != 0 {
			t.Errorf("%d-byte body: checksum over a correct message %#04x, want 0", size, got)
		}
		want[len(want)-1] ^= 0x10
		if got := ICMPv6Checksum(&src, &dst, want); got == 0 {
			t.Errorf("%d-byte body: a flipped bit still sums to 0", size)
		}
	}
}

func TestICMPv6ChecksumDoesNotAllocate(t *testing.T) {
	var src, dst [16]byte
	msg := make([]byte, 32)
	if n := testing.AllocsPerRun(100, func() { ICMPv6Checksum(&src, &dst, msg) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

func TestAddrString(t *testing.T) {
	a := &Addr{HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	if got := a.String(); got != "02:00:00:00:00:01" {
		t.Errorf("String() = %q", got)
	}
	a.Outgoing = true
	if got := a.String(); got != "02:00:00:00:00:01 (outgoing)" {
		t.Errorf("outgoing String() = %q", got)
	}
	if a.Network() != "packet" {
		t.Errorf("Network() = %q", a.Network())
	}
}
