package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/access"
	"github.com/heraldlb/herald/internal/announce"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
)

// trials is the number of failovers per lab size; HERALD_BENCH_TRIALS overrides it.
func trials() int {
	if n, err := strconv.Atoi(os.Getenv("HERALD_BENCH_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// percentile of sorted durations, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkFailover measures, in 3- and 10-node labs, how long a Service's address stays dark for a client
// probing every 10 ms when its announcing speaker is killed (SIGKILL) or stopped gracefully (SIGTERM). The
// stopped speaker is restarted after each trial (and takes the address back, as the election says).
func BenchmarkFailover(b *testing.B) {
	for _, nodes := range []int{3, 10} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := newCluster(b, nodes)
			c.pool("lab", []string{poolV4})
			svc, addrs := c.service("bench", "web", "lab")
			for range b.N {
				results := map[syscall.Signal][]time.Duration{}
				dups := map[syscall.Signal]int{}
				for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
					for range trials() {
						old := c.settled(svc, addrs[0])
						gap, series := c.measureOutage(addrs[0], old, sig)
						results[sig] = append(results[sig], gap)
						dups[sig] += series.Duplicates()
						c.startSpeaker(old)
						c.waitMembers(nodes)
					}
				}
				for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
					name := map[syscall.Signal]string{syscall.SIGKILL: "crash", syscall.SIGTERM: "handover"}[sig]
					r := results[sig]
					b.ReportMetric(ms(percentile(r, .5)), name+"-p50-ms")
					b.ReportMetric(ms(percentile(r, .99)), name+"-p99-ms")
					b.Logf("%d nodes, %s, %d trials: p50 %v, p99 %v, max %v; probes answered by two MACs: %d; all: %v",
						nodes, name, len(r), percentile(r, .5), percentile(r, .99), slices.Max(r), dups[sig], r)
				}
			}
		})
	}
}

// BenchmarkReplyLatency compares, on one lab link, how fast Herald's responder answers ARP and Neighbor
// Solicitations with 1 and with 10,000 addresses per family announced, against the node's kernel answering for
// its own address, probed alternately from the client so both see the same machine load.
func BenchmarkReplyLatency(b *testing.B) {
	needLab(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := lab.New(ctx, lab.Config{Nodes: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	node := l.Nodes[0]
	ifi, err := node.Interface(node.Link)
	if err != nil {
		b.Fatal(err)
	}
	ann := announce.New(announce.Config{GratuitousRepeats: -1, Listen: func(i wire.Interface) (announce.Conns, error) {
		var cs announce.Conns
		err := node.Do(func() error {
			var err error
			cs, err = announce.ListenInterface(i)
			return err
		})
		return cs, err
	}})
	go ann.Run(ctx)
	defer ann.Close()
	var p4, p6 *probe.Prober
	if err := l.Client.Do(func() error {
		ci, err := net.InterfaceByName(l.Client.Link)
		if err != nil {
			return err
		}
		if p4, err = probe.New(wire.InterfaceOf(ci), l.Client.IPv4); err != nil {
			return err
		}
		p6, err = probe.New(wire.InterfaceOf(ci), l.Client.IPv6)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer p4.Close()
	defer p6.Close()

	vip4, vip6 := netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("2001:db8:100::100")
	for _, n := range []int{1, 10000} {
		vips := []netip.Addr{vip4, vip6}
		for i := 1; i < n; i++ {
			vips = append(vips, netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 13: 1, 14: byte(i >> 8), 15: byte(i)}))
		}
		ann.Set(announce.Assignment{node.Link: {Interface: wire.InterfaceOf(ifi), VIPs: vips}})
		time.Sleep(500 * time.Millisecond)
		b.Run(fmt.Sprintf("vips=%d", n), func(b *testing.B) {
			for range b.N {
				for _, fam := range []struct {
					name           string
					p              *probe.Prober
					kernel, herald netip.Addr
				}{{"arp", p4, node.IPv4, vip4}, {"ndp", p6, node.IPv6, vip6}} {
					// A discarded warm-up round each: the first requests after a quiet spell pay for waking
					// threads on both sides.
					watchRTTs(b, fam.p, fam.kernel, node.MAC)
					watchRTTs(b, fam.p, fam.herald, node.MAC)
					var kern, herald []time.Duration
					for round := 0; round < 6; round++ {
						kern = append(kern, watchRTTs(b, fam.p, fam.kernel, node.MAC)...)
						herald = append(herald, watchRTTs(b, fam.p, fam.herald, node.MAC)...)
					}
					b.ReportMetric(float64(percentile(herald, .5).Microseconds()), fam.name+"-herald-p50-us")
					b.ReportMetric(float64(percentile(herald, .99).Microseconds()), fam.name+"-herald-p99-us")
					b.ReportMetric(float64(percentile(kern, .5).Microseconds()), fam.name+"-kernel-p50-us")
					b.ReportMetric(float64(percentile(kern, .99).Microseconds()), fam.name+"-kernel-p99-us")
					b.Logf("%s with %d VIPs per family: herald p50 %v p99 %v (%d replies); kernel p50 %v p99 %v (%d replies); p99 ratio %.2f",
						fam.name, n, percentile(herald, .5), percentile(herald, .99), len(herald),
						percentile(kern, .5), percentile(kern, .99), len(kern), float64(percentile(herald, .99))/float64(percentile(kern, .99)))
				}
			}
		})
	}
}

// watchRTTs probes target every 5 ms for half a second and returns the round-trip times of replies from mac.
func watchRTTs(b *testing.B, p *probe.Prober, target netip.Addr, mac net.HardwareAddr) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var out []time.Duration
	_ = p.Watch(ctx, target, 5*time.Millisecond, func(_ int, _ time.Time, replies []probe.Reply) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range replies {
			if r.MAC.String() == mac.String() {
				out = append(out, r.RTT)
			}
		}
	})
	if len(out) == 0 {
		b.Fatalf("no replies for %s", target)
	}
	return out
}

// BenchmarkSpeaker10k announces 10,000 Services from a one-node lab and reports the speaker's resident memory,
// its CPU use while idle, and its decision time.
func BenchmarkSpeaker10k(b *testing.B) {
	const n = 10000
	c := newCluster(b, 1)
	c.pool("bulk", []string{"198.18.0.0/18"}, func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{"eth0"} })
	start := c.bulk(b, n)
	c.eventually(15*time.Minute, "10,000 addresses announced", func() (bool, string) {
		v, err := c.metric("node1", "herald_speaker_announced_addresses")
		if err != nil {
			return false, err.Error()
		}
		return v == n, fmt.Sprintf("%v announced", v)
	})
	b.Logf("all %d announced %v after the first create", n, time.Since(start))
	time.Sleep(10 * time.Second) // let the status writes finish
	pid := c.speaker["node1"].Pid()
	for range b.N {
		cpu0 := procCPU(b, pid)
		t0 := time.Now()
		time.Sleep(30 * time.Second)
		idle := (procCPU(b, pid) - cpu0).Seconds() / time.Since(t0).Seconds()
		rss, hwm := procMem(b, pid)
		sum, _ := c.metric("node1", "herald_speaker_decide_seconds_sum")
		count, _ := c.metric("node1", "herald_speaker_decide_seconds_count")
		b.ReportMetric(rss/1024, "rss-MiB")
		b.ReportMetric(idle*100, "idle-cpu-%")
		if body, err := c.metrics("node1"); err == nil {
			// The Go runtime's stop-the-world pauses for GC over the speaker's life, from the histogram
			// controller-runtime's Go collector exports (runtime/metrics /sched/pauses/total/gc:seconds).
			p50, p99, count := histogramQuantiles(body, "go_sched_pauses_total_gc_seconds")
			b.Logf("speaker with %d addresses: GC pauses over its life: %d, p50 <= %v, p99 <= %v", n, count, p50, p99)
		}
		b.Logf("speaker with %d addresses: RSS %.0f MiB (peak %.0f MiB), idle CPU %.2f%% of one core over 30 s, mean decision %.1f ms over %v decisions",
			n, rss/1024, hwm/1024, idle*100, 1000*sum/max(count, 1), count)
	}
}

// histogramQuantiles reads a Prometheus histogram from a metrics page and returns the upper bounds of the buckets
// holding its median and 99th percentile, and its count.
func histogramQuantiles(body, name string) (p50, p99 time.Duration, count int) {
	type bucket struct {
		le float64
		n  float64
	}
	var bs []bucket
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		l, err1 := strconv.ParseFloat(le, 64)
		v, err2 := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err1 == nil && err2 == nil {
			bs = append(bs, bucket{l, v})
		}
	}
	if len(bs) == 0 {
		return 0, 0, 0
	}
	total := bs[len(bs)-1].n
	at := func(q float64) time.Duration {
		for _, b := range bs {
			if b.n >= q*total {
				return time.Duration(b.le * float64(time.Second))
			}
		}
		return 0
	}
	return at(0.5), at(0.99), int(total)
}

// procCPU is the user+system CPU time of a process.
func procCPU(b testing.TB, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// procMem returns VmRSS and VmHWM in KiB.
func procMem(b *testing.B, pid int) (rss, hwm float64) {
	rss, hwm, err := procMemErr(pid)
	if err != nil {
		b.Fatal(err)
	}
	return rss, hwm
}

// procMemErr is procMem, for goroutines other than the test's.
func procMemErr(pid int) (rss, hwm float64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				rss = v
			case "VmHWM:":
				hwm = v
			}
		}
	}
	return rss, hwm, nil
}

// labelled reads one labelled series (its exact text before the value, e.g. `x{verdict="Healthy"}`) from a
// node's speaker; 0 when absent.
func (c *cluster) labelled(node, series string) float64 {
	body, err := c.metrics(node)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// BenchmarkScale10k announces 10,000 Services (half of them externalTrafficPolicy Local, each with an
// EndpointSlice whose ready endpoints are on two of the three nodes, so that every address has a watcher) from a
// three-node lab, and reports what that costs (issue 14):
//   - the API requests of Herald's components (from the API server's audit log), by verb and resource, during the
//     creation storm, in the steady state, and during the failover of the node holding the most addresses;
//   - in the steady state over 30 s: each speaker's CPU, resident memory (and peak), Go heap and GC pauses, the
//     controller's memory, and the health probing's traffic, with a CPU profile of node1's speaker and a heap
//     profile of each (their top functions are logged; the CPU profile is kept at $HERALD_BENCH_PROFILE and the
//     heap profiles at $HERALD_BENCH_PROFILE.<node>.heap when that is set);
//   - mass failover: kill -9 of the busiest speaker while the client probes a sample of 500 of its addresses
//     every 10 ms; per address, the time from the kill until another node answers (p50/p99/max), and how long the
//     survivors' Announcement writes took.
//
// The speakers' per-interface reply limit is lifted: the client's sample alone asks 50,000 times a second.
func BenchmarkScale10k(b *testing.B) {
	const n = 10000
	c := newCluster(b, 3, "--pprof-bind-address=:6060", "--reply-rate-per-interface=-1")
	c.pool("bulk", []string{"198.18.0.0/18"}, func(a *heraldv1.L2Advertisement) { a.Spec.Interfaces = []string{"eth0"} })
	nodes := []string{"node1", "node2", "node3"}
	sum := func(series string) float64 {
		total := 0.0
		for _, node := range nodes {
			total += c.labelled(node, series)
		}
		return total
	}
	audit0 := c.auditMark(b)
	start := c.bulk(b, n, nodes...)
	c.eventually(15*time.Minute, "10,000 addresses announced", func() (bool, string) {
		v := sum("herald_speaker_announced_addresses")
		return v == n, fmt.Sprintf("%v announced", v)
	})
	announced := time.Now()
	b.Logf("all %d announced %v after the first create", n, announced.Sub(start))
	// Every address has a watcher (two eligible nodes at least), hence a verdict. A shortfall is reported and
	// the measurement goes on: the steady state's cost is the point.
	if !c.within(5*time.Minute, func() bool { return sum(`herald_health_addresses{verdict="Healthy"}`) == n }) {
		b.Errorf("after 5 min, %v of %d addresses judged healthy", sum(`herald_health_addresses{verdict="Healthy"}`), n)
	}
	b.Logf("%v of %d judged healthy %v after the last was announced", sum(`herald_health_addresses{verdict="Healthy"}`), n,
		time.Since(announced).Round(time.Millisecond))
	// Every first verdict is written to its Announcement before measuring: what is left is the steady state
	// (rounds and answers; an unchanged verdict is not written again).
	if !c.within(10*time.Minute, func() bool { return sum(`herald_health_status_writes_total{result="ok"}`) >= n }) {
		b.Errorf("after 10 min, %v first verdicts written", sum(`herald_health_status_writes_total{result="ok"}`))
	}
	b.Logf("first verdicts written %v after the last was announced", time.Since(announced).Round(time.Millisecond))
	c.auditReport(b, "creation storm", audit0, time.Since(start))
	time.Sleep(5 * time.Second)
	for range b.N {
		cpu0, req0, wr0 := map[string]time.Duration{}, map[string]float64{}, map[string]float64{}
		for _, node := range nodes {
			cpu0[node] = procCPU(b, c.speaker[node].Pid())
			req0[node] = c.labelled(node, "herald_health_requests_total")
			wr0[node] = c.labelled(node, `herald_health_status_writes_total{result="ok"}`)
		}
		steady := c.auditMark(b)
		t0 := time.Now()
		prof := make(chan []byte, 1)
		go func() { prof <- c.profile("node1", "profile", 20*time.Second) }()
		time.Sleep(30 * time.Second)
		el := time.Since(t0).Seconds()
		c.auditReport(b, "steady state", steady, time.Since(t0))
		var reqs, cpu, writes float64
		for _, node := range nodes {
			r := c.labelled(node, "herald_health_requests_total")
			w := c.labelled(node, `herald_health_status_writes_total{result="ok"}`)
			cp := (procCPU(b, c.speaker[node].Pid()) - cpu0[node]).Seconds() / el
			reqs += r - req0[node]
			writes += w - wr0[node]
			cpu += cp
			rss, hwm := procMem(b, c.speaker[node].Pid())
			gc50, gc99, gcs := 0*time.Second, 0*time.Second, 0
			if body, err := c.metrics(node); err == nil {
				// The Go runtime's stop-the-world pauses for GC over the speaker's life (runtime/metrics
				// /sched/pauses/total/gc:seconds, exported by controller-runtime's Go collector).
				gc50, gc99, gcs = histogramQuantiles(body, "go_sched_pauses_total_gc_seconds")
			}
			b.Logf("%s: announces %.0f, %.0f health requests/s, %.2f health status writes/s, CPU %.1f%% of one core, RSS %.0f MiB (peak %.0f MiB), Go heap in use %.0f MiB, GC pauses %d (p50 <= %v, p99 <= %v)",
				node, c.labelled(node, "herald_speaker_announced_addresses"), (r-req0[node])/el, (w-wr0[node])/el, cp*100,
				rss/1024, hwm/1024, c.labelled(node, "go_memstats_heap_inuse_bytes")/(1<<20), gcs, gc50, gc99)
		}
		crss, chwm := procMem(b, c.ctrl.Pid())
		b.Logf("controller: RSS %.0f MiB (peak %.0f MiB)", crss/1024, chwm/1024)
		lat := map[string]float64{}
		for _, node := range nodes {
			lat["sum"] += c.labelled(node, `herald_health_probe_latency_seconds_sum{family="ipv4"}`)
			lat["count"] += c.labelled(node, `herald_health_probe_latency_seconds_count{family="ipv4"}`)
		}
		b.ReportMetric(reqs/el, "requests/s")
		b.ReportMetric(cpu*100/float64(len(nodes)), "cpu-%-per-speaker")
		// An ARP request and its reply are 60-byte minimum Ethernet frames (42 bytes padded).
		b.Logf("health probing of %d addresses at 5 s: %.0f requests/s in the cluster (%.2f per address per interval), about %.1f kB/s of requests and replies on the wire; %.2f health status writes/s; speakers' CPU %.1f%% of one core each on average; mean first-answer latency %.2f ms",
			n, reqs/el, reqs/el*5/n, reqs/el*2*60/1000, writes/el, cpu*100/float64(len(nodes)), 1000*lat["sum"]/max(lat["count"], 1))
		c.profileTop(b, <-prof, "", "CPU profile of node1's speaker")
		for _, node := range nodes {
			c.profileTop(b, c.profile(node, "heap", 0), "."+node+".heap", "heap profile of "+node+"'s speaker")
		}
	}
	c.massFailover(b, n, nodes)
}

// within polls cond every second until it holds (true) or d passes (false).
func (c *cluster) within(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(time.Second) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// massFailover kills the speaker announcing the most addresses (-9) while the client probes 500 of its addresses
// every 10 ms, and logs, over those, the time from the kill until another node answers, how long until the
// survivors announced everything and until their Announcement writes were done, and the API requests of the
// 30 s after the kill.
func (c *cluster) massFailover(b *testing.B, n int, nodes []string) {
	victim, held := "", 0.0
	for _, node := range nodes {
		if v := c.labelled(node, "herald_speaker_announced_addresses"); v > held {
			victim, held = node, v
		}
	}
	survivors := slices.DeleteFunc(slices.Clone(nodes), func(s string) bool { return s == victim })
	// The Announcements say who announces what (the first verdicts were written, so they are settled); one
	// probe tells the victim's MAC.
	var ans heraldv1.AnnouncementList
	if err := c.c.List(c.ctx, &ans, client.InNamespace("bulk")); err != nil {
		b.Fatal(err)
	}
	var theirs []netip.Addr
	for _, an := range ans.Items {
		if an.Status.Node == victim && len(an.Status.Addresses) > 0 && len(theirs) < 500 {
			theirs = append(theirs, netip.MustParseAddr(an.Status.Addresses[0]))
		}
	}
	if len(theirs) == 0 {
		b.Fatalf("%s announces nothing", victim)
	}
	got := c.responders(theirs[0])
	if len(got) != 1 {
		b.Fatalf("%s answered by %v", theirs[0], got)
	}
	mac, _ := net.ParseMAC(got[0])
	writes := func() float64 {
		total := 0.0
		for _, node := range survivors {
			total += c.labelled(node, `herald_speaker_status_writes_total{result="ok"}`)
		}
		return total
	}
	w := c.watch(theirs)
	time.Sleep(2 * time.Second)
	mark := c.auditMark(b)
	writes0 := writes()
	kill := time.Now()
	if err := c.speaker[victim].Kill(); err != nil {
		b.Fatal(err)
	}
	c.eventually(2*time.Minute, "the survivors announce every address", func() (bool, string) {
		v := 0.0
		for _, node := range survivors {
			v += c.labelled(node, "herald_speaker_announced_addresses")
		}
		return v == float64(n), fmt.Sprintf("%v announced", v)
	})
	took := time.Since(kill)
	// The survivors write an Announcement per address taken over (the node, the Announced condition); the
	// writes are done when their count stops moving for 2 s.
	last, lastAt := writes(), time.Now()
	for time.Since(lastAt) < 2*time.Second && time.Since(kill) < 5*time.Minute {
		time.Sleep(200 * time.Millisecond)
		if v := writes(); v != last {
			last, lastAt = v, time.Now()
		}
	}
	wrote := lastAt.Sub(kill)
	time.Sleep(max(0, 30*time.Second-time.Since(kill)))
	w.stop()
	var outages []time.Duration
	missing := 0
	for _, s := range w.series {
		if t, ok := s.FirstAfter(kill, mac); ok {
			outages = append(outages, t.Sub(kill))
		} else {
			missing++
		}
	}
	b.Logf("mass failover of %.0f addresses (%s killed): the survivors announced all %v after the kill; over a sample of %d probed every 10 ms, answered again by another node after p50 %v, p99 %v, max %v (%d never answered); the survivors' %.0f Announcement writes ended %v after the kill",
		held, victim, took.Round(time.Millisecond), len(theirs), pct(outages, 50), pct(outages, 99), pct(outages, 100), missing,
		last-writes0, wrote.Round(time.Millisecond))
	c.auditReport(b, "failover (30 s after the kill)", mark, 30*time.Second)
}

// auditMark is how many requests the audit log holds now.
func (c *cluster) auditMark(b testing.TB) int {
	reqs, err := access.ReadAudit(c.lab.AuditLog)
	if err != nil {
		b.Fatalf("reading the audit log: %v", err)
	}
	return len(reqs)
}

// auditReport logs the requests of Herald's components since mark, by component, verb and resource, as rates
// over d, and the writes per second of all of them together.
func (c *cluster) auditReport(b testing.TB, what string, mark int, d time.Duration) {
	reqs, err := access.ReadAudit(c.lab.AuditLog)
	if err != nil {
		b.Fatalf("reading the audit log: %v", err)
	}
	counts := map[string]int{}
	writes := 0
	for _, r := range reqs[min(mark, len(reqs)):] {
		who := r.User[strings.LastIndex(r.User, ":")+1:]
		counts[fmt.Sprintf("%s %s %s", who, r.Verb, r.Resource)]++
		switch r.Verb {
		case "create", "update", "patch", "delete":
			writes++
		}
	}
	keys := slices.Sorted(maps.Keys(counts))
	var lines []string
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("  %s: %d (%.2f/s)", k, counts[k], float64(counts[k])/d.Seconds()))
	}
	b.Logf("API requests by Herald, %s, over %v: %d writes (%.2f/s)\n%s", what, d.Round(time.Second), writes,
		float64(writes)/d.Seconds(), strings.Join(lines, "\n"))
}

// bulk creates n LoadBalancer Services in namespace bulk drawing from pool bulk, with 16 writers, and returns when
// it started. With localOn, every second one is externalTrafficPolicy Local, with an EndpointSlice whose ready
// endpoints are on two nodes of localOn in turn (on its one node when it has one), so that each has a watcher.
func (c *cluster) bulk(b testing.TB, n int, localOn ...string) time.Time {
	c.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulk"}})
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("s%05d", i)
				s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "bulk", Name: name,
					Annotations: map[string]string{"herald.dev/ip-pool": "bulk"}},
					// No node ports: 10,000 Services would exhaust the default range.
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}},
						AllocateLoadBalancerNodePorts: ptr.To(false)}}
				var objs []client.Object
				if len(localOn) > 0 && i%2 == 1 {
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
					objs = append(objs, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "bulk", Name: name,
						Labels: map[string]string{discoveryv1.LabelServiceName: name}},
						AddressType: discoveryv1.AddressTypeIPv4,
						Endpoints:   localEndpoints(localOn, i/2)})
				}
				objs = append([]client.Object{s}, objs...)
				for _, o := range objs {
					// An overloaded API server times requests out: try again, and count a create that landed before
					// its timeout as done.
					var err error
					for try := 0; try < 5; try++ {
						if err = c.c.Create(c.ctx, o.DeepCopyObject().(client.Object)); err == nil || apierrors.IsAlreadyExists(err) {
							err = nil
							break
						}
						time.Sleep(time.Duration(try+1) * time.Second)
					}
					if err != nil {
						b.Errorf("creating %s: %v", name, err)
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	local := 0
	if len(localOn) > 0 {
		local = n / 2
	}
	b.Logf("created %d Services (%d of them Local, with an EndpointSlice) in %v", n, local, time.Since(start))
	return start
}

// localEndpoints are the k-th Local Service's ready endpoints: on two of nodes, in turn.
func localEndpoints(nodes []string, k int) []discoveryv1.Endpoint {
	var eps []discoveryv1.Endpoint
	for j, node := range []string{nodes[k%len(nodes)], nodes[(k+1)%len(nodes)]} {
		if j == 1 && node == *eps[0].NodeName {
			break
		}
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.18.128.%d", j+1)}, NodeName: ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return eps
}

// profile fetches a profile of node's speaker from its --pprof-bind-address (:6060): "profile" (CPU, over d) or
// "heap"; nil when that fails (logged).
func (c *cluster) profile(node, kind string, d time.Duration) []byte {
	h := c.hosts[node]
	hc := &http.Client{Timeout: d + 30*time.Second, Transport: &http.Transport{DialContext: h.DialContext}}
	url := fmt.Sprintf("http://%s/debug/pprof/%s", net.JoinHostPort(h.IPv4.String(), "6060"), kind)
	if d > 0 {
		url += fmt.Sprintf("?seconds=%d", int(d.Seconds()))
	}
	resp, err := hc.Get(url)
	if err != nil {
		c.t.Logf("%s profile of %s: %v", kind, node, err)
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Logf("%s profile of %s: %v %s", kind, node, err, resp.Status)
		return nil
	}
	return body
}

// profileTop logs the top functions of a profile (go tool pprof -top, flat and cumulative; a heap profile's
// in-use bytes), and keeps the profile at $HERALD_BENCH_PROFILE with suffix appended when that is set.
func (c *cluster) profileTop(b *testing.B, prof []byte, suffix, title string) {
	if prof == nil {
		return
	}
	path := os.Getenv("HERALD_BENCH_PROFILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "profile")
	}
	path += suffix
	if err := os.WriteFile(path, prof, 0o644); err != nil {
		b.Logf("writing the profile: %v", err)
		return
	}
	for _, args := range [][]string{{"-top", "-nodecount=25"}, {"-top", "-cum", "-nodecount=40"}} {
		out, err := exec.Command("go", append(append([]string{"tool", "pprof"}, args...), heraldBin, path)...).CombinedOutput()
		if err != nil {
			b.Logf("go tool pprof %v: %v", args, err)
		}
		b.Logf("%s (%s):\n%s", title, strings.Join(args, " "), out)
	}
}
