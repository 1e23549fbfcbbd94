package election

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var propSeeds = []uint64{1, 2, 3, 42, 1009}

func propNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

var (
	propNodes = propNames("node-", 40)
	propKeys  = func() []string {
		var out []string
		for i := range 15 {
			out = append(out, fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("2001:db8::%x", i))
		}
		return out
	}()
)

// subset returns each of names with probability p, in random order.
func subset(r *rand.Rand, names []string, p float64) []string {
	var out []string
	for _, n := range names {
		if r.Float64() < p {
			out = append(out, n)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func filter(names []string, keep func(string) bool) []string {
	var out []string
	for _, n := range names {
		if keep(n) {
			out = append(out, n)
		}
	}
	return out
}

func setOf(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// TestPropertyElectMatchesWinner runs random sequences of SetNodes, Forget
// and Elect/ElectIndex and checks every election against Winner on the
// eligible part of the current universe. The churn is enough to compact slots.
func TestPropertyElectMatchesWinner(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			tab := NewTable()
			var universe []string
			compactions, prevSlots := 0, 0
			for op := range 3000 {
				switch x := r.IntN(100); {
				case x < 15:
					universe = subset(r, propNodes, r.Float64())
					tab.SetNodes(universe)
					if tab.Slots() < prevSlots {
						compactions++
					}
					prevSlots = tab.Slots()
				case x < 25:
					tab.Forget(propKeys[r.IntN(len(propKeys))])
				default:
					key := propKeys[r.IntN(len(propKeys))]
					elig := setOf(subset(r, propNodes, r.Float64()))
					want, wantOK := Winner(key, filter(universe, func(n string) bool { return elig[n] }))
					var got string
					var ok bool
					if x < 60 {
						got, ok = tab.Elect(key, func(n string) bool { return elig[n] })
					} else {
						byIndex := make([]bool, tab.Slots())
						for n := range elig {
							if i, found := tab.Index(n); found {
								byIndex[i] = true
							}
						}
						got, ok = tab.ElectIndex(key, func(i int) bool { return byIndex[i] })
					}
					if diff := cmp.Diff(result{want, wantOK}, result{got, ok}); diff != "" {
						t.Fatalf("op %d: Elect(%s) (-want +got):\n%s", op, key, diff)
					}
					if diff := cmp.Diff(Order(key, universe), tab.Order(key), cmpSortedIfEmpty); diff != "" {
						t.Fatalf("op %d: Order(%s) (-want +got):\n%s", op, key, diff)
					}
				}
			}
			if compactions == 0 {
				t.Errorf("no compaction in 3000 operations; the test does not cover it")
			}
		})
	}
}

// cmpSortedIfEmpty treats nil and empty slices alike.
var cmpSortedIfEmpty = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })

// TestPropertyIndependentTables feeds the same final universe to tables with
// different histories and orders of input and requires identical winners.
func TestPropertyIndependentTables(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			universe := subset(r, propNodes, 0.6)
			elig := map[string]map[string]bool{}
			for _, k := range propKeys {
				elig[k] = setOf(subset(r, universe, 0.5))
			}
			winners := func(tab *Table, keys []string) map[string]result {
				out := map[string]result{}
				for _, k := range keys {
					w, ok := tab.Elect(k, func(n string) bool { return elig[k][n] })
					out[k] = result{w, ok}
				}
				return out
			}

			// Reference: straight to the final universe.
			ref := NewTable()
			ref.SetNodes(universe)
			want := winners(ref, propKeys)

			// Random history, then the final universe shuffled; keys reversed.
			hist := NewTable()
			for range 30 {
				hist.SetNodes(subset(r, propNodes, r.Float64()))
				for _, k := range subset(r, propKeys, 0.3) {
					hist.Elect(k, all)
				}
			}
			shuffled := slices.Clone(universe)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			hist.SetNodes(shuffled)
			reversed := slices.Clone(propKeys)
			slices.Reverse(reversed)

			// One node at a time, electing every key in between.
			grow := NewTable()
			for i := range shuffled {
				grow.SetNodes(shuffled[:i+1])
				winners(grow, propKeys)
			}

			for name, got := range map[string]map[string]result{
				"history": winners(hist, reversed),
				"grown":   winners(grow, propKeys),
				"stateless": func() map[string]result {
					out := map[string]result{}
					for _, k := range propKeys {
						w, ok := Winner(k, filter(universe, func(n string) bool { return elig[k][n] }))
						out[k] = result{w, ok}
					}
					return out
				}(),
			} {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: winners (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}

// TestPropertyExactlyOneWinner simulates a cluster: each node owns a Table
// fed the universe in its own order and announces a key when it wins it.
// Every key must be announced by exactly one node when any is eligible, and
// by none otherwise.
func TestPropertyExactlyOneWinner(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			universe := subset(r, propNodes, 0.5)
			tables := map[string]*Table{}
			for _, n := range universe {
				tab := NewTable()
				order := slices.Clone(universe)
				r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				tab.SetNodes(order)
				tables[n] = tab
			}
			for _, k := range propKeys {
				elig := setOf(subset(r, universe, []float64{0, 0.1, 0.5, 1}[r.IntN(4)]))
				var announcers []string
				for _, n := range slices.Sorted(maps.Keys(tables)) {
					if w, ok := tables[n].Elect(k, func(x string) bool { return elig[x] }); ok && w == n {
						announcers = append(announcers, n)
					}
				}
				want := 1
				if len(elig) == 0 {
					want = 0
				}
				if len(announcers) != want {
					t.Errorf("key %s with %d eligible: announcers %v, want exactly %d", k, len(elig), announcers, want)
				}
			}
		})
	}
}

// TestPropertyMinimalDisruption removes and adds single nodes on a warm table:
// removing a node that does not win a key never changes that key's winner,
// and adding a node changes a key's winner only to the added node.
func TestPropertyMinimalDisruption(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 13))
			universe := subset(r, propNodes, 0.5)
			elig := map[string]map[string]bool{}
			for _, k := range propKeys {
				elig[k] = setOf(subset(r, propNodes, 0.7))
			}
			tab := NewTable()
			tab.SetNodes(universe)
			winners := func() map[string]string {
				out := map[string]string{}
				for _, k := range propKeys {
					w, _ := tab.Elect(k, func(n string) bool { return elig[k][n] })
					out[k] = w
				}
				return out
			}
			before := winners()
			for range 40 {
				if r.IntN(2) == 0 && len(universe) > 1 {
					i := r.IntN(len(universe))
					gone := universe[i]
					universe = slices.Delete(slices.Clone(universe), i, i+1)
					tab.SetNodes(universe)
					after := winners()
					for _, k := range propKeys {
						if before[k] != gone && after[k] != before[k] {
							t.Fatalf("removing %s (not the winner of %s) moved it from %q to %q", gone, k, before[k], after[k])
						}
					}
					before = after
					continue
				}
				missing := filter(propNodes, func(n string) bool { return !slices.Contains(universe, n) })
				if len(missing) == 0 {
					continue
				}
				added := missing[r.IntN(len(missing))]
				universe = append(slices.Clone(universe), added)
				tab.SetNodes(universe)
				after := winners()
				for _, k := range propKeys {
					if after[k] != before[k] && after[k] != added {
						t.Fatalf("adding %s moved %s from %q to %q", added, k, before[k], after[k])
					}
				}
				before = after
			}
		})
	}
}
