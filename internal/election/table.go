package election

import (
	"crypto/sha256"
	"slices"
)

// Table caches per-key orders so a change recomputes only what it touches. Not safe for concurrent use: it is
// owned by the speaker's event loop.
//
// Every known node has a slot index, stable until the next SetNodes. An
// order holds slot indices ascending by Score with the first 8 bytes of each
// score, so a node added later is hashed once per key and placed by binary
// search, a removed node is dropped without hashing, and Elect walks the
// cached order to the first eligible node. Callers that track eligibility per
// node can use Index and ElectIndex to avoid looking names up on every step.
type Table struct {
	// slots holds node names by slot index; "" marks a removed node. A live
	// node keeps its slot until compact renumbers the slots.
	slots []string
	// index maps each live node name to its slot.
	index map[string]int32
	// dead counts the "" entries of slots.
	dead int
	// removals counts the SetNodes calls that removed a node; an order whose
	// removals differs may still hold dead slots.
	removals uint64
	// keys holds the cached order of each key.
	keys map[string]*order
	// buf is scratch space for hash input.
	buf []byte
}

// rank is one node in an order: the first 8 bytes of its score, big-endian,
// and its slot.
type rank struct {
	prefix uint64
	slot   int32
}

// order is the cached election order of one key.
type order struct {
	// ranks are ascending by score, then by name.
	ranks []rank
	// seen is the number of slots considered: slots from seen on were
	// added after ranks was last brought up to date.
	seen int
	// removals is the Table's removals when dead slots were last dropped.
	removals uint64
}

// compactMin is the number of dead slots below which slots are never
// compacted.
const compactMin = 64

// NewTable returns an empty Table.
func NewTable() *Table {
	return &Table{index: map[string]int32{}, keys: map[string]*order{}}
}

// SetNodes sets the universe of known node names (members and Nodes).
// Duplicates and empty names are ignored. A new node is hashed lazily, once per
// cached key, on that key's next Elect; a removed node is dropped from every
// order. Slot indices (Index) are valid until the next SetNodes.
func (t *Table) SetNodes(nodes []string) {
	want := make(map[string]struct{}, len(nodes))
	for _, n := range nodes {
		if n != "" {
			want[n] = struct{}{}
		}
	}
	removed := false
	for name, slot := range t.index {
		if _, ok := want[name]; !ok {
			t.slots[slot] = ""
			delete(t.index, name)
			t.dead++
			removed = true
		}
	}
	if removed {
		t.removals++
	}
	for _, n := range nodes {
		if _, ok := want[n]; !ok {
			continue
		}
		if _, ok := t.index[n]; !ok {
			t.index[n] = int32(len(t.slots))
			t.slots = append(t.slots, n)
		}
	}
	if t.dead >= compactMin && t.dead > len(t.slots)/2 {
		t.compact()
	}
}

// compact renumbers the live slots densely, keeping their relative order, and
// rewrites every cached order accordingly.
func (t *Table) compact() {
	remap := make([]int32, len(t.slots))
	// liveBefore[i] is the number of live slots below i.
	liveBefore := make([]int, len(t.slots)+1)
	slots := make([]string, 0, len(t.slots)-t.dead)
	for i, n := range t.slots {
		liveBefore[i] = len(slots)
		if n == "" {
			remap[i] = -1
			continue
		}
		remap[i] = int32(len(slots))
		t.index[n] = int32(len(slots))
		slots = append(slots, n)
	}
	liveBefore[len(t.slots)] = len(slots)
	for _, o := range t.keys {
		kept := o.ranks[:0]
		for _, r := range o.ranks {
			if s := remap[r.slot]; s >= 0 {
				kept = append(kept, rank{prefix: r.prefix, slot: s})
			}
		}
		o.ranks = kept
		o.seen = liveBefore[o.seen]
		o.removals = t.removals
	}
	t.slots = slots
	t.dead = 0
}

// score hashes node and key into the Table's scratch buffer.
func (t *Table) score(node, key string) [32]byte {
	t.buf = appendInput(t.buf[:0], node, key)
	return sha256.Sum256(t.buf)
}

// cmp orders a and b for key: by score prefix, and only when prefixes are
// equal by full score and name.
func (t *Table) cmp(key string, a, b rank) int {
	switch {
	case a.prefix < b.prefix:
		return -1
	case a.prefix > b.prefix:
		return 1
	}
	na, nb := t.slots[a.slot], t.slots[b.slot]
	sa, sb := t.score(na, key), t.score(nb, key)
	return less(&sa, na, &sb, nb)
}

func (t *Table) rankOf(slot int, key string) rank {
	s := t.score(t.slots[slot], key)
	return rank{prefix: prefixOf(&s), slot: int32(slot)}
}

// refresh returns the order of key, brought up to date with the slots,
// computing it on first use.
func (t *Table) refresh(key string) *order {
	o, ok := t.keys[key]
	if !ok {
		o = &order{ranks: make([]rank, 0, len(t.index)), removals: t.removals, seen: len(t.slots)}
		for slot, n := range t.slots {
			if n != "" {
				o.ranks = append(o.ranks, t.rankOf(slot, key))
			}
		}
		slices.SortFunc(o.ranks, func(a, b rank) int { return t.cmp(key, a, b) })
		t.keys[key] = o
		return o
	}
	if o.removals != t.removals {
		o.ranks = slices.DeleteFunc(o.ranks, func(r rank) bool { return t.slots[r.slot] == "" })
		o.removals = t.removals
	}
	for slot := o.seen; slot < len(t.slots); slot++ {
		if t.slots[slot] == "" {
			continue
		}
		r := t.rankOf(slot, key)
		i, _ := slices.BinarySearchFunc(o.ranks, r, func(e, target rank) int { return t.cmp(key, e, target) })
		o.ranks = slices.Insert(o.ranks, i, r)
	}
	o.seen = len(t.slots)
	return o
}

// Elect returns the first node of key's order for which eligible is true, or
// false when there is none. It caches key's order until Forget(key).
// eligible is called only with known nodes, in election order.
func (t *Table) Elect(key string, eligible func(node string) bool) (string, bool) {
	for _, r := range t.refresh(key).ranks {
		if n := t.slots[r.slot]; eligible(n) {
			return n, true
		}
	}
	return "", false
}

// ElectIndex is Elect with eligibility by slot index (see Index), which lets
// a caller keep eligibility in a slice instead of hashing names.
func (t *Table) ElectIndex(key string, eligible func(slot int) bool) (string, bool) {
	for _, r := range t.refresh(key).ranks {
		if eligible(int(r.slot)) {
			return t.slots[r.slot], true
		}
	}
	return "", false
}

// Order returns key's cached order of all known nodes (a new slice),
// computing it on first use like Elect.
func (t *Table) Order(key string) []string {
	ranks := t.refresh(key).ranks
	out := make([]string, len(ranks))
	for i, r := range ranks {
		out[i] = t.slots[r.slot]
	}
	return out
}

// Index returns the slot of a known node: a number below Slots, valid until
// the next SetNodes.
func (t *Table) Index(node string) (int, bool) {
	s, ok := t.index[node]
	return int(s), ok
}

// Node returns the node in slot i, or "" when the slot is free or out of
// range.
func (t *Table) Node(i int) string {
	if i < 0 || i >= len(t.slots) {
		return ""
	}
	return t.slots[i]
}

// Slots is one more than the largest slot index, for sizing a slice indexed
// by slot; valid until the next SetNodes.
func (t *Table) Slots() int { return len(t.slots) }

// Forget drops the cached order of key, which no longer exists.
func (t *Table) Forget(key string) { delete(t.keys, key) }

// Len is the number of cached keys.
func (t *Table) Len() int { return len(t.keys) }
