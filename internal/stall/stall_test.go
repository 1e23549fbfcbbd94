package stall

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const ms = time.Millisecond

// rig runs a Detector on a fake clock.
type rig struct {
	clk *clocktesting.FakeClock
	reg *prometheus.Registry
	m   *Metrics
	d   *Detector
}

func newRig(t *testing.T, run bool) *rig {
	t.Helper()
	r := &rig{clk: clocktesting.NewFakeClock(t0), reg: prometheus.NewRegistry()}
	r.m = NewMetrics(r.reg)
	r.d = New(Config{Clock: r.clk, Metrics: r.m})
	if !run {
		return r
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.waitFor(t, "Run's ticker", r.clk.HasWaiters)
	return r
}

// waitFor polls cond; it synchronizes with the Run goroutine, it does not
// decide the outcome.
func (r *rig) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// step advances the fake clock by d and waits until Run has handled the
// tick that fires.
func (r *rig) step(t *testing.T, d time.Duration) {
	t.Helper()
	r.clk.Step(d)
	want := int64(r.clk.Since(r.d.origin))
	r.waitFor(t, "tick handled", func() bool { return r.d.last.Load() == want })
}

func (r *rig) stallCount() float64 { return testutil.ToFloat64(r.m.stalls) }
func (r *rig) longest() float64    { return testutil.ToFloat64(r.m.longest) }

func TestFreshWithoutRun(t *testing.T) {
	tests := []struct {
		name    string
		elapsed time.Duration
		want    bool
	}{
		{name: "at New", elapsed: 0, want: true},
		{name: "one interval", elapsed: 50 * ms, want: true},
		{name: "exactly the threshold", elapsed: 250 * ms, want: true},
		{name: "just past the threshold", elapsed: 250*ms + 1, want: false},
		{name: "long after", elapsed: time.Hour, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, false)
			r.clk.Step(tt.elapsed)
			if got := r.d.Fresh(); got != tt.want {
				t.Errorf("Fresh() after %v = %v, want %v", tt.elapsed, got, tt.want)
			}
		})
	}
}

func TestRegularTicksAreNoStall(t *testing.T) {
	r := newRig(t, true)
	for i := 0; i < 20; i++ {
		r.step(t, 50*ms)
		if !r.d.Fresh() {
			t.Fatalf("Fresh() = false after %d regular ticks", i+1)
		}
	}
	// A late tick still within the threshold is no stall either.
	r.step(t, 250*ms)
	if !r.d.Fresh() {
		t.Error("Fresh() = false after a tick 250ms late (the threshold)")
	}
	select {
	case s := <-r.d.Stalls():
		t.Errorf("Stalls delivered %v, want nothing", s)
	default:
	}
	if got := r.stallCount(); got != 0 {
		t.Errorf("herald_stall_stalls_total = %v, want 0", got)
	}
}

func TestStallSuspendsUntilResume(t *testing.T) {
	r := newRig(t, true)
	r.step(t, 50*ms)
	r.clk.Step(400 * ms)
	// Before Run handles the late tick, the age of the last tick already
	// says the process was away.
	if r.d.Fresh() {
		t.Fatal("Fresh() = true right after a 400ms gap, before the tick was handled")
	}
	r.waitFor(t, "late tick handled", func() bool { return r.d.last.Load() == int64(450*ms) })
	select {
	case s := <-r.d.Stalls():
		if s != 400*ms {
			t.Errorf("stall of %v reported, want 400ms", s)
		}
	default:
		t.Fatal("no stall reported")
	}
	// Ticking again does not end the suspension; Resume does.
	for i := 0; i < 5; i++ {
		r.step(t, 50*ms)
		if r.d.Fresh() {
			t.Fatal("Fresh() = true after a stall and before Resume")
		}
	}
	r.d.Resume()
	if !r.d.Fresh() {
		t.Error("Fresh() = false after Resume with a recent tick")
	}
	if diff := cmp.Diff([]float64{1, 0.4}, []float64{r.stallCount(), r.longest()}); diff != "" {
		t.Errorf("stalls_total, longest_seconds (-want +got):\n%s", diff)
	}
}

func TestLatestStallWins(t *testing.T) {
	r := newRig(t, true)
	r.step(t, 300*ms)
	r.step(t, 900*ms)
	r.d.Resume()
	r.step(t, 500*ms)
	var got []time.Duration
	for len(got) < 3 {
		select {
		case s := <-r.d.Stalls():
			got = append(got, s)
			continue
		default:
		}
		break
	}
	if diff := cmp.Diff([]time.Duration{500 * ms}, got); diff != "" {
		t.Errorf("stalls received (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{3, 0.9}, []float64{r.stallCount(), r.longest()}); diff != "" {
		t.Errorf("stalls_total, longest_seconds (-want +got):\n%s", diff)
	}
}

func TestResumeWithoutTicksStaysStale(t *testing.T) {
	r := newRig(t, false)
	r.d.tick(int64(time.Second)) // a stall of 1s
	if r.d.Fresh() {
		t.Fatal("Fresh() = true right after a stall")
	}
	r.clk.Step(2 * time.Second)
	r.d.Resume()
	if r.d.Fresh() {
		t.Error("Fresh() = true after Resume although no tick came for 1s")
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name                string
		cfg                 Config
		interval, threshold time.Duration
	}{
		{name: "zero", cfg: Config{}, interval: 50 * ms, threshold: 250 * ms},
		{name: "set", cfg: Config{Interval: 10 * ms, Threshold: 100 * ms}, interval: 10 * ms, threshold: 100 * ms},
		{name: "threshold below interval", cfg: Config{Interval: 100 * ms, Threshold: 50 * ms}, interval: 100 * ms, threshold: 500 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(tt.cfg)
			if diff := cmp.Diff([]time.Duration{tt.interval, tt.threshold}, []time.Duration{d.interval, d.threshold}); diff != "" {
				t.Errorf("interval, threshold (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFreshDoesNotAllocate(t *testing.T) {
	d := New(Config{})
	if a := testing.AllocsPerRun(1000, func() { d.Fresh() }); a != 0 {
		t.Errorf("Fresh allocates %v times per call, want 0", a)
	}
}

func BenchmarkFresh(b *testing.B) {
	d := New(Config{})
	for b.Loop() {
		d.Fresh()
	}
}
