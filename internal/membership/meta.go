package membership

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// Metadata versions: the version byte that starts every metadata blob. A
// change to the layout gets a new version; DecodeMeta refuses versions it
// does not know.
const (
	// MetaVersion1 carries the node name and the MACs.
	MetaVersion1 = 1
	// MetaVersion2 adds the health state: Impaired prefixes and Dark
	// addresses.
	MetaVersion2 = 2
	// MetaVersion is the newest version this package reads and writes.
	MetaVersion = MetaVersion2
)

// MaxNodeNameLen is the longest node name the metadata can carry: the
// Kubernetes limit for a Node's name (a DNS subdomain).
const MaxNodeNameLen = 253

// MaxImpaired and MaxDark are the most Impaired prefixes and Dark addresses
// a member publishes.
const (
	MaxImpaired = 8
	MaxDark     = 8
)

// Metadata layout, version 1 (all lengths and counts are single unsigned
// bytes):
//
//	+---------+--------+----------+-------+------------------------------+
//	| version | len(N) | N (name) | count | count x (len(M), M (MAC))    |
//	+---------+--------+----------+-------+------------------------------+
//
// A MAC is 6 (EUI-48), 8 (EUI-64) or 20 (IP over InfiniBand) bytes long.
// Nothing may follow the last MAC.
//
// Version 2 is version 1 (with version byte 2) followed by the health state:
//
//	+-------+-------------------------------+-------+-----------------------+
//	| count | count x (len(A), bits, A)     | count | count x (len(A), A)   |
//	+-------+-------------------------------+-------+-----------------------+
//	  Impaired prefixes (A/bits)              Dark addresses
//
// len(A) is 4 (IPv4) or 16 (IPv6): it gives the address family. A is the
// address in network byte order; for a prefix, bits is its length (at most
// 8*len(A)) and every bit of A past the first bits is zero (the prefix is
// masked). An IPv6 A is never IPv4-mapped (::ffff:a.b.c.d): such values are
// written, and only accepted, as IPv4. Addresses carry no zone. Each list
// has at most 8 entries, in the writer's order, and nothing may follow the
// last address. A prefix takes 6 or 18 bytes, an address 5 or 17.
//
// EncodeMeta writes version 1 when both lists are empty and version 2
// otherwise, so a member with no health state to report stays readable by
// speakers that only know version 1 during a rolling upgrade (they see
// version 2 as unusable metadata: such a member's MACs are unknown to them).
// For the same reason DecodeMeta refuses version 2 with two empty lists:
// every metadata has exactly one encoding, and decoding then re-encoding
// gives back the same bytes.
//
// The whole blob is at most memberlist.MetaMaxSize (512) bytes, which leaves
// room for 36 EUI-48 MACs next to the longest node name. The MACs always
// fit or EncodeMeta fails; health state that does not fit next to them is
// trimmed (see EncodeMeta).

// ErrMetaTooLarge is returned by EncodeMeta when the MACs do not fit in
// memberlist.MetaMaxSize; the caller should publish fewer MACs.
var ErrMetaTooLarge = errors.New("membership: metadata larger than memberlist.MetaMaxSize")

// Meta is what a member publishes in its memberlist metadata.
type Meta struct {
	// Node is the member's name.
	Node string
	// MACs are the MACs of the interfaces the member may announce from.
	MACs []net.HardwareAddr
	// Impaired are the prefixes the member has withdrawn from: it found it
	// cannot answer there (a dead NIC, say). At most MaxImpaired, masked.
	Impaired []netip.Prefix
	// Dark are the load-balancer addresses the member, as a health
	// watcher, finds unanswered. At most MaxDark.
	Dark []netip.Addr
}

func validMACLen(n int) bool { return n == 6 || n == 8 || n == 20 }

// checkPrefix says why p cannot be published as an Impaired prefix.
func checkPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return errors.New("invalid prefix")
	case p.Addr().Is4In6():
		return fmt.Errorf("%s is an IPv4-mapped IPv6 prefix; use the IPv4 prefix", p)
	case p != p.Masked():
		return fmt.Errorf("%s has host bits set; want %s", p, p.Masked())
	}
	return nil
}

// checkAddr says why a cannot be published as a Dark address.
func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("invalid address")
	case a.Zone() != "":
		return fmt.Errorf("%s has a zone", a)
	case a.Is4In6():
		return fmt.Errorf("%s is an IPv4-mapped IPv6 address; use %s", a, a.Unmap())
	}
	return nil
}

// healthSize is the number of bytes the version 2 part takes for these
// lists: none when both are empty (the metadata is then version 1).
func healthSize(impaired []netip.Prefix, dark []netip.Addr) int {
	if len(impaired) == 0 && len(dark) == 0 {
		return 0
	}
	n := 2
	for _, p := range impaired {
		n += 2 + p.Addr().BitLen()/8
	}
	for _, a := range dark {
		n += 1 + a.BitLen()/8
	}
	return n
}

// EncodeMeta returns the metadata for m: version 1 when m has no Impaired
// prefix and no Dark address, version 2 otherwise.
//
// The result never exceeds memberlist.MetaMaxSize. When the MACs alone do
// not fit, EncodeMeta fails with ErrMetaTooLarge. When they fit but the
// health state does not, it drops Dark addresses from the end of the list,
// then (all Dark addresses gone) Impaired prefixes from the end, until the
// rest fits, and reports trimmed: the blob then holds leading parts of the
// lists. Any error means no metadata.
func EncodeMeta(m Meta) (b []byte, trimmed bool, err error) {
	b, nImpaired, nDark, err := encodeMeta(m)
	if err != nil {
		return nil, false, err
	}
	return b, nImpaired < len(m.Impaired) || nDark < len(m.Dark), nil
}

// encodeMeta is EncodeMeta; it also returns how many Impaired prefixes and
// Dark addresses the blob holds.
func encodeMeta(m Meta) (b []byte, nImpaired, nDark int, err error) {
	switch {
	case m.Node == "":
		return nil, 0, 0, errors.New("membership: encode metadata: empty node name")
	case len(m.Node) > MaxNodeNameLen:
		return nil, 0, 0, fmt.Errorf("membership: encode metadata: node name is %d bytes, limit %d", len(m.Node), MaxNodeNameLen)
	case len(m.MACs) > 255:
		return nil, 0, 0, fmt.Errorf("%w: %d MACs", ErrMetaTooLarge, len(m.MACs))
	case len(m.Impaired) > MaxImpaired:
		return nil, 0, 0, fmt.Errorf("membership: encode metadata: %d impaired prefixes, limit %d", len(m.Impaired), MaxImpaired)
	case len(m.Dark) > MaxDark:
		return nil, 0, 0, fmt.Errorf("membership: encode metadata: %d dark addresses, limit %d", len(m.Dark), MaxDark)
	}
	size := 3 + len(m.Node)
	for i, mac := range m.MACs {
		if !validMACLen(len(mac)) {
			return nil, 0, 0, fmt.Errorf("membership: encode metadata: MAC %d is %d bytes, want 6, 8 or 20", i, len(mac))
		}
		size += 1 + len(mac)
	}
	if size > memberlist.MetaMaxSize {
		return nil, 0, 0, fmt.Errorf("%w: %d MACs need %d bytes, limit %d", ErrMetaTooLarge, len(m.MACs), size, memberlist.MetaMaxSize)
	}
	for i, p := range m.Impaired {
		if err := checkPrefix(p); err != nil {
			return nil, 0, 0, fmt.Errorf("membership: encode metadata: impaired prefix %d: %w", i, err)
		}
	}
	for i, a := range m.Dark {
		if err := checkAddr(a); err != nil {
			return nil, 0, 0, fmt.Errorf("membership: encode metadata: dark address %d: %w", i, err)
		}
	}
	nImpaired, nDark = len(m.Impaired), len(m.Dark)
	for nDark > 0 && size+healthSize(m.Impaired[:nImpaired], m.Dark[:nDark]) > memberlist.MetaMaxSize {
		nDark--
	}
	for nImpaired > 0 && size+healthSize(m.Impaired[:nImpaired], m.Dark[:nDark]) > memberlist.MetaMaxSize {
		nImpaired--
	}
	impaired, dark := m.Impaired[:nImpaired], m.Dark[:nDark]
	size += healthSize(impaired, dark)

	version := byte(MetaVersion1)
	if nImpaired > 0 || nDark > 0 {
		version = MetaVersion2
	}
	b = make([]byte, 0, size)
	b = append(b, version, byte(len(m.Node)))
	b = append(b, m.Node...)
	b = append(b, byte(len(m.MACs)))
	for _, mac := range m.MACs {
		b = append(b, byte(len(mac)))
		b = append(b, mac...)
	}
	if version == MetaVersion2 {
		b = append(b, byte(len(impaired)))
		for _, p := range impaired {
			a := p.Addr().AsSlice()
			b = append(b, byte(len(a)), byte(p.Bits()))
			b = append(b, a...)
		}
		b = append(b, byte(len(dark)))
		for _, d := range dark {
			a := d.AsSlice()
			b = append(b, byte(len(a)))
			b = append(b, a...)
		}
	}
	return b, nImpaired, nDark, nil
}

// DecodeMeta parses metadata of version 1 or 2. It accepts exactly what
// EncodeMeta can produce, so decoding and re-encoding gives the same bytes.
// Empty lists decode as nil; version 1 has no Impaired and no Dark.
func DecodeMeta(b []byte) (Meta, error) {
	fail := func(format string, args ...any) (Meta, error) {
		return Meta{}, fmt.Errorf("membership: decode metadata: "+format, args...)
	}
	if len(b) > memberlist.MetaMaxSize {
		return fail("%d bytes, limit %d", len(b), memberlist.MetaMaxSize)
	}
	if len(b) < 1 {
		return fail("empty")
	}
	version := b[0]
	if version != MetaVersion1 && version != MetaVersion2 {
		return fail("unsupported version %d", version)
	}
	b = b[1:]
	if len(b) < 1 {
		return fail("truncated before node name length")
	}
	n := int(b[0])
	b = b[1:]
	if n == 0 || n > MaxNodeNameLen {
		return fail("node name length %d out of range 1..%d", n, MaxNodeNameLen)
	}
	if len(b) < n {
		return fail("node name truncated (%d of %d bytes)", len(b), n)
	}
	var m Meta
	m.Node = string(b[:n])
	b = b[n:]
	if len(b) < 1 {
		return fail("truncated before MAC count")
	}
	count := int(b[0])
	b = b[1:]
	if count > 0 {
		m.MACs = make([]net.HardwareAddr, 0, count)
	}
	for i := range count {
		if len(b) < 1 {
			return fail("MAC %d of %d missing", i, count)
		}
		l := int(b[0])
		b = b[1:]
		if !validMACLen(l) {
			return fail("MAC %d length %d, want 6, 8 or 20", i, l)
		}
		if len(b) < l {
			return fail("MAC %d truncated (%d of %d bytes)", i, len(b), l)
		}
		m.MACs = append(m.MACs, net.HardwareAddr(append([]byte(nil), b[:l]...)))
		b = b[l:]
	}
	if version == MetaVersion2 {
		var err error
		if m.Impaired, b, err = decodePrefixes(b); err != nil {
			return fail("%w", err)
		}
		if m.Dark, b, err = decodeAddrs(b); err != nil {
			return fail("%w", err)
		}
		if len(m.Impaired) == 0 && len(m.Dark) == 0 {
			return fail("version 2 without impaired prefixes or dark addresses (that is written as version 1)")
		}
	}
	if len(b) != 0 {
		return fail("%d trailing bytes", len(b))
	}
	return m, nil
}

// decodeAddrBytes reads len(A) and A, with bits in between when prefix is
// set, and returns the address and the rest of b.
func decodeAddrBytes(b []byte, what string, i, count int, prefix bool) (a netip.Addr, bits int, rest []byte, err error) {
	if len(b) < 1 {
		return a, 0, nil, fmt.Errorf("%s %d of %d missing", what, i, count)
	}
	l := int(b[0])
	b = b[1:]
	if l != 4 && l != 16 {
		return a, 0, nil, fmt.Errorf("%s %d address length %d, want 4 or 16", what, i, l)
	}
	need := l
	if prefix {
		need++
	}
	if len(b) < need {
		return a, 0, nil, fmt.Errorf("%s %d truncated (%d of %d bytes)", what, i, len(b), need)
	}
	if prefix {
		bits = int(b[0])
		b = b[1:]
		if bits > 8*l {
			return a, 0, nil, fmt.Errorf("%s %d length /%d, limit /%d", what, i, bits, 8*l)
		}
	}
	a, _ = netip.AddrFromSlice(b[:l])
	if a.Is4In6() {
		return a, 0, nil, fmt.Errorf("%s %d: %s is IPv4-mapped IPv6, must be written as IPv4", what, i, a)
	}
	return a, bits, b[l:], nil
}

// decodePrefixes reads the Impaired count and prefixes.
func decodePrefixes(b []byte) ([]netip.Prefix, []byte, error) {
	if len(b) < 1 {
		return nil, nil, errors.New("truncated before impaired prefix count")
	}
	count := int(b[0])
	b = b[1:]
	if count > MaxImpaired {
		return nil, nil, fmt.Errorf("%d impaired prefixes, limit %d", count, MaxImpaired)
	}
	var out []netip.Prefix
	for i := range count {
		a, bits, rest, err := decodeAddrBytes(b, "impaired prefix", i, count, true)
		if err != nil {
			return nil, nil, err
		}
		p := netip.PrefixFrom(a, bits)
		if p != p.Masked() {
			return nil, nil, fmt.Errorf("impaired prefix %d: %s has host bits set", i, p)
		}
		out = append(out, p)
		b = rest
	}
	return out, b, nil
}

// decodeAddrs reads the Dark count and addresses.
func decodeAddrs(b []byte) ([]netip.Addr, []byte, error) {
	if len(b) < 1 {
		return nil, nil, errors.New("truncated before dark address count")
	}
	count := int(b[0])
	b = b[1:]
	if count > MaxDark {
		return nil, nil, fmt.Errorf("%d dark addresses, limit %d", count, MaxDark)
	}
	var out []netip.Addr
	for i := range count {
		a, _, rest, err := decodeAddrBytes(b, "dark address", i, count, false)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, a)
		b = rest
	}
	return out, b, nil
}
