package ipam

import (
	"math/big"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addrOpt lets cmp compare netip.Addr values, which have unexported fields.
var addrOpt = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

// bigOpt compares big.Int values numerically.
var bigOpt = cmp.Comparer(func(x, y *big.Int) bool { return x.Cmp(y) == 0 })

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func rng(first, last string) Range { return Range{First: ip(first), Last: ip(last)} }

func mustParse(t *testing.T, s string) Range {
	t.Helper()
	r, err := ParseRange(s)
	if err != nil {
		t.Fatalf("ParseRange(%q): %v", s, err)
	}
	return r
}

func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

func TestParseRange(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Range
		wantErr string
	}{
		{name: "ipv4 cidr", in: "198.51.100.0/24", want: rng("198.51.100.0", "198.51.100.255")},
		{name: "ipv4 /32", in: "198.51.100.7/32", want: rng("198.51.100.7", "198.51.100.7")},
		{name: "ipv4 everything", in: "0.0.0.0/0", want: rng("0.0.0.0", "255.255.255.255")},
		{name: "ipv6 cidr", in: "2001:db8::/64", want: rng("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")},
		{name: "ipv6 everything", in: "::/0", want: rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		{name: "ipv6 /128", in: "2001:db8::5/128", want: rng("2001:db8::5", "2001:db8::5")},
		{name: "ipv4 range", in: "198.51.100.10-198.51.100.20", want: rng("198.51.100.10", "198.51.100.20")},
		{name: "spaces around dash", in: "198.51.100.10 - 198.51.100.20", want: rng("198.51.100.10", "198.51.100.20")},
		{name: "one address range", in: "198.51.100.5-198.51.100.5", want: rng("198.51.100.5", "198.51.100.5")},
		{name: "ipv6 range", in: "2001:db8::1-2001:db8::ff", want: rng("2001:db8::1", "2001:db8::ff")},
		{name: "single ipv4", in: " 198.51.100.7 ", want: rng("198.51.100.7", "198.51.100.7")},
		{name: "single ipv6", in: "2001:db8::1", want: rng("2001:db8::1", "2001:db8::1")},
		{name: "empty", in: "  ", wantErr: `empty address range`},
		{name: "bad cidr address", in: "198.51.100.300/24", wantErr: `"198.51.100.300/24" is not a valid CIDR`},
		{name: "bad cidr length", in: "198.51.100.0/33", wantErr: `"198.51.100.0/33" is not a valid CIDR`},
		{name: "cidr with zone", in: "fe80::/64%eth0", wantErr: `"fe80::/64%eth0" is not a valid CIDR`},
		{
			name:    "host bits set",
			in:      "198.51.100.7/24",
			wantErr: `CIDR "198.51.100.7/24" has host bits set; did you mean "198.51.100.0/24"?`,
		},
		{
			name:    "ipv6 host bits set",
			in:      "2001:db8::1/64",
			wantErr: `CIDR "2001:db8::1/64" has host bits set; did you mean "2001:db8::/64"?`,
		},
		{
			name:    "mapped cidr",
			in:      "::ffff:198.51.100.0/120",
			wantErr: `CIDR "::ffff:198.51.100.0/120" uses an IPv4-mapped IPv6 address; write it as IPv4`,
		},
		{
			name:    "start after end",
			in:      "198.51.100.20-198.51.100.10",
			wantErr: `range "198.51.100.20-198.51.100.10": start 198.51.100.20 is after end 198.51.100.10`,
		},
		{name: "mixed families", in: "198.51.100.1-2001:db8::1", wantErr: `range "198.51.100.1-2001:db8::1" mixes IPv4 and IPv6`},
		{name: "no end", in: "198.51.100.1 -", wantErr: `range "198.51.100.1 -" has no end address`},
		{name: "no start", in: "-198.51.100.1", wantErr: `range "-198.51.100.1" has no start address`},
		{name: "two dashes", in: "1.2.3.4-1.2.3.5-1.2.3.6", wantErr: `range "1.2.3.4-1.2.3.5-1.2.3.6" has more than one '-'`},
		{
			name:    "bad start",
			in:      "1.2.3.x-1.2.3.5",
			wantErr: `range "1.2.3.x-1.2.3.5": start "1.2.3.x" is not a valid IP address`,
		},
		{
			name:    "bad end",
			in:      "1.2.3.4-1.2.3.256",
			wantErr: `range "1.2.3.4-1.2.3.256": end "1.2.3.256" is not a valid IP address`,
		},
		{
			name:    "zone in range",
			in:      "fe80::1%eth0-fe80::2",
			wantErr: `range "fe80::1%eth0-fe80::2": address fe80::1%eth0 has a zone, which is not allowed`,
		},
		{
			name:    "mapped in range",
			in:      "::ffff:1.2.3.4-::ffff:1.2.3.5",
			wantErr: `range "::ffff:1.2.3.4-::ffff:1.2.3.5": address ::ffff:1.2.3.4 is an IPv4-mapped IPv6 address; write it as 1.2.3.4`,
		},
		{name: "zone", in: "fe80::1%eth0", wantErr: `address fe80::1%eth0 has a zone, which is not allowed`},
		{name: "mapped", in: "::ffff:1.2.3.4", wantErr: `address ::ffff:1.2.3.4 is an IPv4-mapped IPv6 address; write it as 1.2.3.4`},
		{name: "garbage", in: "pool-a", wantErr: `range "pool-a": start "pool" is not a valid IP address`},
		{name: "word", in: "foo", wantErr: `"foo" is not a valid IP address, CIDR or range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Fatalf("ParseRange(%q) error (-want +got):\n%s", tt.in, diff)
			}
			if diff := cmp.Diff(tt.want, got, addrOpt); diff != "" {
				t.Errorf("ParseRange(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestRangeSizeAndString(t *testing.T) {
	tests := []struct {
		name       string
		r          Range
		wantSize   *big.Int
		wantString string
	}{
		{name: "single", r: rng("198.51.100.7", "198.51.100.7"), wantSize: big.NewInt(1), wantString: "198.51.100.7"},
		{name: "ipv4 /24", r: rng("198.51.100.0", "198.51.100.255"), wantSize: big.NewInt(256), wantString: "198.51.100.0/24"},
		{name: "ipv4 /31", r: rng("10.0.0.0", "10.0.0.1"), wantSize: big.NewInt(2), wantString: "10.0.0.0/31"},
		{name: "misaligned", r: rng("10.0.0.1", "10.0.0.4"), wantSize: big.NewInt(4), wantString: "10.0.0.1-10.0.0.4"},
		{name: "not power of two", r: rng("10.0.0.0", "10.0.0.2"), wantSize: big.NewInt(3), wantString: "10.0.0.0-10.0.0.2"},
		{name: "ipv4 everything", r: rng("0.0.0.0", "255.255.255.255"), wantSize: pow2(32), wantString: "0.0.0.0/0"},
		{
			name:       "ipv6 /64",
			r:          rng("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
			wantSize:   pow2(64),
			wantString: "2001:db8::/64",
		},
		{
			name:       "ipv6 everything",
			r:          rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
			wantSize:   pow2(128),
			wantString: "::/0",
		},
		{
			name:       "ipv6 range",
			r:          rng("2001:db8::1", "2001:db8::1:0"),
			wantSize:   big.NewInt(0x10000),
			wantString: "2001:db8::1-2001:db8::1:0",
		},
		{name: "inverted", r: rng("10.0.0.2", "10.0.0.1"), wantSize: big.NewInt(0), wantString: "invalid range 10.0.0.2-10.0.0.1"},
		{name: "mixed", r: rng("10.0.0.1", "::1"), wantSize: big.NewInt(0), wantString: "invalid range 10.0.0.1-::1"},
		{name: "zero", r: Range{}, wantSize: big.NewInt(0), wantString: "invalid range invalid IP-invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.wantSize, tt.r.Size(), bigOpt); diff != "" {
				t.Errorf("Size() (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantString, tt.r.String()); diff != "" {
				t.Errorf("String() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRangeFamilyAndContains(t *testing.T) {
	v4 := rng("10.0.0.10", "10.0.0.20")
	v6 := rng("2001:db8::", "2001:db8::ff")
	tests := []struct {
		name string
		r    Range
		a    netip.Addr
		want bool
	}{
		{name: "first", r: v4, a: ip("10.0.0.10"), want: true},
		{name: "last", r: v4, a: ip("10.0.0.20"), want: true},
		{name: "before", r: v4, a: ip("10.0.0.9")},
		{name: "after", r: v4, a: ip("10.0.0.21")},
		{name: "other family", r: v4, a: ip("::a00:a")},
		{name: "mapped", r: v4, a: ip("::ffff:10.0.0.15")},
		{name: "ipv6 inside", r: v6, a: ip("2001:db8::80"), want: true},
		{name: "ipv6 outside", r: v6, a: ip("2001:db8::100")},
		{name: "invalid", r: v6, a: netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.r.Contains(tt.a)); diff != "" {
				t.Errorf("Contains(%s) (-want +got):\n%s", tt.a, diff)
			}
		})
	}
	got := []Family{v4.Family(), v6.Family(), FamilyOf(netip.Addr{})}
	if diff := cmp.Diff([]Family{IPv4, IPv6, 0}, got); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}
	names := []string{IPv4.String(), IPv6.String(), Family(5).String()}
	if diff := cmp.Diff([]string{"IPv4", "IPv6", "Family(5)"}, names); diff != "" {
		t.Errorf("family names (-want +got):\n%s", diff)
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		name string
		a, b Range
		want bool
	}{
		{name: "inside", a: rng("10.0.0.0", "10.0.0.255"), b: rng("10.0.0.5", "10.0.0.6"), want: true},
		{name: "partial", a: rng("10.0.0.0", "10.0.0.10"), b: rng("10.0.0.10", "10.0.0.20"), want: true},
		{name: "adjacent", a: rng("10.0.0.0", "10.0.0.9"), b: rng("10.0.0.10", "10.0.0.20")},
		{name: "disjoint", a: rng("10.0.0.0", "10.0.0.9"), b: rng("10.0.1.0", "10.0.1.9")},
		{name: "families differ", a: rng("0.0.0.0", "255.255.255.255"), b: rng("::", "::ffff")},
		{name: "ipv6 everything", a: rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), b: rng("2001:db8::", "2001:db8::"), want: true},
		{name: "invalid", a: Range{}, b: rng("10.0.0.0", "10.0.0.9")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []bool{tt.a.Overlaps(tt.b), tt.b.Overlaps(tt.a)}
			if diff := cmp.Diff([]bool{tt.want, tt.want}, got); diff != "" {
				t.Errorf("Overlaps both ways (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSubtract(t *testing.T) {
	tests := []struct {
		name      string
		rs, minus []string
		want      []Range
	}{
		{name: "nothing to remove", rs: []string{"10.0.0.0/30"}, want: []Range{rng("10.0.0.0", "10.0.0.3")}},
		{
			name:  "hole in the middle",
			rs:    []string{"10.0.0.0/24"},
			minus: []string{"10.0.0.10-10.0.0.19"},
			want:  []Range{rng("10.0.0.0", "10.0.0.9"), rng("10.0.0.20", "10.0.0.255")},
		},
		{name: "all removed", rs: []string{"10.0.0.0/24"}, minus: []string{"10.0.0.0/23"}},
		{
			name:  "keeps rs order, pieces ascending",
			rs:    []string{"10.0.1.0/24", "10.0.0.0/24"},
			minus: []string{"10.0.1.128", "10.0.0.0/25", "10.0.1.3-10.0.1.4"},
			want: []Range{
				rng("10.0.1.0", "10.0.1.2"), rng("10.0.1.5", "10.0.1.127"), rng("10.0.1.129", "10.0.1.255"),
				rng("10.0.0.128", "10.0.0.255"),
			},
		},
		{
			name:  "overlapping minus",
			rs:    []string{"10.0.0.0-10.0.0.100"},
			minus: []string{"10.0.0.50-10.0.0.60", "10.0.0.40-10.0.0.55", "10.0.0.0"},
			want:  []Range{rng("10.0.0.1", "10.0.0.39"), rng("10.0.0.61", "10.0.0.100")},
		},
		{
			name:  "other family untouched",
			rs:    []string{"10.0.0.0/31", "2001:db8::/127"},
			minus: []string{"::/0"},
			want:  []Range{rng("10.0.0.0", "10.0.0.1")},
		},
		{
			name:  "edges of ipv6 space",
			rs:    []string{"::/0"},
			minus: []string{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			want:  []Range{rng("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")},
		},
		{
			name:  "edges of ipv4 space",
			rs:    []string{"0.0.0.0/0"},
			minus: []string{"0.0.0.0/1"},
			want:  []Range{rng("128.0.0.0", "255.255.255.255")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Subtract(parseAll(t, tt.rs), parseAll(t, tt.minus))
			if diff := cmp.Diff(tt.want, got, addrOpt); diff != "" {
				t.Errorf("Subtract (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		name       string
		rs, others []string
		want       []Range
	}{
		{name: "disjoint", rs: []string{"10.0.0.0/24"}, others: []string{"10.0.1.0/24"}},
		{
			name:   "partial overlaps",
			rs:     []string{"10.0.0.0/24", "10.0.2.0-10.0.2.9"},
			others: []string{"10.0.2.5-10.0.3.0", "10.0.0.200-10.0.1.10", "10.0.0.7"},
			want:   []Range{rng("10.0.0.7", "10.0.0.7"), rng("10.0.0.200", "10.0.0.255"), rng("10.0.2.5", "10.0.2.9")},
		},
		{
			name:   "adjacent others merge",
			rs:     []string{"10.0.0.0/24"},
			others: []string{"10.0.0.128/25", "10.0.0.0/25"},
			want:   []Range{rng("10.0.0.0", "10.0.0.255")},
		},
		{
			name:   "families kept apart",
			rs:     []string{"2001:db8::/126", "10.0.0.0/30"},
			others: []string{"0.0.0.0/0"},
			want:   []Range{rng("10.0.0.0", "10.0.0.3")},
		},
		{
			name:   "ipv6 inside everything",
			rs:     []string{"2001:db8::/64"},
			others: []string{"::/0"},
			want:   []Range{rng("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Intersect(parseAll(t, tt.rs), parseAll(t, tt.others))
			if diff := cmp.Diff(tt.want, got, addrOpt); diff != "" {
				t.Errorf("Intersect (-want +got):\n%s", diff)
			}
		})
	}
}

func parseAll(t *testing.T, ss []string) []Range {
	t.Helper()
	var rs []Range
	for _, s := range ss {
		rs = append(rs, mustParse(t, s))
	}
	return rs
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"198.51.100.0/24", "198.51.100.7", "198.51.100.1 - 198.51.100.9", "2001:db8::/64", "::/0",
		"0.0.0.0/0", "2001:db8::1-2001:db8::1:0", "10.0.0.0/31", "fe80::1%eth0", "::ffff:1.2.3.4", "1.2.3.4-",
		"198.51.100.300/24", "10.0.0.7/24",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if !r.First.IsValid() || r.First.Is4() != r.Last.Is4() || r.First.Compare(r.Last) > 0 {
			t.Fatalf("ParseRange(%q) = %#v: not a valid range", s, r)
		}
		if r.First.Zone() != "" || r.Last.Zone() != "" || r.First.Is4In6() || r.Last.Is4In6() {
			t.Fatalf("ParseRange(%q) = %s: zone or mapped address accepted", s, r)
		}
		back, err := ParseRange(r.String())
		if err != nil {
			t.Fatalf("ParseRange(%q) of String() of %q: %v", r.String(), s, err)
		}
		if diff := cmp.Diff(r, back, addrOpt); diff != "" {
			t.Fatalf("round trip of %q via %q (-want +got):\n%s", s, r.String(), diff)
		}
		if r.Size().Sign() <= 0 || !r.Contains(r.First) || !r.Contains(r.Last) {
			t.Fatalf("ParseRange(%q) = %s: size %s, contains its ends %v %v", s, r, r.Size(), r.Contains(r.First), r.Contains(r.Last))
		}
	})
}
