//go:build linux

package probe_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/netnstest"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
)

// TestNetwork probes real Linux neighbours in a lab: one address held by two nodes (split brain) and then by one.
func TestNetwork(t *testing.T) {
	netnstest.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.New(ctx, lab.Config{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	// The same IPv6 address on an extra link of each node: NDP answers only on the link holding the address, so
	// exactly those two links answer.
	dup := netip.MustParsePrefix("2001:db8:100::77/64")
	var macs []string
	for _, n := range l.Nodes {
		if err := l.AddLink(n, "dup", netip.Prefix{}, dup); err != nil {
			t.Fatal(err)
		}
		ifi, err := n.Interface("dup")
		if err != nil {
			t.Fatal(err)
		}
		macs = append(macs, ifi.HardwareAddr.String())
	}
	var p *probe.Prober
	if err := l.Client.Do(func() error {
		ifi, err := net.InterfaceByName(l.Client.Link)
		if err != nil {
			return err
		}
		p, err = probe.New(wire.InterfaceOf(ifi), l.Client.IPv6)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	replies, err := p.Once(ctx, dup.Addr(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range replies {
		got = append(got, r.MAC.String())
		if r.Seq != 1 || r.RTT <= 0 || r.RTT > 300*time.Millisecond {
			t.Errorf("reply %+v: want Seq 1 and an RTT within the wait", r)
		}
	}
	if diff := cmp.Diff(macs, got, cmpSet); diff != "" {
		t.Errorf("Once answers (-want +got):\n%s", diff)
	}

	// Watch: every interval answered by both.
	const every = 50 * time.Millisecond
	watch := func(n int) *probe.Series {
		t.Helper()
		s := &probe.Series{Every: every}
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		err := p.Watch(wctx, dup.Addr(), every, func(seq int, sent time.Time, replies []probe.Reply) {
			s.Add(seq, sent, replies)
			if seq == n {
				stop()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	type summary struct {
		Len, Unanswered, Duplicates int
		LongestGap                  time.Duration
		MACs                        []string
	}
	sum := func(s *probe.Series) summary {
		var m []string
		for _, mac := range s.MACs() {
			m = append(m, mac.String())
		}
		return summary{s.Len(), s.Unanswered(), s.Duplicates(), s.LongestGap(), m}
	}
	if diff := cmp.Diff(summary{Len: 6, Duplicates: 6, MACs: macs}, sum(watch(6)), cmpSet); diff != "" {
		t.Errorf("Watch with both answering (-want +got):\n%s", diff)
	}

	// node2 gives the address up: node1 alone answers.
	if _, err := l.Nodes[1].Run(ctx, "ip", "addr", "del", dup.String(), "dev", "dup"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(summary{Len: 6, MACs: macs[:1]}, sum(watch(6))); diff != "" {
		t.Errorf("Watch with node1 answering (-want +got):\n%s", diff)
	}
}

// cmpSet compares string slices as sets.
var cmpSet = cmp.Transformer("sorted", func(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
})
