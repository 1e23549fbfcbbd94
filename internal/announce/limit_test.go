package announce

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testSeed gives macB, macC and the targets below distinct slots
// (TestLimiterSlotsDistinct checks it).
const testSeed = 0x5eed

var (
	tgtA = uint64(0xc633640a) // 198.51.100.10
	tgtB = uint64(0xcb007107) // 203.0.113.7
)

func TestLimiterSlotsDistinct(t *testing.T) {
	l := newLimiter(Limits{}, testSeed)
	seen := map[int]string{}
	for name, s := range map[string]int{
		"macB/tgtA": l.slot(macB, tgtA, 0),
		"macB/tgtB": l.slot(macB, tgtB, 0),
		"macC/tgtA": l.slot(macC, tgtA, 0),
		"macB/vip6": l.slot(macB, 0x20010db800000000, 0x10),
	} {
		if s < 0 || s >= limiterSlots {
			t.Fatalf("%s: slot %d out of range", name, s)
		}
		if other, ok := seen[s]; ok {
			t.Fatalf("%s and %s share slot %d with the test seed", name, other, s)
		}
		seen[s] = name
	}
}

func TestLimiter(t *testing.T) {
	ms := time.Millisecond
	type req struct {
		mac [6]byte
		tgt uint64
		at  time.Duration
		n   int // how many at once; 0 means 1
	}
	tests := []struct {
		name string
		lim  Limits
		reqs []req
		want []int // replies allowed per row of reqs
	}{
		{
			name: "defaults: burst of 10 then 10 per second",
			lim:  Limits{PerResponder: -1},
			reqs: []req{
				{mac: macB, tgt: tgtA, at: 0, n: 15},
				{mac: macB, tgt: tgtA, at: 50 * ms, n: 5},
				{mac: macB, tgt: tgtA, at: 100 * ms, n: 5},
				{mac: macB, tgt: tgtA, at: 1000 * ms, n: 20},
				{mac: macB, tgt: tgtA, at: 3000 * ms, n: 20},
			},
			// The bucket is empty again at 100ms (one token), refills by
			// 900ms more from 100ms, so at 1s 9 are allowed; after 2s quiet
			// the full burst.
			want: []int{10, 0, 1, 9, 10},
		},
		{
			name: "requesters and targets have their own buckets",
			lim:  Limits{PerRequester: 1, Burst: 2, PerResponder: -1},
			reqs: []req{
				{mac: macB, tgt: tgtA, n: 5},
				{mac: macB, tgt: tgtB, n: 5},
				{mac: macC, tgt: tgtA, n: 5},
				{mac: macB, tgt: tgtA, at: 999 * ms},
				{mac: macB, tgt: tgtA, at: 1000 * ms, n: 5},
			},
			want: []int{2, 2, 2, 0, 1},
		},
		{
			name: "per-responder cap: a tenth of a second at once, then the rate",
			lim:  Limits{PerRequester: -1, PerResponder: 100},
			reqs: []req{
				{mac: macB, tgt: tgtA, n: 30},
				{mac: macC, tgt: tgtB, n: 30},
				{mac: macC, tgt: tgtB, at: 10 * ms, n: 30},
				{mac: macC, tgt: tgtB, at: 1010 * ms, n: 300},
			},
			want: []int{10, 0, 1, 10},
		},
		{
			name: "a request refused per requester does not use the responder's allowance",
			lim:  Limits{PerRequester: 1, Burst: 1, PerResponder: 10},
			reqs: []req{
				{mac: macB, tgt: tgtA, at: 0},
				{mac: macB, tgt: tgtA, at: 100 * ms},
				{mac: macC, tgt: tgtA, at: 100 * ms},
			},
			want: []int{1, 0, 1},
		},
		{
			name: "a request refused by the responder's cap keeps the requester's allowance",
			lim:  Limits{PerRequester: 1, Burst: 1, PerResponder: 10},
			reqs: []req{
				{mac: macC, tgt: tgtA, at: 0},
				{mac: macB, tgt: tgtA, at: 0},
				{mac: macB, tgt: tgtA, at: 100 * ms},
			},
			want: []int{1, 0, 1},
		},
		{
			name: "unlimited",
			lim:  Limits{PerRequester: -1, PerResponder: -1},
			reqs: []req{{mac: macB, tgt: tgtA, n: 100000}},
			want: []int{100000},
		},
		{
			name: "negative burst turns the per-requester limit off",
			lim:  Limits{Burst: -1, PerResponder: -1},
			reqs: []req{{mac: macB, tgt: tgtA, n: 1000}},
			want: []int{1000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(tt.lim, testSeed)
			var got []int
			for _, r := range tt.reqs {
				n := max(r.n, 1)
				ok := 0
				for range n {
					if l.allow(r.mac, r.tgt, 0, int64(r.at)) {
						ok++
					}
				}
				got = append(got, ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("replies allowed per request row (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLimiterDefaults(t *testing.T) {
	l := newLimiter(Limits{}, 1)
	got := []int64{l.reqEvery, l.reqTol, l.totalEvery, l.totalTol}
	want := []int64{int64(100 * time.Millisecond), int64(900 * time.Millisecond), int64(50 * time.Microsecond), 1999 * int64(50*time.Microsecond)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reqEvery, reqTol, totalEvery, totalTol (-want +got):\n%s", diff)
	}
	if !l.perReq || !l.global {
		t.Errorf("perReq %v global %v, want both on", l.perReq, l.global)
	}
}

func TestLimiterDoesNotAllocate(t *testing.T) {
	l := newLimiter(Limits{}, testSeed)
	now := int64(0)
	if a := testing.AllocsPerRun(1000, func() {
		now += 1000
		l.allow(macB, tgtA, 0, now)
	}); a != 0 {
		t.Errorf("allow allocates %v times per call, want 0", a)
	}
}

func BenchmarkLimiter(b *testing.B) {
	l := newLimiter(Limits{}, testSeed)
	now := int64(0)
	for b.Loop() {
		now += 1000
		l.allow(macB, tgtA, 0, now)
	}
}
