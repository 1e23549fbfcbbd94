// Package election picks, for each virtual IP, the one node that announces it: eligible nodes are ordered by
// sha256(node + "#" + key) ascending, which is MetalLB's layer-2 order, and the first one wins; under Weights (soft
// preferences) by weight first.
package election

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
)

// Separator joins the node name and the key before hashing. MetalLB uses the
// same one, so a cluster migrating from it keeps every address where it is.
const Separator = "#"

// Key is the announcement key of addr: its canonical text (RFC 5952 for IPv6),
// with IPv4-mapped IPv6 addresses written as IPv4, as net.IP.String does.
// For a dual-stack Service the key is the first address of its status.
func Key(addr netip.Addr) string {
	return addr.Unmap().String()
}

// Score is sha256(node + "#" + key). Nodes are ordered for key by Score,
// compared as bytes, ascending.
func Score(node, key string) [32]byte {
	buf := make([]byte, 0, len(node)+len(Separator)+len(key))
	return sha256.Sum256(appendInput(buf, node, key))
}

func appendInput(buf []byte, node, key string) []byte {
	buf = append(buf, node...)
	buf = append(buf, Separator...)
	return append(buf, key...)
}

// less reports whether a (score sa) comes before b (score sb): by score, then
// by name, which only matters for identical names.
func less(sa *[32]byte, a string, sb *[32]byte, b string) int {
	if c := bytes.Compare(sa[:], sb[:]); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// Order returns nodes in election order for key: a new slice, ascending by
// Score. Duplicate names are kept, next to each other.
func Order(key string, nodes []string) []string {
	type scored struct {
		score [32]byte
		name  string
	}
	s := make([]scored, len(nodes))
	for i, n := range nodes {
		s[i] = scored{score: Score(n, key), name: n}
	}
	slices.SortFunc(s, func(a, b scored) int { return less(&a.score, a.name, &b.score, b.name) })
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].name
	}
	return out
}

// Winner is the first node of Order(key, eligible), or false when eligible is
// empty.
func Winner(key string, eligible []string) (string, bool) {
	var (
		best      string
		bestScore [32]byte
		found     bool
	)
	for _, n := range eligible {
		sc := Score(n, key)
		if !found || less(&sc, n, &bestScore, best) < 0 {
			best, bestScore, found = n, sc, true
		}
	}
	return best, found
}

// prefixOf is the first 8 bytes of a score as a big-endian number, so that
// comparing prefixes as numbers compares scores as bytes.
func prefixOf(s *[32]byte) uint64 {
	return binary.BigEndian.Uint64(s[:8])
}
