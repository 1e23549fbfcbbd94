package controllers

import (
	"math/big"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
)

// poolStatus computes a pool's status from what the allocator knows of it. It is pure: the reconciler writes
// the result when it differs from what is stored.
func poolStatus(pool *heraldv1.IPAddressPool, info *poolInfo, stats map[ipam.Family]ipam.FamilyStats) heraldv1.IPAddressPoolStatus {
	st := *pool.Status.DeepCopy()
	st.ObservedGeneration = pool.Generation
	st.CapacityIPv4, st.AssignedIPv4, st.AvailableIPv4 = counts(stats, ipam.IPv4)
	st.CapacityIPv6, st.AssignedIPv6, st.AvailableIPv6 = counts(stats, ipam.IPv6)

	ready := metav1.Condition{Type: heraldv1.ConditionReady, Status: metav1.ConditionTrue, Reason: heraldv1.ReasonValid,
		Message: "the pool hands out addresses", ObservedGeneration: pool.Generation}
	overlap := metav1.Condition{Type: heraldv1.ConditionOverlapping, Status: metav1.ConditionFalse, Reason: heraldv1.ReasonNoOverlap,
		Message: "no address of this pool is also in a pool created earlier", ObservedGeneration: pool.Generation}
	switch {
	case info == nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionUnknown, "Pending", "the controller has not read this pool yet"
	case len(info.Invalid) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, heraldv1.ReasonInvalid
		ready.Message = "addresses that do not parse: " + strings.Join(info.Invalid, "; ")
	case len(info.Effective) == 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, heraldv1.ReasonNoAddresses
		ready.Message = "every address of this pool belongs to a pool created earlier"
	}
	if info != nil && len(info.Overlaps) > 0 {
		overlap.Status, overlap.Reason, overlap.Message = metav1.ConditionTrue, heraldv1.ReasonAddressesShared, info.overlapMessage()
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	meta.SetStatusCondition(&st.Conditions, overlap)
	return st
}

// counts renders a family's counts as decimal strings, or empty strings when the pool holds no such address.
func counts(stats map[ipam.Family]ipam.FamilyStats, f ipam.Family) (capacity, assigned, available string) {
	s, ok := stats[f]
	if !ok || s.Capacity == nil || s.Capacity.Sign() == 0 {
		return "", "", ""
	}
	str := func(b *big.Int) string {
		if b == nil {
			return "0"
		}
		return b.String()
	}
	return str(s.Capacity), str(s.InUse), str(s.Available)
}

// floatOf converts a count for a gauge.
func floatOf(b *big.Int) float64 {
	if b == nil {
		return 0
	}
	f, _ := new(big.Float).SetInt(b).Float64()
	return f
}
