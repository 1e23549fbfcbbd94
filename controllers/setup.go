// Package controllers holds Herald's reconcilers: Services of type LoadBalancer get addresses from
// IPAddressPools, and pools and L2Advertisements get their status.
package controllers

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// DefaultLoadBalancerClass is the loadBalancerClass Herald serves besides Services that name none.
const DefaultLoadBalancerClass = "herald.dev/l2"

// Options configure the reconcilers.
type Options struct {
	// LoadBalancerClass is the class Herald serves; Services with another class are left alone.
	LoadBalancerClass string
	// Registerer receives the metrics.
	Registerer prometheus.Registerer
	// MemberlistSecret, when set, is the Secret holding the speakers' gossip key: the leader creates it with a
	// random 32-byte key when it does not exist.
	MemberlistSecret types.NamespacedName
}

// Setup adds Herald's reconcilers to a manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.LoadBalancerClass == "" {
		opts.LoadBalancerClass = DefaultLoadBalancerClass
	}
	metrics := NewMetrics(opts.Registerer)
	state := newAllocations(opts.LoadBalancerClass)
	poolChanged := make(chan event.TypedGenericEvent[*heraldv1.IPAddressPool], 1024)
	rec := mgr.GetEventRecorder("herald-controller")

	svc := &ServiceReconciler{Client: mgr.GetClient(), Recorder: rec, Metrics: metrics, State: state}
	if err := svc.SetupWithManager(mgr, poolChanged); err != nil {
		return fmt.Errorf("setting up the Service reconciler: %w", err)
	}
	pool := &IPAddressPoolReconciler{Client: mgr.GetClient(), Recorder: rec, Metrics: metrics, State: state, Changed: poolChanged}
	if err := pool.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the IPAddressPool reconciler: %w", err)
	}
	adv := &L2AdvertisementReconciler{Client: mgr.GetClient(), Recorder: rec}
	if err := adv.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the L2Advertisement reconciler: %w", err)
	}
	if opts.MemberlistSecret.Name != "" {
		if err := mgr.Add(&memberlistSecret{reader: mgr.GetAPIReader(), writer: mgr.GetClient(), name: opts.MemberlistSecret}); err != nil {
			return fmt.Errorf("adding the memberlist Secret runnable: %w", err)
		}
	}
	return nil
}
