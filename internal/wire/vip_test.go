package wire

import (
	"net/netip"
	"testing"
)

// TestNormalizeVIP: the announcer and the guard agree on which addresses exist on the wire (they once disagreed
// about loopback addresses).
func TestNormalizeVIP(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{name: "IPv4", in: "198.51.100.10", want: "198.51.100.10", ok: true},
		{name: "IPv4-mapped", in: "::ffff:198.51.100.10", want: "198.51.100.10", ok: true},
		{name: "IPv6", in: "2001:db8::10", want: "2001:db8::10", ok: true},
		{name: "zone dropped", in: "fe80::1%eth0", want: "fe80::1", ok: true},
		{name: "IPv4 unspecified", in: "0.0.0.0"},
		{name: "IPv6 unspecified", in: "::"},
		{name: "loopback", in: "127.0.0.1"},
		{name: "multicast", in: "ff02::1"},
		{name: "IPv4 multicast", in: "224.0.0.1"},
		{name: "limited broadcast", in: "255.255.255.255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeVIP(netip.MustParseAddr(tt.in))
			if ok != tt.ok || (ok && got.String() != tt.want) {
				t.Errorf("NormalizeVIP(%s) = %v, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := NormalizeVIP(netip.Addr{}); ok {
		t.Error("NormalizeVIP(zero Addr) ok, want rejected")
	}
}
