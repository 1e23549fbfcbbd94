package membership

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

func mustMAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// macs returns n distinct EUI-48 MACs.
func macs(n int) []net.HardwareAddr {
	out := make([]net.HardwareAddr, n)
	for i := range out {
		out[i] = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, byte(i >> 8), byte(i)}
	}
	return out
}

func TestMetaVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		node string
		macs []net.HardwareAddr
		wire string
	}{
		{
			name: "two EUI-48",
			node: "node-a",
			macs: []net.HardwareAddr{mustMAC(t, "02:00:5e:00:53:01"), mustMAC(t, "02:00:5e:00:53:02")},
			wire: "01 06 6e6f64652d61 02 06 02005e005301 06 02005e005302",
		},
		{
			name: "no MACs",
			node: "n",
			wire: "01 01 6e 00",
		},
		{
			name: "EUI-64 and IPoIB",
			node: "ib",
			macs: []net.HardwareAddr{
				mustMAC(t, "02:00:5e:10:00:00:00:01"),
				mustMAC(t, "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"),
			},
			wire: "01 02 6962 02 08 02005e1000000001 14 00000000fe8000000000000002005e1000000001",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.wire)
			got, trimmed, err := EncodeMeta(Meta{Node: tc.node, MACs: tc.macs})
			if err != nil || trimmed {
				t.Fatalf("EncodeMeta: trimmed %v, %v", trimmed, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("EncodeMeta bytes (-want +got):\n%s", diff)
			}
			m, err := DecodeMeta(want)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if diff := cmp.Diff(Meta{Node: tc.node, MACs: tc.macs}, m, cmpAddr); diff != "" {
				t.Errorf("DecodeMeta (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetaSizeLimit(t *testing.T) {
	longName := strings.Repeat("n", MaxNodeNameLen)
	for _, tc := range []struct {
		name    string
		node    string
		macs    []net.HardwareAddr
		size    int // expected encoded size when it fits
		tooBig  bool
		anyFail bool
	}{
		{name: "longest name, 36 MACs fit", node: longName, macs: macs(36), size: 1 + 1 + 253 + 1 + 36*7},
		{name: "longest name, 37 MACs do not", node: longName, macs: macs(37), tooBig: true},
		{name: "short name, 72 MACs fit", node: "a", macs: macs(72), size: 1 + 1 + 1 + 1 + 72*7},
		{name: "short name, 73 MACs do not", node: "a", macs: macs(73), tooBig: true},
		{name: "256 MACs", node: "a", macs: macs(256), tooBig: true},
		{name: "name too long", node: longName + "x", anyFail: true},
		{name: "empty name", node: "", anyFail: true},
		{name: "7-byte MAC", node: "a", macs: []net.HardwareAddr{{1, 2, 3, 4, 5, 6, 7}}, anyFail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, err := EncodeMeta(Meta{Node: tc.node, MACs: tc.macs})
			switch {
			case tc.tooBig:
				if !errors.Is(err, ErrMetaTooLarge) {
					t.Fatalf("EncodeMeta error = %v, want ErrMetaTooLarge", err)
				}
			case tc.anyFail:
				if err == nil {
					t.Fatalf("EncodeMeta succeeded (%d bytes), want an error", len(b))
				}
			default:
				if err != nil {
					t.Fatalf("EncodeMeta: %v", err)
				}
				if diff := cmp.Diff(tc.size, len(b)); diff != "" {
					t.Errorf("size (-want +got):\n%s", diff)
				}
				if len(b) > memberlist.MetaMaxSize {
					t.Errorf("size %d exceeds memberlist.MetaMaxSize", len(b))
				}
				m, err := DecodeMeta(b)
				if err != nil {
					t.Fatalf("DecodeMeta: %v", err)
				}
				if m.Node != tc.node {
					t.Errorf("node = %q", m.Node)
				}
				if diff := cmp.Diff(tc.macs, m.MACs); diff != "" {
					t.Errorf("MACs (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestDecodeMetaGarbage(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
		want string // substring of the error
	}{
		{"empty", nil, "empty"},
		{"version 0", unhex(t, "00 01 6e 00"), "unsupported version 0"},
		{"version 3", unhex(t, "03 01 6e 00"), "unsupported version 3"},
		{"no name length", unhex(t, "01"), "truncated before node name length"},
		{"zero name length", unhex(t, "01 00 00"), "node name length 0"},
		{"name length 254", append(unhex(t, "01 fe"), bytes.Repeat([]byte("n"), 254)...), "node name length 254"},
		{"name truncated", unhex(t, "01 05 6e6e"), "node name truncated"},
		{"no MAC count", unhex(t, "01 01 6e"), "truncated before MAC count"},
		{"MAC missing", unhex(t, "01 01 6e 01"), "MAC 0 of 1 missing"},
		{"MAC length 7", unhex(t, "01 01 6e 01 07 01020304050607"), "MAC 0 length 7"},
		{"MAC length 0", unhex(t, "01 01 6e 01 00"), "MAC 0 length 0"},
		{"MAC truncated", unhex(t, "01 01 6e 01 06 010203"), "MAC 0 truncated"},
		{"trailing byte", unhex(t, "01 01 6e 00 ff"), "1 trailing bytes"},
		{"over MetaMaxSize", append(unhex(t, "01 01 6e 00"), make([]byte, memberlist.MetaMaxSize)...), "limit 512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMeta(tc.wire)
			if err == nil {
				t.Fatalf("DecodeMeta = %+v, nil; want an error", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeMetaDoesNotAlias(t *testing.T) {
	b := unhex(t, "01 01 6e 01 06 02005e005301")
	m, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	b[6] = 0xff
	if diff := cmp.Diff(mustMAC(t, "02:00:5e:00:53:01"), m.MACs[0]); diff != "" {
		t.Errorf("decoded MAC changed with the input buffer (-want +got):\n%s", diff)
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// v4Prefixes returns n distinct IPv4 /24s (6 bytes each on the wire).
func v4Prefixes(n int) []netip.Prefix {
	var out []netip.Prefix
	for i := range n {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	return out
}

// v6Prefixes returns n distinct IPv6 /64s (18 bytes each on the wire).
func v6Prefixes(n int) []netip.Prefix {
	var out []netip.Prefix
	for i := range n {
		out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i)}), 64))
	}
	return out
}

// v4Addrs and v6Addrs return n distinct addresses (5 and 17 bytes each).
func v4Addrs(n int) []netip.Addr {
	var out []netip.Addr
	for i := range n {
		out = append(out, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	return out
}

func v6Addrs(n int) []netip.Addr {
	var out []netip.Addr
	for i := range n {
		out = append(out, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 15: byte(i)}))
	}
	return out
}

func TestMetaV2Vectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		meta Meta
		wire string
	}{
		{
			name: "both lists, both families",
			meta: Meta{
				Node:     "node-a",
				MACs:     []net.HardwareAddr{mustMAC(t, "02:00:5e:00:53:01")},
				Impaired: prefixes("192.0.2.0/24", "2001:db8::/32"),
				Dark:     addrs("198.51.100.10", "2001:db8:1::a"),
			},
			wire: `02 06 6e6f64652d61 01 06 02005e005301
				02 04 18 c0000200 10 20 20010db8 00000000 00000000 00000000
				02 04 c633640a 10 20010db8 00010000 00000000 0000000a`,
		},
		{
			name: "impaired only, /0 and /16",
			meta: Meta{Node: "n", Impaired: prefixes("0.0.0.0/0", "10.1.0.0/16")},
			wire: "02 01 6e 00 02 04 00 00000000 04 10 0a010000 00",
		},
		{
			name: "dark only",
			meta: Meta{Node: "n", Dark: addrs("::1")},
			wire: "02 01 6e 00 00 01 10 00000000 00000000 00000000 00000001",
		},
		{
			name: "host prefixes, writer's order kept",
			meta: Meta{Node: "n", Impaired: prefixes("2001:db8::1/128", "198.51.100.7/32")},
			wire: "02 01 6e 00 02 10 80 20010db8 00000000 00000000 00000001 04 20 c6336407 00",
		},
		{
			name: "::/0 is not IPv4-mapped",
			meta: Meta{Node: "n", Impaired: prefixes("::/0")},
			wire: "02 01 6e 00 01 10 00 00000000 00000000 00000000 00000000 00",
		},
		{
			name: "v1 compatible: no health state",
			meta: Meta{Node: "node-a", MACs: []net.HardwareAddr{mustMAC(t, "02:00:5e:00:53:01")}},
			wire: "01 06 6e6f64652d61 01 06 02005e005301",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.wire)
			got, trimmed, err := EncodeMeta(tc.meta)
			if err != nil || trimmed {
				t.Fatalf("EncodeMeta: trimmed %v, %v", trimmed, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("EncodeMeta bytes (-want +got):\n%s", diff)
			}
			m, err := DecodeMeta(want)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if diff := cmp.Diff(tc.meta, m, cmpAddr); diff != "" {
				t.Errorf("DecodeMeta (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMetaEmptyListsWriteV1 checks that empty (not only nil) lists give
// version 1 metadata, which decodes to nil lists.
func TestMetaEmptyListsWriteV1(t *testing.T) {
	b, _, err := EncodeMeta(Meta{Node: "n", Impaired: []netip.Prefix{}, Dark: []netip.Addr{}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unhex(t, "01 01 6e 00"), b); diff != "" {
		t.Errorf("bytes (-want +got):\n%s", diff)
	}
	m, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Impaired != nil || m.Dark != nil {
		t.Errorf("decoded lists %#v, %#v; want nil", m.Impaired, m.Dark)
	}
}

func TestEncodeMetaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		meta Meta
		want string
	}{
		{"9 impaired", Meta{Node: "n", Impaired: v4Prefixes(9)}, "9 impaired prefixes, limit 8"},
		{"9 dark", Meta{Node: "n", Dark: v4Addrs(9)}, "9 dark addresses, limit 8"},
		{"zero prefix", Meta{Node: "n", Impaired: []netip.Prefix{{}}}, "impaired prefix 0: invalid prefix"},
		{"prefix /33", Meta{Node: "n", Impaired: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)}}, "impaired prefix 0: invalid prefix"},
		{"host bits", Meta{Node: "n", Impaired: prefixes("10.0.0.0/8", "10.0.0.1/8")}, "impaired prefix 1: 10.0.0.1/8 has host bits set; want 10.0.0.0/8"},
		{"IPv4-mapped prefix", Meta{Node: "n", Impaired: prefixes("::ffff:10.0.0.0/104")}, "IPv4-mapped IPv6 prefix"},
		{"zero address", Meta{Node: "n", Dark: []netip.Addr{{}}}, "dark address 0: invalid address"},
		{"zone", Meta{Node: "n", Dark: addrs("fe80::1%eth0")}, "dark address 0: fe80::1%eth0 has a zone"},
		{"IPv4-mapped address", Meta{Node: "n", Dark: addrs("::ffff:10.0.0.1")}, "IPv4-mapped IPv6 address; use 10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, err := EncodeMeta(tc.meta)
			if err == nil {
				t.Fatalf("EncodeMeta = %x, want an error", b)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "membership: encode metadata: ") {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestMetaTrim checks that health state that does not fit next to the MACs
// is trimmed, Dark first, and that the result never exceeds MetaMaxSize.
func TestMetaTrim(t *testing.T) {
	const node = "a"
	m68 := macs(68) // 4 + 68*7 = 480 bytes: 32 left
	for _, tc := range []struct {
		name      string
		node      string
		macs      []net.HardwareAddr
		impaired  []netip.Prefix
		dark      []netip.Addr
		keepI     int
		keepD     int
		size      int
		trimmed   bool
		wantVersn byte
	}{
		{name: "exactly 512", node: node, macs: m68, impaired: v4Prefixes(5), keepI: 5, size: 512, wantVersn: 2},
		{name: "one prefix too many", node: node, macs: m68, impaired: v4Prefixes(6), keepI: 5, size: 512, trimmed: true, wantVersn: 2},
		{name: "dark trimmed first", node: node, macs: m68, impaired: v6Prefixes(1), dark: v4Addrs(3), keepI: 1, keepD: 2, size: 510, trimmed: true, wantVersn: 2},
		{name: "all dark gone before impaired", node: node, macs: m68, impaired: v6Prefixes(2), dark: v4Addrs(1), keepI: 1, size: 500, trimmed: true, wantVersn: 2},
		{name: "dark only", node: node, macs: m68, dark: v6Addrs(8), keepD: 1, size: 499, trimmed: true, wantVersn: 2},
		{name: "everything trimmed: version 1", node: strings.Repeat("n", MaxNodeNameLen), macs: macs(36), impaired: v4Prefixes(1), dark: v4Addrs(1), size: 508, trimmed: true, wantVersn: 1},
		{name: "all eight of each fit with few MACs", node: node, macs: macs(10), impaired: v6Prefixes(8), dark: v6Addrs(8), keepI: 8, keepD: 8, size: 4 + 70 + 2 + 8*18 + 8*17, wantVersn: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Meta{Node: tc.node, MACs: tc.macs, Impaired: tc.impaired, Dark: tc.dark}
			b, trimmed, err := EncodeMeta(in)
			if err != nil {
				t.Fatalf("EncodeMeta: %v", err)
			}
			if trimmed != tc.trimmed {
				t.Errorf("trimmed = %v, want %v", trimmed, tc.trimmed)
			}
			if len(b) != tc.size || len(b) > memberlist.MetaMaxSize {
				t.Errorf("%d bytes, want %d", len(b), tc.size)
			}
			if b[0] != tc.wantVersn {
				t.Errorf("version %d, want %d", b[0], tc.wantVersn)
			}
			m, err := DecodeMeta(b)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			want := Meta{Node: tc.node, MACs: tc.macs}
			if tc.keepI > 0 {
				want.Impaired = tc.impaired[:tc.keepI]
			}
			if tc.keepD > 0 {
				want.Dark = tc.dark[:tc.keepD]
			}
			if diff := cmp.Diff(want, m, cmpAddr); diff != "" {
				t.Errorf("published (-want +got):\n%s", diff)
			}
		})
	}
	// The MACs alone too large: an error, whatever the health state.
	if _, _, err := EncodeMeta(Meta{Node: node, MACs: macs(73), Dark: v4Addrs(1)}); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("73 MACs: %v, want ErrMetaTooLarge", err)
	}
}

func TestDecodeMetaV2Garbage(t *testing.T) {
	zero16 := "00000000 00000000 00000000 00000000"
	for _, tc := range []struct {
		name string
		wire string
		want string // substring of the error
	}{
		{"no impaired count", "02 01 6e 00", "truncated before impaired prefix count"},
		{"no dark count", "02 01 6e 00 01 04 08 0a000000", "truncated before dark address count"},
		{"both lists empty", "02 01 6e 00 00 00", "version 2 without impaired prefixes or dark addresses"},
		{"9 impaired", "02 01 6e 00 09", "9 impaired prefixes, limit 8"},
		{"255 impaired", "02 01 6e 00 ff", "255 impaired prefixes, limit 8"},
		{"9 dark", "02 01 6e 00 00 09", "9 dark addresses, limit 8"},
		{"prefix missing", "02 01 6e 00 02 04 08 0a000000", "impaired prefix 1 of 2 missing"},
		{"prefix address length 6", "02 01 6e 00 01 06 08 0a0000000000 00", "impaired prefix 0 address length 6, want 4 or 16"},
		{"prefix address length 0", "02 01 6e 00 01 00 00", "impaired prefix 0 address length 0"},
		{"prefix without bits", "02 01 6e 00 01 04", "impaired prefix 0 truncated (0 of 5 bytes)"},
		{"prefix truncated", "02 01 6e 00 01 04 08 0a00", "impaired prefix 0 truncated (3 of 5 bytes)"},
		{"IPv4 /33", "02 01 6e 00 01 04 21 0a000000 00", "impaired prefix 0 length /33, limit /32"},
		{"IPv6 /129", "02 01 6e 00 01 10 81 " + zero16 + " 00", "impaired prefix 0 length /129, limit /128"},
		{"host bits", "02 01 6e 00 01 04 08 0a000001 00", "impaired prefix 0: 10.0.0.1/8 has host bits set"},
		{"IPv6 host bits", "02 01 6e 00 01 10 00 20010db8 00000000 00000000 00000000 00", "impaired prefix 0: 2001:db8::/0 has host bits set"},
		{"IPv4-mapped prefix", "02 01 6e 00 01 10 80 00000000 00000000 0000ffff 0a000001 00", "impaired prefix 0: ::ffff:10.0.0.1 is IPv4-mapped"},
		{"dark missing", "02 01 6e 00 00 02 04 0a000001", "dark address 1 of 2 missing"},
		{"dark address length 5", "02 01 6e 00 00 01 05 0a00000100", "dark address 0 address length 5, want 4 or 16"},
		{"dark truncated", "02 01 6e 00 00 01 10 0a000001", "dark address 0 truncated (4 of 16 bytes)"},
		{"IPv4-mapped dark", "02 01 6e 00 00 01 10 00000000 00000000 0000ffff 0a000001", "dark address 0: ::ffff:10.0.0.1 is IPv4-mapped"},
		{"trailing byte", "02 01 6e 00 00 01 04 0a000001 ff", "1 trailing bytes"},
		{"version 1 with health state", "01 01 6e 00 00 01 04 0a000001", "7 trailing bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMeta(unhex(t, tc.wire))
			if err == nil {
				t.Fatalf("DecodeMeta = %+v, nil; want an error", m)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "membership: decode metadata: ") {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// metaSeeds are valid and invalid metadata for the fuzz targets.
var metaSeeds = []string{
	"01 06 6e6f64652d61 02 06 02005e005301 06 02005e005302",
	"01 01 6e 00",
	"01 02 6962 02 08 02005e1000000001 14 00000000fe8000000000000002005e1000000001",
	"01 01 6e 01 07 01020304050607",
	"02 06 6e6f64652d61 01 06 02005e005301 02 04 18 c0000200 10 20 20010db8000000000000000000000000 02 04 c633640a 10 20010db8 00010000 00000000 0000000a",
	"02 01 6e 00 02 04 00 00000000 04 10 0a010000 00",
	"02 01 6e 00 00 01 10 00000000000000000000000000000001",
	"02 01 6e 00 01 04 08 0a000001 00",
	"02 01 6e 00 00 00",
	"02 01 6e 00 01 10 80 00000000000000000000ffff0a000001 00",
	"02",
	"03",
	"",
}

// FuzzDecodeMeta checks that DecodeMeta never panics and that whatever it
// accepts re-encodes, untrimmed, to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	for _, s := range metaSeeds {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		again, trimmed, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("DecodeMeta accepted %x but EncodeMeta(%+v) fails: %v", b, m, err)
		}
		if trimmed {
			t.Fatalf("DecodeMeta accepted %x but EncodeMeta(%+v) trims it", b, m)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n in  %x\n out %x", b, again)
		}
	})
}

// FuzzEncodeMeta builds valid metadata from fuzz input and checks that
// EncodeMeta stays within MetaMaxSize, trims as documented (a leading part
// of each list, Dark emptied before Impaired is cut, nothing dropped that
// would have fitted) and that the result decodes back and re-encodes to the
// same bytes.
func FuzzEncodeMeta(f *testing.F) {
	f.Add("n", byte(1), []byte{0, 10, 1, 2, 3, 4, 1, 198, 51, 100, 7})
	f.Add("node-a", byte(68), bytes.Repeat([]byte{2, 64, 0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 9))
	f.Add(strings.Repeat("n", MaxNodeNameLen), byte(36), []byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Fuzz(func(t *testing.T, node string, nMACs byte, raw []byte) {
		if node == "" || len(node) > MaxNodeNameLen {
			node = "n"
		}
		in := Meta{Node: node}
		if n := int(nMACs) % 80; n > 0 {
			in.MACs = macs(n)
		}
		// raw is a sequence of entries: a kind byte (bit 0: address, bit
		// 1: IPv6), for a prefix a length byte, then the address bytes.
		for len(raw) > 0 {
			kind := raw[0]
			raw = raw[1:]
			bits := 0
			if kind&1 == 0 {
				if len(raw) < 1 {
					break
				}
				bits = int(raw[0])
				raw = raw[1:]
			}
			n := 4
			if kind&2 != 0 {
				n = 16
			}
			if len(raw) < n {
				break
			}
			a, _ := netip.AddrFromSlice(raw[:n])
			raw = raw[n:]
			if kind&1 != 0 {
				if len(in.Dark) < MaxDark {
					in.Dark = append(in.Dark, a.Unmap())
				}
				continue
			}
			p := netip.PrefixFrom(a, bits%(a.BitLen()+1)).Masked()
			if !p.Addr().Is4In6() && len(in.Impaired) < MaxImpaired {
				in.Impaired = append(in.Impaired, p)
			}
		}
		b, trimmed, err := EncodeMeta(in)
		if err != nil {
			if !errors.Is(err, ErrMetaTooLarge) || 4+7*len(in.MACs)+len(node) <= memberlist.MetaMaxSize {
				t.Fatalf("EncodeMeta(%+v): %v", in, err)
			}
			return
		}
		if len(b) > memberlist.MetaMaxSize {
			t.Fatalf("EncodeMeta wrote %d bytes", len(b))
		}
		m, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta(EncodeMeta(%+v) = %x): %v", in, b, err)
		}
		nI, nD := len(m.Impaired), len(m.Dark)
		want := in
		want.Impaired, want.Dark = in.Impaired[:nI], in.Dark[:nD]
		if nI == 0 {
			want.Impaired = nil
		}
		if nD == 0 {
			want.Dark = nil
		}
		if diff := cmp.Diff(want, m, cmpAddr); diff != "" {
			t.Fatalf("published is not a leading part of the input (-want +got):\n%s", diff)
		}
		if trimmed != (nI < len(in.Impaired) || nD < len(in.Dark)) {
			t.Fatalf("trimmed = %v, kept %d of %d and %d of %d", trimmed, nI, len(in.Impaired), nD, len(in.Dark))
		}
		if nI < len(in.Impaired) && nD > 0 {
			t.Fatalf("Impaired cut (%d of %d) while %d Dark kept", nI, len(in.Impaired), nD)
		}
		// Nothing dropped would have fitted.
		header := 0
		if nI+nD == 0 {
			header = 2
		}
		switch {
		case nD < len(in.Dark) && nI == len(in.Impaired):
			if len(b)+header+1+in.Dark[nD].BitLen()/8 <= memberlist.MetaMaxSize {
				t.Fatalf("dark address %d dropped although it fits in %d bytes", nD, len(b))
			}
		case nI < len(in.Impaired):
			if len(b)+header+2+in.Impaired[nI].Addr().BitLen()/8 <= memberlist.MetaMaxSize {
				t.Fatalf("impaired prefix %d dropped although it fits in %d bytes", nI, len(b))
			}
		}
		again, trimmed, err := EncodeMeta(m)
		if err != nil || trimmed || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding the published metadata: %x, trimmed %v, %v; want %x", again, trimmed, err, b)
		}
	})
}
