package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/lab"
)

// stallSlack is what a stall below the takeover bound may cost the client beyond the stall itself in this test:
// the target is 20 ms, measured on a quiet machine; a CI run shares two cores with the control plane,
// three speakers and the client's prober, so the test allows a few scheduling delays more. What it must not do,
// withdraw and probe again (about 0.4 s more, as before the rule), stays well outside.
const stallSlack = 120 * time.Millisecond

// busyScenario disturbs one node's speaker for a while: it returns once the disturbance is over.
type busyScenario struct {
	name string
	// stall is the SIGSTOP length, for a freeze; zero for the cgroup scenarios.
	stall time.Duration
	// limit and hogs put the speaker in a cgroup with that CPU limit and that many busy loops beside it, for
	// hold.
	limit CPULimitOrNone
	hogs  int
	hold  time.Duration
	// storm creates that many Services while the disturbance lasts.
	storm int
}

// CPULimitOrNone is a cgroup limit; the zero value puts the speaker in a group with no limit (a hog alone).
type CPULimitOrNone = lab.CPULimit

// sigstopSweep are the freezes across the takeover bound (450 ms with the defaults and three members).
func sigstopSweep(stalls ...time.Duration) []busyScenario {
	var out []busyScenario
	for _, f := range stalls {
		out = append(out, busyScenario{name: fmt.Sprintf("SIGSTOP %v", f), stall: f})
	}
	return out
}

// cpuHog runs as many busy loops as there are CPUs in the speaker's cgroup for d: they take every CPU it may use
// (the node's CPU: the last one, see busy).
func cpuHog(d time.Duration) busyScenario {
	return busyScenario{name: fmt.Sprintf("CPU hog %v", d), hogs: 1, hold: d}
}

// recurring gives the speaker and two busy loops a CFS quota of pct % of a core per period, for d: the speaker
// stalls for most of every period.
func recurring(period time.Duration, pct int, d time.Duration) busyScenario {
	return busyScenario{name: fmt.Sprintf("quota %d%% per %v with 2 busy loops, %v", pct, period, d),
		limit: lab.CPULimit{Quota: period * time.Duration(pct) / 100, Period: period}, hogs: 2, hold: d}
}

// TestBusyNode disturbs the announcing speaker in three ways and checks what the client sees:
//   - a SIGSTOP sweep across the takeover bound: below it nothing is withdrawn or moved and the client waits no
//     longer than the stall; above it nothing is answered by two MACs and the outage stays within the
//     crash-failover bound;
//   - a CPU hog on every CPU the speaker may use: nothing withdrawn or moved, and replies stay prompt;
//   - recurring stalls (a 20 % quota per 500 ms period shared with busy loops): every address stays answered by
//     someone, no gap beyond the crash-failover bound and no request answered by two MACs for longer than a
//     split brain takes to settle.
func TestBusyNode(t *testing.T) {
	c := newCluster(t, 3)
	c.pool("lab", []string{poolV4})
	vips := c.settledServices("busy", "lab", 24)
	h := c.answeredAlone(vips)
	scenarios := append(sigstopSweep(150*time.Millisecond, 250*time.Millisecond, 350*time.Millisecond,
		600*time.Millisecond, time.Second), cpuHog(10*time.Second), recurring(500*time.Millisecond, 20, 10*time.Second))
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			c := withT(c, t)
			var r busyResult
			r, h = c.busy(t, vips, h, sc)
			t.Log(r)
			r.check(t, sc)
		})
	}
}

// busyResult is what the client and the speakers saw of one scenario.
type busyResult struct {
	node      string
	addresses int             // held by the disturbed node at the start
	gaps      []time.Duration // the client's longest gap per address of the node (sorted)
	allGap    time.Duration   // the longest gap of any address
	withdrawn float64         // keys the node withdrew after stalls
	stalls    float64         // stalls it detected
	moves     int
	dups      int
	dupWindow time.Duration // the longest run of requests answered by two MACs
	// suspicions is how often the peers declared the node failed.
	suspicions int
	// base and load are the client's reply round trips for the node's addresses before and during the
	// disturbance.
	base, load []time.Duration
	throttled  int           // CFS periods in which the cgroup ran out of quota
	stormTook  time.Duration // how long the storm's creations took
}

func (r busyResult) String() string {
	return fmt.Sprintf("busy: node=%s addresses=%d gap_p50=%v gap_p99=%v gap_max=%v all_gap_max=%v withdrawn=%.0f stalls=%.0f moves=%d duplicate_requests=%d longest_duplicate_window=%v false_suspicions=%d reply_p99_before=%v reply_p99_during=%v throttled_periods=%d storm=%v",
		r.node, r.addresses, pct(r.gaps, 50), pct(r.gaps, 99), pct(r.gaps, 100), r.allGap, r.withdrawn, r.stalls, r.moves, r.dups, r.dupWindow,
		r.suspicions, pct(r.base, 99), pct(r.load, 99), r.throttled, r.stormTook)
}

// pct is the p-th percentile of d (sorted here), rounded to 0.1 ms; 0 for none.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return percentile(s, p/100).Round(100 * time.Microsecond)
}

// check asserts the scenario's targets.
func (r busyResult) check(t *testing.T, sc busyScenario) {
	t.Helper()
	gap := pct(r.gaps, 100)
	switch {
	case sc.stall > 0 && sc.stall < 400*time.Millisecond: // below the bound, with the detector's 50 ms tick to spare
		if r.withdrawn > 0 {
			t.Errorf("the speaker withdrew %.0f keys after a %v stall, below the takeover bound", r.withdrawn, sc.stall)
		}
		if r.moves > 0 {
			t.Errorf("%d addresses moved after a %v stall, below the takeover bound", r.moves, sc.stall)
		}
		if gap > sc.stall+stallSlack {
			t.Errorf("the client waited %v for a %v stall (bound: the stall and %v)", gap, sc.stall, stallSlack)
		}
		if r.dups > 0 {
			t.Errorf("%d requests were answered by two MACs", r.dups)
		}
	case sc.stall > 0:
		if r.dups > 0 {
			t.Errorf("%d requests were answered by two MACs", r.dups)
		}
		if gap > failoverBound {
			t.Errorf("the client waited %v after a %v stall (bound %v)", gap, sc.stall, failoverBound)
		}
	case sc.limit.Quota == 0: // a hog: the speaker is starved of nothing it needs, only slowed
		if r.withdrawn > 0 || r.moves > 0 || r.dups > 0 {
			t.Errorf("under a CPU hog: %.0f keys withdrawn, %d moves, %d requests answered twice; want none", r.withdrawn, r.moves, r.dups)
		}
		// The target is a p99 within 2x of the unloaded one; the unloaded p99 is about a millisecond, so
		// on a shared two-core machine a few scheduling delays alone double it. The test bounds what would be a
		// starved responder (a reply later than the requester's 10 ms interval on average); BENCHMARKS.md has
		// the measured ratio.
		if p := pct(r.load, 99); p > pct(r.base, 99)+50*time.Millisecond {
			t.Errorf("under a CPU hog the reply p99 was %v, against %v before", p, pct(r.base, 99))
		}
	default: // recurring stalls: answered, late or by a peer, never dark for longer than a failover
		if r.allGap > failoverBound {
			t.Errorf("an address was dark for %v (bound %v): the node sat between answering and stepping aside", r.allGap, failoverBound)
		}
		if r.dupWindow > dupBound {
			t.Errorf("an address was answered by two MACs for %v in a row (bound %v)", r.dupWindow, dupBound)
		}
		if sc.limit.Quota > 0 && r.throttled == 0 {
			t.Error("the cgroup was never throttled: the scenario did not happen")
		}
	}
}

// busy runs one scenario on the node that holds the most addresses (h: who answers each), while the client
// probes every address every 10 ms (20 ms for 200 addresses); it returns once every address is answered by one node again, and who.
func (c *cluster) busy(t testing.TB, vips []netip.Addr, h map[netip.Addr]string, sc busyScenario) (busyResult, map[netip.Addr]string) {
	// 10 ms per address, but no more than 10,000 requests/s from the client in all: beyond that the client's
	// own scheduling, not the speakers, sets the gaps it sees.
	every := max(10*time.Millisecond, time.Duration(len(vips))*time.Second/10000)
	node, _ := victim(h)
	r := busyResult{node: node}
	var theirs []netip.Addr
	for v, n := range h {
		if n == node {
			theirs = append(theirs, v)
		}
	}
	r.addresses = len(theirs)
	withdrawn := func() float64 { return c.labelled(node, "herald_speaker_stall_withdrawn_total") }
	stalls := func() float64 { return c.labelled(node, "herald_stall_stalls_total") }
	w0, s0 := withdrawn(), stalls()
	susp0 := c.suspicions(node)
	// The client and the measuring side must not starve with the node: this process (the client's probers) gets
	// a cgroup of its own weighing eight ordinary tasks, and the disturbed speaker, with its hogs, is held to the
	// last CPU.
	nodeCPU := ""
	if n := runtime.NumCPU(); n >= 2 {
		nodeCPU = fmt.Sprint(n - 1)
		client, err := lab.NewCPUGroup(lab.CPULimit{Shares: 8192})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		if err := client.Add(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	w := c.watchEvery(vips, every)
	time.Sleep(time.Second)
	start := time.Now()
	p := c.speaker[node]
	switch {
	case sc.stall > 0:
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(sc.stall)
		if err := p.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	default:
		lim := sc.limit
		lim.CPUs = nodeCPU
		g, err := lab.NewCPUGroup(lim)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Add(p.Pid()); err != nil {
			g.Close()
			t.Fatal(err)
		}
		if err := g.Hog(sc.hogs); err != nil {
			g.Close()
			t.Fatal(err)
		}
		var storm sync.WaitGroup
		if sc.storm > 0 {
			storm.Go(func() {
				t0 := time.Now()
				c.storm(t, sc.storm)
				r.stormTook = time.Since(t0)
			})
		}
		time.Sleep(sc.hold)
		storm.Wait()
		r.throttled, _, _ = g.Throttled()
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}
	end := time.Now()
	time.Sleep(3 * time.Second)
	w.stop()
	c.waitMembers(len(c.hosts))
	after := map[netip.Addr]string{}
	for v, s := range w.series {
		if last := s.Last(); len(last) == 1 {
			after[v] = c.nodeOfMAC(last[0].String())
		}
	}
	if len(after) < len(vips) {
		after = c.answeredAlone(vips)
	}
	r.withdrawn, r.stalls = withdrawn()-w0, stalls()-s0
	r.suspicions = c.suspicions(node) - susp0
	for v, s := range w.series {
		r.dups += s.Duplicates()
		r.moves += s.Moves()
		for _, d := range s.DuplicateWindows() {
			r.dupWindow = max(r.dupWindow, d)
		}
		r.allGap = max(r.allGap, s.LongestGap())
		if slices.Contains(theirs, v) {
			r.gaps = append(r.gaps, s.LongestGap())
			r.base = append(r.base, s.RTTs(w.start, start)...)
			r.load = append(r.load, s.RTTs(start, end)...)
		}
	}
	slices.Sort(r.gaps)
	return r, after
}

// storm creates n Services (pool bulk, made here) at once, as a creation storm does.
func (c *cluster) storm(t testing.TB, n int) {
	c.pool("bulk", []string{"198.18.0.0/18"}, func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{"eth0"} })
	c.bulk(t, n)
}

// BenchmarkBusyNode is the long TestBusyNode, on 200 addresses: the SIGSTOP sweep (HERALD_BUSY_SWEEPS times,
// default 1), a CPU hog for 30 s (alone, then with a storm creating 2,000 Services), a CFS quota of 10 % and 50 %
// of a core with the default 100 ms period, and recurring stalls with 500 ms and 300 ms periods (HERALD_BUSY_HOLD,
// default 30 s, each). Each scenario's figures are logged as a "busy:" line.
func BenchmarkBusyNode(b *testing.B) {
	sweeps, hold := 1, 30*time.Second
	if n, err := strconv.Atoi(os.Getenv("HERALD_BUSY_SWEEPS")); err == nil && n > 0 {
		sweeps = n
	}
	if d, err := time.ParseDuration(os.Getenv("HERALD_BUSY_HOLD")); err == nil && d > 0 {
		hold = d
	}
	c := newCluster(b, 3)
	// 200 addresses: more than poolV4 holds, from a subnet no node has, announced on eth0.
	c.pool("busy", []string{"198.18.64.0/24"}, func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{"eth0"} })
	vips := c.settledServices("busy", "busy", 200)
	h := c.answeredAlone(vips)
	var scenarios []busyScenario
	for range sweeps {
		scenarios = append(scenarios, sigstopSweep(150*time.Millisecond, 250*time.Millisecond, 350*time.Millisecond,
			450*time.Millisecond, 600*time.Millisecond, time.Second)...)
	}
	storm := cpuHog(hold)
	storm.name, storm.storm = storm.name+" with a storm of 2000 Services", 2000
	scenarios = append(scenarios, cpuHog(hold), storm,
		busyScenario{name: "quota 10% per 100ms", limit: lab.CPULimit{Quota: 10 * time.Millisecond, Period: 100 * time.Millisecond}, hold: hold},
		busyScenario{name: "quota 50% per 100ms", limit: lab.CPULimit{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}, hold: hold},
		recurring(500*time.Millisecond, 20, hold), recurring(500*time.Millisecond, 50, hold),
		recurring(300*time.Millisecond, 20, hold))
	for range b.N {
		for _, sc := range scenarios {
			var r busyResult
			r, h = c.busy(b, vips, h, sc)
			b.Logf("%s: %v", sc.name, r)
		}
	}
}

// suspicions counts the times the other speakers logged node as left or failed.
func (c *cluster) suspicions(node string) int {
	n := 0
	for other, p := range c.speaker {
		if other == node {
			continue
		}
		b, err := os.ReadFile(p.Log())
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(line, []byte(`"member left or failed"`)) && strings.Contains(string(line), `"member":"`+node+`"`) {
				n++
			}
		}
	}
	return n
}
