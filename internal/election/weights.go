package election

import "slices"

// Weights are soft preferences among the nodes of one election, such as L2Advertisement preferredNodeSelectors
// give: a node's score, higher preferred; a node not listed scores 0. Under Weights nodes are ordered by score,
// descending, and nodes of equal score by Score, ascending, which is MetalLB's order for preferredNodeSelectors.
// Nil or empty Weights give the plain election order.
type Weights map[string]int64

// top is the highest score a node can have under w: the largest weight, or 0 when none is larger (unlisted nodes
// score 0).
func (w Weights) top() int64 {
	var top int64
	for _, s := range w {
		top = max(top, s)
	}
	return top
}

// OrderWeighted returns nodes in election order for key under w: a new slice, by weight descending, then by
// Score ascending. Duplicate names are kept, next to each other.
func OrderWeighted(key string, nodes []string, w Weights) []string {
	out := Order(key, nodes)
	if len(w) == 0 {
		return out
	}
	// Order's result is in Score order; a stable sort by weight keeps it within each weight.
	slices.SortStableFunc(out, func(a, b string) int {
		switch wa, wb := w[a], w[b]; {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		}
		return 0
	})
	return out
}

// WinnerWeighted is the first node of OrderWeighted(key, eligible, w), or false when eligible is empty.
func WinnerWeighted(key string, eligible []string, w Weights) (string, bool) {
	if len(w) == 0 {
		return Winner(key, eligible)
	}
	var (
		best      string
		bestScore [32]byte
		bestW     int64
		found     bool
	)
	for _, n := range eligible {
		sc, wn := Score(n, key), w[n]
		if !found || wn > bestW || (wn == bestW && less(&sc, n, &bestScore, best) < 0) {
			best, bestScore, bestW, found = n, sc, wn, true
		}
	}
	return best, found
}

// Ranked is Weights prepared for many elections: its highest weight is found once, not per election.
type Ranked struct {
	w   Weights
	top int64
}

// Ranked prepares w for ElectRanked; it keeps w, which must not change afterwards.
func (w Weights) Ranked() Ranked { return Ranked{w: w, top: w.top()} }

// Weights returns the weights r was prepared from.
func (r Ranked) Weights() Weights { return r.w }

// ElectWeighted is Elect under w: the eligible node with the highest weight, the first in key's order among those
// of equal weight; false when no node is eligible. With no weights it is Elect.
func (t *Table) ElectWeighted(key string, w Weights, eligible func(node string) bool) (string, bool) {
	return t.ElectRanked(key, w.Ranked(), eligible)
}

// ElectRanked is ElectWeighted with weights prepared once for many keys. It walks key's cached order and stops at
// the first eligible node of the highest weight, so eligible may be called for every known node.
func (t *Table) ElectRanked(key string, r Ranked, eligible func(node string) bool) (string, bool) {
	w, top := r.w, r.top
	if len(w) == 0 {
		return t.Elect(key, eligible)
	}
	var (
		best  string
		bestW int64
		found bool
	)
	for _, r := range t.refresh(key).ranks {
		n := t.slots[r.slot]
		if wn := w[n]; (!found || wn > bestW) && eligible(n) {
			best, bestW, found = n, wn, true
			if wn >= top {
				break
			}
		}
	}
	return best, found
}
