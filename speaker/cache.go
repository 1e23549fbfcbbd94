package speaker

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The informer cache keeps every Service, EndpointSlice, Node and Announcement of the cluster: at 10,000
// Services it is most of the speaker's memory. trimForCache drops, before an object is stored, what the speaker
// never reads. The speaker never writes back an object it read from the cache (it writes Announcements from
// uncached reads, and Events), so nothing trimmed is ever lost from the cluster.
//
// Kept: names, labels, UIDs, owner references, and
//   - Services: type, loadBalancerClass, externalTrafficPolicy, status.loadBalancer, the AnnotationNode pin;
//   - EndpointSlices: each endpoint's nodeName and conditions;
//   - Nodes: labels, addresses, conditions;
//   - everything else (pools, advertisements, Announcements, the Secret) whole, but for managed fields.
func trimForCache(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
			m.SetAnnotations(a)
		}
	}
	switch o := obj.(type) {
	case *corev1.Service:
		if pin := o.Annotations[AnnotationNode]; pin != "" {
			o.Annotations = map[string]string{AnnotationNode: pin}
		} else {
			o.Annotations = nil
		}
		o.Spec = corev1.ServiceSpec{Type: o.Spec.Type, LoadBalancerClass: o.Spec.LoadBalancerClass,
			ExternalTrafficPolicy: o.Spec.ExternalTrafficPolicy}
		o.Status.Conditions = nil
	case *discoveryv1.EndpointSlice:
		o.Annotations = nil
		o.Ports = nil
		eps := make([]discoveryv1.Endpoint, len(o.Endpoints))
		for i, e := range o.Endpoints {
			eps[i] = discoveryv1.Endpoint{NodeName: e.NodeName, Conditions: e.Conditions}
		}
		o.Endpoints = eps
	case *corev1.Node:
		o.Annotations = nil
		o.Spec = corev1.NodeSpec{}
		o.Status = corev1.NodeStatus{Addresses: o.Status.Addresses, Conditions: o.Status.Conditions}
	}
	return obj, nil
}
