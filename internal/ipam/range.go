package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Range is an inclusive range of addresses of one family.
type Range struct{ First, Last netip.Addr }

// ParseRange parses one pool entry: a CIDR ("198.51.100.0/24"), a range
// "a-b" of one family with a <= b (whitespace around '-' allowed), or a single
// address. IPv4-mapped IPv6 addresses and zones are rejected.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Range{}, fmt.Errorf("empty address range")
	case strings.Contains(s, "/"):
		return parseCIDR(s)
	case strings.Contains(s, "-"):
		return parseDashed(s)
	}
	return parseSingle(s)
}

func parseCIDR(s string) (Range, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Range{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Addr().Is4In6() {
		return Range{}, fmt.Errorf("CIDR %q uses an IPv4-mapped IPv6 address; write it as IPv4", s)
	}
	if masked := p.Masked(); masked != p {
		return Range{}, fmt.Errorf("CIDR %q has host bits set; did you mean %q?", s, masked.String())
	}
	f := FamilyOf(p.Addr())
	first := u128Of(p.Addr())
	last := first.or(lowOnes(f.bitLen() - p.Bits()))
	return Range{First: p.Addr(), Last: last.addr(f)}, nil
}

func parseDashed(s string) (Range, error) {
	start, end, _ := strings.Cut(s, "-")
	if strings.Contains(end, "-") {
		return Range{}, fmt.Errorf("range %q has more than one '-'", s)
	}
	first, err := parseRangeEnd(s, "start", start)
	if err != nil {
		return Range{}, err
	}
	last, err := parseRangeEnd(s, "end", end)
	if err != nil {
		return Range{}, err
	}
	if first.Is4() != last.Is4() {
		return Range{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
	}
	if first.Compare(last) > 0 {
		return Range{}, fmt.Errorf("range %q: start %s is after end %s", s, first, last)
	}
	return Range{First: first, Last: last}, nil
}

// parseRangeEnd parses the start or end (which names it) of the dashed range s.
func parseRangeEnd(s, which, text string) (netip.Addr, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return netip.Addr{}, fmt.Errorf("range %q has no %s address", s, which)
	}
	a, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("range %q: %s %q is not a valid IP address", s, which, text)
	}
	if err := checkPlainAddr(a); err != nil {
		return netip.Addr{}, fmt.Errorf("range %q: %w", s, err)
	}
	return a, nil
}

func parseSingle(s string) (Range, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Range{}, fmt.Errorf("%q is not a valid IP address, CIDR or range", s)
	}
	if err := checkPlainAddr(a); err != nil {
		return Range{}, err
	}
	return Range{First: a, Last: a}, nil
}

// checkPlainAddr rejects addresses with a zone and IPv4-mapped IPv6 addresses.
func checkPlainAddr(a netip.Addr) error {
	if a.Zone() != "" {
		return fmt.Errorf("address %s has a zone, which is not allowed", a)
	}
	if a.Is4In6() {
		return fmt.Errorf("address %s is an IPv4-mapped IPv6 address; write it as %s", a, a.Unmap())
	}
	return nil
}

// Family returns the family of r's addresses.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether a is of r's family and lies between r.First and
// r.Last inclusive. Zones are ignored.
func (r Range) Contains(a netip.Addr) bool {
	s, ok := spanOf(r)
	if !ok || FamilyOf(a) != s.fam {
		return false
	}
	v := u128Of(a)
	return !v.less(s.first) && !s.last.less(v)
}

// Size returns the number of addresses in r, or 0 for an invalid range.
func (r Range) Size() *big.Int {
	s, ok := spanOf(r)
	if !ok {
		return new(big.Int)
	}
	n := s.last.sub(s.first).big()
	return n.Add(n, big.NewInt(1))
}

// String returns r as a single address, as a CIDR when r is exactly one
// prefix, or as "first-last" otherwise. ParseRange(r.String()) == r.
func (r Range) String() string {
	s, ok := spanOf(r)
	if !ok {
		return fmt.Sprintf("invalid range %s-%s", r.First, r.Last)
	}
	if s.first == s.last {
		return r.First.String()
	}
	if bits, ok := s.prefixBits(); ok {
		return netip.PrefixFrom(r.First.WithZone(""), bits).String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Overlaps reports whether r and o share at least one address.
func (r Range) Overlaps(o Range) bool {
	s, ok := spanOf(r)
	t, okO := spanOf(o)
	return ok && okO && s.fam == t.fam && !t.last.less(s.first) && !s.last.less(t.first)
}

// Subtract returns rs minus every range in minus, keeping rs's order; a range
// split in pieces yields them in ascending order. Invalid ranges are dropped.
func Subtract(rs, minus []Range) []Range {
	m := normalizeSpans(minus)
	var out []Range
	for _, r := range rs {
		s, ok := spanOf(r)
		if !ok {
			continue
		}
		cur, covered := s.first, false
		for _, o := range overlapping(m, s) {
			if cur.less(o.first) {
				out = append(out, span{fam: s.fam, first: cur, last: o.first.subN(1)}.rng())
			}
			if !o.last.less(s.last) {
				covered = true
				break
			}
			cur = o.last.addN(1)
		}
		if !covered {
			out = append(out, span{fam: s.fam, first: cur, last: s.last}.rng())
		}
	}
	return out
}

// Intersect returns the parts of rs that lie in some range of others, keeping
// rs's order; pieces of one range come in ascending order. Invalid ranges are
// dropped.
func Intersect(rs, others []Range) []Range {
	m := normalizeSpans(others)
	var out []Range
	for _, r := range rs {
		s, ok := spanOf(r)
		if !ok {
			continue
		}
		for _, o := range overlapping(m, s) {
			piece := span{fam: s.fam, first: maxU(s.first, o.first), last: minU(s.last, o.last)}
			out = append(out, piece.rng())
		}
	}
	return out
}

// span is a valid range in integer form.
type span struct {
	fam         Family
	first, last u128
}

// spanOf converts r; ok is false when r's ends are invalid, of different
// families, or out of order.
func spanOf(r Range) (span, bool) {
	f := FamilyOf(r.First)
	if f == 0 || FamilyOf(r.Last) != f {
		return span{}, false
	}
	s := span{fam: f, first: u128Of(r.First), last: u128Of(r.Last)}
	return s, !s.last.less(s.first)
}

func (s span) rng() Range { return Range{First: s.first.addr(s.fam), Last: s.last.addr(s.fam)} }

// prefixBits returns the prefix length when s is exactly one CIDR prefix.
func (s span) prefixBits() (int, bool) {
	hostMask := s.last.sub(s.first)
	if !hostMask.and(hostMask.addN(1)).isZero() || !s.first.and(hostMask).isZero() {
		return 0, false
	}
	return s.fam.bitLen() - hostMask.onesCount(), true
}

func spanLess(a, b span) bool {
	return a.fam < b.fam || (a.fam == b.fam && a.first.less(b.first))
}

// normalizeSpans returns the valid ranges of rs sorted by family and start,
// with overlapping and adjacent ranges merged.
func normalizeSpans(rs []Range) []span {
	spans := make([]span, 0, len(rs))
	for _, r := range rs {
		if s, ok := spanOf(r); ok {
			spans = append(spans, s)
		}
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.fam != b.fam {
			return int(a.fam) - int(b.fam)
		}
		return a.first.cmp(b.first)
	})
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 && touches(merged[n-1], s) {
			merged[n-1].last = maxU(merged[n-1].last, s.last)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// touches reports whether b, which starts no earlier than a, overlaps a or
// begins right after it.
func touches(a, b span) bool {
	if a.fam != b.fam {
		return false
	}
	return !a.last.less(b.first) || a.last.addN(1) == b.first
}

// overlapping returns the spans of the sorted, disjoint m that overlap s.
func overlapping(m []span, s span) []span {
	i := sort.Search(len(m), func(i int) bool {
		return m[i].fam > s.fam || (m[i].fam == s.fam && !m[i].last.less(s.first))
	})
	j := i
	for j < len(m) && m[j].fam == s.fam && !s.last.less(m[j].first) {
		j++
	}
	return m[i:j]
}

func maxU(a, b u128) u128 {
	if a.less(b) {
		return b
	}
	return a
}

func minU(a, b u128) u128 {
	if a.less(b) {
		return a
	}
	return b
}
