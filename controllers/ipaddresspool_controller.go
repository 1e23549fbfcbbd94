package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Event reasons on pools.
const (
	EventAddressesOverlap = "AddressesOverlap"
)

// +kubebuilder:rbac:groups=herald.dev,resources=ipaddresspools,verbs=list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=ipaddresspools/status,verbs=patch

// IPAddressPoolReconciler keeps each pool's status and metrics: counts per family, and conditions saying
// whether it is usable and whether it overlaps an earlier pool.
type IPAddressPoolReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	Metrics  *Metrics
	State    *allocations
	// Changed receives pools whose use changed; the Service reconciler sends on it.
	Changed chan event.TypedGenericEvent[*heraldv1.IPAddressPool]
	// Clock times the count writes (countsEvery); the real clock when nil.
	Clock clock.PassiveClock

	mu      sync.Mutex
	written map[string]time.Time // when each pool's status was last written
}

// countsEvery is how often a pool's status is written when nothing but its counts changed. A creation storm
// allocates from one pool many times a second, and writing each allocation would double the storm's writes;
// the gauges (herald_allocator_addresses_*) follow every allocation at once. Exhaustion is written at once.
const countsEvery = 5 * time.Second

// countsDue says whether a pool status cur, differing from what is stored (old), may be written at now, after the
// last write at last; when not, after is how long to wait. Anything but the counts changing, a first write, and
// the pool running out (or no longer out) of addresses are written at once.
func countsDue(old, cur heraldv1.IPAddressPoolStatus, last, now time.Time) (write bool, after time.Duration) {
	o, c := old.DeepCopy(), cur.DeepCopy()
	o.AssignedIPv4, o.AvailableIPv4, o.AssignedIPv6, o.AvailableIPv6 = "", "", "", ""
	c.AssignedIPv4, c.AvailableIPv4, c.AssignedIPv6, c.AvailableIPv6 = "", "", "", ""
	switch {
	case !equality.Semantic.DeepEqual(o, c), last.IsZero(),
		(old.AvailableIPv4 == "0") != (cur.AvailableIPv4 == "0"), (old.AvailableIPv6 == "0") != (cur.AvailableIPv6 == "0"):
		return true, 0
	}
	if wait := last.Add(countsEvery).Sub(now); wait > 0 {
		return false, wait
	}
	return true, 0
}

// Reconcile refreshes one pool's status.
func (r *IPAddressPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if err := r.State.ensureLoaded(ctx, r.Client); err != nil {
		return ctrl.Result{}, err
	}
	pool := &heraldv1.IPAddressPool{}
	if err := r.Get(ctx, req.NamespacedName, pool); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetPool(req.Name)
			r.mu.Lock()
			delete(r.written, req.Name)
			r.mu.Unlock()
			return ctrl.Result{}, r.State.syncPools(ctx, r.Client)
		}
		return ctrl.Result{}, err
	}
	if err := r.State.syncPools(ctx, r.Client); err != nil {
		return ctrl.Result{}, err
	}
	var info *poolInfo
	for _, p := range r.State.snapshotPools() {
		if p.Name == pool.Name {
			info = p
		}
	}
	stats := r.State.stats(pool.Name)
	for fam, s := range stats {
		r.Metrics.Capacity.WithLabelValues(pool.Name, fam.String()).Set(floatOf(s.Capacity))
		r.Metrics.InUse.WithLabelValues(pool.Name, fam.String()).Set(floatOf(s.InUse))
		r.Metrics.Available.WithLabelValues(pool.Name, fam.String()).Set(floatOf(s.Available))
	}

	st := poolStatus(pool, info, stats)
	if equality.Semantic.DeepEqual(st, pool.Status) {
		return ctrl.Result{}, nil
	}
	clk := r.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	r.mu.Lock()
	last := r.written[pool.Name]
	r.mu.Unlock()
	if ok, after := countsDue(pool.Status, st, last, clk.Now()); !ok {
		return ctrl.Result{RequeueAfter: after}, nil
	}
	wasOverlapping := meta.IsStatusConditionTrue(pool.Status.Conditions, heraldv1.ConditionOverlapping)
	patch := client.MergeFrom(pool.DeepCopy())
	pool.Status = st
	if err := r.Status().Patch(ctx, pool, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("writing status of IPAddressPool %s: %w", pool.Name, err)
	}
	r.mu.Lock()
	if r.written == nil {
		r.written = map[string]time.Time{}
	}
	r.written[pool.Name] = clk.Now()
	r.mu.Unlock()
	if info != nil && len(info.Overlaps) > 0 && !wasOverlapping {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, EventAddressesOverlap, "Validate", "%s", info.overlapMessage())
		log.FromContext(ctx).Info("pool overlaps earlier pools", "pool", pool.Name, "overlaps", len(info.Overlaps))
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler. A change to any pool can change every other pool's overlaps, so
// every pool is re-examined.
func (r *IPAddressPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("ipaddresspool").
		For(&heraldv1.IPAddressPool{}).
		Watches(&heraldv1.IPAddressPool{}, enqueueAll(mgr.GetClient(), func() client.ObjectList { return &heraldv1.IPAddressPoolList{} })).
		WatchesRawSource(source.Channel(r.Changed, &handler.TypedEnqueueRequestForObject[*heraldv1.IPAddressPool]{})).
		Complete(r)
}
