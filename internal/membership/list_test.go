package membership

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestNewRejects(t *testing.T) {
	c := newCluster(t, "a")
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no key", func(c *Config) { c.Key = nil }, "gossip key is 0 bytes, want exactly 32"},
		{"16-byte key", func(c *Config) { c.Key = make([]byte, 16) }, "gossip key is 16 bytes, want exactly 32"},
		{"31-byte key", func(c *Config) { c.Key = make([]byte, 31) }, "gossip key is 31 bytes, want exactly 32"},
		{"33-byte key", func(c *Config) { c.Key = make([]byte, 33) }, "gossip key is 33 bytes, want exactly 32"},
		{"no name", func(c *Config) { c.NodeName = "" }, "empty node name"},
		{"port", func(c *Config) { c.Port = 70000 }, "port 70000 out of range"},
		{"timings", func(c *Config) { c.Timings.ProbeTimeout = time.Second }, "ProbeTimeout 1s must be shorter than ProbeInterval 100ms"},
		{"too many MACs", func(c *Config) { c.MACs = macs(100) }, ErrMetaTooLarge.Error()},
		{"real transport needs an address", func(c *Config) { c.Transport = nil }, "bind address required"},
		{"unspecified address", func(c *Config) { c.Transport = nil; c.BindAddr = netip.IPv4Unspecified() }, "is unspecified"},
		{"IPv4-mapped unspecified address", func(c *Config) { c.Transport = nil; c.BindAddr = netip.MustParseAddr("::ffff:0.0.0.0") }, "is unspecified"},
		{"zone", func(c *Config) { c.Transport = nil; c.BindAddr = netip.MustParseAddr("fe80::1%eth0") }, "has a zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := c.config("a")
			tc.mod(&cfg)
			l, err := New(cfg)
			if err == nil {
				l.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestFiveMembersJoinThroughOneSeed(t *testing.T) {
	all := []string{"n1", "n2", "n3", "n4", "n5"}
	c := newCluster(t, all...)
	ls := c.startAll(all...) // asserts that everyone sees all five, with MACs

	for i, l := range ls {
		if diff := cmp.Diff(c.member(all[i]), l.LocalMember(), cmpAddr); diff != "" {
			t.Errorf("%s LocalMember (-want +got):\n%s", all[i], diff)
		}
		if got := l.NumMembers(); got != 5 {
			t.Errorf("%s NumMembers = %d", all[i], got)
		}
		if diff := cmp.Diff(l.Members(), l.Live(), cmpAddr); diff != "" {
			t.Errorf("%s Live differs from Members (-want +got):\n%s", all[i], diff)
		}
	}

	// n3 publishes new MACs; everyone sees them.
	newMACs := []net.HardwareAddr{mustMAC(t, "02:00:5e:00:53:aa"), mustMAC(t, "02:00:5e:00:53:bb")}
	if err := ls[2].UpdateMACs(newMACs); err != nil {
		t.Fatal(err)
	}
	want := c.members(all...)
	want[2].MACs = newMACs
	for i, l := range ls {
		eventually(t, 5*time.Second, func() string { return cmp.Diff(want, l.Members(), cmpAddr) }, "%s sees n3's new MACs", all[i])
	}

	// Too many MACs: refused, nothing changes.
	if err := ls[2].UpdateMACs(macs(100)); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMACs(100 MACs) = %v, want ErrMetaTooLarge", err)
	}
	if diff := cmp.Diff(newMACs, ls[2].LocalMember().MACs, cmpAddr); diff != "" {
		t.Errorf("MACs after refused update (-want +got):\n%s", diff)
	}
}

func TestMembersReturnsCopies(t *testing.T) {
	c := newCluster(t, "a")
	l := c.start(c.config("a"))
	if err := l.SetHealth(prefixes("192.0.2.0/24"), addrs("198.51.100.1")); err != nil {
		t.Fatal(err)
	}
	want := withHealth(c.member("a"), prefixes("192.0.2.0/24"), addrs("198.51.100.1"))
	for _, m := range []Member{l.Members()[0], l.LocalMember()} {
		m.MACs[0][0] = 0xff
		m.Impaired[0] = prefixes("10.0.0.0/8")[0]
		m.Dark[0] = addrs("10.0.0.1")[0]
	}
	if diff := cmp.Diff([]Member{want}, l.Members(), cmpAddr); diff != "" {
		t.Errorf("caller's change leaked into the list (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, l.LocalMember(), cmpAddr); diff != "" {
		t.Errorf("caller's change leaked into LocalMember (-want +got):\n%s", diff)
	}
}

func TestJoin(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	a := c.start(c.config("a"))
	b := c.start(c.config("b"))
	for _, tc := range []struct {
		name    string
		addrs   []string
		wantN   int
		wantErr string // "" = no error
	}{
		{name: "nothing to join", addrs: nil},
		{name: "only self", addrs: []string{c.addr("a")}},
		{name: "unreachable", addrs: []string{"127.0.0.1:999"}, wantErr: "127.0.0.1:999"},
		{name: "invalid only", addrs: []string{"x:y:z"}, wantErr: "x:y:z"},
		{name: "invalid, self and one good", addrs: []string{"x:y:z", c.addr("a"), c.addr("b")}, wantN: 1},
		{name: "unreachable and one good", addrs: []string{"127.0.0.1:999", c.addr("b")}, wantN: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := a.Join(tc.addrs)
			if n != tc.wantN {
				t.Errorf("Join contacted %d, want %d", n, tc.wantN)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Join: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Join error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(c.members("a", "b"), b.Members(), cmpAddr) }, "b sees a")
}

func TestJoinTarget(t *testing.T) {
	self := netip.MustParseAddrPort("198.51.100.1:7946")
	for _, tc := range []struct {
		name     string
		addr     string
		want     string
		wantSelf bool
		wantErr  bool
	}{
		{name: "IPv4 without port", addr: "198.51.100.7", want: "198.51.100.7:7946"},
		{name: "IPv4 with port", addr: "198.51.100.7:8000", want: "198.51.100.7:8000"},
		{name: "IPv6 without port", addr: "2001:db8::7", want: "[2001:db8::7]:7946"},
		{name: "IPv6 in brackets", addr: "[2001:db8::7]", want: "[2001:db8::7]:7946"},
		{name: "IPv6 with port", addr: "[2001:db8::7]:8000", want: "[2001:db8::7]:8000"},
		{name: "host name", addr: "node-b.example", want: "node-b.example:7946"},
		{name: "host name with port", addr: "node-b.example:8000", want: "node-b.example:8000"},
		{name: "spaces", addr: " 198.51.100.7 ", want: "198.51.100.7:7946"},
		{name: "self", addr: "198.51.100.1", wantSelf: true},
		{name: "self with port", addr: "198.51.100.1:7946", wantSelf: true},
		{name: "self IPv4-mapped", addr: "[::ffff:198.51.100.1]:7946", wantSelf: true},
		{name: "own address, other port", addr: "198.51.100.1:7000", want: "198.51.100.1:7000"},
		{name: "empty", addr: "", wantErr: true},
		{name: "port zero", addr: "198.51.100.7:0", wantErr: true},
		{name: "port not a number", addr: "198.51.100.7:http", wantErr: true},
		{name: "port too large", addr: "198.51.100.7:65536", wantErr: true},
		{name: "too many colons", addr: "a:b:c", wantErr: true},
		{name: "empty host", addr: ":7946", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, isSelf, err := joinTarget(tc.addr, 7946, self)
			if (err != nil) != tc.wantErr {
				t.Fatalf("joinTarget(%q) error = %v, want error %v", tc.addr, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, cmpAddr); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
			if isSelf != tc.wantSelf {
				t.Errorf("self = %v, want %v", isSelf, tc.wantSelf)
			}
		})
	}
}

// recv waits for a signal on ch.
func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no Changed signal for %s", what)
	}
}

// drainSignal empties ch and reports whether it held a signal.
func drainSignal(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestChanged(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	a := c.start(c.config("a"))
	if !drainSignal(a.Changed()) {
		t.Error("no signal for a joining itself")
	}

	b := c.start(c.config("b"))
	if _, err := b.Join([]string{c.addr("a")}); err != nil {
		t.Fatal(err)
	}
	recv(t, a.Changed(), "b joining")
	eventually(t, 5*time.Second, func() string { return cmp.Diff(c.members("a", "b"), a.Members(), cmpAddr) }, "a sees b")
	drainSignal(a.Changed())

	if err := b.UpdateMACs([]net.HardwareAddr{mustMAC(t, "02:00:5e:00:53:cc")}); err != nil {
		t.Fatal(err)
	}
	recv(t, a.Changed(), "b's update")

	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(c.members("a"), a.Members(), cmpAddr) }, "a sees b leave")
	recv(t, a.Changed(), "b leaving")

	// Nobody reads a.Changed from here on: memberlist must keep going.
	cl := c.start(c.config("c"))
	if _, err := cl.Join([]string{c.addr("a")}); err != nil {
		t.Fatal(err)
	}
	var last []net.HardwareAddr
	for i := range 10 {
		last = []net.HardwareAddr{{0x02, 0x00, 0x5e, 0x00, 0x54, byte(i)}}
		if err := cl.UpdateMACs(last); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	want := []Member{c.member("a"), c.member("c", last...)}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(want, a.Members(), cmpAddr) }, "a sees c's last MACs")
	if got := len(a.Changed()); got != 1 {
		t.Errorf("%d pending signals, want exactly 1", got)
	}
}

// measureRemoval starts a cluster of the named members, stops the last one
// (by stop) and returns how long until no other member lists it any more.
// It then checks that the survivors agree on the rest: under heavy CPU
// contention (the race detector on a shared machine) a survivor may be
// falsely suspected for a while, the trade-off the package documentation
// describes, so that check waits.
func measureRemoval(t testing.TB, names []string, stop func(c *cluster, victim string)) time.Duration {
	c := newCluster(t, names...)
	ls := c.startAll(names...)
	defer c.close()
	victim := names[len(names)-1]
	survivors := ls[:len(ls)-1]
	_, last := removal(t, c, survivors, victim, stop)
	want := c.members(names[:len(names)-1]...)
	for i, l := range survivors {
		eventually(t, 20*time.Second, func() string { return cmp.Diff(want, l.Members(), cmpAddr) }, "%s sees the survivors", names[i])
	}
	return last
}

// removal stops member victim of a running cluster (by stop) and returns
// how long until the first and the last of survivors no longer list it.
func removal(t testing.TB, c *cluster, survivors []*List, victim string, stop func(c *cluster, victim string)) (first, last time.Duration) {
	t.Helper()
	lists := func(l *List) bool { // cheaper than Members, which copies and sorts them all
		l.viewMu.Lock()
		defer l.viewMu.Unlock()
		_, ok := l.view[victim]
		return ok
	}
	start := time.Now()
	stop(c, victim)
	seen := make([]time.Duration, len(survivors))
	deadline := start.Add(30 * time.Second) // generous: the slow-motion runs take five times longer
	for {
		done := true
		for i, l := range survivors {
			if seen[i] == 0 {
				if !lists(l) {
					seen[i] = time.Since(start)
				} else {
					done = false
				}
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			var still []string
			for i, l := range survivors {
				if seen[i] == 0 {
					still = append(still, l.LocalMember().Name)
				}
			}
			t.Fatalf("after 30s, %d survivors still list %s: %v", len(still), victim, still)
		}
		time.Sleep(time.Millisecond)
	}
	first, last = slices.Min(seen), slices.Max(seen)
	if len(survivors) <= 10 {
		t.Logf("%s removed; first survivor noticed after %v, last after %v (each: %v)", victim, first, last, seen)
	}
	return first, last
}

func crashMember(c *cluster, victim string) { c.crash(victim) }

func leaveMember(c *cluster, victim string) {
	c.mu.Lock()
	l := c.lists[victim]
	c.mu.Unlock()
	if err := l.Leave(time.Second); err != nil {
		c.t.Errorf("Leave: %v", err)
	}
}

var five = []string{"n1", "n2", "n3", "n4", "n5"}

// TestCrashDetection shuts a member down without leaving (a crash) and
// measures, with DefaultTimings, how long until all others drop it.
func TestCrashDetection(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			var names []string
			for i := range n {
				names = append(names, fmt.Sprintf("n%02d", i+1))
			}
			d := measureRemoval(t, names, crashMember)
			typical, upper := DefaultTimings().DetectionTime(n)
			t.Logf("crash detection with DefaultTimings, %d members: %v (estimate: typical %v, upper %v)", n, d, typical, upper)
		})
	}
}

// TestProbeTraffic counts the packets each member of an idle 5-member
// cluster receives: one ping from a peer and one ack for its own ping per
// ProbeInterval, about 20 per second with DefaultTimings, whatever the
// cluster size. Gossip adds nothing when nothing changes.
func TestProbeTraffic(t *testing.T) {
	c := newCluster(t, five...)
	c.startAll(five...)
	time.Sleep(200 * time.Millisecond) // let join gossip finish
	before := make(map[string]int64)
	beforeBytes := make(map[string]int64)
	for _, n := range five {
		before[n] = c.tr[n].packetsIn.Load()
		beforeBytes[n] = c.tr[n].bytesIn.Load()
	}
	start := time.Now()
	time.Sleep(time.Second) // the measurement window, not a synchronisation
	elapsed := time.Since(start).Seconds()
	var total, totalBytes float64
	for _, n := range five {
		packets := c.tr[n].packetsIn.Load() - before[n]
		bytes := c.tr[n].bytesIn.Load() - beforeBytes[n]
		total += float64(packets) / elapsed
		totalBytes += float64(bytes)
		t.Logf("%s received %.1f packets/s", n, float64(packets)/elapsed)
	}
	avg := total / float64(len(five))
	t.Logf("average %.1f packets/s received per member, %.0f bytes per packet (encrypted memberlist payload, before UDP/IP headers)",
		avg, totalBytes/(total*elapsed))
	if avg < 10 || avg > 30 {
		t.Errorf("average %.1f packets/s per member, want about 20 (2 per ProbeInterval)", avg)
	}
}

// TestGracefulLeave measures how long until the others drop a member that
// leaves.
func TestGracefulLeave(t *testing.T) {
	d := measureRemoval(t, five, leaveMember)
	t.Logf("graceful leave with DefaultTimings, 5 members: %v", d)
}

// BenchmarkDetection reports how long after a member crashes (or leaves)
// every other member has dropped it, with DefaultTimings, in clusters of 5
// and 100 members on the in-memory transport. Each iteration removes one
// member of the same running cluster, then starts a new member in its place
// and waits until everyone sees it, so every removal happens at the stated
// size. The 100-member cluster runs in slow motion (dilated: every interval
// and timeout of DefaultTimings five times longer) and its times are
// divided by five, because 100 members at full speed need more than this
// machine's two cores (see dilated). Run with -benchtime=Nx: N removals per
// case (with 20x, p99 is the worst of the 20).
func BenchmarkDetection(b *testing.B) {
	for _, bc := range []struct {
		n, k int // members, time dilation
		name string
		stop func(*cluster, string)
	}{
		{5, 1, "crash", crashMember},
		{5, 1, "leave", leaveMember},
		{100, 5, "crash", crashMember},
		{100, 5, "leave", leaveMember},
	} {
		b.Run(fmt.Sprintf("members=%d/time=%dx/%s", bc.n, bc.k, bc.name), func(b *testing.B) {
			first, last := removals(b, bc.n, b.N, bc.k, bc.stop)
			var total time.Duration
			for _, d := range last {
				total += d
			}
			b.ReportMetric(0, "ns/op") // wall time per iteration includes the replacement: meaningless
			b.ReportMetric(float64(total.Milliseconds())/float64(len(last)), "ms/detection")
			b.ReportMetric(millis(percentile(last, 50)), "p50-ms")
			b.ReportMetric(millis(percentile(last, 99)), "p99-ms")
			b.ReportMetric(millis(slices.Max(last)), "worst-ms")
			b.ReportMetric(millis(percentile(first, 50)), "first-p50-ms")
			if bc.name == "crash" {
				typical, upper := DefaultTimings().DetectionTime(bc.n)
				b.Logf("%d members, %d crashes: last survivor %v; estimate typical %v, upper %v", bc.n, len(last), last, typical, upper)
			}
		})
	}
}

// removals starts a cluster of n members with DefaultTimings dilated k
// times and removes runs of them one after the other (by stop), each time
// starting a new member in the removed one's place, and returns, per
// removal, how long until the first and until the last survivor dropped
// it, divided by k.
func removals(t testing.TB, n, runs, k int, stop func(*cluster, string)) (first, last []time.Duration) {
	names := simNames(n + runs)
	c := newCluster(t, names...)
	defer c.close()
	c.mod = func(cfg *Config) { cfg.Timings = dilated(k) }
	live := c.startAll(names[:n]...)
	liveNames := slices.Clone(names[:n])
	if k > 1 {
		waitQuiet(t, c, live, k)
	}
	for i := range runs {
		victim, survivors := liveNames[0], live[1:]
		f, l := removal(t, c, survivors, victim, stop)
		first, last = append(first, f/time.Duration(k)), append(last, l/time.Duration(k))

		spare := names[n+i]
		nl := c.start(c.config(spare))
		if j, err := nl.Join([]string{c.addr(liveNames[1])}); err != nil || j != 1 {
			t.Fatalf("%s joining: %d, %v", spare, j, err)
		}
		live = append(slices.Clone(survivors), nl)
		liveNames = append(liveNames[1:], spare)
		c.waitAllSee(live, liveNames)
		// Let the join's gossip die down: the next removal starts from a
		// quiet cluster, as a crash in the field does.
		time.Sleep(time.Duration(k) * time.Second)
	}
	return first, last
}

// percentile returns the p-th percentile of ds by the nearest-rank method
// (of 20 samples, p99 is the largest).
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func TestLeaveAndClose(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	// A suspicion timeout of 5s: within the 3s waited below, members can
	// only disappear by leaving, not by being detected as failed.
	c.mod = func(cfg *Config) { cfg.Timings.SuspicionMult = 50 }
	ls := c.startAll("a", "b", "c")
	a, b, cl := ls[0], ls[1], ls[2]

	// Close without Leave still leaves.
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.kill("a")
	for _, l := range []*List{b, cl} {
		eventually(t, 3*time.Second, func() string { return cmp.Diff(c.members("b", "c"), l.Members(), cmpAddr) }, "a's Close seen as a leave")
	}

	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string { return cmp.Diff(c.members("c"), cl.Members(), cmpAddr) }, "b's Leave seen")
	if err := b.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if diff := cmp.Diff(c.member("b"), b.LocalMember(), cmpAddr); diff != "" {
		t.Errorf("LocalMember after Leave (-want +got):\n%s", diff)
	}
	// After Leave, SetHealth records the state but has nothing to publish.
	if err := b.SetHealth(nil, addrs("198.51.100.1")); err != nil {
		t.Errorf("SetHealth after Leave: %v", err)
	}
	if diff := cmp.Diff(addrs("198.51.100.1"), b.LocalMember().Dark, cmpAddr); diff != "" {
		t.Errorf("LocalMember Dark after Leave (-want +got):\n%s", diff)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}
	c.kill("b")
	for _, l := range []*List{a, b} {
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		select {
		case <-l.done:
		default:
			t.Error("key goroutine still running after Close")
		}
		select {
		case <-l.pubDone:
		default:
			t.Error("publishing goroutine still running after Close")
		}
		if err := l.SetHealth(nil, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("SetHealth after Close = %v, want ErrClosed", err)
		}
		if err := l.Leave(time.Second); !errors.Is(err, ErrClosed) {
			t.Errorf("Leave after Close = %v, want ErrClosed", err)
		}
		if err := l.UpdateMACs(nil); !errors.Is(err, ErrClosed) {
			t.Errorf("UpdateMACs after Close = %v, want ErrClosed", err)
		}
	}
}

func TestDifferentKeysCannotJoin(t *testing.T) {
	c := newCluster(t, "a", "b", "c")
	a := c.start(c.config("a"))
	cfg := c.config("b")
	cfg.Key = otherKey
	b := c.start(cfg)
	if n, err := b.Join([]string{c.addr("a")}); err == nil {
		t.Fatalf("join with a different key succeeded (%d contacted)", n)
	}
	if got := a.NumMembers(); got != 1 {
		t.Errorf("a sees %d members (%s) after b's failed join", got, memberNames(a.Members()))
	}
	if got := b.NumMembers(); got != 1 {
		t.Errorf("b sees %d members (%s) after its failed join", got, memberNames(b.Members()))
	}
	// The same key joins.
	cl := c.start(c.config("c"))
	if n, err := cl.Join([]string{c.addr("a")}); err != nil || n != 1 {
		t.Fatalf("join with the same key: %d, %v", n, err)
	}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(c.members("a", "c"), a.Members(), cmpAddr) }, "a sees c")
}

// startRaw starts a plain memberlist whose keyring is built by memberlist
// itself from key.
func (c *cluster) startRaw(name string, key []byte) *memberlist.Memberlist {
	c.t.Helper()
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		c.t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.Transport = c.tr[name]
	mc.Keyring = kr
	mc.Logger = log.New(newLogWriter(testLogger().WithValues("self", name), clock.RealClock{}), "", 0)
	DefaultTimings().apply(mc)
	m, err := memberlist.Create(mc)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.raw[name] = m
	c.mu.Unlock()
	return m
}

// TestKeyUsedAsIs shows that the configured bytes are the AES key: a plain
// memberlist with a Keyring made from the same 32 bytes talks to a List,
// and one made from a hash of them does not.
func TestKeyUsedAsIs(t *testing.T) {
	c := newCluster(t, "a", "raw", "hashed")
	a := c.start(c.config("a"))
	raw := c.startRaw("raw", bytes.Clone(testKey))
	if n, err := raw.Join([]string{c.addr("a")}); err != nil || n != 1 {
		t.Fatalf("memberlist with Keyring(key) joining: %d, %v", n, err)
	}
	want := []Member{c.member("a"), c.member("raw")}
	want[1].MACs = nil // a plain memberlist publishes no Herald metadata
	eventually(t, 5*time.Second, func() string { return cmp.Diff(want, a.Members(), cmpAddr) }, "a sees raw")

	sum := sha256.Sum256(testKey)
	hashed := c.startRaw("hashed", sum[:])
	if n, err := hashed.Join([]string{c.addr("a")}); err == nil {
		t.Fatalf("memberlist with Keyring(sha256(key)) joined (%d contacted)", n)
	}
	if diff := cmp.Diff(want, a.Members(), cmpAddr); diff != "" {
		t.Errorf("members after the hashed-key join attempt (-want +got):\n%s", diff)
	}
}

func keysOf(l *List) [][]byte {
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	return append([][]byte(nil), l.keyring.GetKeys()...)
}

func waitWaiters(t *testing.T, fc *clocktesting.FakeClock, n int) {
	t.Helper()
	eventually(t, 5*time.Second, func() string {
		if got := fc.Waiters(); got != n {
			return fmt.Sprintf("%d timers armed, want %d", got, n)
		}
		return ""
	}, "key timers")
}

// updateSeen has from publish a fresh MAC and waits until to sees it:
// proof that from's gossip decrypts at to.
func updateSeen(t *testing.T, c *cluster, from *List, to *List, b byte) {
	t.Helper()
	mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x55, b}
	if err := from.UpdateMACs([]net.HardwareAddr{mac}); err != nil {
		t.Fatal(err)
	}
	name := from.LocalMember().Name
	eventually(t, 5*time.Second, func() string {
		for _, m := range to.Members() {
			if m.Name == name {
				return cmp.Diff([]net.HardwareAddr{mac}, m.MACs, cmpAddr)
			}
		}
		return name + " missing"
	}, "%s's update reaches %s", name, to.LocalMember().Name)
}

func TestSetKey(t *testing.T) {
	k1, k2 := testKey, otherKey
	fc := clocktesting.NewFakeClock(time.Now())
	c := newCluster(t, "a", "b", "old", "new")
	var ls []*List
	for _, n := range []string{"a", "b"} {
		cfg := c.config(n)
		cfg.Clock = fc
		cfg.KeyGrace = time.Minute
		ls = append(ls, c.start(cfg))
	}
	a, b := ls[0], ls[1]
	if _, err := b.Join([]string{c.addr("a")}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 16), make([]byte, 31), make([]byte, 33)} {
		if err := a.SetKey(bad); err == nil || !strings.Contains(err.Error(), "want exactly 32") {
			t.Errorf("SetKey(%d bytes) = %v", len(bad), err)
		}
	}
	if err := a.SetKey(k1); err != nil {
		t.Fatal(err)
	}
	if got := fc.Waiters(); got != 0 {
		t.Errorf("SetKey with the current key armed %d timers", got)
	}

	for _, l := range ls {
		if err := l.SetKey(k2); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([][]byte{k2, k1}, keysOf(l), cmpAddr); diff != "" {
			t.Errorf("keys after SetKey (-want +got):\n%s", diff)
		}
	}
	waitWaiters(t, fc, 2)
	updateSeen(t, c, a, b, 1) // both encrypt with k2 now
	updateSeen(t, c, b, a, 2)

	fc.Step(time.Minute - time.Millisecond)
	if got := fc.Waiters(); got != 2 {
		t.Errorf("%d timers left before the grace period ended, want 2", got)
	}
	for _, l := range ls {
		if diff := cmp.Diff([][]byte{k2, k1}, keysOf(l), cmpAddr); diff != "" {
			t.Errorf("keys before the grace period ended (-want +got):\n%s", diff)
		}
	}
	fc.Step(time.Millisecond)
	for _, l := range ls {
		eventually(t, 5*time.Second, func() string { return cmp.Diff([][]byte{k2}, keysOf(l), cmpAddr) }, "old key removed")
	}

	// A member with only the old key can no longer join; one with the new
	// key can.
	cfg := c.config("old")
	old := c.start(cfg)
	if n, err := old.Join([]string{c.addr("a")}); err == nil {
		t.Errorf("member with the retired key joined (%d)", n)
	}
	cfg = c.config("new")
	cfg.Key = k2
	nw := c.start(cfg)
	if n, err := nw.Join([]string{c.addr("a")}); err != nil || n != 1 {
		t.Errorf("member with the new key: %d, %v", n, err)
	}
}

func TestSetKeysCancelsPendingRemoval(t *testing.T) {
	k1, k2 := testKey, otherKey
	fc := clocktesting.NewFakeClock(time.Now())
	c := newCluster(t, "a")
	cfg := c.config("a")
	cfg.Clock = fc
	a := c.start(cfg)
	if err := a.SetKey(k2); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, fc, 1)
	if err := a.SetKeys(k2, k1); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, fc, 0)
	fc.Step(time.Hour)
	if diff := cmp.Diff([][]byte{k2, k1}, keysOf(a), cmpAddr); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if err := a.SetKeys(k1, make([]byte, 16)); err == nil {
		t.Error("SetKeys accepted a 16-byte key")
	}
}

func TestSetKeysExact(t *testing.T) {
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }
	c := newCluster(t, "a")
	cfg := c.config("a")
	cfg.Key = key(1)
	a := c.start(cfg)
	for _, tc := range []struct {
		name    string
		primary []byte
		others  [][]byte
		want    [][]byte
	}{
		{"add two", key(1), [][]byte{key(2), key(3)}, [][]byte{key(1), key(2), key(3)}},
		{"switch primary, drop middle", key(3), [][]byte{key(1)}, [][]byte{key(3), key(1)}},
		{"replace all", key(4), [][]byte{key(5)}, [][]byte{key(4), key(5)}},
		{"single", key(5), nil, [][]byte{key(5)}},
		{"duplicates", key(5), [][]byte{key(5), key(6), key(6)}, [][]byte{key(5), key(6)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.SetKeys(tc.primary, tc.others...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, keysOf(a), cmpAddr); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPhasedRotation rotates the key with SetKeys in three steps, one member
// at a time, and checks both members hear each other after every step.
func TestPhasedRotation(t *testing.T) {
	k1, k2 := testKey, otherKey
	c := newCluster(t, "a", "b")
	ls := c.startAll("a", "b")
	a, b := ls[0], ls[1]
	var n byte
	check := func(step string) {
		t.Helper()
		n++
		updateSeen(t, c, a, b, n)
		n++
		updateSeen(t, c, b, a, n)
	}
	for _, step := range []struct {
		name string
		keys [][]byte
	}{
		{"install new", [][]byte{k1, k2}},
		{"use new", [][]byte{k2, k1}},
		{"drop old", [][]byte{k2}},
	} {
		for _, l := range ls {
			if err := l.SetKeys(step.keys[0], step.keys[1:]...); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("%s on %s", step.name, l.LocalMember().Name))
		}
	}
}

// TestRealUDP runs two members on the loopback address with memberlist's
// own UDP/TCP transport and kernel-chosen ports.
func TestRealUDP(t *testing.T) {
	for _, lo := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
		t.Run(lo.String(), func(t *testing.T) {
			if pc, err := net.ListenPacket("udp", netip.AddrPortFrom(lo, 0).String()); err != nil {
				t.Skipf("no %s here: %v", lo, err)
			} else {
				pc.Close()
			}
			var ls []*List
			for _, n := range []string{"udp-a", "udp-b"} {
				l, err := New(Config{
					NodeName: n,
					BindAddr: lo,
					Port:     0,
					Key:      testKey,
					MACs:     []net.HardwareAddr{macFor(n)},
					Logger:   testLogger().WithValues("self", n),
				})
				if err != nil {
					t.Fatalf("New(%s): %v", n, err)
				}
				t.Cleanup(func() { l.Close() })
				ls = append(ls, l)
			}
			a, b := ls[0], ls[1]
			pa, pb := a.LocalMember().Port, b.LocalMember().Port
			if pa == 0 || pb == 0 || pa == pb {
				t.Fatalf("bound ports %d and %d", pa, pb)
			}
			// An address without a port means b's own port: b itself.
			if n, err := b.Join([]string{lo.String()}); n != 0 || err != nil {
				t.Errorf("joining self: %d, %v", n, err)
			}
			if n, err := b.Join([]string{netip.AddrPortFrom(lo, uint16(pa)).String()}); err != nil || n != 1 {
				t.Fatalf("Join: %d, %v", n, err)
			}
			want := []Member{
				{Name: "udp-a", Addr: lo, Port: pa, MACs: []net.HardwareAddr{macFor("udp-a")}},
				{Name: "udp-b", Addr: lo, Port: pb, MACs: []net.HardwareAddr{macFor("udp-b")}},
			}
			for _, l := range ls {
				eventually(t, 5*time.Second, func() string { return cmp.Diff(want, l.Members(), cmpAddr) }, "both members")
			}
			// b leaves through Close; a drops it.
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() string { return cmp.Diff(want[:1], a.Members(), cmpAddr) }, "a sees b leave")
		})
	}
}
