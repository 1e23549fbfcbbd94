package e2e

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHistogramQuantiles reads the buckets of a histogram as the speaker's metrics page has them.
func TestHistogramQuantiles(t *testing.T) {
	body := `# TYPE go_sched_pauses_total_gc_seconds histogram
go_sched_pauses_total_gc_seconds_bucket{le="6.399999999999999e-08"} 0
go_sched_pauses_total_gc_seconds_bucket{le="1.0239999999999999e-05"} 40
go_sched_pauses_total_gc_seconds_bucket{le="0.00016383999999999998"} 98
go_sched_pauses_total_gc_seconds_bucket{le="0.0026214399999999997"} 99
go_sched_pauses_total_gc_seconds_bucket{le="+Inf"} 100
go_sched_pauses_total_gc_seconds_sum NaN
go_sched_pauses_total_gc_seconds_count 100
`
	p50, p99, n := histogramQuantiles(body, "go_sched_pauses_total_gc_seconds")
	if n != 100 || p50.Round(time.Microsecond) != 164*time.Microsecond || p99.Round(time.Microsecond) != 2621*time.Microsecond {
		t.Errorf("p50 %v, p99 %v, count %d; want 164µs, 2.621ms, 100 (to the µs)", p50, p99, n)
	}
	if _, _, n := histogramQuantiles(body, "absent"); n != 0 {
		t.Errorf("count of an absent histogram = %d", n)
	}
}

// TestPlanSoak: a soak's schedule is a function of its seed; the first round has every fault kind; no two faults
// that share a resource overlap, no more than maxConcurrent run at once and no more than maxOut nodes are out of
// service at once; every fault ends, recovery included, within the run.
func TestPlanSoak(t *testing.T) {
	nodes := []string{"node1", "node2", "node3", "node4", "node5"}
	for _, tc := range []struct {
		seed uint64
		d    time.Duration
	}{{soakDefaultSeed, soakDefaultDuration}, {1, 30 * time.Minute}, {7, 10 * time.Minute}} {
		plan := planSoak(tc.seed, tc.d, nodes, 50)
		if again := planSoak(tc.seed, tc.d, nodes, 50); !reflect.DeepEqual(plan, again) {
			t.Errorf("seed %d: two plans differ", tc.seed)
		}
		if other := planSoak(tc.seed+1, tc.d, nodes, 50); reflect.DeepEqual(plan, other) {
			t.Errorf("seeds %d and %d give the same plan", tc.seed, tc.seed+1)
		}
		kinds := map[faultKind]int{}
		for i, f := range plan {
			kinds[f.Kind]++
			if f.At+f.span() > tc.d {
				t.Errorf("seed %d: %v ends after the run", tc.seed, f)
			}
			for _, g := range plan[:i] {
				if g.At >= f.At+f.span() || f.At >= g.At+g.span() {
					continue
				}
				for _, r := range f.resources() {
					if !strings.HasPrefix(r, "out:") && slices.Contains(g.resources(), r) {
						t.Errorf("seed %d: %v and %v overlap on %s", tc.seed, g, f, r)
					}
				}
			}
		}
		for at := time.Duration(0); at < tc.d; at += 100 * time.Millisecond {
			running, out := 0, map[string]bool{}
			for _, f := range plan {
				if f.At <= at && at < f.At+f.span() {
					running++
					for _, r := range f.resources() {
						if n, ok := strings.CutPrefix(r, "out:"); ok {
							out[n] = true
						}
					}
				}
			}
			if running > maxConcurrent || len(out) > maxOut {
				t.Fatalf("seed %d: at +%v %d faults run and %d nodes are out", tc.seed, at, running, len(out))
			}
		}
		if len(kinds) != int(numFaultKinds) {
			t.Errorf("seed %d, %v: kinds %v, want all %d", tc.seed, tc.d, kinds, numFaultKinds)
		}
		t.Logf("seed %d, %v: %d faults %v", tc.seed, tc.d, len(plan), kinds)
	}
}

// TestNoneEligibleSpans: the stretches when every eligible node is out are the intersection of each node's merged
// outages.
func TestNoneEligibleSpans(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	a := mergeSpans([]span{{at(5), at(8)}, {at(0), at(2)}, {at(1), at(3)}}) // 0-3, 5-8
	if want := []span{{at(0), at(3)}, {at(5), at(8)}}; !reflect.DeepEqual(a, want) {
		t.Errorf("merged %v, want %v", a, want)
	}
	b := mergeSpans([]span{{at(2), at(6)}, {at(7), at(9)}})
	want := []span{{at(2), at(3)}, {at(5), at(6)}, {at(7), at(8)}}
	if got := intersectSpans(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("intersection %v, want %v", got, want)
	}
	if got := intersectSpans(a, nil); len(got) != 0 {
		t.Errorf("intersection with a node never out: %v", got)
	}
	if !overlapsAny([]span{{at(0), at(1)}}, at(2), at(3), 1500*time.Millisecond) || overlapsAny([]span{{at(0), at(1)}}, at(3), at(4), time.Second+1) {
		t.Error("overlapsAny: the slack widens a span's end, and only its end")
	}
}
