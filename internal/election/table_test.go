package election

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func all(string) bool { return true }

func except(names ...string) func(string) bool {
	return func(n string) bool { return !slices.Contains(names, n) }
}

type result struct {
	Winner string
	OK     bool
}

func TestTableElect(t *testing.T) {
	abc := []string{"node-a", "node-b", "node-c"}
	tests := []struct {
		name     string
		sets     [][]string // SetNodes calls, in order
		key      string
		eligible func(string) bool
		want     result
	}{
		{name: "all eligible", sets: [][]string{abc}, key: "198.51.100.10", eligible: all, want: result{"node-a", true}},
		{name: "winner not eligible", sets: [][]string{abc}, key: "198.51.100.10", eligible: except("node-a"), want: result{"node-b", true}},
		{name: "none eligible", sets: [][]string{abc}, key: "198.51.100.10", eligible: except(abc...), want: result{"", false}},
		{name: "no nodes", key: "198.51.100.10", eligible: all, want: result{"", false}},
		{name: "winner removed", sets: [][]string{abc, {"node-b", "node-c"}}, key: "198.51.100.10", eligible: all, want: result{"node-b", true}},
		{name: "winner re-added", sets: [][]string{abc, {"node-b", "node-c"}, abc}, key: "198.51.100.10", eligible: all, want: result{"node-a", true}},
		{name: "duplicates and empty names ignored", sets: [][]string{{"node-c", "", "node-b", "node-c", "node-a"}}, key: "2001:db8::10", eligible: all, want: result{"node-b", true}},
		{name: "eligible but unknown node is not considered", sets: [][]string{{"node-c"}}, key: "198.51.100.10", eligible: all, want: result{"node-c", true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable()
			for _, s := range tc.sets {
				tab.SetNodes(s)
			}
			w, ok := tab.Elect(tc.key, tc.eligible)
			if diff := cmp.Diff(tc.want, result{w, ok}); diff != "" {
				t.Errorf("Elect (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTableIncremental elects once, changes the nodes, and elects again, so
// the second Elect works on a cached order.
func TestTableIncremental(t *testing.T) {
	key := "198.51.100.10"
	tab := NewTable()
	tab.SetNodes([]string{"node-b", "node-c"})
	if diff := cmp.Diff([]string{"node-b", "node-c"}, tab.Order(key)); diff != "" {
		t.Fatalf("Order (-want +got):\n%s", diff)
	}
	tab.SetNodes([]string{"node-c", "node-b", "node-a", "worker-1"})
	want := []string{"worker-1", "node-a", "node-b", "node-c"}
	if diff := cmp.Diff(want, tab.Order(key)); diff != "" {
		t.Errorf("Order after adding (-want +got):\n%s", diff)
	}
	tab.SetNodes([]string{"node-c", "worker-1"})
	if diff := cmp.Diff([]string{"worker-1", "node-c"}, tab.Order(key)); diff != "" {
		t.Errorf("Order after removing (-want +got):\n%s", diff)
	}
}

func TestTableIndex(t *testing.T) {
	tab := NewTable()
	tab.SetNodes([]string{"node-a", "node-b", "node-c"})
	elig := make([]bool, tab.Slots())
	for _, n := range []string{"node-b", "node-c"} {
		i, ok := tab.Index(n)
		if !ok {
			t.Fatalf("Index(%q) not found", n)
		}
		if got := tab.Node(i); got != n {
			t.Fatalf("Node(Index(%q)) = %q", n, got)
		}
		elig[i] = true
	}
	w, ok := tab.ElectIndex("198.51.100.10", func(i int) bool { return elig[i] })
	if diff := cmp.Diff(result{"node-b", true}, result{w, ok}); diff != "" {
		t.Errorf("ElectIndex (-want +got):\n%s", diff)
	}
	if _, ok := tab.Index("missing"); ok {
		t.Errorf("Index(missing) found")
	}
	for _, i := range []int{-1, tab.Slots()} {
		if got := tab.Node(i); got != "" {
			t.Errorf("Node(%d) = %q, want empty", i, got)
		}
	}
}

func TestTableForgetAndLen(t *testing.T) {
	tab := NewTable()
	tab.SetNodes([]string{"node-a", "node-b"})
	for _, k := range []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"} {
		tab.Elect(k, all)
	}
	tab.Elect("198.51.100.1", all) // cached, not counted twice
	if got := tab.Len(); got != 3 {
		t.Errorf("Len = %d, want 3", got)
	}
	tab.Forget("198.51.100.2")
	tab.Forget("198.51.100.99") // unknown: no-op
	if got := tab.Len(); got != 2 {
		t.Errorf("Len after Forget = %d, want 2", got)
	}
	tab.SetNodes(nil)
	if got := tab.Len(); got != 2 {
		t.Errorf("Len after SetNodes(nil) = %d, want 2 (keys stay until forgotten)", got)
	}
	if w, ok := tab.Elect("198.51.100.1", all); ok {
		t.Errorf("Elect with no nodes = %q, want none", w)
	}
}

// TestTableCompaction churns nodes until the slots are compacted and checks
// that cached orders and indices survive it.
func TestTableCompaction(t *testing.T) {
	tab := NewTable()
	keys := []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}
	stable := []string{"s0", "s1", "s2", "s3", "s4"}
	tab.SetNodes(stable)
	for _, k := range keys {
		tab.Elect(k, all)
	}
	maxSlots, compacted := 0, false
	for round := range 40 {
		nodes := slices.Clone(stable)
		for j := range 4 {
			nodes = append(nodes, fmt.Sprintf("churn-%d-%d", round, j))
		}
		tab.SetNodes(nodes)
		if tab.Slots() < maxSlots {
			compacted = true
		}
		maxSlots = max(maxSlots, tab.Slots())
		// Elect only some keys, so others carry stale orders through compaction.
		k := keys[round%len(keys)]
		if diff := cmp.Diff(Order(k, nodes), tab.Order(k)); diff != "" {
			t.Fatalf("round %d: Order(%s) (-want +got):\n%s", round, k, diff)
		}
	}
	if !compacted {
		t.Fatalf("slots never compacted (max %d)", maxSlots)
	}
	tab.SetNodes(stable)
	for _, k := range keys {
		if diff := cmp.Diff(Order(k, stable), tab.Order(k)); diff != "" {
			t.Errorf("Order(%s) (-want +got):\n%s", k, diff)
		}
	}
	for _, n := range stable {
		if i, ok := tab.Index(n); !ok || tab.Node(i) != n {
			t.Errorf("Index(%q) = %d, %v; Node = %q", n, i, ok, tab.Node(i))
		}
	}
}
