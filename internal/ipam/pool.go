package ipam

import (
	"cmp"
	"slices"

	"github.com/google/btree"
)

// Pool is a named set of address ranges the allocator hands addresses out of.
type Pool struct {
	Name string
	// Priority orders pools: lower is tried first; 0 means unset and sorts
	// after every set priority; ties are broken by Name.
	Priority int
	// Ranges are the effective ranges in listed order. Overlaps with other
	// pools are expected to be removed by the caller; should any remain, the
	// pool tried first (and, within a pool, the range listed first) keeps
	// the overlapping addresses.
	Ranges []Range
	// AvoidBuggyIPs means never hand out IPv4 addresses ending in .0 or .255.
	AvoidBuggyIPs bool
}

// comparePools orders pools by Priority (0 last), then Name.
func comparePools(a, b *Pool) int {
	if (a.Priority == 0) != (b.Priority == 0) {
		if a.Priority == 0 {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// poolState is a pool as the allocator tracks it.
type poolState struct {
	name   string
	rank   int           // position in allocation order
	ranges []*rangeState // effective, pairwise disjoint, in listed order
}

// hasFamily reports whether the pool has a range of family f.
func (p *poolState) hasFamily(f Family) bool {
	return slices.ContainsFunc(p.ranges, func(rs *rangeState) bool { return rs.fam == f })
}

// firstFree returns the first free address of family f in listed range order.
func (p *poolState) firstFree(f Family) (u128, bool) {
	for _, rs := range p.ranges {
		if rs.fam != f || rs.full() {
			continue
		}
		if v, ok := rs.firstFree(); ok {
			return v, true
		}
	}
	return u128{}, false
}

// interval is a run of addresses [first, last] within one range.
type interval struct{ first, last u128 }

func intervalLess(a, b interval) bool { return a.first.less(b.first) }

// rangeState tracks the taken addresses of one effective pool range as an
// ordered set of merged intervals, so that finding the first free address,
// taking and freeing one are all O(log n) in the number of allocations.
//
// Invariants: every interval starts and ends on a usable taken address; every
// usable address inside an interval is taken; between two consecutive
// intervals lies at least one usable free address. With avoidBuggy, the
// excluded .0/.255 addresses count as taken, so intervals merge across gaps
// made of them only.
type rangeState struct {
	span
	pool       *poolState
	avoidBuggy bool   // IPv4 addresses ending in .0 or .255 are excluded
	capacity   u128   // number of usable addresses, unless whole
	whole      bool   // the range is ::/0, whose capacity 2^128 does not fit
	used       uint64 // number of usable taken addresses
	taken      *btree.BTreeG[interval]
}

func newRangeState(p *poolState, s span, avoidBuggy bool) *rangeState {
	rs := &rangeState{
		span:       s,
		pool:       p,
		avoidBuggy: avoidBuggy && s.fam == IPv4,
		taken:      btree.NewG(8, intervalLess),
	}
	rs.capacity, rs.whole = rs.usableCount()
	return rs
}

// usableCount returns the number of usable addresses, or whole for ::/0.
func (rs *rangeState) usableCount() (u128, bool) {
	if rs.first.isZero() && rs.last == maxU128 {
		return u128{}, true
	}
	n := rs.last.sub(rs.first).addN(1)
	if rs.avoidBuggy {
		below := uint64(0)
		if !rs.first.isZero() {
			below = excludedUpTo(rs.first.subN(1))
		}
		n = n.subN(excludedUpTo(rs.last) - below)
	}
	return n, false
}

// excludedUpTo counts the IPv4 addresses ending in .0 or .255 in [0, v].
func excludedUpTo(v u128) uint64 {
	n := 2*(v.lo>>8) + 1
	if v.lo&0xff == 0xff {
		n++
	}
	return n
}

func (rs *rangeState) contains(v u128) bool {
	return !v.less(rs.first) && !rs.last.less(v)
}

// excluded reports whether v may never be handed out from this range.
func (rs *rangeState) excluded(v u128) bool {
	if !rs.avoidBuggy {
		return false
	}
	b := v.lo & 0xff
	return b == 0 || b == 0xff
}

// nextUsable returns the first usable address at or after v (possibly past
// the range's end).
func (rs *rangeState) nextUsable(v u128) u128 {
	if !rs.avoidBuggy {
		return v
	}
	switch v.lo & 0xff {
	case 0:
		return v.addN(1)
	case 0xff:
		return v.addN(2)
	}
	return v
}

// prevUsable returns the last usable address at or before v. Callers ensure
// a usable address exists there.
func (rs *rangeState) prevUsable(v u128) u128 {
	if !rs.avoidBuggy {
		return v
	}
	switch v.lo & 0xff {
	case 0:
		return v.subN(2)
	case 0xff:
		return v.subN(1)
	}
	return v
}

// onlyExcludedBetween reports whether every address strictly between a and b
// (a < b) is excluded, so that intervals ending at a and starting at b merge.
func (rs *rangeState) onlyExcludedBetween(a, b u128) bool {
	next := a.addN(1)
	return next == b || !rs.nextUsable(next).less(b)
}

func (rs *rangeState) full() bool {
	return !rs.whole && rs.capacity.hi == 0 && rs.capacity.lo == rs.used
}

// firstFree returns the lowest usable address not taken.
func (rs *rangeState) firstFree() (u128, bool) {
	v := rs.nextUsable(rs.first)
	if lowest, ok := rs.taken.Min(); ok && lowest.first == v {
		if lowest.last == rs.last {
			return u128{}, false
		}
		v = rs.nextUsable(lowest.last.addN(1))
	}
	return v, !rs.last.less(v)
}

// around returns the interval starting at or before v and the one starting
// after v.
func (rs *rangeState) around(v u128) (before interval, hasBefore bool, after interval, hasAfter bool) {
	rs.taken.DescendLessOrEqual(interval{first: v}, func(it interval) bool {
		before, hasBefore = it, true
		return false
	})
	rs.taken.AscendGreaterOrEqual(interval{first: v}, func(it interval) bool {
		if it.first == v {
			return true
		}
		after, hasAfter = it, true
		return false
	})
	return before, hasBefore, after, hasAfter
}

// take marks the usable, free address v as taken.
func (rs *rangeState) take(v u128) {
	before, hasBefore, after, hasAfter := rs.around(v)
	merged := interval{first: v, last: v}
	if hasBefore && rs.onlyExcludedBetween(before.last, v) {
		merged.first = before.first
	}
	if hasAfter && rs.onlyExcludedBetween(v, after.first) {
		merged.last = after.last
		rs.taken.Delete(after)
	}
	rs.taken.ReplaceOrInsert(merged)
	rs.used++
}

// free marks the taken address v as free again, splitting its interval.
func (rs *rangeState) free(v u128) {
	it, ok, _, _ := rs.around(v)
	if !ok || it.last.less(v) {
		return
	}
	rs.taken.Delete(it)
	if it.first.less(v) {
		rs.taken.ReplaceOrInsert(interval{first: it.first, last: rs.prevUsable(v.subN(1))})
	}
	if v.less(it.last) {
		rs.taken.ReplaceOrInsert(interval{first: rs.nextUsable(v.addN(1)), last: it.last})
	}
	rs.used--
}
