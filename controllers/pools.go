package controllers

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
)

// poolInfo is a pool as the allocator sees it: its parsed ranges, the part of them it may hand out once
// overlaps with earlier pools are removed, and what is wrong with it.
type poolInfo struct {
	Name       string
	AutoAssign bool
	AvoidBuggy bool
	Priority   int
	Allocation *heraldv1.ServiceAllocation
	Ranges     []ipam.Range // as listed
	Effective  []ipam.Range // Ranges minus every earlier pool's ranges
	Overlaps   []poolOverlap
	Invalid    []string // entries that do not parse (the schema refuses them; kept for defence)
}

// poolOverlap names an earlier pool and the addresses this pool shares with it.
type poolOverlap struct {
	Pool   string
	Ranges []ipam.Range
}

// buildPools parses pools and gives each the addresses it owns: pools are ordered by creation time (then name)
// and an address listed by several pools belongs to the earliest, so a pool added later never takes addresses
// that an existing pool hands out.
func buildPools(pools []heraldv1.IPAddressPool) []*poolInfo {
	sorted := make([]*heraldv1.IPAddressPool, len(pools))
	for i := range pools {
		sorted[i] = &pools[i]
	}
	slices.SortStableFunc(sorted, func(a, b *heraldv1.IPAddressPool) int {
		return ipam.OwnerFirst(a.CreationTimestamp.Time, a.Name, b.CreationTimestamp.Time, b.Name)
	})
	out := make([]*poolInfo, 0, len(sorted))
	for _, p := range sorted {
		pi := &poolInfo{
			Name:       p.Name,
			AutoAssign: p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
			AvoidBuggy: p.Spec.AvoidBuggyIPs,
			Priority:   poolPriority(p.Spec.ServiceAllocation),
			Allocation: p.Spec.ServiceAllocation,
		}
		for _, a := range p.Spec.Addresses {
			r, err := ipam.ParseRange(string(a))
			if err != nil {
				pi.Invalid = append(pi.Invalid, err.Error())
				continue
			}
			pi.Ranges = append(pi.Ranges, r)
		}
		pi.Effective = pi.Ranges
		for _, earlier := range out {
			shared := ipam.Intersect(pi.Ranges, earlier.Ranges)
			if len(shared) == 0 {
				continue
			}
			pi.Overlaps = append(pi.Overlaps, poolOverlap{Pool: earlier.Name, Ranges: shared})
			pi.Effective = ipam.Subtract(pi.Effective, earlier.Ranges)
		}
		out = append(out, pi)
	}
	return out
}

// poolPriority maps a pool's serviceAllocation to the allocator's order: pools with a priority first (lower
// first), then pools with a serviceAllocation but no priority, then pools open to every Service.
func poolPriority(sa *heraldv1.ServiceAllocation) int {
	switch {
	case sa == nil:
		return 0
	case sa.Priority > 0:
		return int(sa.Priority)
	default:
		return math.MaxInt32
	}
}

// PoolOverlap is the addresses a pool lists that an earlier pool lists too.
type PoolOverlap struct {
	Pool    string
	Earlier string // the pool that hands the shared addresses out
	Ranges  []ipam.Range
}

// Overlaps lists the addresses each pool shares with earlier ones, in the controller's order: by creation time,
// then name. The controller hands shared addresses out from the earlier pool only.
func Overlaps(pools []heraldv1.IPAddressPool) []PoolOverlap {
	var out []PoolOverlap
	for _, p := range buildPools(pools) {
		for _, o := range p.Overlaps {
			out = append(out, PoolOverlap{Pool: p.Name, Earlier: o.Pool, Ranges: o.Ranges})
		}
	}
	return out
}

// ipamPools is the allocator's view of the pools.
func ipamPools(pools []*poolInfo) []ipam.Pool {
	out := make([]ipam.Pool, 0, len(pools))
	for _, p := range pools {
		out = append(out, ipam.Pool{Name: p.Name, Priority: p.Priority, Ranges: p.Effective, AvoidBuggyIPs: p.AvoidBuggy})
	}
	return out
}

// overlapMessage describes a pool's overlaps for its condition and Event.
func (p *poolInfo) overlapMessage() string {
	var parts []string
	for _, o := range p.Overlaps {
		rs := make([]string, len(o.Ranges))
		for i, r := range o.Ranges {
			rs[i] = r.String()
		}
		parts = append(parts, fmt.Sprintf("%s also belong to pool %q, created earlier", strings.Join(rs, ", "), o.Pool))
	}
	return strings.Join(parts, "; ") + ". Those addresses are handed out from the earlier pool only."
}

// allows reports whether a Service may take addresses from the pool, by its serviceAllocation; when it may not,
// the reason says why.
func (p *poolInfo) allows(svc *corev1.Service, nsLabels labels.Set) (bool, string) {
	sa := p.Allocation
	if sa == nil {
		return true, ""
	}
	if len(sa.Namespaces) > 0 || len(sa.NamespaceSelectors) > 0 {
		ok := false
		for _, ns := range sa.Namespaces {
			if ns == svc.Namespace {
				ok = true
				break
			}
		}
		for i := range sa.NamespaceSelectors {
			if !ok && sa.NamespaceSelectors[i].Matches(nsLabels) {
				ok = true
			}
		}
		if !ok {
			return false, fmt.Sprintf("pool %q does not serve namespace %q", p.Name, svc.Namespace)
		}
	}
	if len(sa.ServiceSelectors) > 0 {
		ok := false
		for i := range sa.ServiceSelectors {
			if sa.ServiceSelectors[i].Matches(labels.Set(svc.Labels)) {
				ok = true
				break
			}
		}
		if !ok {
			return false, fmt.Sprintf("pool %q does not serve Services with these labels", p.Name)
		}
	}
	return true, ""
}

// candidatePools lists the pools a Service may take addresses from. A pool named by annotation is the only
// candidate. Otherwise every pool whose serviceAllocation admits the Service, less those with autoAssign off
// when the Service asks for no particular address.
func candidatePools(pools []*poolInfo, svc *corev1.Service, nsLabels labels.Set, want string, addressesRequested bool) ([]string, error) {
	if want != "" {
		for _, p := range pools {
			if p.Name != want {
				continue
			}
			if ok, why := p.allows(svc, nsLabels); !ok {
				return nil, &ipam.Error{Reason: ipam.ReasonNoPool, Message: why}
			}
			return []string{p.Name}, nil
		}
		return nil, &ipam.Error{Reason: ipam.ReasonNoPool, Message: fmt.Sprintf("pool %q does not exist", want)}
	}
	var names []string
	for _, p := range pools {
		if !addressesRequested && !p.AutoAssign {
			continue
		}
		if ok, _ := p.allows(svc, nsLabels); ok {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return nil, &ipam.Error{Reason: ipam.ReasonNoPool, Message: "no IPAddressPool serves this Service"}
	}
	return names, nil
}

// needsNamespaceLabels reports whether any pool selects namespaces by label.
func needsNamespaceLabels(pools []*poolInfo) bool {
	for _, p := range pools {
		if p.Allocation != nil && len(p.Allocation.NamespaceSelectors) > 0 {
			return true
		}
	}
	return false
}

// retainedAddrs keeps a Service's addresses when overlapping pools moved them to another owner: an address the
// Service holds whose owner is not one of its candidate pools, but which a candidate lists all the same (an
// earlier pool was widened over it), stays valid for that candidate (the first listing it, in ownership order).
// Nothing already allocated is taken away by an overlap. The owner does not become a candidate: it may no longer
// serve the Service (narrowed to other namespaces, say), so neither the Service's other addresses from it nor new
// ones are kept or taken on its account.
func retainedAddrs(pools []*poolInfo, candidates []string, held []netip.Addr, owner func(netip.Addr) (string, bool)) map[netip.Addr]string {
	isCandidate := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		isCandidate[c] = true
	}
	var out map[netip.Addr]string
	for _, a := range held {
		o, ok := owner(a)
		if !ok || isCandidate[o] {
			continue
		}
		for _, p := range pools {
			if isCandidate[p.Name] && rangesContain(p.Ranges, a) {
				if out == nil {
					out = map[netip.Addr]string{}
				}
				out[a] = p.Name
				break
			}
		}
	}
	return out
}

func rangesContain(rs []ipam.Range, a netip.Addr) bool {
	for _, r := range rs {
		if r.Contains(a) {
			return true
		}
	}
	return false
}
