package speaker

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/iface"
)

func TestProbeSource(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.20")
	a := &agent{addrKey: map[netip.Addr]string{netip.MustParseAddr("198.51.100.21"): "198.51.100.21"}}
	link := func(ps ...string) iface.Link {
		l := iface.Link{Name: "eth0"}
		for _, p := range ps {
			l.Prefixes = append(l.Prefixes, netip.MustParsePrefix(p))
		}
		return l
	}
	tests := []struct {
		name string
		addr netip.Addr
		link iface.Link
		want string
	}{
		{"the address in the VIP's subnet", vip, link("203.0.113.5/24", "198.51.100.11/24"), "198.51.100.11"},
		{"a managed address is never the source", vip, link("198.51.100.21/32", "203.0.113.5/24"), "203.0.113.5"},
		{"no IPv4 address: an ARP probe", vip, link("2001:db8::1/64"), "0.0.0.0"},
		{"IPv6: the address in the VIP's subnet", netip.MustParseAddr("2001:db8:100::100"), link("2001:db8:100::11/64", "fe80::1/64"), "2001:db8:100::11"},
		{"IPv6 link-local when no global one holds it", netip.MustParseAddr("2001:db8:200::100"), link("2001:db8:100::11/64", "fe80::1/64"), "fe80::1"},
		{"no IPv6 address: none", netip.MustParseAddr("2001:db8:100::100"), link("198.51.100.11/24"), "invalid IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.probeSource(tc.addr, tc.link).String(); got != tc.want {
				t.Errorf("source %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSameHealth(t *testing.T) {
	since := &metav1.Time{Time: time.Unix(100, 0)}
	base := func() heraldv1.AnnouncementHealth {
		return heraldv1.AnnouncementHealth{Verdict: heraldv1.HealthHealthy, Watcher: "node2", Since: since,
			LastProbe: &metav1.Time{Time: time.Unix(200, 0)},
			Addresses: []heraldv1.AddressHealth{{Address: "198.51.100.20", Verdict: heraldv1.HealthHealthy,
				Responders: []heraldv1.HealthResponder{{MAC: "02:00:00:00:00:01", Node: "node1", Latency: &metav1.Duration{Duration: time.Millisecond}}}}}}
	}
	later := base()
	later.LastProbe = &metav1.Time{Time: time.Unix(205, 0)}
	later.Addresses[0].Responders[0].Latency = &metav1.Duration{Duration: 2 * time.Millisecond}
	if !sameHealth(base(), later) {
		t.Error("a later probe with another latency counts as a change: every round would be written")
	}
	dup := base()
	dup.Verdict = heraldv1.HealthDuplicate
	dup.Addresses[0].Verdict = heraldv1.HealthDuplicate
	dup.Addresses[0].Responders = append(dup.Addresses[0].Responders, heraldv1.HealthResponder{MAC: "02:00:00:00:00:ff"})
	if sameHealth(base(), dup) {
		t.Error("a new verdict and responder count as no change")
	}
	if msg := healthMessage(dup); msg != "198.51.100.20 is answered by several devices: [02:00:00:00:00:01 (node1) 02:00:00:00:00:ff]" {
		t.Errorf("message %q", msg)
	}
}

func TestDarkConfirmed(t *testing.T) {
	three, two := netip.MustParseAddr("198.51.100.20"), netip.MustParseAddr("198.51.100.21")
	a := &agent{
		addrKey: map[netip.Addr]string{three: "k3", two: "k2"},
		plan: &plan{Groups: map[string]*group{
			"k3": {Key: "k3", Winner: "n1", Watcher: "n2", Corroborator: "n3"},
			"k2": {Key: "k2", Winner: "n1", Watcher: "n2"},
		}},
	}
	tests := []struct {
		name string
		addr netip.Addr
		by   []string
		want bool
	}{
		{"the watcher alone, a corroborator exists", three, []string{"n2"}, false},
		{"the watcher and the corroborator", three, []string{"n3", "n2"}, true},
		{"the corroborator alone (the watcher's report is ending)", three, []string{"n3"}, true},
		{"another node, not the corroborator", three, []string{"n2", "n4"}, false},
		{"no corroborator: the watcher suffices", two, []string{"n2"}, true},
		{"an address outside every group", netip.MustParseAddr("198.51.100.99"), []string{"n2"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			by, ok := a.darkConfirmed(tc.addr, tc.by)
			if ok != tc.want {
				t.Errorf("confirmed %v, want %v", ok, tc.want)
			}
			if !slices.IsSorted(by) || len(by) != len(tc.by) {
				t.Errorf("reporters %v: want the %d given, sorted", by, len(tc.by))
			}
		})
	}
}

// TestProbeAge: the gauge is the age of the least recently probed watched address; one never probed counts from
// when it began to be watched; none watched is 0.
func TestProbeAge(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a := &agent{metrics: NewMetrics(prometheus.NewRegistry())}
	a.watch = map[netip.Addr]*watchState{}
	a.probeAge(t0)
	if got := testutil.ToFloat64(a.metrics.HealthProbeAge); got != 0 {
		t.Errorf("nothing watched: %v, want 0", got)
	}
	a.watch[netip.MustParseAddr("198.51.100.1")] = &watchState{added: t0.Add(-time.Hour), last: t0.Add(-4 * time.Second)}
	a.watch[netip.MustParseAddr("198.51.100.2")] = &watchState{added: t0.Add(-7 * time.Second)}
	a.watch[netip.MustParseAddr("198.51.100.3")] = &watchState{added: t0.Add(-time.Hour), last: t0.Add(-2 * time.Second)}
	a.probeAge(t0)
	if got := testutil.ToFloat64(a.metrics.HealthProbeAge); got != 7 {
		t.Errorf("age %v, want 7 (the address watched for 7 s and not yet probed)", got)
	}
}
