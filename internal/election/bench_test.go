package election

import (
	"fmt"
	"slices"
	"testing"
)

const (
	benchKeys  = 10_000
	benchNodes = 100
)

var (
	benchKeyList = func() []string {
		out := make([]string, benchKeys)
		for i := range out {
			out[i] = fmt.Sprintf("198.18.%d.%d", i/256, i%256)
		}
		return out
	}()
	benchNodeList = propNames("worker-", benchNodes)
)

// warmTable returns a table with every bench node and key, and an all-true
// eligibility slice indexed by slot.
func warmTable() (*Table, []bool) {
	tab := NewTable()
	tab.SetNodes(benchNodeList)
	alive := make([]bool, tab.Slots())
	for i := range alive {
		alive[i] = true
	}
	for _, k := range benchKeyList {
		tab.ElectIndex(k, func(i int) bool { return alive[i] })
	}
	return tab, alive
}

func reportPerKey(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchKeys, "ns/key")
}

// BenchmarkColdFill builds a table of 100 nodes and elects 10,000 keys on it:
// one op is the whole fill.
func BenchmarkColdFill(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		tab := NewTable()
		tab.SetNodes(benchNodeList)
		alive := make([]bool, tab.Slots())
		for i := range alive {
			alive[i] = true
		}
		for _, k := range benchKeyList {
			tab.ElectIndex(k, func(i int) bool { return alive[i] })
		}
	}
	reportPerKey(b)
}

// BenchmarkMemberDies re-elects all 10,000 keys of a warm table after one
// member stops being eligible (a different one each op; the previous one
// comes back). One op is the whole recompute.
func BenchmarkMemberDies(b *testing.B) {
	b.Run("index", func(b *testing.B) {
		tab, alive := warmTable()
		b.ReportAllocs()
		dead := 0
		for b.Loop() {
			alive[dead] = true
			dead = (dead + 1) % len(alive)
			alive[dead] = false
			for _, k := range benchKeyList {
				if _, ok := tab.ElectIndex(k, func(i int) bool { return alive[i] }); !ok {
					b.Fatal("no winner")
				}
			}
		}
		reportPerKey(b)
	})
	b.Run("map", func(b *testing.B) {
		tab, _ := warmTable()
		alive := map[string]bool{}
		for _, n := range benchNodeList {
			alive[n] = true
		}
		b.ReportAllocs()
		dead := 0
		for b.Loop() {
			alive[benchNodeList[dead]] = true
			dead = (dead + 1) % len(benchNodeList)
			alive[benchNodeList[dead]] = false
			for _, k := range benchKeyList {
				if _, ok := tab.Elect(k, func(n string) bool { return alive[n] }); !ok {
					b.Fatal("no winner")
				}
			}
		}
		reportPerKey(b)
	})
}

// BenchmarkAddNode adds one new node to a warm table of 10,000 keys and
// re-elects every key (which hashes the node once per key); the node added
// by the previous op is removed in the same SetNodes. One op is the whole
// change.
func BenchmarkAddNode(b *testing.B) {
	tab, _ := warmTable()
	nodes := slices.Clone(benchNodeList)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		tab.SetNodes(append(nodes[:benchNodes:benchNodes], fmt.Sprintf("new-%d", n)))
		for _, k := range benchKeyList {
			if _, ok := tab.Elect(k, all); !ok {
				b.Fatal("no winner")
			}
		}
	}
	reportPerKey(b)
}
