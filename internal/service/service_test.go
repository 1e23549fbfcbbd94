package service

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
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

func TestEndpointNodes(t *testing.T) {
	ep := func(node string, ready, serving *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving}}
		if node != "" {
			e.NodeName = &node
		}
		return e
	}
	yes, no := ptr.To(true), ptr.To(false)
	tests := []struct {
		name      string
		endpoints []discoveryv1.Endpoint
		want      map[string]bool
		ready     bool
	}{
		{"none", nil, map[string]bool{}, false},
		{"ready, and unknown readiness counted as ready", []discoveryv1.Endpoint{ep("n1", yes, yes), ep("n2", nil, nil), ep("n3", no, yes)},
			map[string]bool{"n1": true, "n2": true}, true},
		{"serving only while none is ready", []discoveryv1.Endpoint{ep("n1", no, yes), ep("n2", no, no)}, map[string]bool{"n1": true}, false},
		{"endpoints without a node are passed over", []discoveryv1.Endpoint{ep("", yes, yes)}, map[string]bool{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, ready := EndpointNodes([]*discoveryv1.EndpointSlice{{Endpoints: tt.endpoints}})
			if diff := cmp.Diff(tt.want, nodes); diff != "" || ready != tt.ready {
				t.Errorf("EndpointNodes: ready %v, want %v; nodes (-want +got):\n%s", ready, tt.ready, diff)
			}
		})
	}
}
