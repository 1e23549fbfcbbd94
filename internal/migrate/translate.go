package migrate

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
)

// MetalLB's API group, and the annotation Herald puts on every resource it writes to name the MetalLB source.
const (
	MetalLBGroup           = "metallb.io"
	AnnotationMigratedFrom = "herald.dev/migrated-from"
	// LegacyAdvertisement is the name of the L2Advertisement made for the layer2 pools of a legacy ConfigMap
	// or AddressPool, which MetalLB announced without one.
	LegacyAdvertisement = "metallb-legacy-layer2"
	heraldClass         = "herald.dev/l2"
	maxAddresses        = 64 // Herald's schema: IPAddressPoolSpec.addresses MaxItems
)

var interfaceName = regexp.MustCompile(`^[^/:\s]{1,15}$`)

// Translate translates MetalLB objects (IPAddressPool, L2Advertisement, the BGP kinds, the legacy AddressPool
// and ConfigMap, Services) into Herald's pools, advertisements and Service annotation changes. Objects of
// other kinds are ignored; lists are expanded. The error is for input Translate cannot read at all.
func Translate(objs []*unstructured.Unstructured, opts Options) (*Result, error) {
	t := &translator{
		opts:      opts,
		res:       &Result{},
		poolNames: map[string]bool{},
		advNames:  map[string]bool{},
		byName:    map[string][]*pool{},
		seen:      map[string]bool{},
	}
	flat, err := Flatten(objs)
	if err != nil {
		return nil, err
	}
	// Pools first: advertisements and Services refer to them by name.
	for _, u := range flat {
		gvk := u.GroupVersionKind()
		switch {
		case gvk.Group == MetalLBGroup && gvk.Kind == "IPAddressPool":
			t.poolCR(u)
		case gvk.Group == MetalLBGroup && gvk.Kind == "AddressPool":
			t.addressPoolCR(u)
		case gvk.Group == "" && gvk.Kind == "ConfigMap":
			t.configMap(u)
		}
	}
	for _, u := range flat {
		gvk := u.GroupVersionKind()
		if gvk.Group != MetalLBGroup {
			continue
		}
		switch gvk.Kind {
		case "IPAddressPool", "AddressPool":
		case "L2Advertisement":
			t.l2Advertisement(u)
		case "BGPAdvertisement":
			t.bgpAdvertisement(u)
		case "BGPPeer", "BFDProfile", "Community":
			t.skipped(source(gvk.Kind, u.GetNamespace(), u.GetName()), "", "Herald announces on Layer 2 only")
		default:
			t.note(SeverityInfo, source(gvk.Kind, u.GetNamespace(), u.GetName()), "",
				"not translated: Herald has no equivalent of this MetalLB kind")
		}
	}
	t.staleConfigMaps()
	t.legacyAdvertisement()
	t.coverage()
	for _, u := range flat {
		if gvk := u.GroupVersionKind(); gvk.Group == "" && gvk.Kind == "Service" {
			t.service(u)
		}
	}
	return t.res, nil
}

// Flatten expands v1 Lists (what `kubectl get -o yaml` prints) and checks every object has a kind and a name.
func Flatten(objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.IsList() {
			var items []*unstructured.Unstructured
			err := u.EachListItem(func(o runtime.Object) error {
				items = append(items, o.(*unstructured.Unstructured))
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("expanding %s: %w", u.GetKind(), err)
			}
			inner, err := Flatten(items)
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
			continue
		}
		if u.GetKind() == "" {
			return nil, fmt.Errorf("an object without a kind (apiVersion %q, name %q)", u.GetAPIVersion(), u.GetName())
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("a %s without metadata.name", u.GetKind())
		}
		out = append(out, u)
	}
	return out, nil
}

// pool is one MetalLB pool, from whichever kind, and what became of it.
type pool struct {
	ns, name string // MetalLB namespace and name
	src      string // for notes
	field    string // where in src the pool is: "" for a pool resource, "data.config: address-pools[0]" for a legacy one
	herald   string // Herald name; "" when the pool was skipped
	labels   map[string]string
	legacyL2 bool // a layer2 pool of a ConfigMap or AddressPool, announced by MetalLB without an advertisement
}

// bgpSelection is what one BGPAdvertisement announced, to find the pools that only BGP announced.
type bgpSelection struct {
	ns, src   string
	pools     []string
	selectors []labels.Selector
}

type translator struct {
	opts      Options
	res       *Result
	poolNames map[string]bool    // Herald pool names taken
	advNames  map[string]bool    // Herald advertisement names taken
	pools     []*pool            // in input order
	byName    map[string][]*pool // by MetalLB name, in input order
	seen      map[string]bool    // kind/namespace/name of the objects read, to drop repeats
	bgp       []bgpSelection
	crdPools  bool     // an IPAddressPool resource was read
	legacyCMs []string // sources of the legacy ConfigMaps read
}

func (t *translator) note(sev, src, field, format string, args ...any) {
	t.res.Notes = append(t.res.Notes, Note{Source: src, Field: field, Message: fmt.Sprintf(format, args...), Severity: sev})
}

func (t *translator) warn(src, field, format string, args ...any) {
	t.note(SeverityWarning, src, field, format, args...)
}

func (t *translator) skipped(src, field, format string, args ...any) {
	t.note(SeveritySkipped, src, field, format, args...)
}

// repeat reports, with a note, whether an object of that kind, namespace and name was read before.
func (t *translator) repeat(kind, ns, name string) bool {
	key := kind + "/" + ns + "/" + name
	if t.seen[key] {
		t.skipped(source(kind, ns, name), "", "given more than once; only the first copy is translated")
		return true
	}
	t.seen[key] = true
	return false
}

// claim takes a cluster-wide Herald name for a namespaced MetalLB object: its own name when free, else
// <namespace>-<name>, with a number appended while that is taken too.
func claim(taken map[string]bool, ns, name string) string {
	if !taken[name] {
		taken[name] = true
		return name
	}
	base := name
	if ns != "" {
		base = ns + "-" + name
	}
	cand := base
	for i := 2; taken[cand]; i++ {
		cand = fmt.Sprintf("%s-%d", base, i)
	}
	taken[cand] = true
	return cand
}

// unknownFields lists the keys of m that are not in known, sorted.
func unknownFields(m map[string]any, known ...string) []string {
	var out []string
	for k := range m {
		if !contains(known, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// metallbPoolSpec is the part of MetalLB's IPAddressPool (and deprecated AddressPool) spec Herald reads.
type metallbPoolSpec struct {
	Addresses         []string                  `json:"addresses"`
	AutoAssign        *bool                     `json:"autoAssign"`
	AvoidBuggyIPs     bool                      `json:"avoidBuggyIPs"`
	ServiceAllocation *metallbServiceAllocation `json:"serviceAllocation"`
	Protocol          string                    `json:"protocol"`
}

type metallbServiceAllocation struct {
	Priority           int64                  `json:"priority"`
	Namespaces         []string               `json:"namespaces"`
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors"`
	ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors"`
}

var poolSpecFields = []string{"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}

// spec returns u's spec as a map, and decodes it into out.
func spec(u *unstructured.Unstructured, out any) (map[string]any, error) {
	m, _, err := unstructured.NestedMap(u.Object, "spec")
	if err != nil {
		return nil, fmt.Errorf("spec is not an object: %w", err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, out); err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	return m, nil
}

// poolCR translates a metallb.io IPAddressPool.
func (t *translator) poolCR(u *unstructured.Unstructured) {
	ns, name := u.GetNamespace(), u.GetName()
	if t.repeat("IPAddressPool", ns, name) {
		return
	}
	src := source("IPAddressPool", ns, name)
	t.crdPools = true
	var s metallbPoolSpec
	raw, err := spec(u, &s)
	if err != nil {
		t.addPool(&pool{ns: ns, name: name, src: src})
		t.skipped(src, "spec", "%v", err)
		return
	}
	for _, f := range unknownFields(raw, poolSpecFields...) {
		t.warn(src, "spec."+f, "not translated: Herald's IPAddressPool has no such field")
	}
	t.translatePool(&pool{ns: ns, name: name, src: src, labels: u.GetLabels()}, s, "spec.", raw)
}

// addressPoolCR translates MetalLB's deprecated AddressPool (removed in MetalLB 0.14), which carried its
// protocol: layer2 pools become a pool announced by LegacyAdvertisement, bgp pools are skipped.
func (t *translator) addressPoolCR(u *unstructured.Unstructured) {
	ns, name := u.GetNamespace(), u.GetName()
	if t.repeat("AddressPool", ns, name) {
		return
	}
	src := source("AddressPool", ns, name)
	p := &pool{ns: ns, name: name, src: src, labels: u.GetLabels()}
	var s metallbPoolSpec
	raw, err := spec(u, &s)
	if err != nil {
		t.addPool(p)
		t.skipped(src, "spec", "%v", err)
		return
	}
	if !t.protocolLayer2(p, s.Protocol, "spec.protocol") {
		return
	}
	for _, f := range unknownFields(raw, append(poolSpecFields, "protocol")...) {
		t.warn(src, "spec."+f, "not translated: Herald's IPAddressPool has no such field")
	}
	p.legacyL2 = true
	t.translatePool(p, s, "spec.", raw)
}

// protocolLayer2 reports whether a legacy pool's protocol is layer2; otherwise it records the pool as skipped.
func (t *translator) protocolLayer2(p *pool, protocol, field string) bool {
	switch protocol {
	case "layer2":
		return true
	case "bgp":
		t.addPool(p)
		t.skipped(p.src, field, "a bgp pool: Herald announces on Layer 2 only")
	default:
		t.addPool(p)
		t.skipped(p.src, field, "protocol %q is neither layer2 nor bgp", protocol)
	}
	return false
}

// addPool records p under its MetalLB name; p.herald stays empty when the pool is skipped.
func (t *translator) addPool(p *pool) {
	t.pools = append(t.pools, p)
	t.byName[p.name] = append(t.byName[p.name], p)
}

// translatePool checks and maps a pool's spec, and adds the Herald pool unless no address survives.
// prefix is the field path of the spec in the source ("spec." or "address-pools[0].").
func (t *translator) translatePool(p *pool, s metallbPoolSpec, prefix string, raw map[string]any) {
	t.addPool(p)
	var hs heraldv1.IPAddressPoolSpec
	for i, a := range s.Addresses {
		a = strings.TrimSpace(a)
		if _, err := ipam.ParseRange(a); err != nil {
			t.skipped(p.src, fmt.Sprintf("%saddresses[%d]", prefix, i), "%v; Herald refuses it, so it is left out", err)
			continue
		}
		hs.Addresses = append(hs.Addresses, heraldv1.AddressRange(a))
	}
	switch {
	case len(hs.Addresses) == 0:
		t.skipped(p.src, prefix+"addresses", "no valid address is left: the pool is not translated")
		return
	case len(hs.Addresses) > maxAddresses:
		t.skipped(p.src, prefix+"addresses", "%d entries, more than the %d Herald allows: merge ranges and run again",
			len(hs.Addresses), maxAddresses)
		return
	}
	hs.AutoAssign = s.AutoAssign
	hs.AvoidBuggyIPs = s.AvoidBuggyIPs
	if sa := s.ServiceAllocation; sa != nil {
		field := prefix + "serviceAllocation"
		if m, ok := raw["serviceAllocation"].(map[string]any); ok {
			for _, f := range unknownFields(m, "priority", "namespaces", "namespaceSelectors", "serviceSelectors") {
				t.warn(p.src, field+"."+f, "not translated: Herald's serviceAllocation has no such field")
			}
		}
		var ha heraldv1.ServiceAllocation
		switch {
		case sa.Priority < 0:
			t.warn(p.src, field+".priority", "negative priority %d is not allowed by Herald: dropped, so the pool comes after pools with a priority", sa.Priority)
		case sa.Priority > 1<<31-1:
			t.warn(p.src, field+".priority", "priority %d is too large for Herald: dropped", sa.Priority)
		default:
			ha.Priority = int32(sa.Priority)
		}
		ha.Namespaces = sa.Namespaces
		var err error
		if ha.NamespaceSelectors, err = selectors(sa.NamespaceSelectors); err != nil {
			t.skipped(p.src, field+".namespaceSelectors", "%v: the pool is not translated", err)
			return
		}
		if ha.ServiceSelectors, err = selectors(sa.ServiceSelectors); err != nil {
			t.skipped(p.src, field+".serviceSelectors", "%v: the pool is not translated", err)
			return
		}
		hs.ServiceAllocation = &ha
	}
	p.herald = claim(t.poolNames, p.ns, p.name)
	if p.herald != p.name {
		nameField := "metadata.name"
		if p.field != "" {
			nameField = p.field + ".name"
		}
		t.warn(p.src, nameField, "pool %q exists in another namespace and Herald's pools are cluster-scoped: renamed %q; advertisements of its namespace follow, Services naming %q get the first pool of that name",
			p.name, p.herald, p.name)
	}
	hp := heraldv1.IPAddressPool{
		TypeMeta:   heraldTypeMeta("IPAddressPool"),
		ObjectMeta: objectMeta(p.herald, p.labels, strings.TrimSpace(p.src+" "+p.field)),
		Spec:       hs,
	}
	t.res.Pools = append(t.res.Pools, hp)
}

func heraldTypeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: heraldv1.GroupVersion.String(), Kind: kind}
}

func objectMeta(name string, lbls map[string]string, src string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Labels:      lbls,
		Annotations: map[string]string{AnnotationMigratedFrom: src},
	}
}

// selectors converts MetalLB's label selectors into Herald's, refusing those Kubernetes would not accept.
func selectors(in []metav1.LabelSelector) ([]heraldv1.Selector, error) {
	var out []heraldv1.Selector
	for i := range in {
		ls := &in[i]
		if _, err := metav1.LabelSelectorAsSelector(ls); err != nil {
			return nil, fmt.Errorf("selector %d is invalid: %w", i, err)
		}
		var s heraldv1.Selector
		if len(ls.MatchLabels) > 0 {
			s.MatchLabels = make(map[string]heraldv1.LabelValue, len(ls.MatchLabels))
			for k, v := range ls.MatchLabels {
				s.MatchLabels[k] = heraldv1.LabelValue(v)
			}
		}
		for _, r := range ls.MatchExpressions {
			s.MatchExpressions = append(s.MatchExpressions, heraldv1.SelectorRequirement{
				Key: r.Key, Operator: r.Operator, Values: r.Values,
			})
		}
		out = append(out, s)
	}
	return out, nil
}

// labelSelectors parses MetalLB's selectors for matching.
func labelSelectors(in []metav1.LabelSelector) ([]labels.Selector, error) {
	var out []labels.Selector
	for i := range in {
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// resolve finds the pool an advertisement of namespace ns means by name: MetalLB reads pools from its own
// namespace only.
func (t *translator) resolve(ns, name string) *pool {
	for _, p := range t.byName[name] {
		if p.ns == ns {
			return p
		}
	}
	return nil
}

type metallbL2Spec struct {
	IPAddressPools         []string               `json:"ipAddressPools"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
	ServiceSelectors       []metav1.LabelSelector `json:"serviceSelectors"`
	PreferredNodeSelectors []metallbPreference    `json:"preferredNodeSelectors"`
	Interfaces             []string               `json:"interfaces"`
}

// metallbPreference is one of MetalLB's preferredNodeSelectors.
type metallbPreference struct {
	Weight     int32                `json:"weight"`
	Preference metav1.LabelSelector `json:"preference"`
}

// l2Advertisement translates a metallb.io L2Advertisement, renaming the pools it names as they were renamed.
func (t *translator) l2Advertisement(u *unstructured.Unstructured) {
	ns, name := u.GetNamespace(), u.GetName()
	if t.repeat("L2Advertisement", ns, name) {
		return
	}
	src := source("L2Advertisement", ns, name)
	var s metallbL2Spec
	raw, err := spec(u, &s)
	if err != nil {
		t.skipped(src, "spec", "%v", err)
		return
	}
	for _, f := range unknownFields(raw, "ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "serviceSelectors", "preferredNodeSelectors", "interfaces") {
		t.warn(src, "spec."+f, "not translated: Herald's L2Advertisement has no such field")
	}
	var hs heraldv1.L2AdvertisementSpec
	for i, pn := range s.IPAddressPools {
		field := fmt.Sprintf("spec.ipAddressPools[%d]", i)
		p := t.resolve(ns, pn)
		switch {
		case p == nil:
			t.warn(src, field, "pool %q is not among the input: kept as is; Herald reports PoolNotFound until a pool of that name exists", pn)
			hs.IPAddressPools = append(hs.IPAddressPools, pn)
		case p.herald == "":
			t.warn(src, field, "pool %q was not translated, so it is left out", pn)
		default:
			if !contains(hs.IPAddressPools, p.herald) {
				hs.IPAddressPools = append(hs.IPAddressPools, p.herald)
			}
		}
	}
	if hs.IPAddressPoolSelectors, err = selectors(s.IPAddressPoolSelectors); err != nil {
		t.skipped(src, "spec.ipAddressPoolSelectors", "%v: the advertisement is not translated", err)
		return
	}
	if len(s.IPAddressPools) > 0 && len(hs.IPAddressPools) == 0 && len(hs.IPAddressPoolSelectors) == 0 {
		t.skipped(src, "spec.ipAddressPools", "none of its pools was translated; without pools it would announce every pool, so it is not translated")
		return
	}
	if len(hs.IPAddressPoolSelectors) > 0 && len(t.namespaces()) > 1 {
		t.warn(src, "spec.ipAddressPoolSelectors", "MetalLB matched pools of namespace %q only; Herald matches the labels of every pool, and the input has pools in %s",
			ns, quoteList(t.namespaces()))
	}
	if len(s.IPAddressPools) == 0 && len(s.IPAddressPoolSelectors) == 0 && len(t.namespaces()) > 1 {
		t.warn(src, "spec", "names no pool: MetalLB announced every pool of namespace %q, Herald announces every pool, and the input has pools in %s",
			ns, quoteList(t.namespaces()))
	}
	if hs.NodeSelectors, err = selectors(s.NodeSelectors); err != nil {
		t.skipped(src, "spec.nodeSelectors", "%v: the advertisement is not translated", err)
		return
	}
	if hs.ServiceSelectors, err = selectors(s.ServiceSelectors); err != nil {
		t.skipped(src, "spec.serviceSelectors", "%v: the advertisement is not translated", err)
		return
	}
	if hs.PreferredNodeSelectors, err = t.preferences(src, s.PreferredNodeSelectors); err != nil {
		t.skipped(src, "spec.preferredNodeSelectors", "%v: the advertisement is not translated", err)
		return
	}
	for i, ifn := range s.Interfaces {
		if !interfaceName.MatchString(ifn) || ifn == "." || ifn == ".." {
			t.warn(src, fmt.Sprintf("spec.interfaces[%d]", i), "%q is not a Linux interface name: left out", ifn)
			continue
		}
		if !contains(hs.Interfaces, ifn) {
			hs.Interfaces = append(hs.Interfaces, ifn)
		}
	}
	if len(s.Interfaces) > 0 && len(hs.Interfaces) == 0 {
		t.skipped(src, "spec.interfaces", "no valid interface is left; without interfaces it would announce on every suitable one, so it is not translated")
		return
	}
	hname := claim(t.advNames, ns, name)
	if hname != name {
		t.warn(src, "metadata.name", "advertisement %q exists in another namespace and Herald's advertisements are cluster-scoped: renamed %q", name, hname)
	}
	t.res.Advertisements = append(t.res.Advertisements, heraldv1.L2Advertisement{
		TypeMeta:   heraldTypeMeta("L2Advertisement"),
		ObjectMeta: objectMeta(hname, u.GetLabels(), src),
		Spec:       hs,
	})
}

// maxPreferences is the most preferredNodeSelectors Herald's schema takes.
const maxPreferences = 8

// preferences translates MetalLB's preferredNodeSelectors. A weight outside 1-100 (MetalLB's schema refuses it
// too) leaves that preference out with a note: preferences are soft, so the nodes that may announce stay the
// same. A preference whose selector is invalid, or more of them than Herald takes, is an error.
func (t *translator) preferences(src string, in []metallbPreference) ([]heraldv1.PreferredNodeSelector, error) {
	if len(in) > maxPreferences {
		return nil, fmt.Errorf("%d preferences, Herald takes at most %d (merge those of equal weight into one selector with matchExpressions, or spread them over several advertisements of the pool, whose weights add up)", len(in), maxPreferences)
	}
	var out []heraldv1.PreferredNodeSelector
	for i := range in {
		if w := in[i].Weight; w < 1 || w > 100 {
			t.warn(src, fmt.Sprintf("spec.preferredNodeSelectors[%d].weight", i), "weight %d is outside 1-100: this preference is left out", w)
			continue
		}
		if _, err := metav1.LabelSelectorAsSelector(&in[i].Preference); err != nil {
			return nil, fmt.Errorf("preference %d is invalid: %w", i, err)
		}
		sel, err := selectors([]metav1.LabelSelector{in[i].Preference})
		if err != nil {
			return nil, err
		}
		out = append(out, heraldv1.PreferredNodeSelector{Weight: in[i].Weight, Preference: sel[0]})
	}
	return out, nil
}

// namespaces lists the namespaces of the input's pools, sorted.
func (t *translator) namespaces() []string {
	set := map[string]bool{}
	for _, p := range t.pools {
		set[p.ns] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// bgpAdvertisement records what a BGPAdvertisement announced, and notes it as skipped.
func (t *translator) bgpAdvertisement(u *unstructured.Unstructured) {
	ns, name := u.GetNamespace(), u.GetName()
	if t.repeat("BGPAdvertisement", ns, name) {
		return
	}
	src := source("BGPAdvertisement", ns, name)
	t.skipped(src, "", "Herald announces on Layer 2 only")
	var s struct {
		IPAddressPools         []string               `json:"ipAddressPools"`
		IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	}
	if _, err := spec(u, &s); err != nil {
		return
	}
	sel, err := labelSelectors(s.IPAddressPoolSelectors)
	if err != nil {
		return
	}
	t.bgp = append(t.bgp, bgpSelection{ns: ns, src: src, pools: s.IPAddressPools, selectors: sel})
}

// staleConfigMaps warns about legacy ConfigMaps read beside IPAddressPool resources: MetalLB 0.13 and later
// ignore the ConfigMap, which is often left behind by an upgrade, yet its pools are translated too.
func (t *translator) staleConfigMaps() {
	if !t.crdPools {
		return
	}
	for _, src := range t.legacyCMs {
		t.warn(src, "data.config", "MetalLB 0.13 and later ignore this ConfigMap when IPAddressPool resources are in use, but its pools were translated too: leave it out of the input if it is a leftover")
	}
}

// legacyAdvertisement adds one L2Advertisement for the layer2 pools of legacy configuration.
func (t *translator) legacyAdvertisement() {
	var names []string
	for _, p := range t.pools {
		if p.legacyL2 && p.herald != "" {
			names = append(names, p.herald)
		}
	}
	if len(names) == 0 {
		return
	}
	hname := claim(t.advNames, "", LegacyAdvertisement)
	src := "legacy layer2 pools"
	t.note(SeverityInfo, source("L2Advertisement", "", hname), "", "made for the layer2 pools of MetalLB's legacy configuration (%s), which MetalLB announced without an advertisement",
		strings.Join(names, ", "))
	t.res.Advertisements = append(t.res.Advertisements, heraldv1.L2Advertisement{
		TypeMeta:   heraldTypeMeta("L2Advertisement"),
		ObjectMeta: objectMeta(hname, nil, src),
		Spec:       heraldv1.L2AdvertisementSpec{IPAddressPools: names},
	})
}

// coverage notes the translated pools no Herald L2Advertisement selects: Herald hands out their addresses but
// announces none of them.
func (t *translator) coverage() {
	for _, p := range t.pools {
		if p.herald == "" || t.announced(p) {
			continue
		}
		if b := t.bgpFor(p); b != "" {
			t.warn(p.src, p.field, "MetalLB announced it by BGP only (%s): Herald will not announce it until an L2Advertisement selects it",
				b)
			continue
		}
		t.note(SeverityInfo, p.src, p.field, "no L2Advertisement selects it: Herald hands out its addresses but announces none, as MetalLB did")
	}
}

// announced reports whether a Herald advertisement of the result selects pool p.
func (t *translator) announced(p *pool) bool {
	hp := &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: p.herald, Labels: p.labels}}
	for i := range t.res.Advertisements {
		if t.res.Advertisements[i].Spec.SelectsPool(hp) {
			return true
		}
	}
	return false
}

// bgpFor names the BGPAdvertisement that announced p in MetalLB, "" if none did.
func (t *translator) bgpFor(p *pool) string {
	for _, b := range t.bgp {
		if b.ns != p.ns {
			continue
		}
		if len(b.pools) == 0 && len(b.selectors) == 0 || contains(b.pools, p.name) {
			return b.src
		}
		for _, s := range b.selectors {
			if s.Matches(labels.Set(p.labels)) {
				return b.src
			}
		}
	}
	return ""
}
