package election

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWeightedVectors pins the preferredNodeSelectors order to hash orders computed once from the shell with
// `printf 'node#key' | sha256sum`:
//
//	198.51.100.7: node-d 0428.. < node-a 0fe8.. < node-e 6a2d.. < node-b a41b.. < node-c fe35..
//	2001:db8::7:  node-c 0a61.. < node-d 1bc6.. < node-e 83b5.. < node-b 9225.. < node-a f39f..
func TestWeightedVectors(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	all := func(string) bool { return true }
	not := func(out ...string) func(string) bool {
		return func(n string) bool { return !slices.Contains(out, n) }
	}
	tests := []struct {
		name       string
		key        string
		w          Weights
		eligible   func(string) bool
		wantOrder  []string
		wantWinner string
	}{
		{name: "no weights: the hash order", key: "198.51.100.7", eligible: all,
			wantOrder: []string{"node-d", "node-a", "node-e", "node-b", "node-c"}, wantWinner: "node-d"},
		{name: "one preferred node", key: "198.51.100.7", w: Weights{"node-b": 100}, eligible: all,
			wantOrder: []string{"node-b", "node-d", "node-a", "node-e", "node-c"}, wantWinner: "node-b"},
		{name: "equal weights tie by hash", key: "198.51.100.7", w: Weights{"node-c": 100, "node-b": 100}, eligible: all,
			wantOrder: []string{"node-b", "node-c", "node-d", "node-a", "node-e"}, wantWinner: "node-b"},
		{name: "tiers", key: "198.51.100.7", w: Weights{"node-c": 100, "node-e": 50}, eligible: all,
			wantOrder: []string{"node-c", "node-e", "node-d", "node-a", "node-b"}, wantWinner: "node-c"},
		{name: "summed weights beat one larger", key: "198.51.100.7", w: Weights{"node-a": 110, "node-b": 100}, eligible: all,
			wantOrder: []string{"node-a", "node-b", "node-d", "node-e", "node-c"}, wantWinner: "node-a"},
		{name: "failover to the next preferred", key: "198.51.100.7", w: Weights{"node-c": 100, "node-e": 50}, eligible: not("node-c"),
			wantOrder: []string{"node-c", "node-e", "node-d", "node-a", "node-b"}, wantWinner: "node-e"},
		{name: "no preferred node left: the hash order", key: "198.51.100.7", w: Weights{"node-c": 100, "node-e": 50},
			eligible: not("node-c", "node-e"), wantOrder: []string{"node-c", "node-e", "node-d", "node-a", "node-b"}, wantWinner: "node-d"},
		{name: "ipv6", key: "2001:db8::7", w: Weights{"node-a": 1}, eligible: all,
			wantOrder: []string{"node-a", "node-c", "node-d", "node-e", "node-b"}, wantWinner: "node-a"},
		{name: "ipv6 ties", key: "2001:db8::7", w: Weights{"node-a": 7, "node-b": 7, "node-e": 7}, eligible: not("node-e"),
			wantOrder: []string{"node-e", "node-b", "node-a", "node-c", "node-d"}, wantWinner: "node-b"},
		{name: "a weight for an unknown node changes nothing", key: "198.51.100.7", w: Weights{"node-z": 100}, eligible: all,
			wantOrder: []string{"node-d", "node-a", "node-e", "node-b", "node-c"}, wantWinner: "node-d"},
		{name: "a negative weight puts a node last", key: "198.51.100.7", w: Weights{"node-d": -1}, eligible: all,
			wantOrder: []string{"node-a", "node-e", "node-b", "node-c", "node-d"}, wantWinner: "node-a"},
		{name: "nobody eligible", key: "198.51.100.7", w: Weights{"node-d": 5}, eligible: func(string) bool { return false },
			wantOrder: []string{"node-d", "node-a", "node-e", "node-b", "node-c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.wantOrder, OrderWeighted(tc.key, nodes, tc.w)); diff != "" {
				t.Errorf("OrderWeighted (-want +got):\n%s", diff)
			}
			w, ok := WinnerWeighted(tc.key, filter(nodes, tc.eligible), tc.w)
			if w != tc.wantWinner || ok != (tc.wantWinner != "") {
				t.Errorf("WinnerWeighted = %q, %v; want %q", w, ok, tc.wantWinner)
			}
			tab := NewTable()
			tab.SetNodes(nodes)
			w, ok = tab.ElectWeighted(tc.key, tc.w, tc.eligible)
			if w != tc.wantWinner || ok != (tc.wantWinner != "") {
				t.Errorf("Table.ElectWeighted = %q, %v; want %q", w, ok, tc.wantWinner)
			}
		})
	}
}

// refOrderWeighted is an independent reference: MetalLB's comparison (weight descending, then sha256(node#key)
// ascending) written out with crypto/sha256 and string concatenation.
func refOrderWeighted(key string, nodes []string, w Weights) []string {
	out := slices.Clone(nodes)
	slices.SortStableFunc(out, func(a, b string) int {
		if w[a] != w[b] {
			if w[a] > w[b] {
				return -1
			}
			return 1
		}
		ha, hb := sha256.Sum256([]byte(a+"#"+key)), sha256.Sum256([]byte(b+"#"+key))
		return slices.Compare(ha[:], hb[:])
	})
	return out
}

// TestPropertyWeighted checks, over random universes, weights and eligibility, that OrderWeighted is the
// reference order and that WinnerWeighted and a churned Table's ElectWeighted both pick its first eligible node.
func TestPropertyWeighted(t *testing.T) {
	for _, seed := range propSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed^0x51ed27))
			tab := NewTable()
			for range 200 {
				universe := subset(r, propNodes, 0.5)
				tab.SetNodes(universe)
				w := Weights{}
				for _, n := range subset(r, universe, 0.3) {
					w[n] = []int64{1, 50, 100, 150}[r.IntN(4)]
				}
				eligible := setOf(subset(r, universe, 0.6))
				key := propKeys[r.IntN(len(propKeys))]
				want := refOrderWeighted(key, universe, w)
				if diff := cmp.Diff(want, OrderWeighted(key, universe, w)); diff != "" {
					t.Fatalf("OrderWeighted(%s) (-want +got):\n%s", key, diff)
				}
				first := filter(want, func(n string) bool { return eligible[n] })
				wantWinner := ""
				if len(first) > 0 {
					wantWinner = first[0]
				}
				if got, _ := WinnerWeighted(key, filter(universe, func(n string) bool { return eligible[n] }), w); got != wantWinner {
					t.Fatalf("WinnerWeighted(%s) = %q, want %q (weights %v)", key, got, wantWinner, w)
				}
				if got, _ := tab.ElectWeighted(key, w, func(n string) bool { return eligible[n] }); got != wantWinner {
					t.Fatalf("ElectWeighted(%s) = %q, want %q (weights %v)", key, got, wantWinner, w)
				}
			}
		})
	}
}
