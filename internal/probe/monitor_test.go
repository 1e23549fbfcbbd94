package probe

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/wire"
)

// answering is a segment on which the hosts in owners answer every ARP request for their addresses.
type answering struct {
	*segment
	mu     sync.Mutex // guards owners and asked
	owners map[netip.Addr][]net.HardwareAddr
	asked  map[netip.Addr]int
}

func newAnswering(t *testing.T, owners map[netip.Addr][]net.HardwareAddr) *answering {
	a := &answering{segment: newSegment(), owners: owners, asked: map[netip.Addr]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case w := <-a.writes:
				if len(w.frame) < 42 {
					continue
				}
				target, _ := netip.AddrFromSlice(w.frame[38:42])
				src, _ := netip.AddrFromSlice(w.frame[28:32])
				a.mu.Lock()
				a.asked[target]++
				macs := a.owners[target]
				a.mu.Unlock()
				for _, mac := range macs {
					a.inject(arpReplyFrom(t, mac, target, src))
				}
			}
		}
	}()
	return a
}

func (a *answering) count(addr netip.Addr) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked[addr]
}

func TestMonitor(t *testing.T) {
	one, two, dark := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12")
	gone := netip.MustParseAddr("198.51.100.13")
	seg := newAnswering(t, map[netip.Addr][]net.HardwareAddr{
		one:  {otherMAC},
		two:  {otherMAC, mustMAC("02:00:c6:33:64:0d")},
		gone: {otherMAC},
	})
	src := netip.MustParseAddr("198.51.100.2")
	opened := 0
	m := NewMonitor(MonitorConfig{Interval: 200 * time.Millisecond, Wait: 20 * time.Millisecond,
		Open: func(ifi wire.Interface, s netip.Addr) (*Prober, error) {
			opened++
			return NewWithConn(ifi, s, seg), nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	target := func(a netip.Addr) Target { return Target{Addr: a, Link: clientIf, Source: src} }
	m.SetTargets([]Target{target(one), target(two), target(dark), target(gone)})

	got := map[netip.Addr][]Round{}
	deadline := time.After(20 * time.Second)
	for len(got[one]) < 3 || len(got[two]) < 3 || len(got[dark]) < 3 || len(got[gone]) < 1 {
		select {
		case r := <-m.Rounds():
			got[r.Target.Addr] = append(got[r.Target.Addr], r)
		case <-deadline:
			t.Fatalf("too few rounds: %d %d %d %d", len(got[one]), len(got[two]), len(got[dark]), len(got[gone]))
		}
	}
	// Stop watching gone; it is probed no more (at most one round was under way).
	m.SetTargets([]Target{target(one), target(two), target(dark)})
	time.Sleep(50 * time.Millisecond)
	before := seg.count(gone)
	for _, r := range got[one] {
		if r.Err != nil || r.Attempts != 1 || len(r.Replies) != 1 || r.Replies[0].MAC.String() != otherMAC.String() {
			t.Errorf("answered target: round %+v, want one attempt and one reply from %v", r, otherMAC)
		}
	}
	for _, r := range got[two] {
		if v, rs := Judge(r.Replies, "", func(net.HardwareAddr) string { return "" }); v != Duplicate || len(rs) != 2 {
			t.Errorf("duplicate target: verdict %s with %d responders, want Duplicate with 2", v, len(rs))
		}
	}
	for _, r := range got[dark] {
		if r.Attempts != DefaultMonitorAttempts || len(r.Replies) != 0 {
			t.Errorf("dark target: %d attempts and %d replies, want %d and none", r.Attempts, len(r.Replies), DefaultMonitorAttempts)
		}
	}
	// A confirmation round comes out of schedule and says so.
	m.Confirm(one)
	for found := false; !found; {
		select {
		case r := <-m.Rounds():
			found = r.Confirm && r.Target.Addr == one
			if r.Target.Addr == gone && seg.count(gone) > before+1 {
				t.Errorf("%v probed after it was dropped", gone)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no confirmation round")
		}
	}
	if opened != 1 {
		t.Errorf("opened %d probers for one interface and source, want 1", opened)
	}
	if s := m.Stats(); s.Rounds == 0 || s.Requests < s.Rounds {
		t.Errorf("stats %+v: want rounds and at least as many requests", s)
	}
}

func TestJudge(t *testing.T) {
	a, b := mustMAC("02:00:00:00:00:0a"), mustMAC("02:00:00:00:00:0b")
	foreign := mustMAC("02:00:00:00:00:ff")
	nodeOf := func(m net.HardwareAddr) string {
		switch m.String() {
		case a.String():
			return "node-a"
		case b.String():
			return "node-b"
		}
		return ""
	}
	reply := func(m net.HardwareAddr, rtt time.Duration) Reply { return Reply{MAC: m, RTT: rtt} }
	tests := []struct {
		name     string
		replies  []Reply
		expected string
		want     Verdict
		nodes    []string
	}{
		{"nobody", nil, "node-a", Dark, nil},
		{"the announcer", []Reply{reply(a, time.Millisecond), reply(a, 2*time.Millisecond)}, "node-a", Healthy, []string{"node-a"}},
		{"no announcer known", []Reply{reply(b, time.Millisecond)}, "", Healthy, []string{"node-b"}},
		{"another speaker", []Reply{reply(b, time.Millisecond)}, "node-a", WrongResponder, []string{"node-b"}},
		{"a foreign host", []Reply{reply(foreign, time.Millisecond)}, "node-a", ForeignResponder, []string{""}},
		{"two", []Reply{reply(a, time.Millisecond), reply(foreign, 3*time.Millisecond), reply(a, 4*time.Millisecond)}, "node-a", Duplicate, []string{"node-a", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, rs := Judge(tc.replies, tc.expected, nodeOf)
			if v != tc.want {
				t.Errorf("verdict %s, want %s", v, tc.want)
			}
			var nodes []string
			for _, r := range rs {
				nodes = append(nodes, r.Node)
			}
			if diff := cmp.Diff(tc.nodes, nodes); diff != "" {
				t.Errorf("responders (-want +got):\n%s", diff)
			}
			if len(rs) > 0 && rs[0].Latency != tc.replies[0].RTT {
				t.Errorf("first responder's latency %v, want its first answer's %v", rs[0].Latency, tc.replies[0].RTT)
			}
		})
	}
	if Dark.Severity() <= Duplicate.Severity() || Duplicate.Severity() <= Healthy.Severity() {
		t.Error("severities out of order")
	}
}
