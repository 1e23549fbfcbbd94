package membership

import (
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version byte that starts every metadata blob this
// package writes. A change to the layout gets a new version; DecodeMeta
// refuses versions it does not know.
const MetaVersion = 1

// MaxNodeNameLen is the longest node name the metadata can carry: the
// Kubernetes limit for a Node's name (a DNS subdomain).
const MaxNodeNameLen = 253

// Metadata layout, version 1 (all lengths are single unsigned bytes):
//
//	+---------+--------+----------+-------+------------------------------+
//	| version | len(N) | N (name) | count | count x (len(M), M (MAC))    |
//	+---------+--------+----------+-------+------------------------------+
//
// A MAC is 6 (EUI-48), 8 (EUI-64) or 20 (IP over InfiniBand) bytes long.
// Nothing may follow the last MAC. The whole blob is at most
// memberlist.MetaMaxSize (512) bytes, which leaves room for 36 EUI-48 MACs
// next to the longest node name.

// ErrMetaTooLarge is returned by EncodeMeta when the MACs do not fit in
// memberlist.MetaMaxSize; the caller should publish fewer MACs.
var ErrMetaTooLarge = errors.New("membership: metadata larger than memberlist.MetaMaxSize")

func validMACLen(n int) bool { return n == 6 || n == 8 || n == 20 }

// EncodeMeta returns the version 1 metadata for a member named node that
// announces from interfaces with the given MACs.
func EncodeMeta(node string, macs []net.HardwareAddr) ([]byte, error) {
	if node == "" {
		return nil, errors.New("membership: encode metadata: empty node name")
	}
	if len(node) > MaxNodeNameLen {
		return nil, fmt.Errorf("membership: encode metadata: node name is %d bytes, limit %d", len(node), MaxNodeNameLen)
	}
	if len(macs) > 255 {
		return nil, fmt.Errorf("%w: %d MACs", ErrMetaTooLarge, len(macs))
	}
	size := 3 + len(node)
	for i, mac := range macs {
		if !validMACLen(len(mac)) {
			return nil, fmt.Errorf("membership: encode metadata: MAC %d is %d bytes, want 6, 8 or 20", i, len(mac))
		}
		size += 1 + len(mac)
	}
	if size > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d MACs need %d bytes, limit %d", ErrMetaTooLarge, len(macs), size, memberlist.MetaMaxSize)
	}
	b := make([]byte, 0, size)
	b = append(b, MetaVersion, byte(len(node)))
	b = append(b, node...)
	b = append(b, byte(len(macs)))
	for _, mac := range macs {
		b = append(b, byte(len(mac)))
		b = append(b, mac...)
	}
	return b, nil
}

// DecodeMeta parses metadata written by EncodeMeta. It accepts exactly what
// EncodeMeta can produce, so decoding and re-encoding gives the same bytes.
func DecodeMeta(b []byte) (node string, macs []net.HardwareAddr, err error) {
	if len(b) > memberlist.MetaMaxSize {
		return "", nil, fmt.Errorf("membership: decode metadata: %d bytes, limit %d", len(b), memberlist.MetaMaxSize)
	}
	if len(b) < 1 {
		return "", nil, errors.New("membership: decode metadata: empty")
	}
	if b[0] != MetaVersion {
		return "", nil, fmt.Errorf("membership: decode metadata: unsupported version %d", b[0])
	}
	b = b[1:]
	if len(b) < 1 {
		return "", nil, errors.New("membership: decode metadata: truncated before node name length")
	}
	n := int(b[0])
	b = b[1:]
	if n == 0 || n > MaxNodeNameLen {
		return "", nil, fmt.Errorf("membership: decode metadata: node name length %d out of range 1..%d", n, MaxNodeNameLen)
	}
	if len(b) < n {
		return "", nil, fmt.Errorf("membership: decode metadata: node name truncated (%d of %d bytes)", len(b), n)
	}
	node = string(b[:n])
	b = b[n:]
	if len(b) < 1 {
		return "", nil, errors.New("membership: decode metadata: truncated before MAC count")
	}
	count := int(b[0])
	b = b[1:]
	if count > 0 {
		macs = make([]net.HardwareAddr, 0, count)
	}
	for i := range count {
		if len(b) < 1 {
			return "", nil, fmt.Errorf("membership: decode metadata: MAC %d of %d missing", i, count)
		}
		l := int(b[0])
		b = b[1:]
		if !validMACLen(l) {
			return "", nil, fmt.Errorf("membership: decode metadata: MAC %d length %d, want 6, 8 or 20", i, l)
		}
		if len(b) < l {
			return "", nil, fmt.Errorf("membership: decode metadata: MAC %d truncated (%d of %d bytes)", i, len(b), l)
		}
		macs = append(macs, net.HardwareAddr(append([]byte(nil), b[:l]...)))
		b = b[l:]
	}
	if len(b) != 0 {
		return "", nil, fmt.Errorf("membership: decode metadata: %d trailing bytes", len(b))
	}
	return node, macs, nil
}
