package iface

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the interface watcher's Prometheus metrics, created by NewMetrics and registered with the
// registry it is given.
type Metrics struct {
	Events          *prometheus.CounterVec // herald_iface_netlink_events_total{kind}
	Errors          prometheus.Counter     // herald_iface_netlink_errors_total
	Resubscriptions prometheus.Counter     // herald_iface_resubscriptions_total
	Snapshots       prometheus.Counter     // herald_iface_snapshots_total
}

// NewMetrics creates the watcher's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_iface_netlink_events_total",
			Help: "rtnetlink notifications received, by kind (link, addr).",
		}, []string{"kind"}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_iface_netlink_errors_total",
			Help: "Errors the rtnetlink subscriptions reported (overruns, undecodable messages).",
		}),
		Resubscriptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_iface_resubscriptions_total",
			Help: "Times the watcher subscribed and listed again after its subscription or listing failed.",
		}),
		Snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_iface_snapshots_total",
			Help: "Interface snapshots delivered, each one different from the one before.",
		}),
	}
	reg.MustRegister(m.Events, m.Errors, m.Resubscriptions, m.Snapshots)
	return m
}
