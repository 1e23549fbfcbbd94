package speaker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the speaker's own Prometheus metrics (the announcer counts requests and gratuitous packets).
type Metrics struct {
	Members         prometheus.Gauge     // herald_speaker_members
	Announced       prometheus.Gauge     // herald_speaker_announced_addresses
	ElectionChanges prometheus.Counter   // herald_speaker_election_changes_total
	AnnounceLatency prometheus.Histogram // herald_speaker_announce_latency_seconds
	Decide          prometheus.Histogram // herald_speaker_decide_seconds
	StatusWrites    *prometheus.CounterVec
	KernelAnswering prometheus.Gauge // herald_speaker_kernel_answering_addresses

	Conflicts      *prometheus.CounterVec // herald_speaker_conflicts_total{kind}
	Conflicting    *prometheus.GaugeVec   // herald_speaker_conflicting_addresses{kind}
	Deferred       *prometheus.GaugeVec   // herald_speaker_deferred_addresses{to}
	ProbeDelay     prometheus.Histogram   // herald_speaker_probe_delay_seconds
	ProbeFailures  prometheus.Counter     // herald_speaker_probe_failures_total
	Stalls         *prometheus.CounterVec // herald_speaker_stalls_total{action}
	StallWithdrawn prometheus.Counter     // herald_speaker_stall_withdrawn_total
	Handoffs       *prometheus.CounterVec // herald_speaker_handoff_keys_total{message,result}

	// Health probing, on the watching speaker.
	HealthVerdict    *prometheus.GaugeVec     // herald_health_address_verdict{address,service,verdict}
	HealthResponders *prometheus.GaugeVec     // herald_health_responders{address}
	HealthAddresses  *prometheus.GaugeVec     // herald_health_addresses{verdict}
	HealthProbes     *prometheus.CounterVec   // herald_health_probes_total{family,verdict}
	HealthLatency    *prometheus.HistogramVec // herald_health_probe_latency_seconds{family}
	HealthRequests   prometheus.Counter       // herald_health_requests_total
	// On the announcing speaker.
	DarkReports *prometheus.CounterVec // herald_health_dark_reports_total{action}
	Impaired    prometheus.Gauge       // herald_health_impaired_prefixes
	// Corroborations counts this speaker's checks of other watchers' dark reports, by result (dark, answered).
	Corroborations *prometheus.CounterVec // herald_health_corroborations_total{result}
	// HealthWrites counts the health writer's Announcement status writes, by result (ok, error, absent).
	HealthWrites *prometheus.CounterVec // herald_health_status_writes_total{result}
	// HealthProbeAge is the age of the least recently probed address this speaker watches.
	HealthProbeAge prometheus.Gauge // herald_health_oldest_probe_age_seconds
}

// NewMetrics creates the speaker's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		Members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_speaker_members",
			Help: "Live speakers this speaker sees in memberlist, itself included.",
		}),
		Announced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_speaker_announced_addresses",
			Help: "Load-balancer addresses this node answers for.",
		}),
		ElectionChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_speaker_election_changes_total",
			Help: "Addresses whose elected node changed, as this speaker saw it.",
		}),
		AnnounceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_speaker_announce_latency_seconds",
			Help:    "From the event that changed what this node announces (a member lost, a Service changed) to the new state handed to the responders.",
			Buckets: buckets,
		}),
		Decide: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_speaker_decide_seconds",
			Help:    "Time to gather the inputs and elect an announcer for every address.",
			Buckets: buckets,
		}),
		StatusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_speaker_status_writes_total",
			Help: "Announcement status writes by result (ok, error).",
		}, []string{"result"}),
		KernelAnswering: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_speaker_kernel_answering_addresses",
			Help: "Load-balancer addresses this node's kernel answers ARP for as well (configured on a local interface without strict ARP): every such node answers beside the elected one.",
		}),
	}
	m.Conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_conflicts_total",
		Help: "Conflicts this speaker found, by who else answered for an address it announces or is elected for: Foreign (a device that is not a speaker) or Speaker (a split brain).",
	}, []string{"kind"})
	m.Conflicting = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_conflicting_addresses",
		Help: "Addresses this speaker is elected for that another device answers for too (or instead, when it yields), by kind: Foreign or Speaker.",
	}, []string{"kind"})
	m.Deferred = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_deferred_addresses",
		Help: "Addresses this speaker is elected for but does not answer because another speaker (to=speaker) or a foreign device (to=foreign) answers for them.",
	}, []string{"to"})
	m.ProbeDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_speaker_probe_delay_seconds",
		Help:    "Time the probe before a first announcement added: from the probe's start to answering.",
		Buckets: buckets,
	})
	m.Stalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_stalls_total",
		Help: "Times this speaker found it had not run for longer than --stall-threshold, by what it did: kept (it answered every address again at once) or withdrew (it stopped answering some: those another device probed or claimed meanwhile, or all after a stall too long to judge from the wire).",
	}, []string{"action"})
	m.StallWithdrawn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_speaker_stall_withdrawn_total",
		Help: "Announcement keys this speaker stopped answering after a stall, because another device probed or claimed their addresses meanwhile (or the stall was too long to judge from the wire).",
	})
	m.Handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_handoff_keys_total",
		Help: "Announcement keys in handoff messages (offer, accept, take) this speaker sent (sent, send_failed) or received (received; for offers refused, for takes used: answered at once without a probe); offers not accepted in time are unanswered (kept, offered again). A move on purpose (fail-back, drain, shutdown) is offer, accept, take.",
	}, []string{"message", "result"})
	m.ProbeFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_speaker_probe_failures_total",
		Help: "Probes before answering that could not send a single frame (a full queue, a link refusing frames): the address is not answered and is probed again after a backoff of 100 ms doubling to 1 s.",
	})
	reg.MustRegister(m.Conflicts, m.Conflicting, m.Deferred, m.ProbeDelay, m.ProbeFailures, m.Stalls, m.StallWithdrawn, m.Handoffs)
	m.HealthVerdict = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_health_address_verdict",
		Help: "1 for each load-balancer address this speaker watches, labelled with the verdict of its latest probe (Healthy, Dark, Duplicate, WrongResponder, ForeignResponder) and its Service (namespace/name); one series per address.",
	}, []string{"address", "service", "verdict"})
	m.HealthResponders = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_health_responders",
		Help: "Distinct MACs that answered the latest probe of each load-balancer address this speaker watches.",
	}, []string{"address"})
	m.HealthAddresses = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_health_addresses",
		Help: "Load-balancer addresses this speaker watches, by the verdict of their latest probe.",
	}, []string{"verdict"})
	m.HealthProbes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_health_probes_total",
		Help: "Probe rounds this speaker completed, by family (ipv4, ipv6) and verdict.",
	}, []string{"family", "verdict"})
	m.HealthLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_health_probe_latency_seconds",
		Help:    "Time from a health probe's first request to the first answer, by family.",
		Buckets: buckets,
	}, []string{"family"})
	m.HealthRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_health_requests_total",
		Help: "ARP requests and Neighbor Solicitations the health prober sent (a round sends up to three while unanswered).",
	})
	m.DarkReports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_health_dark_reports_total",
		Help: "Reports from a watcher that an address is dark, by what this speaker did: for an address it announces, reannounced (its interface looked fine) or withdrew (the interface is down, or the address stayed dark after re-announcing); for an address it is elected for but defers to another, probed (the corroborated report cut its backoff short).",
	}, []string{"action"})
	m.Impaired = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_health_impaired_prefixes",
		Help: "Prefixes this speaker withdrew from because it found it could not answer there; other speakers take their addresses over until the hold ends.",
	})
	m.Corroborations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_health_corroborations_total",
		Help: "This speaker's checks, as corroborator, of a watcher's report that an address is dark, by result: dark (nobody answered here either, so the announcer may withdraw) or answered (the watcher's own link may be at fault; the announcer keeps the address).",
	}, []string{"result"})
	for _, r := range []string{"dark", "answered"} {
		m.Corroborations.WithLabelValues(r)
	}
	m.HealthWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_health_status_writes_total",
		Help: "Health verdicts written to Announcements by this speaker as watcher (when they change; unchanged ones again every --health-status-refresh if set), by result: ok, error, or absent (no Announcement yet; written once the announcer creates it).",
	}, []string{"result"})
	for _, r := range []string{"ok", "error", "absent"} {
		m.HealthWrites.WithLabelValues(r)
	}
	m.HealthProbeAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_health_oldest_probe_age_seconds",
		Help: "Seconds since the least recently probed address this speaker watches was last probed (0 when it watches none): about --health-interval when probing keeps up. Announcements show a verdict's lastProbe only as of its last change.",
	})
	reg.MustRegister(m.HealthVerdict, m.HealthResponders, m.HealthAddresses, m.HealthProbes, m.HealthLatency, m.HealthRequests, m.DarkReports, m.Impaired, m.Corroborations, m.HealthWrites, m.HealthProbeAge)
	reg.MustRegister(m.Members, m.Announced, m.ElectionChanges, m.AnnounceLatency, m.Decide, m.StatusWrites, m.KernelAnswering)
	return m
}
