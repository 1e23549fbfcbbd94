package migrate

import (
	"net/netip"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// annotationGroup is one Service annotation in Herald's spelling and MetalLB's two.
type annotationGroup struct {
	herald  string
	metallb []string
	// addresses: the values are address lists, equal when they hold the same addresses.
	addresses bool
	// pool: the value names a pool, which may have been renamed.
	pool bool
}

var annotationGroups = []annotationGroup{
	{herald: "herald.dev/load-balancer-ips", metallb: []string{"metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"}, addresses: true},
	{herald: "herald.dev/ip-pool", metallb: []string{"metallb.io/address-pool", "metallb.universe.tf/address-pool"}, pool: true},
	{herald: "herald.dev/allow-shared-ip", metallb: []string{"metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"}},
}

// metallbStatusAnnotations are written by MetalLB's controller, not by users; Herald has no use for them.
var metallbStatusAnnotations = []string{"metallb.io/ip-allocated-from-pool", "metallb.universe.tf/ip-allocated-from-pool"}

// service translates the MetalLB annotations of a Service of type LoadBalancer, and notes a loadBalancerClass
// that keeps Herald away from it.
func (t *translator) service(u *unstructured.Unstructured) {
	if typ, _, _ := unstructured.NestedString(u.Object, "spec", "type"); typ != "LoadBalancer" {
		return
	}
	ns, name := u.GetNamespace(), u.GetName()
	if t.repeat("Service", ns, name) {
		return
	}
	src := source("Service", ns, name)
	if class, _, _ := unstructured.NestedString(u.Object, "spec", "loadBalancerClass"); class != "" && class != heraldClass {
		t.warn(src, "spec.loadBalancerClass", "class %q: Herald serves Services without a class or with %q and ignores this one. The class cannot be changed: recreate the Service without it (or run the controller with --load-balancer-class=%s)",
			class, heraldClass, class)
	}
	ann := u.GetAnnotations()
	patch := ServicePatch{Namespace: ns, Name: name, Set: map[string]string{}}
	for _, g := range annotationGroups {
		t.serviceAnnotation(src, ann, g, &patch)
	}
	if !t.opts.KeepMetalLBAnnotations {
		for _, k := range metallbStatusAnnotations {
			if _, ok := ann[k]; ok {
				patch.Remove = append(patch.Remove, k)
			}
		}
	}
	if len(patch.Set) == 0 {
		patch.Set = nil
	}
	if len(patch.Set) > 0 || len(patch.Remove) > 0 {
		sort.Strings(patch.Remove)
		t.res.Services = append(t.res.Services, patch)
	}
}

// serviceAnnotation checks one annotation group of a Service and adds its rewrite to patch.
func (t *translator) serviceAnnotation(src string, ann map[string]string, g annotationGroup, patch *ServicePatch) {
	var keys []string // MetalLB spellings present
	for _, k := range g.metallb {
		if _, ok := ann[k]; ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	val := strings.TrimSpace(ann[keys[0]])
	same := func(a, b string) bool {
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if g.addresses {
			return normalAddresses(a) == normalAddresses(b)
		}
		return a == b
	}
	for _, k := range keys[1:] {
		if !same(ann[k], val) {
			t.warn(src, "metadata.annotations."+k, "disagrees with %s=%q: Herald refuses the Service until one of them is removed; not rewritten",
				keys[0], val)
			return
		}
	}
	hv, hasHerald := ann[g.herald]
	if hasHerald && !same(hv, val) {
		t.warn(src, "metadata.annotations."+g.herald, "%q disagrees with %s=%q: Herald refuses the Service until one of them is removed; not rewritten",
			hv, keys[0], val)
		return
	}
	newVal := val
	if g.pool {
		newVal = t.servicePool(src, "metadata.annotations."+keys[0], val)
	}
	if t.opts.KeepMetalLBAnnotations {
		if newVal != val {
			// The pool was renamed: the MetalLB annotation no longer names it, so Herald's must be set.
			patch.Set[g.herald] = newVal
		}
		return
	}
	if !hasHerald || !same(hv, newVal) {
		patch.Set[g.herald] = newVal
	}
	patch.Remove = append(patch.Remove, keys...)
}

// servicePool returns the Herald name of the pool a Service's annotation names, noting when that is in doubt.
func (t *translator) servicePool(src, field, name string) string {
	cands := t.byName[name]
	if len(cands) == 0 {
		if len(t.pools) > 0 {
			t.warn(src, field, "pool %q is not among the input: kept as is; Herald refuses the Service until a pool of that name exists", name)
		}
		return name
	}
	p := cands[0]
	if len(cands) > 1 {
		t.warn(src, field, "pool %q exists in %d namespaces; the Service gets the one in namespace %q, Herald pool %q", name, len(cands), p.ns, p.herald)
	}
	if p.herald == "" {
		t.warn(src, field, "pool %q was not translated: Herald refuses the Service until a pool of that name exists", name)
		return name
	}
	return p.herald
}

// normalAddresses is a comma list of addresses in canonical, sorted form.
func normalAddresses(s string) string {
	var parts []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if a, err := netip.ParseAddr(p); err == nil {
			p = a.String()
		}
		parts = append(parts, p)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
