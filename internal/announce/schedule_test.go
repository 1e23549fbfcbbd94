package announce

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCadence(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		c    cadence
		want []time.Duration // offsets of every announcement after the first, up to 5
	}{
		{name: "default repeats", c: cadence{repeats: 2, interval: 500 * time.Millisecond}, want: []time.Duration{500 * time.Millisecond, s}},
		{name: "no repeats", c: cadence{repeats: 0, interval: s}, want: nil},
		{name: "refresh only", c: cadence{repeats: 0, interval: s, refresh: 10 * s}, want: []time.Duration{10 * s, 20 * s, 30 * s, 40 * s, 50 * s}},
		{name: "repeats then refresh", c: cadence{repeats: 1, interval: s, refresh: 10 * s}, want: []time.Duration{s, 11 * s, 21 * s, 31 * s, 41 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sch schedule
			key := announceKey{"eth0", vip4}
			sch.start(key, t0, tt.c)
			var got []time.Duration
			for len(got) < 5 {
				due, ok := sch.nextDue()
				if !ok {
					break
				}
				if k, ok := sch.popDue(due.Add(-time.Nanosecond), tt.c); ok {
					t.Fatalf("popDue before due time returned %v", k)
				}
				k, ok := sch.popDue(due, tt.c)
				if !ok || k != key {
					t.Fatalf("popDue(%v) = %v, %v; want %v", due, k, ok, key)
				}
				got = append(got, due.Sub(t0))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("announcement offsets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScheduleOrderAndRemoval(t *testing.T) {
	c := cadence{repeats: 1, interval: time.Second}
	var sch schedule
	a := announceKey{"eth0", netip.MustParseAddr("198.51.100.1")}
	b := announceKey{"eth0", netip.MustParseAddr("198.51.100.2")}
	d := announceKey{"eth1", netip.MustParseAddr("198.51.100.1")}
	sch.start(b, t0, c)
	sch.start(d, t0, c)
	sch.start(a, t0.Add(-time.Second/2), c) // due earlier
	var got []announceKey
	for {
		k, ok := sch.popDue(t0.Add(time.Hour), c)
		if !ok {
			break
		}
		got = append(got, k)
	}
	if diff := cmp.Diff([]announceKey{a, b, d}, got, cmp.AllowUnexported(announceKey{}), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("pop order (-want +got):\n%s", diff)
	}

	sch.start(a, t0, c)
	sch.start(b, t0, c)
	sch.start(d, t0, c)
	sch.remove(b)
	sch.remove(b) // idempotent
	if sch.len() != 2 {
		t.Fatalf("after remove: %d pending, want 2", sch.len())
	}
	sch.removeLink("eth0")
	if sch.len() != 1 {
		t.Fatalf("after removeLink: %d pending, want 1", sch.len())
	}
	k, ok := sch.popDue(t0.Add(time.Hour), c)
	if !ok || k != d {
		t.Errorf("left %v, %v; want %v", k, ok, d)
	}
	// Restarting a key replaces its entry rather than adding one.
	sch.start(a, t0, c)
	sch.start(a, t0.Add(time.Minute), c)
	if due, _ := sch.nextDue(); sch.len() != 1 || !due.Equal(t0.Add(time.Minute+time.Second)) {
		t.Errorf("restart: %d pending due %v, want 1 due %v", sch.len(), due, t0.Add(time.Minute+time.Second))
	}
}

func TestScheduleLateDoesNotBurst(t *testing.T) {
	c := cadence{repeats: 3, interval: time.Second, refresh: time.Minute}
	var sch schedule
	key := announceKey{"eth0", vip4}
	sch.start(key, t0, c)
	late := t0.Add(time.Hour)
	if _, ok := sch.popDue(late, c); !ok {
		t.Fatal("nothing due an hour later")
	}
	if k, ok := sch.popDue(late, c); ok {
		t.Fatalf("second announcement %v at the same late time, want the rest spaced from it", k)
	}
	var got []time.Duration
	for range 4 {
		due, _ := sch.nextDue()
		sch.popDue(due, c)
		got = append(got, due.Sub(late))
	}
	want := []time.Duration{time.Second, 2 * time.Second, time.Minute + 2*time.Second, 2*time.Minute + 2*time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("offsets after a late start (-want +got):\n%s", diff)
	}
}
