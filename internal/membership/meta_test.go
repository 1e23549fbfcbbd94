package membership

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
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
			got, err := EncodeMeta(tc.node, tc.macs)
			if err != nil {
				t.Fatalf("EncodeMeta: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("EncodeMeta bytes (-want +got):\n%s", diff)
			}
			node, gotMACs, err := DecodeMeta(want)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if diff := cmp.Diff(tc.node, node); diff != "" {
				t.Errorf("node (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.macs, gotMACs); diff != "" {
				t.Errorf("MACs (-want +got):\n%s", diff)
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
			b, err := EncodeMeta(tc.node, tc.macs)
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
				node, got, err := DecodeMeta(b)
				if err != nil {
					t.Fatalf("DecodeMeta: %v", err)
				}
				if node != tc.node {
					t.Errorf("node = %q", node)
				}
				if diff := cmp.Diff(tc.macs, got); diff != "" {
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
		{"version 2", unhex(t, "02 01 6e 00"), "unsupported version 2"},
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
			node, got, err := DecodeMeta(tc.wire)
			if err == nil {
				t.Fatalf("DecodeMeta = %q, %v, nil; want an error", node, got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeMetaDoesNotAlias(t *testing.T) {
	b := unhex(t, "01 01 6e 01 06 02005e005301")
	_, got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	b[6] = 0xff
	if diff := cmp.Diff(mustMAC(t, "02:00:5e:00:53:01"), got[0]); diff != "" {
		t.Errorf("decoded MAC changed with the input buffer (-want +got):\n%s", diff)
	}
}

// FuzzDecodeMeta checks that DecodeMeta never panics and that whatever it
// accepts re-encodes to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	for _, s := range []string{
		"01 06 6e6f64652d61 02 06 02005e005301 06 02005e005302",
		"01 01 6e 00",
		"01 02 6962 02 08 02005e1000000001 14 00000000fe8000000000000002005e1000000001",
		"01 01 6e 01 07 01020304050607",
		"02",
		"",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		node, macs, err := DecodeMeta(b)
		if err != nil {
			return
		}
		again, err := EncodeMeta(node, macs)
		if err != nil {
			t.Fatalf("DecodeMeta accepted %x but EncodeMeta(%q, %v) fails: %v", b, node, macs, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n in  %x\n out %x", b, again)
		}
	})
}
