package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's Prometheus metrics. They are created by NewMetrics and registered with the
// registry it is given; labels are bounded by the number of pools.
type Metrics struct {
	Capacity    *prometheus.GaugeVec   // herald_allocator_addresses_capacity{pool,family}
	InUse       *prometheus.GaugeVec   // herald_allocator_addresses_in_use{pool,family}
	Available   *prometheus.GaugeVec   // herald_allocator_addresses_available{pool,family}
	Allocations *prometheus.CounterVec // herald_allocator_allocations_total{result,reason}
}

// NewMetrics creates the controller's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_allocator_addresses_capacity",
			Help: "Addresses a pool can hand out, per family (IPv6 pools beyond 2^53 lose precision).",
		}, []string{"pool", "family"}),
		InUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_allocator_addresses_in_use",
			Help: "Addresses of a pool held by Services, per family; a shared address counts once.",
		}, []string{"pool", "family"}),
		Available: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_allocator_addresses_available",
			Help: "Addresses of a pool still free, per family.",
		}, []string{"pool", "family"}),
		Allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_allocator_allocations_total",
			Help: "Allocation outcomes: result is allocated, failed or released; reason says why one failed.",
		}, []string{"result", "reason"}),
	}
	reg.MustRegister(m.Capacity, m.InUse, m.Available, m.Allocations)
	return m
}

// forgetPool drops a deleted pool's series.
func (m *Metrics) forgetPool(pool string) {
	for _, v := range []*prometheus.GaugeVec{m.Capacity, m.InUse, m.Available} {
		v.DeletePartialMatch(prometheus.Labels{"pool": pool})
	}
}
