package membership

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

const ms = time.Millisecond

func TestTimingsWithDefaults(t *testing.T) {
	got := Timings{ProbeInterval: 200 * ms, SuspicionMult: 5}.withDefaults()
	want := DefaultTimings()
	want.ProbeInterval = 200 * ms
	want.SuspicionMult = 5
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("withDefaults (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(DefaultTimings(), Timings{}.withDefaults()); diff != "" {
		t.Errorf("zero Timings (-want +got):\n%s", diff)
	}
}

func TestTimingsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Timings
		want string // "" = valid
	}{
		{name: "defaults", t: DefaultTimings()},
		{name: "probe timeout equals interval", t: Timings{ProbeInterval: 100 * ms, ProbeTimeout: 100 * ms}, want: "ProbeTimeout 100ms must be shorter than ProbeInterval 100ms"},
		{name: "probe timeout above default interval", t: Timings{ProbeTimeout: time.Second}, want: "must be shorter"},
		{name: "negative duration", t: Timings{GossipInterval: -ms}, want: "GossipInterval -1ms is negative"},
		{name: "negative count", t: Timings{IndirectChecks: -1}, want: "IndirectChecks -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.withDefaults().validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTimingsApply(t *testing.T) {
	c := memberlist.DefaultLANConfig()
	d := DefaultTimings()
	d.apply(c)
	got := Timings{
		ProbeInterval: c.ProbeInterval, ProbeTimeout: c.ProbeTimeout, GossipInterval: c.GossipInterval,
		PushPullInterval: c.PushPullInterval, TCPTimeout: c.TCPTimeout, SuspicionMult: c.SuspicionMult,
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult, RetransmitMult: c.RetransmitMult,
		GossipNodes: c.GossipNodes, IndirectChecks: c.IndirectChecks, AwarenessMaxMultiplier: c.AwarenessMaxMultiplier,
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("apply (-want +got):\n%s", diff)
	}
}

// TestDefaultTimingsArithmetic pins the figures the package documentation
// quotes.
func TestDefaultTimingsArithmetic(t *testing.T) {
	type result struct {
		Min, Max       time.Duration
		K              int
		Typical, Upper time.Duration
	}
	for _, tc := range []struct {
		name string
		n    int
		want result
	}{
		{"2 members: no confirmation possible", 2, result{300 * ms, 600 * ms, 0, 520 * ms, 540 * ms}},
		{"3 members", 3, result{300 * ms, 600 * ms, 1, 520 * ms, 940 * ms}},
		{"5 members", 5, result{300 * ms, 600 * ms, 1, 520 * ms, 1140 * ms}},
		{"10 members", 10, result{300 * ms, 600 * ms, 1, 520 * ms, 1640 * ms}},
		{"100 members: log10 scaling", 100, result{600 * ms, 1200 * ms, 1, 820 * ms, 11240 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			got.Min, got.Max, got.K = DefaultTimings().SuspicionTimeout(tc.n)
			got.Typical, got.Upper = DefaultTimings().DetectionTime(tc.n)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tc.n <= 10 && got.Typical >= time.Second {
				t.Errorf("typical detection %v is not sub-second", got.Typical)
			}
		})
	}
}
