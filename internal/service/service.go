// Package service says which Services of type LoadBalancer Herald serves and reads the addresses in their
// status, the same way in the controller and in the speaker.
package service

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Served reports whether Herald serves a Service: type LoadBalancer, not being deleted, and no
// loadBalancerClass or the given one.
func Served(svc *corev1.Service, class string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	return svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == class
}

// Addresses returns the addresses in a Service's load-balancer status, in order; entries that are not IP
// addresses (a hostname) are skipped and IPv4-mapped IPv6 addresses are read as IPv4.
func Addresses(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// EndpointNodes returns the nodes running a ready endpoint of a Service, from its EndpointSlices, or, when none
// is ready, those running a serving one (an endpoint draining during a rolling update still takes traffic);
// ready says which. These are the nodes that may announce a Service with externalTrafficPolicy Local.
func EndpointNodes(slices []*discoveryv1.EndpointSlice) (nodes map[string]bool, ready bool) {
	readyOn, servingOn := map[string]bool{}, map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil {
				continue
			}
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				readyOn[*ep.NodeName] = true
			}
			if ep.Conditions.Serving != nil && *ep.Conditions.Serving {
				servingOn[*ep.NodeName] = true
			}
		}
	}
	if len(readyOn) > 0 {
		return readyOn, true
	}
	return servingOn, false
}
