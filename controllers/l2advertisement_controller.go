package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// +kubebuilder:rbac:groups=herald.dev,resources=l2advertisements,verbs=list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=l2advertisements/status,verbs=patch

// L2AdvertisementReconciler validates L2Advertisements against the pools that exist and reports the result in
// their Ready condition. The speakers act on them.
type L2AdvertisementReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
}

// Reconcile checks one L2Advertisement.
func (r *L2AdvertisementReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	adv := &heraldv1.L2Advertisement{}
	if err := r.Get(ctx, req.NamespacedName, adv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var pools heraldv1.IPAddressPoolList
	if err := r.List(ctx, &pools); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing IPAddressPools: %w", err)
	}
	names := make(map[string]bool, len(pools.Items))
	for _, p := range pools.Items {
		names[p.Name] = true
	}

	cond := l2AdvertisementReady(adv, names)
	st := *adv.Status.DeepCopy()
	st.ObservedGeneration = adv.Generation
	changed := meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(st, adv.Status) {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(adv.DeepCopy())
	adv.Status = st
	if err := r.Status().Patch(ctx, adv, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("writing status of L2Advertisement %s: %w", adv.Name, err)
	}
	if changed && cond.Status == metav1.ConditionFalse {
		r.Recorder.Eventf(adv, nil, corev1.EventTypeWarning, cond.Reason, "Validate", "%s", cond.Message)
	}
	return ctrl.Result{}, nil
}

// l2AdvertisementReady decides an L2Advertisement's Ready condition from the pools that exist.
func l2AdvertisementReady(adv *heraldv1.L2Advertisement, pools map[string]bool) metav1.Condition {
	c := metav1.Condition{Type: heraldv1.ConditionReady, Status: metav1.ConditionTrue, Reason: heraldv1.ReasonValid,
		ObservedGeneration: adv.Generation}
	var missing []string
	for _, p := range adv.Spec.IPAddressPools {
		if !pools[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	var bad []string
	checkOne := func(field string, sel *heraldv1.Selector) {
		if _, err := metav1.LabelSelectorAsSelector(sel.LabelSelector()); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", field, err))
		}
	}
	check := func(field string, sels []heraldv1.Selector) {
		for i := range sels {
			checkOne(fmt.Sprintf("%s[%d]", field, i), &sels[i])
		}
	}
	check("ipAddressPoolSelectors", adv.Spec.IPAddressPoolSelectors)
	check("nodeSelectors", adv.Spec.NodeSelectors)
	check("serviceSelectors", adv.Spec.ServiceSelectors)
	for i := range adv.Spec.PreferredNodeSelectors {
		checkOne(fmt.Sprintf("preferredNodeSelectors[%d].preference", i), &adv.Spec.PreferredNodeSelectors[i].Preference)
	}
	switch {
	case len(bad) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, heraldv1.ReasonInvalid
		c.Message = "invalid selectors: " + strings.Join(bad, "; ")
	case len(missing) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, heraldv1.ReasonPoolNotFound
		c.Message = fmt.Sprintf("no IPAddressPool named %s; their addresses are not announced by this advertisement",
			strings.Join(missing, ", "))
	case len(adv.Spec.IPAddressPools) == 0 && len(adv.Spec.IPAddressPoolSelectors) == 0:
		c.Message = "announces every pool"
	default:
		c.Message = "every named pool exists"
	}
	return c
}

// SetupWithManager registers the reconciler; a pool appearing or going re-checks every advertisement.
func (r *L2AdvertisementReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("l2advertisement").
		For(&heraldv1.L2Advertisement{}).
		Watches(&heraldv1.IPAddressPool{}, enqueueAll(mgr.GetClient(), func() client.ObjectList { return &heraldv1.L2AdvertisementList{} })).
		Complete(r)
}
