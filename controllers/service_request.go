package controllers

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/internal/ipam"
)

// Annotations a Service may carry. Herald's own come first in each group; MetalLB's are honoured so that a
// migrating user's Services keep their addresses.
const (
	AnnotationLoadBalancerIPs = "herald.dev/load-balancer-ips"
	AnnotationIPPool          = "herald.dev/ip-pool"
	AnnotationAllowSharedIP   = "herald.dev/allow-shared-ip"
)

var (
	ipsAnnotations    = []string{AnnotationLoadBalancerIPs, "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"}
	poolAnnotations   = []string{AnnotationIPPool, "metallb.io/address-pool", "metallb.universe.tf/address-pool"}
	sharedAnnotations = []string{AnnotationAllowSharedIP, "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"}
)

// serviceRequest is what a Service asks of the allocator, read from its spec and annotations.
type serviceRequest struct {
	ipam.Request
	Pool string // pool named by annotation, "" for any
	// Foreign lists MetalLB annotations in use, each with the Herald annotation that replaces it.
	Foreign [][2]string
}

// requestFor reads a Service's request. The error, an *ipam.Error with ReasonInvalidRequest, says what in the
// Service is contradictory or malformed.
func requestFor(svc *corev1.Service) (serviceRequest, error) {
	var sr serviceRequest
	sr.Key = svc.Namespace + "/" + svc.Name

	ips, ipsFrom, err := annotationValue(svc, ipsAnnotations, &sr.Foreign)
	if err != nil {
		return sr, err
	}
	if svc.Spec.LoadBalancerIP != "" { //nolint:staticcheck // deprecated upstream, still honoured
		if ips != "" && !sameAddressList(ips, svc.Spec.LoadBalancerIP) { //nolint:staticcheck
			return sr, invalid("spec.loadBalancerIP %s contradicts annotation %s=%q; set one of them",
				svc.Spec.LoadBalancerIP, ipsFrom, ips) //nolint:staticcheck
		}
		ips = svc.Spec.LoadBalancerIP //nolint:staticcheck
	}
	if sr.Pool, _, err = annotationValue(svc, poolAnnotations, &sr.Foreign); err != nil {
		return sr, err
	}
	if sr.SharingKey, _, err = annotationValue(svc, sharedAnnotations, &sr.Foreign); err != nil {
		return sr, err
	}

	families, err := serviceFamilies(svc)
	if err != nil {
		return sr, err
	}
	sr.Families = families
	sr.RequireAll = svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyRequireDualStack
	if ips != "" {
		if sr.Addresses, err = parseRequestedIPs(ips, families, sr.RequireAll); err != nil {
			return sr, err
		}
	}

	for _, p := range svc.Spec.Ports {
		sr.Ports = append(sr.Ports, ipam.Port{Protocol: string(p.Protocol), Port: p.Port})
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		sr.Backend = selectorKey(svc.Spec.Selector)
	}
	return sr, nil
}

// Request is what a Service asks of the allocator by its spec and annotations, read as the controller reads it.
type Request struct {
	// Addresses are the addresses it requests, in its families' order; none when any will do.
	Addresses []netip.Addr
	// Pool is the pool it names; "" for any.
	Pool string
	// AddressesFrom and PoolFrom name the field or annotation Addresses and Pool were read from.
	AddressesFrom, PoolFrom string
}

// ServiceRequest reads what a Service requests: herald.dev/load-balancer-ips (or MetalLB's loadBalancerIPs
// annotations, or spec.loadBalancerIP) and herald.dev/ip-pool (or MetalLB's address-pool). The error, an
// *ipam.Error with ReasonInvalidRequest, says what in the Service is contradictory or malformed; the
// controller refuses such a Service with an AllocationFailed Event.
func ServiceRequest(svc *corev1.Service) (Request, error) {
	sr, err := requestFor(svc)
	if err != nil {
		return Request{}, err
	}
	r := Request{Addresses: sr.Addresses, Pool: sr.Pool, AddressesFrom: firstSet(svc, ipsAnnotations), PoolFrom: firstSet(svc, poolAnnotations)}
	if svc.Spec.LoadBalancerIP != "" { //nolint:staticcheck // deprecated upstream, still honoured
		r.AddressesFrom = "spec.loadBalancerIP"
	}
	return r, nil
}

// firstSet names the first annotation of a group a Service carries, "" when it carries none.
func firstSet(svc *corev1.Service, group []string) string {
	for _, k := range group {
		if _, ok := svc.Annotations[k]; ok {
			return k
		}
	}
	return ""
}

// annotationValue returns the value of the first annotation of a group that is set and its name, after
// checking that the others agree with it. Use of a MetalLB annotation is recorded in foreign.
func annotationValue(svc *corev1.Service, group []string, foreign *[][2]string) (val, from string, err error) {
	for _, k := range group {
		v, ok := svc.Annotations[k]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k != group[0] {
			*foreign = append(*foreign, [2]string{k, group[0]})
		}
		if from == "" {
			val, from = v, k
			continue
		}
		if v != val && !(group[0] == AnnotationLoadBalancerIPs && sameAddressList(v, val)) {
			return "", "", invalid("annotations %s=%q and %s=%q disagree; keep one of them", from, val, k, v)
		}
	}
	return val, from, nil
}

// serviceFamilies lists the families a Service wants, primary first, from spec.ipFamilies and its policy.
func serviceFamilies(svc *corev1.Service) ([]ipam.Family, error) {
	var fams []ipam.Family
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			fams = append(fams, ipam.IPv4)
		case corev1.IPv6Protocol:
			fams = append(fams, ipam.IPv6)
		default:
			return nil, invalid("spec.ipFamilies holds unknown family %q", f)
		}
	}
	if len(fams) == 0 {
		fams = []ipam.Family{ipam.IPv4}
	}
	single := svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack
	if single {
		fams = fams[:1]
	}
	return fams, nil
}

// parseRequestedIPs parses a comma list of requested addresses and checks it against the Service's families.
func parseRequestedIPs(s string, families []ipam.Family, requireAll bool) ([]netip.Addr, error) {
	var addrs []netip.Addr
	seen := map[ipam.Family]netip.Addr{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return nil, invalid("requested address %q is not an IP address", f)
		}
		fam := ipam.FamilyOf(a)
		if prev, dup := seen[fam]; dup {
			return nil, invalid("requested addresses %s and %s are both %s; ask for at most one address per family", prev, a, fam)
		}
		seen[fam] = a
		if !containsFamily(families, fam) {
			return nil, invalid("requested address %s is %s but the Service's IP families are %s", a, fam, familyList(families))
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, invalid("the requested address list %q is empty", s)
	}
	if requireAll && len(addrs) < len(families) {
		return nil, invalid("the Service requires dual-stack (RequireDualStack) but requests only %s; request one address per family", addrs[0])
	}
	// Keep the Service's family order.
	sort.SliceStable(addrs, func(i, j int) bool {
		return familyIndex(families, ipam.FamilyOf(addrs[i])) < familyIndex(families, ipam.FamilyOf(addrs[j]))
	})
	return addrs, nil
}

func sameAddressList(a, b string) bool {
	norm := func(s string) string {
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if ad, err := netip.ParseAddr(p); err == nil {
					p = ad.String()
				}
				parts = append(parts, p)
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	}
	return norm(a) == norm(b)
}

func containsFamily(fams []ipam.Family, f ipam.Family) bool { return familyIndex(fams, f) >= 0 }

func familyIndex(fams []ipam.Family, f ipam.Family) int {
	for i, x := range fams {
		if x == f {
			return i
		}
	}
	return -1
}

func familyList(fams []ipam.Family) string {
	s := make([]string, len(fams))
	for i, f := range fams {
		s[i] = f.String()
	}
	return strings.Join(s, ", ")
}

// selectorKey is a canonical form of a pod selector, so Services with equal selectors compare equal.
func selectorKey(sel map[string]string) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + sel[k])
	}
	return "selector:" + b.String()
}

func invalid(format string, args ...any) error {
	return &ipam.Error{Reason: ipam.ReasonInvalidRequest, Message: fmt.Sprintf(format, args...)}
}
