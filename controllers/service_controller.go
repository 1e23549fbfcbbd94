package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
	"github.com/heraldlb/herald/internal/service"
)

// Event reasons on Services.
const (
	EventIPAllocated       = "IPAllocated"
	EventAllocationFailed  = "AllocationFailed"
	EventAddressChanged    = "AddressChanged"
	EventIPReleased        = "IPReleased"
	EventForeignAnnotation = "MetalLBAnnotation"
)

// RBAC: exactly what the controller uses (BENCHMARKS.md, "Least privilege", measured from the API server's audit
// log). Reads go through the manager's cache: list and watch, never get (list is what client-go falls back to
// when the API server does not stream lists). Status is written with patches. Events go through the
// events.k8s.io API (create, and patch when an event repeats). Leader election takes and renews a Lease with
// get, create and update, and records "became leader" / "stopped leading" through the core events API (create,
// and patch when one repeats): TestControllerAsServiceAccount in internal/cli exercises it, since the e2e lab runs
// one replica without leader election.
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update

// ServiceReconciler gives Services of type LoadBalancer their addresses and writes them to the Service status.
type ServiceReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	Metrics  *Metrics
	State    *allocations
	// retry receives Services to reconcile again, when addresses free up after a failed allocation.
	retry chan event.TypedGenericEvent[*corev1.Service]
	// poolChanged tells the pool reconciler that a pool's use changed.
	poolChanged chan<- event.TypedGenericEvent[*heraldv1.IPAddressPool]
}

// Reconcile allocates, keeps or releases one Service's addresses.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if err := r.State.ensureLoaded(ctx, r.Client); err != nil {
		return ctrl.Result{}, err
	}
	key := req.Namespace + "/" + req.Name
	svc := &corev1.Service{}
	if err := r.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.release(ctx, key, nil)
		}
		return ctrl.Result{}, err
	}
	if !service.Served(svc, r.State.class) {
		return ctrl.Result{}, r.release(ctx, key, svc)
	}
	if err := r.State.syncPools(ctx, r.Client); err != nil {
		return ctrl.Result{}, err
	}

	// Gather.
	pools := r.State.snapshotPools()
	sr, err := requestFor(svc)
	if err != nil {
		r.fail(svc, key, err)
		return ctrl.Result{}, nil
	}
	var nsLabels labels.Set
	if needsNamespaceLabels(pools) {
		ns := &corev1.Namespace{}
		if err := r.Get(ctx, types.NamespacedName{Name: svc.Namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		nsLabels = ns.Labels
	}
	sr.Pools, err = candidatePools(pools, svc, nsLabels, sr.Pool, len(sr.Addresses) > 0)
	if err != nil {
		r.fail(svc, key, err)
		return ctrl.Result{}, nil
	}

	// Decide.
	before := r.State.addresses(key)
	sr.Retained = retainedAddrs(pools, sr.Pools, before, r.State.poolOf)
	addrs, err := r.State.allocate(sr.Request)
	if err != nil {
		r.fail(svc, key, err)
		return ctrl.Result{}, nil
	}

	// Act: write the status once, then say what changed.
	was := service.Addresses(svc)
	if want := ingressFor(addrs); !equality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, want) {
		patch := client.MergeFrom(svc.DeepCopy())
		svc.Status.LoadBalancer.Ingress = want
		if err := r.Status().Patch(ctx, svc, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing status of Service %s: %w", key, err)
		}
		r.Metrics.Allocations.WithLabelValues("allocated", "").Inc()
		for _, f := range sr.Foreign {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, EventForeignAnnotation, "Allocate",
				"Honouring MetalLB annotation %s; Herald's own annotation is %s", f[0], f[1])
		}
		r.explainChange(svc, was, addrs, sr.Request)
	}
	if !sameAddrs(before, addrs) {
		r.notifyPools(ctx, append(before, addrs...))
	}
	return ctrl.Result{}, nil
}

// explainChange records Events for a Service whose addresses changed, given the request that changed them.
func (r *ServiceReconciler) explainChange(svc *corev1.Service, was, now []netip.Addr, req ipam.Request) {
	for _, old := range was {
		if containsAddr(now, old) {
			continue
		}
		why := "it no longer fits the Service's request, or another Service holds it"
		if pool, ok := r.State.poolOf(old); !ok {
			why = "it is in no IPAddressPool any more"
		} else if _, retained := req.Retained[old]; !retained && !slices.Contains(req.Pools, pool) {
			why = fmt.Sprintf("IPAddressPool %q, which holds it, does not serve the Service (its serviceAllocation, autoAssign or the Service's pool annotation)", pool)
		}
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, EventAddressChanged, "Allocate",
			"Address %s was withdrawn because %s; the Service now has %s", old, why, addrList(now))
	}
	var added []string
	for _, a := range now {
		if !containsAddr(was, a) {
			pool, _ := r.State.poolOf(a)
			added = append(added, fmt.Sprintf("%s from pool %s", a, pool))
		}
	}
	if len(added) > 0 {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, EventIPAllocated, "Allocate",
			"Assigned %s", strings.Join(added, " and "))
	}
}

// fail reports a failed allocation; the Service keeps any address it had.
func (r *ServiceReconciler) fail(svc *corev1.Service, key string, err error) {
	reason := "Error"
	var ie *ipam.Error
	if errors.As(err, &ie) {
		reason = string(ie.Reason)
	}
	r.State.markFailed(key, err.Error())
	r.Metrics.Allocations.WithLabelValues("failed", reason).Inc()
	r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, EventAllocationFailed, "Allocate", "%s: %s", reason, err.Error())
}

// release frees the addresses of a Service that is gone or no longer ours, clears them from its status when it
// still exists, and retries the Services that were waiting for an address.
func (r *ServiceReconciler) release(ctx context.Context, key string, svc *corev1.Service) error {
	held, waiting := r.State.release(key)
	if len(held) == 0 {
		return nil
	}
	r.Metrics.Allocations.WithLabelValues("released", "").Inc()
	log.FromContext(ctx).Info("released addresses", "service", key, "addresses", held)
	r.notifyPools(ctx, held)
	for _, w := range waiting {
		ns, name, _ := strings.Cut(w, "/")
		s := &corev1.Service{}
		s.Namespace, s.Name = ns, name
		select {
		case r.retry <- event.TypedGenericEvent[*corev1.Service]{Object: s}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if svc == nil {
		return nil
	}
	var keep []corev1.LoadBalancerIngress
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil && containsAddr(held, a) {
			continue
		}
		keep = append(keep, in)
	}
	if len(keep) == len(svc.Status.LoadBalancer.Ingress) {
		return nil
	}
	patch := client.MergeFrom(svc.DeepCopy())
	svc.Status.LoadBalancer.Ingress = keep
	if err := r.Status().Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("clearing status of Service %s: %w", key, err)
	}
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, EventIPReleased, "Release",
		"Released %s: the Service is no longer a LoadBalancer served by Herald", addrList(held))
	return nil
}

// notifyPools asks the pool reconciler to refresh the pools holding these addresses.
func (r *ServiceReconciler) notifyPools(ctx context.Context, addrs []netip.Addr) {
	seen := map[string]bool{}
	for _, a := range addrs {
		name, ok := r.State.poolOf(a)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		p := &heraldv1.IPAddressPool{}
		p.Name = name
		select {
		case r.poolChanged <- event.TypedGenericEvent[*heraldv1.IPAddressPool]{Object: p}:
		case <-ctx.Done():
			return
		}
	}
}

// SetupWithManager registers the reconciler: Services are its subject; a change to any pool or to a
// namespace's labels re-examines the Services it may affect.
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager, poolChanged chan<- event.TypedGenericEvent[*heraldv1.IPAddressPool]) error {
	r.retry = make(chan event.TypedGenericEvent[*corev1.Service], 1024)
	r.poolChanged = poolChanged
	allServices := func(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
		var list corev1.ServiceList
		if err := r.List(ctx, &list, opts...); err != nil {
			log.FromContext(ctx).Error(err, "listing Services to re-examine")
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			if list.Items[i].Spec.Type == corev1.ServiceTypeLoadBalancer {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return out
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		Watches(&heraldv1.IPAddressPool{}, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, _ client.Object) []reconcile.Request { return allServices(ctx) }),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, o client.Object) []reconcile.Request {
				return allServices(ctx, client.InNamespace(o.GetName()))
			}),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.retry, &handler.TypedEnqueueRequestForObject[*corev1.Service]{})).
		Complete(r)
}

func ingressFor(addrs []netip.Addr) []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, len(addrs))
	for i, a := range addrs {
		out[i] = corev1.LoadBalancerIngress{IP: a.String(), IPMode: &vip}
	}
	return out
}

// sameAddrs reports whether two address lists are equal, in order.
func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func addrList(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return "no address"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
