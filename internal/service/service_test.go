package service

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestAddresses(t *testing.T) {
	tests := []struct {
		name    string
		ingress []corev1.LoadBalancerIngress
		want    []netip.Addr
	}{
		{"none", nil, nil},
		{"dual-stack in order", []corev1.LoadBalancerIngress{{IP: "2001:db8::1"}, {IP: "198.51.100.1"}},
			[]netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.1")}},
		{"IPv4-mapped read as IPv4", []corev1.LoadBalancerIngress{{IP: "::ffff:198.51.100.7"}},
			[]netip.Addr{netip.MustParseAddr("198.51.100.7")}},
		{"hostnames and garbage skipped", []corev1.LoadBalancerIngress{{Hostname: "lb.example"}, {IP: "not-an-ip"}, {IP: "203.0.113.9"}},
			[]netip.Addr{netip.MustParseAddr("203.0.113.9")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{}
			svc.Status.LoadBalancer.Ingress = tt.ingress
			if diff := cmp.Diff(tt.want, Addresses(svc), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Addresses (-want +got):\n%s", diff)
			}
		})
	}
}
