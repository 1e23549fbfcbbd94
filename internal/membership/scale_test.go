package membership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The simulations here run many members in one process on the in-memory
// transport (pumpTransport over memberlist.MockNetwork) with DefaultTimings
// and the real List: memberlist, its encryption, Herald's metadata and log
// classification. Only the network is simulated; the cores are real and
// shared by every member, so a busy machine shows up as false suspicions.

// eventLog counts what memberlist reports through List's log classification
// (logwriter.go), per member that reported it (self) and per peer named:
// probe failures (the reporter suspects the peer), suspicion timeouts (the
// reporter declares the peer dead), refutations (the reporter was suspected
// or declared dead by the peer and refuted it), and members dropped from a
// List's view ("member left or failed": what the speaker's election sees).
type eventLog struct {
	mu      sync.Mutex
	trouble map[troubleKind][]pair // in order
	removed []pair
}

// pair is a reporting member and the peer its line names.
type pair struct{ self, peer string }

func newEventLog() *eventLog { return &eventLog{trouble: map[troubleKind][]pair{}} }

// logger returns the logger for member self: it counts, and logs nothing.
func (e *eventLog) logger(self string) logr.Logger { return logr.New(eventSink{log: e, self: self}) }

func (e *eventLog) snapshot() (trouble map[troubleKind][]pair, removed []pair) {
	e.mu.Lock()
	defer e.mu.Unlock()
	trouble = map[troubleKind][]pair{}
	for k, v := range e.trouble {
		trouble[k] = slices.Clone(v)
	}
	return trouble, slices.Clone(e.removed)
}

// eventSink is a logr.LogSink feeding an eventLog. It enables V(1), where
// logWriter reports every trouble line (at V(0) only the first of an
// episode).
type eventSink struct {
	log  *eventLog
	self string
}

func (s eventSink) Init(logr.RuntimeInfo)  {}
func (s eventSink) Enabled(level int) bool { return level <= 1 }
func (s eventSink) Error(error, string, ...any) {
}
func (s eventSink) WithValues(...any) logr.LogSink { return s }
func (s eventSink) WithName(string) logr.LogSink   { return s }

func (s eventSink) Info(_ int, msg string, kv ...any) {
	val := func(key string) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == key {
				v, ok := kv[i+1].(string)
				return v, ok
			}
		}
		return "", false
	}
	if msg == "member left or failed" {
		if m, ok := val("member"); ok {
			s.log.mu.Lock()
			s.log.removed = append(s.log.removed, pair{s.self, m})
			s.log.mu.Unlock()
		}
		return
	}
	kind, ok := val("trouble")
	if !ok {
		return
	}
	peer, _ := val("peer")
	s.log.mu.Lock()
	s.log.trouble[troubleKind(kind)] = append(s.log.trouble[troubleKind(kind)], pair{s.self, peer})
	s.log.mu.Unlock()
}

// dilated returns DefaultTimings with every interval and timeout k times
// longer: the same protocol in slow motion. Every delay memberlist derives
// (probe deadlines, suspicion timeouts, gossip and push/pull rounds) is a
// multiple of these, so a time measured in a dilated run, divided by k, is
// the time with DefaultTimings, and a rate multiplied by k is the rate with
// DefaultTimings, provided the simulation's own delays (scheduling on a
// shared machine) stay small next to the dilated intervals. That is why the
// 100-member runs use k = 5: at k = 1 the hundred members in one process
// need more than two cores while they join, fall behind their 50 ms probe
// timeouts, declare each other dead and never settle (seen on this machine,
// idle apart from the simulation); at k = 5 they settle within a minute and
// then run without a false suspicion on a tenth of a core.
func dilated(k int) Timings {
	t := DefaultTimings()
	d := time.Duration(k)
	t.ProbeInterval *= d
	t.ProbeTimeout *= d
	t.GossipInterval *= d
	t.PushPullInterval *= d
	t.TCPTimeout *= d
	return t
}

// waitQuiet waits until every one of ls has seen all of them, without a
// change, for 2k seconds: the join's false suspicions are over.
func waitQuiet(t testing.TB, c *cluster, ls []*List, k int) {
	t.Helper()
	quiet := time.Duration(2*k) * time.Second
	deadline := time.Now().Add(3 * time.Minute)
	var since time.Time
	for time.Now().Before(deadline) {
		all := true
		for _, l := range ls {
			all = all && l.NumMembers() == len(ls)
		}
		switch {
		case !all:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= quiet:
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the %d members did not see each other, unchanged, for %v within 3 minutes", len(ls), quiet)
}

// cpuTime is the CPU time this process has used (user and system): the
// simulation's own cost, to compare with the cores the machine has.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// simNames returns n member names.
func simNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("m%03d", i)
	}
	return names
}

// countedCluster starts n members with DefaultTimings dilated k times,
// whose logs go to an eventLog, and waits until they are quiet.
func countedCluster(t testing.TB, n, k int) (*cluster, []*List, *eventLog) {
	t.Helper()
	names := simNames(n)
	c := newCluster(t, names...)
	ev := newEventLog()
	c.mod = func(cfg *Config) { cfg.Logger = ev.logger(cfg.NodeName); cfg.Timings = dilated(k) }
	ls := c.startAll(names...)
	waitQuiet(t, c, ls, k)
	return c, ls, ev
}

// TestStallIsSuspectedAndRefuted checks the stall model and the counting the
// stall benchmark relies on: a member of five that stalls for 1.5 s, longer
// than DefaultTimings' worst-case detection for five members (1.2 s), is
// suspected and declared dead by the others; once it runs again it refutes
// and every member sees all five again.
func TestStallIsSuspectedAndRefuted(t *testing.T) {
	c, ls, ev := countedCluster(t, 5, 1)
	victim := "m004"
	c.tr[victim].stall(1500 * time.Millisecond)
	c.waitAllSee(ls, simNames(5))
	trouble, removed := ev.snapshot()
	count := func(ps []pair, self, peer string) int { // "" matches any
		n := 0
		for _, p := range ps {
			if (self == "" || p.self == self) && (peer == "" || p.peer == peer) {
				n++
			}
		}
		return n
	}
	if n := count(trouble[troubleProbeFailed], "", victim); n == 0 {
		t.Errorf("nobody suspected the stalled member: %v", trouble)
	}
	if n := count(trouble[troubleDeclaredDead], "", victim); n == 0 {
		t.Errorf("nobody declared the stalled member dead: %v", trouble)
	}
	if n := count(removed, "", victim); n == 0 {
		t.Errorf("no member dropped the stalled member from its view: %v", removed)
	}
	if n := count(trouble[troubleSuspected], victim, ""); n == 0 {
		t.Errorf("the stalled member did not refute: %v", trouble)
	}
	for _, p := range removed {
		if p.peer != victim {
			t.Errorf("%s dropped %s, which never stalled", p.self, p.peer)
		}
	}
}

// BenchmarkGossip measures what each member sends in an idle cluster with
// DefaultTimings: UDP (probes, acks; gossip only while something changes)
// and TCP (push/pull anti-entropy, every 10 s, scaled by memberlist to every
// 30 s from 33 members and 60 s from 1,025). The window covers two scaled
// push/pull intervals at 5 members; at 100, which run in slow motion (k = 5,
// see dilated) and whose rates are multiplied by 5, it covers two thirds of
// one (memberlist staggers each member's push/pull at random, so the mean
// over members is still the rate; a single member's is not). Figures are
// encrypted memberlist payload, before UDP/TCP/IP headers (28 bytes a packet
// over IPv4 UDP).
func BenchmarkGossip(b *testing.B) {
	for _, bc := range []struct {
		n, k   int
		window time.Duration // in the dilated time
	}{{5, 1, 20 * time.Second}, {100, 5, 100 * time.Second}} {
		b.Run(fmt.Sprintf("members=%d/time=%dx", bc.n, bc.k), func(b *testing.B) {
			c, _, _ := countedCluster(b, bc.n, bc.k)
			names := simNames(bc.n)
			var perNode, udpRate, tcpRate, pktRate []float64
			cpu0, wall0 := cpuTime(b), time.Now()
			for range b.N {
				type sample struct{ pkts, udp, tcp int64 }
				read := func() map[string]sample {
					m := map[string]sample{}
					for _, n := range names {
						tr := c.tr[n]
						m[n] = sample{tr.packetsOut.Load(), tr.bytesOut.Load(), tr.streamBytes.Load()}
					}
					return m
				}
				before, start := read(), time.Now()
				time.Sleep(bc.window) // the measurement window, not a synchronisation
				after, secs := read(), time.Since(start).Seconds()/float64(bc.k)
				for _, n := range names {
					d := sample{after[n].pkts - before[n].pkts, after[n].udp - before[n].udp, after[n].tcp - before[n].tcp}
					perNode = append(perNode, float64(d.udp+d.tcp)/secs)
					udpRate = append(udpRate, float64(d.udp)/secs)
					tcpRate = append(tcpRate, float64(d.tcp)/secs)
					pktRate = append(pktRate, float64(d.pkts)/secs)
				}
			}
			mean := func(xs []float64) float64 {
				s := 0.0
				for _, x := range xs {
					s += x
				}
				return s / float64(len(xs))
			}
			slices.Sort(perNode)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(mean(perNode), "B/s-per-node")
			b.ReportMetric(perNode[len(perNode)/2], "p50-B/s")
			b.ReportMetric(perNode[len(perNode)-1], "max-B/s")
			b.ReportMetric(mean(udpRate), "udp-B/s")
			b.ReportMetric(mean(tcpRate), "tcp-B/s")
			b.ReportMetric(mean(pktRate), "udp-pkts/s")
			b.ReportMetric(100*float64(cpuTime(b)-cpu0)/float64(time.Since(wall0)), "sim-cpu-%") // in real time
		})
	}
}

// BenchmarkStalls counts false suspicions in a cluster of 100 members where
// 10 of them, chosen at random, each stall (pumpTransport.stall: no packet
// in or out for 200 ms, see there for what the model misses) at random
// moments, one stall a second on average (exponential gaps), for 24 s; and,
// as the baseline the simulation itself causes, the same 24 s with no
// stalls. It runs in slow motion (k = 5, see dilated): the stalls last 1 s,
// 5 s apart on average, for 2 minutes of real time. No member crashes, so every suspicion and every death is
// false. It reports: suspicions raised (a probe of a member failed), of
// them of a stalled member; deaths declared (a suspicion timed out);
// refutations; and removals, the times a member dropped a member that
// never crashed from its view (each moves that member's addresses on the
// node that dropped it).
func BenchmarkStalls(b *testing.B) {
	const (
		n        = 100
		k        = 5
		stallFor = k * 200 * time.Millisecond
		meanGap  = k * time.Second
		window   = k * 24 * time.Second
	)
	for _, pct := range []int{0, 10} {
		b.Run(fmt.Sprintf("members=%d/time=%dx/stalled=%d%%", n, k, pct), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(14, 5))
			c, _, ev := countedCluster(b, n, k)
			names := simNames(n)
			stallers := map[string]bool{}
			for _, i := range rng.Perm(n)[:n*pct/100] {
				stallers[names[i]] = true
			}
			trouble0, removed0 := ev.snapshot()
			var stalls atomic.Int64
			cpu0, start := cpuTime(b), time.Now()
			for range b.N {
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for name := range stallers {
					seed := rng.Uint64()
					wg.Go(func() {
						r := rand.New(rand.NewPCG(seed, 1))
						for {
							select {
							case <-stop:
								return
							case <-time.After(time.Duration(r.ExpFloat64() * float64(meanGap))):
							}
							c.tr[name].stall(stallFor)
							stalls.Add(1)
						}
					})
				}
				time.Sleep(window)
				close(stop)
				wg.Wait()
			}
			elapsed := time.Since(start)
			cpu := 100 * float64(cpuTime(b)-cpu0) / float64(elapsed)
			time.Sleep(k * 3 * time.Second) // late reports of the last stalls
			trouble, removed := ev.snapshot()
			since := func(ps, before []pair) []pair { return ps[len(before):] }
			suspicions := since(trouble[troubleProbeFailed], trouble0[troubleProbeFailed])
			ofStalled := 0
			for _, p := range suspicions {
				if stallers[p.peer] {
					ofStalled++
				}
			}
			removedNow := since(removed, removed0)
			dropped := map[string]bool{}
			for _, p := range removedNow {
				dropped[p.peer] = true
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(stalls.Load()), "stalls")
			b.ReportMetric(float64(len(suspicions)), "suspicions")
			b.ReportMetric(float64(ofStalled), "suspicions-of-stalled")
			b.ReportMetric(float64(len(since(trouble[troubleDeclaredDead], trouble0[troubleDeclaredDead]))), "deaths")
			b.ReportMetric(float64(len(since(trouble[troubleSuspected], trouble0[troubleSuspected]))), "refutations")
			b.ReportMetric(float64(len(removedNow)), "removals")
			b.ReportMetric(float64(len(dropped)), "members-dropped")
			b.ReportMetric(cpu, "sim-cpu-%")
			if len(dropped) > 0 {
				b.Logf("members dropped from some view: %v", dropped)
			}
		})
	}
}
