package e2e

import (
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
