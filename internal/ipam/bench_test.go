package ipam

import (
	"fmt"
	"net/netip"
	"testing"
)

// benchPools are the pools the allocation benchmarks fill, one per family.
var benchPools = []struct {
	name   string
	family Family
	pool   Pool
}{
	{name: "ipv4", family: IPv4, pool: Pool{Name: "bench", Ranges: ranges("198.18.0.0/15")}},
	{name: "ipv6-64", family: IPv6, pool: Pool{Name: "bench", Ranges: ranges("2001:db8::/64")}},
}

var benchSizes = []struct {
	name string
	n    int
}{
	{name: "1k", n: 1_000},
	{name: "10k", n: 10_000},
	{name: "60k", n: 60_000},
}

// allocateAll is one benchmark iteration: allocate one address for each key.
type allocateAll func(b *testing.B, family Family, pool Pool, keys []string)

// BenchmarkAllocate allocates N distinct keys into one pool per iteration.
// ns/op is reported per allocation.
func BenchmarkAllocate(b *testing.B) {
	benchmarkAllocations(b, func(b *testing.B, family Family, pool Pool, keys []string) {
		b.StopTimer()
		a := New()
		a.SetPools([]Pool{pool})
		b.StartTimer()
		for _, key := range keys {
			if _, err := a.Allocate(Request{Key: key, Families: []Family{family}, Pools: []string{pool.Name}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkNaiveAllocate is BenchmarkAllocate with naiveAllocator, for
// comparison.
func BenchmarkNaiveAllocate(b *testing.B) {
	benchmarkAllocations(b, func(b *testing.B, _ Family, pool Pool, keys []string) {
		b.StopTimer()
		a := newNaiveAllocator(pool.Ranges[0])
		b.StartTimer()
		for _, key := range keys {
			if _, err := a.allocate(key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchmarkAllocations(b *testing.B, run allocateAll) {
	for _, bp := range benchPools {
		b.Run(bp.name, func(b *testing.B) {
			for _, size := range benchSizes {
				b.Run(size.name, func(b *testing.B) {
					keys := benchKeys(size.n)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						run(b, bp.family, bp.pool, keys)
					}
					reportPerAllocation(b, size.n)
				})
			}
		})
	}
}

// reportPerAllocation replaces ns/op with the time per allocation and adds
// the allocation rate.
func reportPerAllocation(b *testing.B, perIteration int) {
	total := float64(perIteration) * float64(b.N)
	elapsed := b.Elapsed()
	b.ReportMetric(float64(elapsed.Nanoseconds())/total, "ns/op")
	b.ReportMetric(total/elapsed.Seconds(), "allocs/s")
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/svc-%d", i)
	}
	return keys
}

// naiveAllocator hands out the first address of its range not in a map,
// scanning from the start of the range every time.
type naiveAllocator struct {
	r     Range
	used  map[netip.Addr]string
	byKey map[string]netip.Addr
}

func newNaiveAllocator(r Range) *naiveAllocator {
	return &naiveAllocator{r: r, used: map[netip.Addr]string{}, byKey: map[string]netip.Addr{}}
}

func (n *naiveAllocator) allocate(key string) (netip.Addr, error) {
	if addr, ok := n.byKey[key]; ok {
		return addr, nil
	}
	for addr := n.r.First; addr.IsValid() && addr.Compare(n.r.Last) <= 0; addr = addr.Next() {
		if _, taken := n.used[addr]; !taken {
			n.used[addr] = key
			n.byKey[key] = addr
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("range %s is full", n.r)
}
