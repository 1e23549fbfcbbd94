package speaker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestJoinPolicyDelay(t *testing.T) {
	p := joinPolicy{Base: 5 * time.Second, Max: 30 * time.Second}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, p.delay(n))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
}

// TestJoinTargets walks one set of peers through a speaker's life: first contact, a failed join backing off, a
// member that dies waiting its Base, a Node change resetting the backoff, a join in flight not started twice.
func TestJoinTargets(t *testing.T) {
	p := joinPolicy{Base: 5 * time.Second, Max: 30 * time.Second}
	peers := map[string]*peer{}
	cands := []joinCandidate{{Name: "a", Addr: "a:7946", Print: "a True"}, {Name: "b", Addr: "b:7946", Print: "b True"},
		{Name: "c", Addr: "c:7946", Print: "c True"}}
	step := func(now time.Duration, live map[string]bool, want ...string) {
		t.Helper()
		got := joinTargets(cands, live, peers, at(now), p)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("at %v: targets (-want +got):\n%s", now, diff)
		}
		for _, n := range got {
			peers[n].InFlight = true
		}
	}
	// New peers are tried at once; a live one never.
	step(0, map[string]bool{"a": true}, "b", "c")
	// In flight: not again.
	step(time.Second, map[string]bool{"a": true})
	peers["b"].joined(errors.New("i/o timeout"), at(2*time.Second), p) // next at 7 s
	peers["c"].joined(nil, at(2*time.Second), p)                       // next at 7 s
	step(6*time.Second, map[string]bool{"a": true, "c": true})
	step(7*time.Second, map[string]bool{"a": true, "c": true}, "b")
	peers["b"].joined(errors.New("i/o timeout"), at(9*time.Second), p) // second failure: next at 19 s
	// a dies (memberlist declares it dead): it waits Base before its first try.
	step(10*time.Second, map[string]bool{"c": true})
	step(14*time.Second, map[string]bool{"c": true})
	step(15*time.Second, map[string]bool{"c": true}, "a")
	peers["a"].joined(errors.New("i/o timeout"), at(15*time.Second), p) // next at 20 s
	// b's Node changes (it came back Ready): tried at once.
	cands[1].Print = "b True@later"
	step(16*time.Second, map[string]bool{"c": true}, "b")
	// A Node that is deleted is forgotten (unless a join to it is in flight).
	cands = cands[:1]
	step(21*time.Second, map[string]bool{}, "a")
	if _, ok := peers["c"]; ok {
		t.Errorf("the deleted Node c is still a peer")
	}
	if _, ok := peers["b"]; !ok {
		t.Errorf("b, with a join in flight, was forgotten")
	}
}

// TestRetry: a start-up step is retried with a doubling wait up to the cap, and a stop while it waits ends it
// with the context's error.
func TestRetry(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	fails := 3
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- retry(context.Background(), clk, logr.Discard(), "step", func() error {
			calls++
			if calls <= fails {
				return errors.New("unreachable")
			}
			return nil
		})
	}()
	for _, wait := range []time.Duration{startRetryFirst, 2 * startRetryFirst, 4 * startRetryFirst} {
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(wait - time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		select {
		case <-done:
			t.Fatalf("returned before the %v wait ended", wait)
		default:
		}
		clk.Step(time.Millisecond)
	}
	if err := <-done; err != nil || calls != 4 {
		t.Fatalf("retry = %v after %d calls, want nil after 4", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- retry(ctx, clk, logr.Discard(), "step", func() error { return errors.New("unreachable") })
	}()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("retry after cancel = %v, want context.Canceled", err)
	}
}
