package guard

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// family is an address family, used to index metrics.
type family uint8

const (
	familyIPv4 family = iota
	familyIPv6
	numFamilies
)

func (f family) String() string {
	if f == familyIPv4 {
		return "ipv4"
	}
	return "ipv6"
}

// op names a failing operation, the "op" label of herald_guard_errors_total.
type op uint8

const (
	opListen op = iota // opening an interface's sockets
	opRead             // reading a frame (ends the interface's readers until reopened)
	opWrite            // sending a probe
	opJoin             // joining a multicast group
	opLeave            // leaving a multicast group
	numOps
)

var opNames = [numOps]string{opListen: "listen", opRead: "read", opWrite: "write", opJoin: "join", opLeave: "leave"}

func (o op) String() string { return opNames[o] }

// Metrics are the watcher's Prometheus metrics. Every label combination is
// created up front, so the packet path increments a counter it already
// holds, without a map lookup or an allocation. A nil *Metrics records
// nothing.
type Metrics struct {
	frames        [numFamilies][numResults]prometheus.Counter
	observations  [numKinds][2]prometheus.Counter // [kind][outgoing]
	probes        [numFamilies][2]prometheus.Counter
	probeDuration [numFamilies]prometheus.Observer
	errors        [numOps]prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
// It panics, like prometheus.MustRegister, if they are already registered.
//
//   - herald_guard_frames_total{family="ipv4|ipv6",result}: frames read, by
//     what became of them: observed, deduplicated, overflow, probed,
//     not_managed, own_probe, not_claim, wrong_type, malformed, hop_limit,
//     bad_checksum, spoofed.
//   - herald_guard_observations_total{kind,outgoing="true|false"}:
//     Observations delivered.
//   - herald_guard_probes_total{family,outcome="clear|claimed"}: probes that
//     ran to the end.
//   - herald_guard_probe_duration_seconds{family}: how long those took.
//   - herald_guard_errors_total{op="listen|read|write|join|leave"}.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_guard_frames_total",
		Help: "ARP and IPv6 Neighbor Discovery frames read by the guard, by address family and what became of them.",
	}, []string{"family", "result"})
	observations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_guard_observations_total",
		Help: "Frames claiming a managed address delivered as observations, by kind and whether this host sent them.",
	}, []string{"kind", "outgoing"})
	probes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_guard_probes_total",
		Help: "Completed ARP probes and Duplicate Address Detection probes, by address family and outcome.",
	}, []string{"family", "outcome"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_guard_probe_duration_seconds",
		Help:    "Time from the first probe frame to the end of a completed probe, by address family.",
		Buckets: []float64{0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10},
	}, []string{"family"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_guard_errors_total",
		Help: "Failed guard operations, by operation.",
	}, []string{"op"})
	if reg != nil {
		reg.MustRegister(frames, observations, probes, duration, errs)
	}
	m := &Metrics{}
	for f := range numFamilies {
		for r := resultObserved; r < numResults; r++ {
			m.frames[f][r] = frames.WithLabelValues(f.String(), r.String())
		}
		m.probes[f][0] = probes.WithLabelValues(f.String(), "clear")
		m.probes[f][1] = probes.WithLabelValues(f.String(), "claimed")
		m.probeDuration[f] = duration.WithLabelValues(f.String())
	}
	for k := KindARPReply; k < numKinds; k++ {
		m.observations[k][0] = observations.WithLabelValues(k.String(), "false")
		m.observations[k][1] = observations.WithLabelValues(k.String(), "true")
	}
	for o := range numOps {
		m.errors[o] = errs.WithLabelValues(o.String())
	}
	return m
}

func (m *Metrics) frame(f family, r result) {
	if m == nil || r == resultNone || r >= numResults {
		return
	}
	m.frames[f][r].Inc()
}

func (m *Metrics) observed(k Kind, outgoing bool) {
	if m == nil || k == kindNone || k >= numKinds {
		return
	}
	i := 0
	if outgoing {
		i = 1
	}
	m.observations[k][i].Inc()
}

func (m *Metrics) probed(f family, claimed bool, d time.Duration) {
	if m == nil {
		return
	}
	i := 0
	if claimed {
		i = 1
	}
	m.probes[f][i].Inc()
	m.probeDuration[f].Observe(d.Seconds())
}

func (m *Metrics) failed(o op) {
	if m != nil {
		m.errors[o].Inc()
	}
}
