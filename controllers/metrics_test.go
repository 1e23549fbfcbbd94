package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// TestMetrics checks the allocator metrics a running controller exports for a pool.
func TestMetrics(t *testing.T) {
	needControlPlane(t)
	reg := prometheus.NewRegistry()
	testRegistry = reg
	t.Cleanup(func() { testRegistry = nil })
	createPool(t, "metrics", heraldv1.IPAddressPoolSpec{Addresses: addresses("198.51.100.136/29", "2001:db8:40::/64")})
	startController(t)
	ns := newNamespace(t, nil)
	create(t, lbService(ns, "a", 80, inPool("metrics")))
	waitIngress(t, ns, "a", "198.51.100.136")
	create(t, lbService(ns, "b", 80, inPool("metrics"), func(s *corev1.Service) { s.Spec.LoadBalancerIP = "203.0.113.250" }))
	waitEvent(t, ns, "b", EventAllocationFailed, "NotInPool")

	want := `
# HELP herald_allocator_addresses_available Addresses of a pool still free, per family.
# TYPE herald_allocator_addresses_available gauge
herald_allocator_addresses_available{family="IPv4",pool="metrics"} 7
herald_allocator_addresses_available{family="IPv6",pool="metrics"} 1.8446744073709552e+19
# HELP herald_allocator_addresses_capacity Addresses a pool can hand out, per family (IPv6 pools beyond 2^53 lose precision).
# TYPE herald_allocator_addresses_capacity gauge
herald_allocator_addresses_capacity{family="IPv4",pool="metrics"} 8
herald_allocator_addresses_capacity{family="IPv6",pool="metrics"} 1.8446744073709552e+19
# HELP herald_allocator_addresses_in_use Addresses of a pool held by Services, per family; a shared address counts once.
# TYPE herald_allocator_addresses_in_use gauge
herald_allocator_addresses_in_use{family="IPv4",pool="metrics"} 1
herald_allocator_addresses_in_use{family="IPv6",pool="metrics"} 0
`
	eventually(t, 20*time.Second, func() (bool, string) {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want),
			"herald_allocator_addresses_available", "herald_allocator_addresses_capacity", "herald_allocator_addresses_in_use")
		return err == nil, fmt.Sprint(err)
	})
	if got := counterValue(t, reg, "failed", "NotInPool"); got < 1 {
		t.Errorf("herald_allocator_allocations_total{result=failed,reason=NotInPool} = %v, want >= 1", got)
	}
}

// counterValue reads herald_allocator_allocations_total{result,reason} from a registry (0 when absent).
func counterValue(t *testing.T, reg *prometheus.Registry, result, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "herald_allocator_allocations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == result && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
