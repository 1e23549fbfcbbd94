package wire

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVIPSet(t *testing.T) {
	s := NewVIPSet([]netip.Addr{
		netip.MustParseAddr("198.51.100.10"),
		netip.MustParseAddr("::ffff:203.0.113.7"), // held as IPv4
		netip.MustParseAddr("2001:db8::10%eth0"),  // zone dropped
		netip.MustParseAddr("198.51.100.10"),      // once
		netip.MustParseAddr("127.0.0.1"),          // cannot be on the wire
		netip.MustParseAddr("ff02::1"),
		{},
	})
	want := []netip.Addr{
		netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::10"),
	}
	if diff := cmp.Diff(want, s.All(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if n4, n6 := s.Len(); n4 != 2 || n6 != 1 {
		t.Errorf("Len = %d, %d; want 2, 1", n4, n6)
	}
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"198.51.100.10", true}, {"203.0.113.7", true}, {"2001:db8::10", true},
		{"198.51.100.11", false}, {"127.0.0.1", false}, {"::ffff:198.51.100.10", false}, {"2001:db8::11", false},
	} {
		if got := s.Has(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Has(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if !s.Has4([4]byte{198, 51, 100, 10}) || !s.Has6(netip.MustParseAddr("2001:db8::10").As16()) {
		t.Error("Has4/Has6 miss members")
	}
	var empty *VIPSet
	if empty.Has(want[0]) || empty.Has4([4]byte{}) || empty.Has6([16]byte{}) || empty.All() != nil {
		t.Error("a nil set holds something")
	}
	if n4, n6 := empty.Len(); n4 != 0 || n6 != 0 {
		t.Error("a nil set has a length")
	}
	if (&VIPSet{}).Has(want[2]) {
		t.Error("a zero set holds something")
	}
}

func TestVIPSetDoesNotAllocate(t *testing.T) {
	s := NewVIPSet([]netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::10")})
	a4, a6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::11")
	if n := testing.AllocsPerRun(100, func() { s.Has(a4); s.Has(a6) }); n != 0 {
		t.Errorf("%v allocations per lookup, want 0", n)
	}
}
