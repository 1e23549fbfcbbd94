package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/probe"
)

// Chaos bounds. The failover bound is memberlist's detection (about 0.5 s with the defaults), the probe before
// announcing (0.1 s) and slack for a shared two-core machine; BENCHMARKS.md has the measured figures.
const (
	failoverBound = 2 * time.Second
	// dupBound is the longest run of client requests answered by two MACs once a duplicate is on the wire.
	dupBound = 500 * time.Millisecond
	// noOutage is the client's bound for scenarios that must not move anything: five 10 ms requests in a row. In
	// November a clean-clone run saw addresses unanswered for 62-72 ms at once while the API server resumed and
	// every client relisted, on the speaker before its reshape, and the bound was 250 ms for a while. Ten runs of
	// today's speaker (2026-12-07, five of them beside busy loops or a compile) saw 10-27 ms, and
	// chaosAPIDown logs each process's run-queue wait around any outage of 30 ms or more, so a recurrence says
	// whether the lab's client or a speaker was kept from running. What such scenarios must not do is checked on
	// the speakers' side as well (no probe, which any stop-and-restart of answering needs, and no move).
	noOutage = 50 * time.Millisecond
)

// TestChaos runs the guard's chaos scenarios on one three-node lab with a rogue host and a flooder beside it.
// Each scenario probes every address from the client every 10 ms while it disrupts the lab, then asserts on
// what the client saw: no address dark longer than the failover bound, two MACs only inside a short window, no
// move that was not needed, and one responder per address at the end.
func TestChaos(t *testing.T) {
	c := newClusterWith(t, 3, []string{"rogue", "flooder"}, "--conflict-retry-max=2s")
	c.pool("lab", []string{poolV4, poolV6})
	var vips []netip.Addr
	for i := range 6 {
		_, addrs := c.service("chaos", fmt.Sprintf("svc%d", i), "lab")
		vips = append(vips, addrs[0])
	}
	for i, v := range vips {
		c.settled(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "chaos", Name: fmt.Sprintf("svc%d", i)}}, v)
	}

	t.Run("kill -9 the announcer, then restart it", func(t *testing.T) { chaosKill(t, c, vips) })
	t.Run("SIGSTOP the announcer for 2s", func(t *testing.T) { chaosStop(t, c, vips, 2*time.Second) })
	t.Run("SIGSTOP the announcer for 10s", func(t *testing.T) { chaosStop(t, c, vips, 10*time.Second) })
	t.Run("gossip partition for 30s", func(t *testing.T) { chaosPartition(t, c, vips, 30*time.Second) })
	t.Run("link flapping every 2s", func(t *testing.T) { chaosFlap(t, c, vips) })
	t.Run("API server stopped for 60s", func(t *testing.T) { chaosAPIDown(t, c, vips, 60*time.Second) })
	t.Run("rogue host claims an address", func(t *testing.T) { chaosRogue(t, c, vips) })
	t.Run("address owned before it is requested", func(t *testing.T) { chaosOwned(t, c) })
	t.Run("ARP request flood", func(t *testing.T) { chaosFlood(t, c, vips) })

	// The probe before each first announcement, as the speakers measured it over the whole suite.
	for _, n := range []string{"node1", "node2", "node3"} {
		sum, err1 := c.metric(n, "herald_speaker_probe_delay_seconds_sum")
		count, err2 := c.metric(n, "herald_speaker_probe_delay_seconds_count")
		if err1 == nil && err2 == nil && count > 0 {
			t.Logf("chaos: node=%s probes_before_announcing=%.0f mean_probe_delay=%v", n, count, time.Duration(sum/count*float64(time.Second)).Round(time.Millisecond))
		}
	}
}

// watch probes addresses from the client every 10 ms until stop.
type watch struct {
	c      *cluster
	series map[netip.Addr]*probe.Series
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  time.Time
}

func (c *cluster) watch(vips []netip.Addr) *watch { return c.watchEvery(vips, 10*time.Millisecond) }

// watchEvery probes addresses from the client every interval until stop.
func (c *cluster) watchEvery(vips []netip.Addr, every time.Duration) *watch {
	return c.watchEach(vips, func(netip.Addr) time.Duration { return every })
}

// watchEach probes each address from the client at its own interval until stop.
func (c *cluster) watchEach(vips []netip.Addr, interval func(netip.Addr) time.Duration) *watch {
	ctx, cancel := context.WithCancel(c.ctx)
	w := &watch{c: c, series: map[netip.Addr]*probe.Series{}, cancel: cancel, start: time.Now()}
	for _, v := range vips {
		every := interval(v)
		s := &probe.Series{Every: every}
		w.series[v] = s
		p := c.p4
		if v.Is6() {
			p = c.p6
		}
		w.wg.Go(func() { _ = p.Watch(ctx, v, every, s.Add) })
	}
	return w
}

func (w *watch) stop() {
	w.cancel()
	w.wg.Wait()
}

// holders maps each address to the node answering it alone now, from the client's probes.
// Each probe listens 300 ms for every reply; 32 run at once, so that a round over 200 addresses takes about 2 s,
// not a minute.
func (c *cluster) holders(vips []netip.Addr) map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(vips))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	work := make(chan netip.Addr)
	for range min(32, len(vips)) {
		wg.Go(func() {
			for v := range work {
				got, err := c.respondersErr(v)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				who := fmt.Sprint(got)
				if len(got) == 1 {
					who = c.nodeOfMAC(got[0])
				}
				mu.Lock()
				out[v] = who
				mu.Unlock()
			}
		})
	}
	for _, v := range vips {
		work <- v
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		c.t.Fatal(errors.Join(errs...))
	}
	return out
}

// verdict asserts on a watch: for each address, the longest outage, the duplicate windows and the moves
// (at most maxMoves[addr], default 0), and logs the scenario's figures.
func (w *watch) verdict(t *testing.T, scenario string, maxMoves map[netip.Addr]int, darkBound time.Duration) {
	t.Helper()
	var worstGap, worstDup time.Duration
	var worstAt time.Time
	dupReqs, moves := 0, 0
	for v, s := range w.series {
		at, gap := s.LongestGapAt()
		if gap > worstGap {
			worstAt = at
		}
		wins := s.DuplicateWindows()
		var longest time.Duration
		for _, d := range wins {
			longest = max(longest, d)
		}
		worstGap, worstDup = max(worstGap, gap), max(worstDup, longest)
		dupReqs += s.Duplicates()
		moves += s.Moves()
		if gap > darkBound {
			t.Errorf("%s: %s was dark for %v (bound %v)", scenario, v, gap, darkBound)
		}
		if longest > dupBound {
			t.Errorf("%s: %s was answered by two MACs for %v in a row (bound %v)", scenario, v, longest, dupBound)
		}
		if m := s.Moves(); m > maxMoves[v] {
			t.Errorf("%s: %s moved %d times, want at most %d (MACs seen %v)", scenario, v, m, maxMoves[v], s.MACs())
		}
		if s.Len() == 0 {
			t.Errorf("%s: no probe of %s was recorded", scenario, v)
		}
	}
	outageAt := "-"
	if worstGap > 0 {
		outageAt = fmt.Sprintf("+%v", worstAt.Sub(w.start).Round(time.Millisecond))
	}
	t.Logf("chaos: scenario=%q addresses=%d longest_outage=%v (from %s after the watch began) duplicate_requests=%d longest_duplicate_window=%v moves=%d",
		scenario, len(w.series), worstGap, outageAt, dupReqs, worstDup, moves)
}

// final asserts one responder per address, the node its Announcement names.
func (c *cluster) final(t *testing.T, vips []netip.Addr) map[netip.Addr]string {
	t.Helper()
	return c.finalIn(t, "chaos", vips)
}

// finalIn is final for the Announcements of namespace ns.
func (c *cluster) finalIn(t *testing.T, ns string, vips []netip.Addr) map[netip.Addr]string {
	t.Helper()
	var h map[netip.Addr]string
	c.eventually(30*time.Second, "one responder per address, the one its Announcement names", func() (bool, string) {
		h = c.holders(vips)
		var anns heraldv1.AnnouncementList
		if err := c.c.List(c.ctx, &anns, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		byAddr := map[string]string{}
		for _, an := range anns.Items {
			for _, a := range an.Status.Addresses {
				byAddr[a] = an.Status.Node
			}
		}
		for _, v := range vips {
			if _, ok := c.hosts[h[v]]; !ok {
				return false, fmt.Sprintf("%s answered by %s", v, h[v])
			}
			if byAddr[v.String()] != h[v] {
				return false, fmt.Sprintf("%s answered by %s, its Announcement names %q", v, h[v], byAddr[v.String()])
			}
		}
		return true, ""
	})
	return h
}

// victim is the node holding the most addresses, and the addresses it holds.
func victim(h map[netip.Addr]string) (string, map[netip.Addr]int) {
	count := map[string]int{}
	for _, n := range h {
		count[n]++
	}
	best := ""
	for n, k := range count {
		if best == "" || k > count[best] || (k == count[best] && n < best) {
			best = n
		}
	}
	moves := map[netip.Addr]int{}
	for v, n := range h {
		if n == best {
			moves[v] = 1
		}
	}
	return best, moves
}

func chaosKill(t *testing.T, c *cluster, vips []netip.Addr) {
	c = withT(c, t)
	node, moves := victim(c.final(t, vips))
	w := c.watch(vips)
	time.Sleep(300 * time.Millisecond)
	if err := c.speaker[node].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.speaker[node].Wait()
	time.Sleep(2 * time.Second)
	// The same node comes back under the same name: it must not take its addresses back.
	c.startSpeaker(node)
	c.waitMembers(len(c.hosts))
	time.Sleep(5 * time.Second)
	w.stop()
	w.verdict(t, "kill -9 and restart", moves, failoverBound)
	after := c.final(t, vips)
	for v := range moves {
		if after[v] == node {
			t.Errorf("%s went back to %s after its restart: a second move", v, node)
		}
	}
}

func chaosStop(t *testing.T, c *cluster, vips []netip.Addr, d time.Duration) {
	c = withT(c, t)
	node, moves := victim(c.final(t, vips))
	w := c.watch(vips)
	time.Sleep(300 * time.Millisecond)
	p := c.speaker[node]
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = p.Signal(syscall.SIGCONT)
		}
	}()
	time.Sleep(d)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	c.waitMembers(len(c.hosts))
	time.Sleep(5 * time.Second)
	w.stop()
	w.verdict(t, fmt.Sprintf("SIGSTOP %v", d), moves, failoverBound)
	after := c.final(t, vips)
	for v := range moves {
		if after[v] == node {
			t.Errorf("%s went back to %s after it resumed: a second move", v, node)
		}
	}
}

// nft runs nft in a host's namespace.
func nft(c *cluster, node string, args ...string) error {
	out, err := c.hosts[node].Run(c.ctx, "nft", args...)
	if err != nil {
		return fmt.Errorf("nft %s in %s: %v: %s", strings.Join(args, " "), node, err, out)
	}
	return nil
}

func chaosPartition(t *testing.T, c *cluster, vips []netip.Addr, d time.Duration) {
	c = withT(c, t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft is missing (make lab-deps installs nftables): %v", err)
	}
	node, _ := victim(c.final(t, vips))
	w := c.watch(vips)
	time.Sleep(300 * time.Millisecond)
	healFn, err := c.partitionGossip(node)
	if err != nil {
		t.Fatal(err)
	}
	heal := func() {
		if err := healFn(); err != nil {
			t.Error(err)
		}
	}
	defer heal()
	c.eventually(10*time.Second, node+" seen dead by the others", func() (bool, string) {
		for n := range c.hosts {
			if n == node {
				continue
			}
			v, err := c.metric(n, "herald_speaker_members")
			if err != nil || v != float64(len(c.hosts)-1) {
				return false, fmt.Sprintf("%s sees %v members (%v)", n, v, err)
			}
		}
		return true, ""
	})
	time.Sleep(d)
	heal()
	c.waitMembers(len(c.hosts))
	time.Sleep(3 * time.Second)
	w.stop()
	// Both sides see the other answering, so nobody takes anything over: no move at all.
	w.verdict(t, fmt.Sprintf("gossip partition %v", d), nil, noOutage)
	c.final(t, vips)
}

func chaosFlap(t *testing.T, c *cluster, vips []netip.Addr) {
	c = withT(c, t)
	node, moves := victim(c.final(t, vips))
	h := c.hosts[node]
	w := c.watch(vips)
	time.Sleep(300 * time.Millisecond)
	up := true
	defer func() {
		if !up {
			_ = c.lab.SetLink(h, true)
		}
	}()
	for range 3 {
		if err := c.lab.SetLink(h, false); err != nil {
			t.Fatal(err)
		}
		up = false
		time.Sleep(2 * time.Second)
		if err := c.lab.SetLink(h, true); err != nil {
			t.Fatal(err)
		}
		up = true
		time.Sleep(2 * time.Second)
	}
	c.waitMembers(len(c.hosts))
	time.Sleep(3 * time.Second)
	w.stop()
	// The first time the link goes down its addresses move (it really is unreachable); they never come back,
	// and the later flaps cost nothing.
	w.verdict(t, "link flapping every 2s", moves, failoverBound)
	c.final(t, vips)
}

func chaosAPIDown(t *testing.T, c *cluster, vips []netip.Addr, d time.Duration) {
	c = withT(c, t)
	c.final(t, vips)
	probes := c.probeCounts()
	apiserver := c.apiserverPid()
	w := c.watch(vips)
	sched := newSchedSampler(c, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(apiserver, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(apiserver, syscall.SIGCONT); err != nil {
				t.Errorf("resuming kube-apiserver: %v", err)
			}
		}
	}
	defer resume()
	time.Sleep(d)
	resume()
	time.Sleep(3 * time.Second)
	w.stop()
	sched.stop()
	// Issue 16's open question: an outage of one node's addresses with the API server stopped. Say, for each
	// outage longer than three requests, whose addresses went dark and whether a process was kept from running.
	for v, sr := range w.series {
		for _, sp := range sr.Outages() {
			if sp.Dur < 30*time.Millisecond {
				continue
			}
			holder := "-"
			for _, e := range sr.Entries(sp.Start.Add(-time.Second), sp.Start) {
				if len(e.MACs) == 1 {
					holder = c.nodeOfMAC(e.MACs[0].String())
				}
			}
			t.Logf("chaos: API server stopped: %s (%s) unanswered for %v from +%v; %s", v, holder, sp.Dur.Round(time.Millisecond),
				sp.Start.Sub(w.start).Round(time.Millisecond), sched.around(sp.Start.Add(-20*time.Millisecond), sp.End()))
		}
	}
	w.verdict(t, fmt.Sprintf("API server stopped %v", d), nil, noOutage)
	if after := c.probeCounts(); !maps.Equal(after, probes) {
		t.Errorf("probes before announcing, per node: %v before the API server stopped, %v after: a speaker stopped answering and started again", probes, after)
	}
	c.final(t, vips)
}

// probeCounts is, per node, how many probes its speaker has made before announcing (each stop and restart of
// answering makes one).
func (c *cluster) probeCounts() map[string]float64 {
	c.t.Helper()
	out := map[string]float64{}
	for n := range c.speaker {
		v, err := c.metric(n, "herald_speaker_probe_delay_seconds_count")
		if err != nil {
			c.t.Fatalf("reading %s's probe count: %v", n, err)
		}
		out[n] = v
	}
	return out
}

func (c *cluster) apiserverPid() int {
	c.t.Helper()
	pid, err := c.cpPid("kube-apiserver")
	if err != nil {
		c.t.Fatal(err)
	}
	return pid
}

// cpPid is the pid of the process named comm (etcd, kube-apiserver) in the control plane's namespace.
func (c *cluster) cpPid(comm string) (int, error) {
	out, err := exec.CommandContext(c.ctx, "ip", "netns", "pids", c.lab.CP.NS).Output()
	if err != nil {
		return 0, fmt.Errorf("listing the control plane's processes: %w", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if b, err := os.ReadFile("/proc/" + f + "/comm"); err == nil && strings.TrimSpace(string(b)) == comm {
			pid, _ := strconv.Atoi(f)
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s among the control plane's processes %q", comm, out)
}

// rogueOwn puts addr on the rogue host, whose kernel then answers for it; the returned func removes it.
func (c *cluster) rogueOwn(addr netip.Addr) func() {
	c.t.Helper()
	remove, err := c.rogueClaim(addr)
	if err != nil {
		c.t.Fatal(err)
	}
	return func() {
		if err := remove(); err != nil {
			c.t.Error(err)
		}
	}
}

// rogueClaim is rogueOwn for goroutines other than the test's; an IPv6 address skips duplicate address
// detection (which would find the speaker answering and leave it unused). The remove func may be called more
// than once.
func (c *cluster) rogueClaim(addr netip.Addr) (remove func() error, err error) {
	r := c.lab.Others[0]
	pfx, opts := addr.String()+"/24", []string(nil)
	if addr.Is6() {
		pfx, opts = addr.String()+"/64", []string{"nodad"}
	}
	if out, err := r.Run(c.ctx, "ip", append([]string{"addr", "add", pfx, "dev", r.Link}, opts...)...); err != nil {
		return nil, fmt.Errorf("adding %s on the rogue host: %v: %s", addr, err, out)
	}
	removed := false
	return func() error {
		if removed {
			return nil
		}
		removed = true
		if out, err := r.Run(c.ctx, "ip", "addr", "del", pfx, "dev", r.Link); err != nil {
			return fmt.Errorf("removing %s from the rogue host: %v: %s", addr, err, out)
		}
		return nil
	}, nil
}

// events lists the notes of a Service's Events with reason.
func (c *cluster) events(ns, name, reason string) []string {
	var evs eventsv1.EventList
	if err := c.c.List(c.ctx, &evs, client.InNamespace(ns)); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out
}

func chaosRogue(t *testing.T, c *cluster, vips []netip.Addr) {
	c = withT(c, t)
	h := c.final(t, vips)
	vip := vips[0]
	r := c.lab.Others[0]
	node := h[vip]
	w := c.watch([]netip.Addr{vip})
	time.Sleep(300 * time.Millisecond)
	remove := c.rogueOwn(vip)
	defer remove()
	claimed := time.Now()
	if out, err := r.Run(c.ctx, "arping", "-U", "-c", "2", "-w", "2", "-I", r.Link, "-s", vip.String(), vip.String()); err != nil {
		t.Logf("arping -U: %v: %s", err, out) // arping exits 1 when nobody replies to a gratuitous ARP
	}
	// Herald yields (the default policy): the rogue host alone answers, and the conflict is reported.
	c.eventually(10*time.Second, "the rogue host alone answering", func() (bool, string) {
		got := c.responders(vip)
		return len(got) == 1 && got[0] == r.MAC.String(), fmt.Sprintf("responders %v", got)
	})
	c.eventually(10*time.Second, "an IPConflict Event naming the rogue MAC", func() (bool, string) {
		for _, n := range c.events("chaos", "svc0", "IPConflict") {
			if strings.Contains(n, r.MAC.String()) {
				return true, ""
			}
		}
		return false, fmt.Sprint(c.events("chaos", "svc0", "IPConflict"))
	})
	c.eventually(10*time.Second, "the Announcement's conflict", func() (bool, string) {
		var an heraldv1.Announcement
		if err := c.c.Get(c.ctx, client.ObjectKey{Namespace: "chaos", Name: "svc0"}, &an); err != nil {
			return false, err.Error()
		}
		cf := an.Status.Conflict
		return cf != nil && cf.Kind == heraldv1.ConflictForeign && cf.MAC == r.MAC.String(), fmt.Sprintf("status %+v", an.Status)
	})
	w.stop()
	s := w.series[vip]
	wins := s.DuplicateWindows()
	var detect time.Duration
	if last, ok := s.LastAnsweredBy(c.hosts[node].MAC); ok && last.After(claimed) {
		detect = last.Sub(claimed) // from the rogue's gratuitous ARP to the last request Herald answered
	}
	var longest time.Duration
	for _, d := range wins {
		longest = max(longest, d)
	}
	t.Logf("chaos: scenario=%q duplicate_requests=%d longest_duplicate_window=%v yielded_after=%v",
		"rogue host claims an address", s.Duplicates(), longest, detect)
	if longest > dupBound {
		t.Errorf("answered by the rogue host and %s together for %v", node, longest)
	}
	// The node that yielded, or the election's choice once it probed, reports the conflict.
	c.eventually(10*time.Second, "a speaker reporting one conflicting address", func() (bool, string) {
		var got []string
		for n := range c.hosts {
			v, err := c.metric(n, `herald_speaker_conflicting_addresses{kind="Foreign"}`)
			if err == nil && v == 1 {
				return true, ""
			}
			got = append(got, fmt.Sprintf("%s: %v (%v)", n, v, err))
		}
		return false, strings.Join(got, ", ")
	})
	// The rogue host gives the address up: Herald answers again after its next probe.
	w = c.watch([]netip.Addr{vip})
	remove()
	c.eventually(15*time.Second, "Herald answering again", func() (bool, string) {
		got := c.responders(vip)
		return len(got) == 1 && got[0] != r.MAC.String(), fmt.Sprintf("responders %v", got)
	})
	w.stop()
	c.eventually(10*time.Second, "a ConflictResolved Event", func() (bool, string) {
		got := c.events("chaos", "svc0", "ConflictResolved")
		return len(got) > 0, "none yet"
	})
	c.final(t, vips)
}

func chaosOwned(t *testing.T, c *cluster) {
	c = withT(c, t)
	vip := netip.MustParseAddr("198.51.100.150")
	r := c.lab.Others[0]
	remove := c.rogueOwn(vip)
	defer remove()
	w := c.watch([]netip.Addr{vip})
	svc, addrs := c.service("chaos", "owned", "lab", func(s *corev1.Service) {
		s.Annotations["herald.dev/load-balancer-ips"] = vip.String()
	})
	defer c.delete(svc)
	if addrs[0] != vip {
		t.Fatalf("the Service got %v, want %s", addrs, vip)
	}
	var an heraldv1.Announcement
	c.eventually(15*time.Second, "the Announcement reporting IPConflict", func() (bool, string) {
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(svc), &an); err != nil {
			return false, err.Error()
		}
		cond := findCond(an.Status.Conditions, "Announced")
		cf := an.Status.Conflict
		return cond != nil && cond.Reason == "IPConflict" && cond.Status == "False" && cf != nil && cf.MAC == r.MAC.String(),
			fmt.Sprintf("status %+v", an.Status)
	})
	time.Sleep(2 * time.Second)
	w.stop()
	s := w.series[vip]
	for _, m := range s.MACs() {
		if m.String() != r.MAC.String() {
			t.Errorf("%s, owned by the rogue host, was answered by %s (%s)", vip, m, c.nodeOfMAC(m.String()))
		}
	}
	if got := c.events("chaos", "owned", "IPConflict"); len(got) == 0 || !strings.Contains(got[0], r.MAC.String()) {
		t.Errorf("IPConflict Events %q, want one naming %s", got, r.MAC)
	}
	t.Logf("chaos: scenario=%q requests=%d answered_by_herald=0 conflict_reported_on=%s", "address owned before it is requested", s.Len(), an.Status.Node)
	remove()
	c.eventually(15*time.Second, "Herald answering once the owner is gone", func() (bool, string) {
		got := c.responders(vip)
		return len(got) == 1 && got[0] != r.MAC.String(), fmt.Sprintf("responders %v", got)
	})
}

func chaosFlood(t *testing.T, c *cluster, vips []netip.Addr) {
	c = withT(c, t)
	h := c.final(t, vips)
	vip := vips[0]
	for _, v := range vips {
		if v.Is4() {
			vip = v
			break
		}
	}
	node := h[vip]
	pid := c.speaker[node].Pid()
	f := c.lab.Others[1]
	w := c.watch([]netip.Addr{vip})
	cpu0, t0 := procCPU(t, pid), time.Now()
	sent, err := flood(c.ctx, f, c.hosts[node].MAC, vip, 30000, 5*time.Second)
	if err != nil {
		t.Fatalf("flooding: %v", err)
	}
	cpu, el := procCPU(t, pid)-cpu0, time.Since(t0)
	w.stop()
	s := w.series[vip]
	answered := 1 - float64(s.Unanswered())/float64(s.Len())
	share := cpu.Seconds() / el.Seconds()
	t.Logf("chaos: scenario=%q flood_frames=%d flood_rate=%.0f/s speaker_cpu=%.1f%% client_requests=%d answered=%.4f",
		"ARP request flood", sent, float64(sent)/el.Seconds(), 100*share, s.Len(), answered)
	if answered < 0.99 {
		t.Errorf("under the flood only %.2f%% of the client's requests were answered", 100*answered)
	}
	if share > 0.9 {
		t.Errorf("the speaker used %.0f%% of a core under the flood", 100*share)
	}
}

func findCond(cs []metav1.Condition, t string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// flood sends ARP requests for vip from the host h to the MAC dst (unicast, so that the bridge does not copy each
// one to every host), rate per second for d, as a broken or hostile client would, and returns how many it sent.
func flood(ctx context.Context, h *lab.Host, dst net.HardwareAddr, vip netip.Addr, rate int, d time.Duration) (int, error) {
	sent := 0
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Link)
		if err != nil {
			return err
		}
		conn, err := packet.Listen(ifi, packet.Raw, 0x0806, nil)
		if err != nil {
			return fmt.Errorf("opening a packet socket on %s: %w", h.Link, err)
		}
		defer conn.Close()
		frame := make([]byte, 42)
		copy(frame[0:6], dst)
		copy(frame[6:12], h.MAC)
		copy(frame[12:14], []byte{0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1})
		copy(frame[14:24], []byte{0, 1, 0x08, 0x00, 6, 4, 0, 1})
		copy(frame[22:28], h.MAC)
		spa := h.IPv4.As4()
		copy(frame[28:32], spa[:])
		tpa := vip.As4()
		copy(frame[38:42], tpa[:])
		to := &packet.Addr{HardwareAddr: dst}
		start := time.Now()
		for time.Since(start) < d && ctx.Err() == nil {
			due := int(time.Since(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				if _, err := conn.WriteTo(frame, to); err != nil {
					return fmt.Errorf("sending: %w", err)
				}
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	return sent, err
}
