package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

// stallSlack is what a stall below the takeover bound may cost the client beyond the stall itself in this test:
// the target is 20 ms, measured on a quiet machine; a CI run shares two cores with the control plane,
// three speakers and the client's prober, so the test allows a few scheduling delays more. What it must not do,
// withdraw and probe again (about 0.4 s more, as before the rule), stays well outside.
const stallSlack = 120 * time.Millisecond

// TestBusyNode freezes the announcing speaker (SIGSTOP) for stalls across the takeover bound (450 ms with the
// default timings and three members): below it the speaker keeps every address, withdraws nothing and nothing
// moves, and the client waits no longer than the stall; above it nothing is answered by two MACs and the
// outage stays within the crash-failover bound.
func TestBusyNode(t *testing.T) {
	c := newCluster(t, 3)
	c.pool("lab", []string{poolV4})
	vips := c.settledServices("busy", "lab", 6)
	for _, f := range []time.Duration{150 * time.Millisecond, 250 * time.Millisecond, 350 * time.Millisecond,
		600 * time.Millisecond, time.Second} {
		t.Run(fmt.Sprintf("SIGSTOP %v", f), func(t *testing.T) {
			c := withT(c, t)
			r := c.freeze(t, vips, f)
			t.Logf("busy: stall=%v addresses=%d longest_gap=%v withdrawn=%v moves=%d duplicate_requests=%d",
				f, r.addresses, r.gap, r.withdrew, r.moves, r.dups)
			if r.dups > 0 {
				t.Errorf("%d requests were answered by two MACs", r.dups)
			}
			if f < 400*time.Millisecond { // below the bound, with the stall detector's 50 ms tick to spare
				if r.withdrew {
					t.Errorf("the speaker withdrew after a %v stall, below the takeover bound", f)
				}
				if r.moves > 0 {
					t.Errorf("%d addresses moved after a %v stall, below the takeover bound", r.moves, f)
				}
				if r.gap > f+stallSlack {
					t.Errorf("the client waited %v for a %v stall (bound: the stall and %v)", r.gap, f, stallSlack)
				}
			} else if r.gap > failoverBound {
				t.Errorf("the client waited %v after a %v stall (bound %v)", r.gap, f, failoverBound)
			}
		})
	}
}

// freezeResult is what the client and the speaker saw of one freeze.
type freezeResult struct {
	addresses int           // held by the frozen node
	gap       time.Duration // the longest outage of those
	withdrew  bool          // the frozen speaker withdrew its addresses
	moves     int
	dups      int
}

// freeze stops the speaker holding the most addresses for f, then lets things settle.
func (c *cluster) freeze(t *testing.T, vips []netip.Addr, f time.Duration) freezeResult {
	t.Helper()
	h := c.answeredAlone(vips)
	node, _ := victim(h)
	withdrew := func() float64 { return c.labelled(node, `herald_speaker_stalls_total{action="withdrew"}`) }
	before := withdrew()
	w := c.watch(vips)
	time.Sleep(300 * time.Millisecond)
	p := c.speaker[node]
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(f)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	w.stop()
	c.waitMembers(len(c.hosts))
	r := freezeResult{withdrew: withdrew() > before}
	var theirs []netip.Addr
	for v, n := range h {
		if n == node {
			theirs = append(theirs, v)
		}
	}
	r.addresses = len(theirs)
	for v, s := range w.series {
		r.dups += s.Duplicates()
		r.moves += s.Moves()
		if slices.Contains(theirs, v) {
			r.gap = max(r.gap, s.LongestGap())
		}
	}
	return r
}
