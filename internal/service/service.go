// Package service says which Services of type LoadBalancer Herald serves and reads the addresses in their
// status, the same way in the controller and in the speaker.
package service

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
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
