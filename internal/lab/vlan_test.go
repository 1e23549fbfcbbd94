package lab

import (
	"net/netip"
	"strings"
	"testing"
)

// TestAddVLANRefuses: the VLAN id and the addresses are checked before anything is made: a lab VLAN uses its own
// documentation subnets, never the lab's, nor 192.0.2.0/24 (the host's uplink).
func TestAddVLANRefuses(t *testing.T) {
	h := &Host{Name: "node1", Link: "eth0"}
	p := netip.MustParsePrefix
	tests := []struct {
		name   string
		id     int
		v4, v6 netip.Prefix
		want   string
	}{
		{name: "VLAN 1 is the lab's untagged one", id: 1, want: "want 2 to 4094"},
		{name: "VLAN 4095 is reserved", id: 4095, want: "want 2 to 4094"},
		{name: "an address of the lab's subnet", id: 100, v4: p("198.51.100.50/24"), want: "in the lab's 198.51.100.0/24"},
		{name: "the host's uplink range", id: 100, v4: p("192.0.2.10/24"), want: "not in 198.18.0.0/15"},
		{name: "an IPv6 address of the lab's subnet", id: 100, v6: p("2001:db8:100::50/64"), want: "in the lab's 2001:db8:100::/64"},
		{name: "IPv6 outside the documentation range", id: 100, v6: p("fd00::1/64"), want: "not in 2001:db8::/32"},
		{name: "IPv4 given as IPv6", id: 100, v6: p("198.18.100.1/24"), want: "not in 2001:db8::/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Lab{}).AddVLAN(h, tt.id, tt.v4, tt.v6)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AddVLAN = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
