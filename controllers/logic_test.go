package controllers

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
	"github.com/heraldlb/herald/internal/service"
)

// The tests in this file exercise pure functions only: they never need the control plane and run under -short.

// ltAddrCmp lets cmp compare netip.Addr, whose fields are unexported.
var ltAddrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// ltIgnoreLTT compares conditions without their transition times.
var ltIgnoreLTT = cmpopts.IgnoreFields(metav1.Condition{}, "LastTransitionTime")

// ltT0 is the creation time of the oldest pools; ltAt(n) is n minutes later.
var ltT0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ltAt(minutes int) metav1.Time {
	return metav1.NewTime(ltT0.Add(time.Duration(minutes) * time.Minute))
}

func ltAddrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// ltService is Service shop/web of type LoadBalancer, single-stack IPv4, with a TCP and a UDP port.
func ltService(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			Selector:   map[string]string{"app": "web"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func ltAnnotate(kv ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func ltFamilies(policy *corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = policy
		s.Spec.IPFamilies = fams
	}
}

var (
	ltSingle  = ptr.To(corev1.IPFamilyPolicySingleStack)
	ltPrefer  = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
	ltRequire = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	ltV4      = corev1.IPv4Protocol
	ltV6      = corev1.IPv6Protocol
	ltPorts   = []ipam.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}}
)

func TestRequestFor(t *testing.T) {
	req := func(mutate func(*serviceRequest)) serviceRequest {
		sr := serviceRequest{Request: ipam.Request{Key: "shop/web", Families: []ipam.Family{ipam.IPv4}, Ports: ltPorts}}
		if mutate != nil {
			mutate(&sr)
		}
		return sr
	}
	tests := []struct {
		name string
		svc  *corev1.Service
		want serviceRequest
	}{
		{"single-stack IPv4 without annotations", ltService(), req(nil)},
		{"no ipFamilies defaults to IPv4", ltService(ltFamilies(ltPrefer)), req(nil)},
		{"nil policy keeps the first family only", ltService(ltFamilies(nil, ltV6, ltV4)),
			req(func(r *serviceRequest) { r.Families = []ipam.Family{ipam.IPv6} })},
		{"SingleStack keeps the first family only", ltService(ltFamilies(ltSingle, ltV6, ltV4)),
			req(func(r *serviceRequest) { r.Families = []ipam.Family{ipam.IPv6} })},
		{"PreferDualStack keeps both families in order", ltService(ltFamilies(ltPrefer, ltV6, ltV4)),
			req(func(r *serviceRequest) { r.Families = []ipam.Family{ipam.IPv6, ipam.IPv4} })},
		{"PreferDualStack with one family", ltService(ltFamilies(ltPrefer, ltV6)),
			req(func(r *serviceRequest) { r.Families = []ipam.Family{ipam.IPv6} })},
		{"RequireDualStack sets RequireAll", ltService(ltFamilies(ltRequire, ltV4, ltV6)),
			req(func(r *serviceRequest) { r.Families, r.RequireAll = []ipam.Family{ipam.IPv4, ipam.IPv6}, true })},
		{"herald addresses ordered by the Service's families",
			ltService(ltFamilies(ltPrefer, ltV6, ltV4), ltAnnotate(AnnotationLoadBalancerIPs, " 198.51.100.7 , 2001:db8::7 ")),
			req(func(r *serviceRequest) {
				r.Families = []ipam.Family{ipam.IPv6, ipam.IPv4}
				r.Addresses = ltAddrs("2001:db8::7", "198.51.100.7")
			})},
		{"RequireDualStack with both addresses",
			ltService(ltFamilies(ltRequire, ltV4, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "2001:db8::7,198.51.100.7")),
			req(func(r *serviceRequest) {
				r.Families, r.RequireAll = []ipam.Family{ipam.IPv4, ipam.IPv6}, true
				r.Addresses = ltAddrs("198.51.100.7", "2001:db8::7")
			})},
		{"one address of a dual-stack Service that prefers dual-stack",
			ltService(ltFamilies(ltPrefer, ltV4, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "2001:db8::7")),
			req(func(r *serviceRequest) {
				r.Families = []ipam.Family{ipam.IPv4, ipam.IPv6}
				r.Addresses = ltAddrs("2001:db8::7")
			})},
		{"metallb.io/loadBalancerIPs is honoured and reported",
			ltService(ltAnnotate("metallb.io/loadBalancerIPs", "198.51.100.8")),
			req(func(r *serviceRequest) {
				r.Addresses = ltAddrs("198.51.100.8")
				r.Foreign = [][2]string{{"metallb.io/loadBalancerIPs", AnnotationLoadBalancerIPs}}
			})},
		{"metallb.universe.tf/loadBalancerIPs is honoured and reported",
			ltService(ltAnnotate("metallb.universe.tf/loadBalancerIPs", "198.51.100.9")),
			req(func(r *serviceRequest) {
				r.Addresses = ltAddrs("198.51.100.9")
				r.Foreign = [][2]string{{"metallb.universe.tf/loadBalancerIPs", AnnotationLoadBalancerIPs}}
			})},
		{"herald and metallb addresses agree in another order and spelling",
			ltService(ltFamilies(ltPrefer, ltV4, ltV6), ltAnnotate(
				AnnotationLoadBalancerIPs, "198.51.100.7,2001:db8::7",
				"metallb.io/loadBalancerIPs", "2001:DB8:0::7, 198.51.100.7")),
			req(func(r *serviceRequest) {
				r.Families = []ipam.Family{ipam.IPv4, ipam.IPv6}
				r.Addresses = ltAddrs("198.51.100.7", "2001:db8::7")
				r.Foreign = [][2]string{{"metallb.io/loadBalancerIPs", AnnotationLoadBalancerIPs}}
			})},
		{"spec.loadBalancerIP", ltService(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.10" }),
			req(func(r *serviceRequest) { r.Addresses = ltAddrs("198.51.100.10") })},
		{"spec.loadBalancerIP equal to the annotation",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.10"), func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.10" }),
			req(func(r *serviceRequest) { r.Addresses = ltAddrs("198.51.100.10") })},
		{"pool and sharing key from herald annotations",
			ltService(ltAnnotate(AnnotationIPPool, " blue ", AnnotationAllowSharedIP, "k1")),
			req(func(r *serviceRequest) { r.Pool, r.SharingKey = "blue", "k1" })},
		{"pool from metallb.io, sharing key from metallb.universe.tf",
			ltService(ltAnnotate("metallb.io/address-pool", "blue", "metallb.universe.tf/allow-shared-ip", "k2")),
			req(func(r *serviceRequest) {
				r.Pool, r.SharingKey = "blue", "k2"
				r.Foreign = [][2]string{
					{"metallb.io/address-pool", AnnotationIPPool},
					{"metallb.universe.tf/allow-shared-ip", AnnotationAllowSharedIP},
				}
			})},
		{"pool from metallb.universe.tf, sharing key from metallb.io, herald pool agreeing",
			ltService(ltAnnotate(AnnotationIPPool, "green", "metallb.universe.tf/address-pool", "green", "metallb.io/allow-shared-ip", "k3")),
			req(func(r *serviceRequest) {
				r.Pool, r.SharingKey = "green", "k3"
				r.Foreign = [][2]string{
					{"metallb.universe.tf/address-pool", AnnotationIPPool},
					{"metallb.io/allow-shared-ip", AnnotationAllowSharedIP},
				}
			})},
		{"externalTrafficPolicy Cluster has no backend",
			ltService(func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster }),
			req(nil)},
		{"externalTrafficPolicy Local has a canonical selector backend",
			ltService(func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.Selector = map[string]string{"tier": "front", "app": "web", "b": "2"}
			}),
			req(func(r *serviceRequest) { r.Backend = "selector:app=web,b=2,tier=front" })},
		{"no ports",
			ltService(func(s *corev1.Service) { s.Spec.Ports = nil }),
			req(func(r *serviceRequest) { r.Ports = nil })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := requestFor(tc.svc)
			if err != nil {
				t.Fatalf("requestFor: unexpected error %v", err)
			}
			if diff := cmp.Diff(tc.want, got, ltAddrCmp); diff != "" {
				t.Errorf("requestFor (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRequestForBackend checks that equal selectors give equal backends whatever the map order, and that
// different selectors give different ones.
func TestRequestForBackend(t *testing.T) {
	local := func(sel map[string]string) *corev1.Service {
		return ltService(func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = sel
		})
	}
	build := func(keys ...string) map[string]string {
		m := map[string]string{}
		for _, k := range keys {
			m[k] = "v-" + k
		}
		return m
	}
	tests := []struct {
		name      string
		a, b      map[string]string
		wantEqual bool
	}{
		{"same selector built in different orders", build("a", "b", "c", "d", "e", "f", "g", "h"), build("h", "g", "f", "e", "d", "c", "b", "a"), true},
		{"different value", map[string]string{"app": "web"}, map[string]string{"app": "db"}, false},
		{"extra key", map[string]string{"app": "web"}, map[string]string{"app": "web", "tier": "front"}, false},
		{"key and value not confused", map[string]string{"ab": "c"}, map[string]string{"a": "bc"}, false},
		{"empty value is a value", map[string]string{"app": "web", "tier": ""}, map[string]string{"app": "web"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ra, err := requestFor(local(tc.a))
			if err != nil {
				t.Fatal(err)
			}
			// Map iteration order is random: repeat to catch an order-dependent key.
			for range 20 {
				rb, err := requestFor(local(tc.b))
				if err != nil {
					t.Fatal(err)
				}
				if ra.Backend == "" || rb.Backend == "" {
					t.Fatalf("empty backend for externalTrafficPolicy Local: %q, %q", ra.Backend, rb.Backend)
				}
				if diff := cmp.Diff(tc.wantEqual, ra.Backend == rb.Backend); diff != "" {
					t.Fatalf("backends %q and %q equal (-want +got):\n%s", ra.Backend, rb.Backend, diff)
				}
			}
		})
	}
}

func TestRequestForErrors(t *testing.T) {
	lbIP := func(ip string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip }
	}
	tests := []struct {
		name string
		svc  *corev1.Service
		want []string // parts of the message
	}{
		{"herald and metallb.io addresses disagree",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.7", "metallb.io/loadBalancerIPs", "198.51.100.8")),
			[]string{`herald.dev/load-balancer-ips="198.51.100.7"`, `metallb.io/loadBalancerIPs="198.51.100.8"`, "disagree"}},
		{"two metallb address annotations disagree",
			ltService(ltAnnotate("metallb.io/loadBalancerIPs", "198.51.100.7", "metallb.universe.tf/loadBalancerIPs", "198.51.100.8")),
			[]string{`metallb.io/loadBalancerIPs="198.51.100.7"`, `metallb.universe.tf/loadBalancerIPs="198.51.100.8"`, "disagree"}},
		{"herald and metallb pools disagree",
			ltService(ltAnnotate(AnnotationIPPool, "blue", "metallb.universe.tf/address-pool", "green")),
			[]string{`herald.dev/ip-pool="blue"`, `metallb.universe.tf/address-pool="green"`, "disagree"}},
		{"herald and metallb sharing keys disagree",
			ltService(ltAnnotate(AnnotationAllowSharedIP, "k1", "metallb.io/allow-shared-ip", "k2")),
			[]string{`herald.dev/allow-shared-ip="k1"`, `metallb.io/allow-shared-ip="k2"`, "disagree"}},
		{"spec.loadBalancerIP contradicts the annotation",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.7"), lbIP("198.51.100.8")),
			[]string{"spec.loadBalancerIP 198.51.100.8", "contradicts", `herald.dev/load-balancer-ips="198.51.100.7"`}},
		{"spec.loadBalancerIP contradicts the MetalLB annotation",
			ltService(ltAnnotate("metallb.io/loadBalancerIPs", "198.51.100.7"), lbIP("198.51.100.8")),
			[]string{"spec.loadBalancerIP 198.51.100.8", "contradicts", `metallb.io/loadBalancerIPs="198.51.100.7"`}},
		{"malformed address",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.300")),
			[]string{`requested address "198.51.100.300" is not an IP address`}},
		{"CIDR instead of an address",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.0/24")),
			[]string{`requested address "198.51.100.0/24" is not an IP address`}},
		{"IPv4-mapped IPv6 address",
			ltService(ltFamilies(ltPrefer, ltV4, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "::ffff:198.51.100.7")),
			[]string{`requested address "::ffff:198.51.100.7" is not an IP address`}},
		{"address with a zone",
			ltService(ltFamilies(ltSingle, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "fe80::1%eth0")),
			[]string{`requested address "fe80::1%eth0" is not an IP address`}},
		{"malformed spec.loadBalancerIP",
			ltService(lbIP("not-an-ip")),
			[]string{`requested address "not-an-ip" is not an IP address`}},
		{"two addresses of one family",
			ltService(ltFamilies(ltPrefer, ltV4, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.7,198.51.100.8")),
			[]string{"198.51.100.7 and 198.51.100.8 are both IPv4", "at most one address per family"}},
		{"IPv6 address for an IPv4-only Service",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, "2001:db8::7")),
			[]string{"2001:db8::7 is IPv6 but the Service's IP families are IPv4"}},
		{"IPv6 address for a single-stack Service whose second family is IPv6",
			ltService(ltFamilies(ltSingle, ltV4, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.7,2001:db8::7")),
			[]string{"2001:db8::7 is IPv6 but the Service's IP families are IPv4"}},
		{"RequireDualStack with one address",
			ltService(ltFamilies(ltRequire, ltV4, ltV6), ltAnnotate(AnnotationLoadBalancerIPs, "198.51.100.7")),
			[]string{"RequireDualStack", "only 198.51.100.7", "one address per family"}},
		{"empty address list",
			ltService(ltAnnotate(AnnotationLoadBalancerIPs, " , ")),
			[]string{`the requested address list "," is empty`}},
		{"unknown IP family",
			ltService(ltFamilies(ltSingle, "IPv5")),
			[]string{`spec.ipFamilies holds unknown family "IPv5"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := requestFor(tc.svc)
			var ie *ipam.Error
			if !errors.As(err, &ie) {
				t.Fatalf("requestFor: got error %v (%T), want an *ipam.Error", err, err)
			}
			if diff := cmp.Diff(ipam.ReasonInvalidRequest, ie.Reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
			for _, part := range tc.want {
				if !strings.Contains(ie.Message, part) {
					t.Errorf("message %q lacks %q", ie.Message, part)
				}
			}
		})
	}
}

// ltPool is a pool created at ltAt(minute).
func ltPool(name string, minute int, addrs ...string) heraldv1.IPAddressPool {
	p := heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: ltAt(minute)}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, heraldv1.AddressRange(a))
	}
	return p
}

func ltWith(p heraldv1.IPAddressPool, mutate func(*heraldv1.IPAddressPoolSpec)) heraldv1.IPAddressPool {
	mutate(&p.Spec)
	return p
}

// ltPoolView is a poolInfo with ranges as strings, for readable diffs.
type ltPoolView struct {
	Name       string
	AutoAssign bool
	AvoidBuggy bool
	Priority   int
	Ranges     []string
	Effective  []string
	Overlaps   map[string][]string
	Invalid    []string
}

func ltRangeStrings(rs []ipam.Range) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

func ltView(pools []*poolInfo) []ltPoolView {
	out := make([]ltPoolView, len(pools))
	for i, p := range pools {
		v := ltPoolView{Name: p.Name, AutoAssign: p.AutoAssign, AvoidBuggy: p.AvoidBuggy, Priority: p.Priority,
			Ranges: ltRangeStrings(p.Ranges), Effective: ltRangeStrings(p.Effective), Invalid: p.Invalid}
		for _, o := range p.Overlaps {
			if v.Overlaps == nil {
				v.Overlaps = map[string][]string{}
			}
			v.Overlaps[o.Pool] = ltRangeStrings(o.Ranges)
		}
		out[i] = v
	}
	return out
}

// ltOverlapPools are three pools, given newest first: "a-late" shares addresses with both earlier ones and
// "b-mid" lies entirely inside "z-early".
func ltOverlapPools() []heraldv1.IPAddressPool {
	return []heraldv1.IPAddressPool{
		ltPool("a-late", 2, "10.0.0.0/23", "2001:db8::/126"),
		ltPool("b-mid", 1, "10.0.0.128/25"),
		ltPool("z-early", 0, "10.0.0.0/24", "2001:db8::2"),
	}
}

func TestBuildPools(t *testing.T) {
	tests := []struct {
		name  string
		pools []heraldv1.IPAddressPool
		want  []ltPoolView
	}{
		{"empty", nil, []ltPoolView{}},
		{"ordered by creation time, then name",
			[]heraldv1.IPAddressPool{
				ltPool("c", 0, "198.51.100.0/30"), ltPool("b", 1, "198.51.100.8/30"),
				ltPool("a", 1, "198.51.100.4/30"), ltPool("d", 0, "198.51.100.12/30"),
			},
			[]ltPoolView{
				{Name: "c", AutoAssign: true, Ranges: []string{"198.51.100.0/30"}, Effective: []string{"198.51.100.0/30"}},
				{Name: "d", AutoAssign: true, Ranges: []string{"198.51.100.12/30"}, Effective: []string{"198.51.100.12/30"}},
				{Name: "a", AutoAssign: true, Ranges: []string{"198.51.100.4/30"}, Effective: []string{"198.51.100.4/30"}},
				{Name: "b", AutoAssign: true, Ranges: []string{"198.51.100.8/30"}, Effective: []string{"198.51.100.8/30"}},
			}},
		{"overlap removed from the later pool only",
			[]heraldv1.IPAddressPool{
				ltPool("a-late", 1, "198.51.100.200-198.51.101.10", "203.0.113.1"),
				ltPool("z-early", 0, "198.51.100.0/24"),
			},
			[]ltPoolView{
				{Name: "z-early", AutoAssign: true, Ranges: []string{"198.51.100.0/24"}, Effective: []string{"198.51.100.0/24"}},
				{Name: "a-late", AutoAssign: true,
					Ranges:    []string{"198.51.100.200-198.51.101.10", "203.0.113.1"},
					Effective: []string{"198.51.101.0-198.51.101.10", "203.0.113.1"},
					Overlaps:  map[string][]string{"z-early": {"198.51.100.200-198.51.100.255"}}},
			}},
		{"overlaps with several earlier pools; a pool entirely overlapped keeps nothing",
			ltOverlapPools(),
			[]ltPoolView{
				{Name: "z-early", AutoAssign: true, Ranges: []string{"10.0.0.0/24", "2001:db8::2"}, Effective: []string{"10.0.0.0/24", "2001:db8::2"}},
				{Name: "b-mid", AutoAssign: true, Ranges: []string{"10.0.0.128/25"},
					Overlaps: map[string][]string{"z-early": {"10.0.0.128/25"}}},
				{Name: "a-late", AutoAssign: true, Ranges: []string{"10.0.0.0/23", "2001:db8::/126"},
					Effective: []string{"10.0.1.0/24", "2001:db8::/127", "2001:db8::3"},
					Overlaps: map[string][]string{
						"z-early": {"10.0.0.0/24", "2001:db8::2"},
						"b-mid":   {"10.0.0.128/25"},
					}},
			}},
		{"unparsable entries are reported, the rest kept",
			[]heraldv1.IPAddressPool{ltPool("bad", 0, "2001:db8::3-2001:db8::2", "2001:db8::10", "198.51.100.1/24")},
			[]ltPoolView{{Name: "bad", AutoAssign: true, Ranges: []string{"2001:db8::10"}, Effective: []string{"2001:db8::10"},
				Invalid: []string{
					`range "2001:db8::3-2001:db8::2": start 2001:db8::3 is after end 2001:db8::2`,
					`CIDR "198.51.100.1/24" has host bits set; did you mean "198.51.100.0/24"?`,
				}}}},
		{"autoAssign, avoidBuggyIPs and priority",
			[]heraldv1.IPAddressPool{
				ltWith(ltPool("p1-default", 0, "198.51.100.1"), func(s *heraldv1.IPAddressPoolSpec) {}),
				ltWith(ltPool("p2-auto-true", 0, "198.51.100.2"), func(s *heraldv1.IPAddressPoolSpec) { s.AutoAssign = ptr.To(true) }),
				ltWith(ltPool("p3-auto-false", 0, "198.51.100.3"), func(s *heraldv1.IPAddressPoolSpec) { s.AutoAssign = ptr.To(false) }),
				ltWith(ltPool("p4-buggy", 0, "198.51.100.4"), func(s *heraldv1.IPAddressPoolSpec) { s.AvoidBuggyIPs = true }),
				ltWith(ltPool("p5-priority", 0, "198.51.100.5"), func(s *heraldv1.IPAddressPoolSpec) {
					s.ServiceAllocation = &heraldv1.ServiceAllocation{Priority: 7}
				}),
				ltWith(ltPool("p6-no-priority", 0, "198.51.100.6"), func(s *heraldv1.IPAddressPoolSpec) {
					s.ServiceAllocation = &heraldv1.ServiceAllocation{Namespaces: []string{"shop"}}
				}),
			},
			[]ltPoolView{
				{Name: "p1-default", AutoAssign: true, Ranges: []string{"198.51.100.1"}, Effective: []string{"198.51.100.1"}},
				{Name: "p2-auto-true", AutoAssign: true, Ranges: []string{"198.51.100.2"}, Effective: []string{"198.51.100.2"}},
				{Name: "p3-auto-false", AutoAssign: false, Ranges: []string{"198.51.100.3"}, Effective: []string{"198.51.100.3"}},
				{Name: "p4-buggy", AutoAssign: true, AvoidBuggy: true, Ranges: []string{"198.51.100.4"}, Effective: []string{"198.51.100.4"}},
				{Name: "p5-priority", AutoAssign: true, Priority: 7, Ranges: []string{"198.51.100.5"}, Effective: []string{"198.51.100.5"}},
				{Name: "p6-no-priority", AutoAssign: true, Priority: math.MaxInt32, Ranges: []string{"198.51.100.6"}, Effective: []string{"198.51.100.6"}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := buildPools(tc.pools)
			if diff := cmp.Diff(tc.want, ltView(got)); diff != "" {
				t.Errorf("buildPools (-want +got):\n%s", diff)
			}
			for i, p := range got {
				for j := range tc.pools {
					if tc.pools[j].Name == p.Name && p.Allocation != tc.pools[j].Spec.ServiceAllocation {
						t.Errorf("pool %d (%s): Allocation is not the pool's serviceAllocation", i, p.Name)
					}
				}
			}
		})
	}
}

func TestOverlapMessage(t *testing.T) {
	pools := buildPools(ltOverlapPools())
	byName := map[string]*poolInfo{}
	for _, p := range pools {
		byName[p.Name] = p
	}
	tests := []struct {
		name string
		pool string
		want string
	}{
		{"one earlier pool", "b-mid",
			`10.0.0.128/25 also belong to pool "z-early", created earlier. Those addresses are handed out from the earlier pool only.`},
		{"two earlier pools, oldest first", "a-late",
			`10.0.0.0/24, 2001:db8::2 also belong to pool "z-early", created earlier; ` +
				`10.0.0.128/25 also belong to pool "b-mid", created earlier. Those addresses are handed out from the earlier pool only.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, byName[tc.pool].overlapMessage()); diff != "" {
				t.Errorf("overlapMessage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPoolPriority(t *testing.T) {
	tests := []struct {
		name string
		sa   *heraldv1.ServiceAllocation
		want int
	}{
		{"no serviceAllocation", nil, 0},
		{"priority set", &heraldv1.ServiceAllocation{Priority: 3}, 3},
		{"priority 1", &heraldv1.ServiceAllocation{Priority: 1}, 1},
		{"serviceAllocation without priority", &heraldv1.ServiceAllocation{Namespaces: []string{"shop"}}, math.MaxInt32},
		{"empty serviceAllocation", &heraldv1.ServiceAllocation{}, math.MaxInt32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, poolPriority(tc.sa)); diff != "" {
				t.Errorf("poolPriority (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCandidatePools(t *testing.T) {
	sel := func(kv ...string) heraldv1.Selector {
		s := heraldv1.Selector{MatchLabels: map[string]heraldv1.LabelValue{}}
		for i := 0; i+1 < len(kv); i += 2 {
			s.MatchLabels[kv[i]] = heraldv1.LabelValue(kv[i+1])
		}
		return s
	}
	alloc := func(name string, sa heraldv1.ServiceAllocation) heraldv1.IPAddressPool {
		return ltWith(ltPool(name, 0, "198.51.100.0/24"), func(s *heraldv1.IPAddressPoolSpec) { s.ServiceAllocation = &sa })
	}
	// All created at once: buildPools orders them by name.
	all := buildPools([]heraldv1.IPAddressPool{
		ltPool("open", 0, "198.51.100.0/24"),
		ltWith(ltPool("manual", 0, "203.0.113.0/24"), func(s *heraldv1.IPAddressPoolSpec) { s.AutoAssign = ptr.To(false) }),
		alloc("team-a", heraldv1.ServiceAllocation{Namespaces: []string{"team-a", "team-b"}}),
		alloc("prod-ns", heraldv1.ServiceAllocation{NamespaceSelectors: []heraldv1.Selector{sel("env", "prod"), sel("env", "staging")}}),
		alloc("web-only", heraldv1.ServiceAllocation{ServiceSelectors: []heraldv1.Selector{sel("app", "web")}}),
		alloc("team-a-front", heraldv1.ServiceAllocation{Namespaces: []string{"team-a"}, ServiceSelectors: []heraldv1.Selector{sel("tier", "front")}}),
		alloc("ns-or-label", heraldv1.ServiceAllocation{Namespaces: []string{"team-c"}, NamespaceSelectors: []heraldv1.Selector{sel("env", "dev")}}),
	})
	only := func(names ...string) []*poolInfo {
		var out []*poolInfo
		for _, p := range all {
			for _, n := range names {
				if p.Name == n {
					out = append(out, p)
				}
			}
		}
		return out
	}
	svc := func(ns string, lbls map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s", Labels: lbls}}
	}
	tests := []struct {
		name      string
		pools     []*poolInfo
		svc       *corev1.Service
		nsLabels  labels.Set
		want      string
		requested bool
		wantNames []string
		wantErr   string // part of the message of an ipam.ReasonNoPool error
	}{
		{name: "explicit pool", pools: all, svc: svc("other", nil), want: "open", wantNames: []string{"open"}},
		{name: "explicit pool with autoAssign off", pools: all, svc: svc("other", nil), want: "manual", wantNames: []string{"manual"}},
		{name: "explicit pool missing", pools: all, svc: svc("other", nil), want: "nope", wantErr: `pool "nope" does not exist`},
		{name: "explicit pool for other namespaces", pools: all, svc: svc("other", nil), want: "team-a",
			wantErr: `pool "team-a" does not serve namespace "other"`},
		{name: "explicit pool for other Services", pools: all, svc: svc("team-a", map[string]string{"app": "db"}), want: "web-only",
			wantErr: `pool "web-only" does not serve Services with these labels`},
		{name: "explicit pool in the right namespace but wrong labels", pools: all, svc: svc("team-a", nil), want: "team-a-front",
			wantErr: `pool "team-a-front" does not serve Services with these labels`},
		{name: "explicit pool selecting namespace labels", pools: all, svc: svc("other", nil), nsLabels: labels.Set{"env": "staging"},
			want: "prod-ns", wantNames: []string{"prod-ns"}},
		{name: "any pool: autoAssign off skipped", pools: all, svc: svc("other", nil), wantNames: []string{"open"}},
		{name: "any pool: autoAssign off kept when addresses are requested", pools: all, svc: svc("other", nil), requested: true,
			wantNames: []string{"manual", "open"}},
		{name: "namespace listed", pools: all, svc: svc("team-b", nil), wantNames: []string{"open", "team-a"}},
		{name: "namespace listed and Service labels match", pools: all, svc: svc("team-a", map[string]string{"tier": "front"}),
			wantNames: []string{"open", "team-a", "team-a-front"}},
		{name: "namespace selected by labels", pools: all, svc: svc("other", nil), nsLabels: labels.Set{"env": "prod", "x": "y"},
			wantNames: []string{"open", "prod-ns"}},
		{name: "namespace labels that no selector matches", pools: all, svc: svc("other", nil), nsLabels: labels.Set{"env": "test"},
			wantNames: []string{"open"}},
		{name: "namespace list or namespace selector", pools: all, svc: svc("team-c", nil), wantNames: []string{"ns-or-label", "open"}},
		{name: "namespace selector of a pool that also lists namespaces", pools: all, svc: svc("other", nil), nsLabels: labels.Set{"env": "dev"},
			wantNames: []string{"ns-or-label", "open"}},
		{name: "Service selected by labels", pools: all, svc: svc("other", map[string]string{"app": "web"}),
			wantNames: []string{"open", "web-only"}},
		{name: "no pool serves the namespace", pools: only("team-a", "web-only"), svc: svc("other", nil),
			wantErr: "no IPAddressPool serves this Service"},
		{name: "only a pool with autoAssign off", pools: only("manual"), svc: svc("other", nil),
			wantErr: "no IPAddressPool serves this Service"},
		{name: "no pools at all", pools: nil, svc: svc("other", nil), wantErr: "no IPAddressPool serves this Service"},
		{name: "named pool among no pools", pools: nil, svc: svc("other", nil), want: "open", wantErr: `pool "open" does not exist`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := candidatePools(tc.pools, tc.svc, tc.nsLabels, tc.want, tc.requested)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("candidatePools: unexpected error %v", err)
				}
				if diff := cmp.Diff(tc.wantNames, got); diff != "" {
					t.Errorf("candidatePools (-want +got):\n%s", diff)
				}
				return
			}
			var ie *ipam.Error
			if !errors.As(err, &ie) {
				t.Fatalf("candidatePools = %v, %v; want an *ipam.Error", got, err)
			}
			if diff := cmp.Diff(ipam.ReasonNoPool, ie.Reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
			if !strings.Contains(ie.Message, tc.wantErr) {
				t.Errorf("message %q lacks %q", ie.Message, tc.wantErr)
			}
		})
	}
}

func TestRetainedAddrs(t *testing.T) {
	// "owner" was created first and owns the range "later" and "last" list too.
	pools := buildPools([]heraldv1.IPAddressPool{
		ltPool("owner", 0, "198.51.100.0/30", "2001:db8::/126"),
		ltPool("later", 1, "198.51.100.4/30", "2001:db8::/126"),
		ltPool("last", 2, "2001:db8::/125"),
	})
	owner := func(a netip.Addr) (string, bool) {
		for _, p := range pools {
			if rangesContain(p.Effective, a) {
				return p.Name, true
			}
		}
		return "", false
	}
	tests := []struct {
		name       string
		candidates []string
		held       []netip.Addr
		want       map[netip.Addr]string
	}{
		{name: "owner is a candidate", candidates: []string{"owner", "later"}, held: ltAddrs("2001:db8::", "198.51.100.0")},
		{name: "owner no longer serves: only what a candidate lists is kept, for the first candidate listing it",
			candidates: []string{"later", "last"}, held: ltAddrs("2001:db8::", "198.51.100.0"),
			want: map[netip.Addr]string{netip.MustParseAddr("2001:db8::"): "later"}},
		{name: "listed by a later candidate only", candidates: []string{"last"}, held: ltAddrs("2001:db8::1"),
			want: map[netip.Addr]string{netip.MustParseAddr("2001:db8::1"): "last"}},
		{name: "in the owner's own range only", candidates: []string{"later"}, held: ltAddrs("198.51.100.1")},
		{name: "in no pool", candidates: []string{"later"}, held: ltAddrs("203.0.113.1")},
		{name: "nothing held", candidates: []string{"later"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, retainedAddrs(pools, tc.candidates, tc.held, owner), ltAddrCmp); diff != "" {
				t.Errorf("retainedAddrs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPoolStatus(t *testing.T) {
	const gen = 4
	ready := func(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: heraldv1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}
	}
	valid := ready(metav1.ConditionTrue, heraldv1.ReasonValid, "the pool hands out addresses")
	noOverlap := metav1.Condition{Type: heraldv1.ConditionOverlapping, Status: metav1.ConditionFalse, Reason: heraldv1.ReasonNoOverlap,
		Message: "no address of this pool is also in a pool created earlier", ObservedGeneration: gen}
	overlap := func(msg string) metav1.Condition {
		return metav1.Condition{Type: heraldv1.ConditionOverlapping, Status: metav1.ConditionTrue, Reason: heraldv1.ReasonAddressesShared,
			Message: msg, ObservedGeneration: gen}
	}
	const v6Size = "18446744073709551616"

	tests := []struct {
		name    string
		pools   []heraldv1.IPAddressPool // the pool under test is the last; its generation is set to gen
		prev    heraldv1.IPAddressPoolStatus
		alloc   []ipam.Request // run against the allocator before reading stats
		nilInfo bool
		want    heraldv1.IPAddressPoolStatus
	}{
		{name: "dual-stack counts as decimal strings",
			pools: []heraldv1.IPAddressPool{ltPool("p", 0, "198.51.100.0/30", "2001:db8::/64")},
			alloc: []ipam.Request{
				{Key: "ns/a", Families: []ipam.Family{ipam.IPv4, ipam.IPv6}, RequireAll: true, Pools: []string{"p"}},
				{Key: "ns/b", Families: []ipam.Family{ipam.IPv4}, Pools: []string{"p"}},
			},
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				CapacityIPv4: "4", AssignedIPv4: "2", AvailableIPv4: "2",
				CapacityIPv6: v6Size, AssignedIPv6: "1", AvailableIPv6: "18446744073709551615",
				Conditions: []metav1.Condition{valid, noOverlap}}},
		{name: "IPv6 only: IPv4 counts empty, stale values cleared",
			pools: []heraldv1.IPAddressPool{ltPool("p", 0, "2001:db8::/64")},
			prev:  heraldv1.IPAddressPoolStatus{ObservedGeneration: 1, CapacityIPv4: "10", AssignedIPv4: "3", AvailableIPv4: "7"},
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				CapacityIPv6: v6Size, AssignedIPv6: "0", AvailableIPv6: v6Size,
				Conditions: []metav1.Condition{valid, noOverlap}}},
		{name: "avoidBuggyIPs lowers the IPv4 capacity",
			pools: []heraldv1.IPAddressPool{ltWith(ltPool("p", 0, "198.51.100.0/24"), func(s *heraldv1.IPAddressPoolSpec) { s.AvoidBuggyIPs = true })},
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				CapacityIPv4: "254", AssignedIPv4: "0", AvailableIPv4: "254",
				Conditions: []metav1.Condition{valid, noOverlap}}},
		{name: "unparsable entry: Ready False, Invalid",
			pools: []heraldv1.IPAddressPool{ltPool("p", 0, "2001:db8::3-2001:db8::2", "198.51.100.7")},
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				CapacityIPv4: "1", AssignedIPv4: "0", AvailableIPv4: "1",
				Conditions: []metav1.Condition{
					ready(metav1.ConditionFalse, heraldv1.ReasonInvalid,
						`addresses that do not parse: range "2001:db8::3-2001:db8::2": start 2001:db8::3 is after end 2001:db8::2`),
					noOverlap,
				}}},
		{name: "every address taken by an earlier pool: Ready False, NoAddresses, Overlapping True",
			pools: []heraldv1.IPAddressPool{ltPool("early", 0, "198.51.100.0/24"), ltPool("p", 1, "198.51.100.16/28")},
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				Conditions: []metav1.Condition{
					ready(metav1.ConditionFalse, heraldv1.ReasonNoAddresses, "every address of this pool belongs to a pool created earlier"),
					overlap(`198.51.100.16/28 also belong to pool "early", created earlier. Those addresses are handed out from the earlier pool only.`),
				}}},
		{name: "some addresses taken by an earlier pool: Ready True, Overlapping True",
			pools: []heraldv1.IPAddressPool{ltPool("early", 0, "198.51.100.0/31"), ltPool("p", 1, "198.51.100.0/30")},
			prev: heraldv1.IPAddressPoolStatus{Conditions: []metav1.Condition{
				{Type: heraldv1.ConditionOverlapping, Status: metav1.ConditionFalse, Reason: heraldv1.ReasonNoOverlap, Message: "old",
					ObservedGeneration: 1, LastTransitionTime: ltAt(0)},
			}},
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				CapacityIPv4: "2", AssignedIPv4: "0", AvailableIPv4: "2",
				Conditions: []metav1.Condition{
					overlap(`198.51.100.0/31 also belong to pool "early", created earlier. Those addresses are handed out from the earlier pool only.`),
					valid,
				}}},
		{name: "pool not read yet: Ready Unknown",
			pools:   []heraldv1.IPAddressPool{ltPool("p", 0, "198.51.100.0/30")},
			nilInfo: true,
			want: heraldv1.IPAddressPoolStatus{ObservedGeneration: gen,
				CapacityIPv4: "4", AssignedIPv4: "0", AvailableIPv4: "4",
				Conditions: []metav1.Condition{
					ready(metav1.ConditionUnknown, "Pending", "the controller has not read this pool yet"),
					noOverlap,
				}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := tc.pools[len(tc.pools)-1]
			pool.Generation = gen
			pool.Status = *tc.prev.DeepCopy()
			infos := buildPools(tc.pools)
			a := ipam.New()
			a.SetPools(ipamPools(infos))
			for _, r := range tc.alloc {
				if _, err := a.Allocate(r); err != nil {
					t.Fatalf("allocating for %s: %v", r.Key, err)
				}
			}
			var info *poolInfo
			for _, p := range infos {
				if p.Name == pool.Name && !tc.nilInfo {
					info = p
				}
			}
			got := poolStatus(&pool, info, a.Stats(pool.Name))
			if diff := cmp.Diff(tc.want, got, ltIgnoreLTT); diff != "" {
				t.Errorf("poolStatus (-want +got):\n%s", diff)
			}
			for _, c := range got.Conditions {
				if c.LastTransitionTime.IsZero() {
					t.Errorf("condition %s has no lastTransitionTime", c.Type)
				}
			}
			if diff := cmp.Diff(tc.prev, pool.Status); diff != "" {
				t.Errorf("poolStatus modified the pool's status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestL2AdvertisementReady(t *testing.T) {
	const gen = 6
	exist := map[string]bool{"alpha": true, "beta": true}
	adv := func(pools ...string) *heraldv1.L2Advertisement {
		a := &heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "adv", Generation: gen}}
		a.Spec.IPAddressPools = pools
		return a
	}
	cond := func(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: heraldv1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}
	}
	tests := []struct {
		name  string
		adv   *heraldv1.L2Advertisement
		pools map[string]bool
		want  metav1.Condition
	}{
		{"every named pool exists", adv("beta", "alpha"), exist,
			cond(metav1.ConditionTrue, heraldv1.ReasonValid, "every named pool exists")},
		{"missing pools named in sorted order", adv("zeta", "alpha", "gamma"), exist,
			cond(metav1.ConditionFalse, heraldv1.ReasonPoolNotFound,
				"no IPAddressPool named gamma, zeta; their addresses are not announced by this advertisement")},
		{"one missing pool among no pools", adv("alpha"), map[string]bool{},
			cond(metav1.ConditionFalse, heraldv1.ReasonPoolNotFound,
				"no IPAddressPool named alpha; their addresses are not announced by this advertisement")},
		{"no pools listed announces every pool", adv(), exist,
			cond(metav1.ConditionTrue, heraldv1.ReasonValid, "announces every pool")},
		{"no pools listed and none exist", adv(), nil,
			cond(metav1.ConditionTrue, heraldv1.ReasonValid, "announces every pool")},
		{"a preference that does not convert", func() *heraldv1.L2Advertisement {
			a := adv("alpha")
			a.Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{{Weight: 10}, {Weight: 20, Preference: heraldv1.Selector{
				MatchExpressions: []heraldv1.SelectorRequirement{{Key: "zone", Operator: "In"}}}}}
			return a
		}(), exist, cond(metav1.ConditionFalse, heraldv1.ReasonInvalid,
			"invalid selectors: preferredNodeSelectors[1].preference: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := l2AdvertisementReady(tc.adv, tc.pools)
			if diff := cmp.Diff(tc.want, got, ltIgnoreLTT); diff != "" {
				t.Errorf("l2AdvertisementReady (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsOurs(t *testing.T) {
	const class = "herald.dev/l2"
	now := metav1.Now()
	tests := []struct {
		name string
		svc  *corev1.Service
		want bool
	}{
		{"LoadBalancer without class", ltService(), true},
		{"LoadBalancer with our class", ltService(func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }), true},
		{"LoadBalancer with another class", ltService(func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("other.io/lb") }), false},
		{"LoadBalancer with empty class", ltService(func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("") }), false},
		{"ClusterIP", ltService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }), false},
		{"NodePort", ltService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }), false},
		{"being deleted", ltService(func(s *corev1.Service) { s.DeletionTimestamp = &now }), false},
		{"ours but being deleted", ltService(func(s *corev1.Service) {
			s.Spec.LoadBalancerClass = ptr.To(class)
			s.DeletionTimestamp = &now
		}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, service.Served(tc.svc, class)); diff != "" {
				t.Errorf("isOurs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIngressAddrs(t *testing.T) {
	ingress := func(entries ...corev1.LoadBalancerIngress) *corev1.Service {
		return ltService(func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = entries })
	}
	tests := []struct {
		name string
		svc  *corev1.Service
		want []netip.Addr
	}{
		{"no status", ltService(), nil},
		{"dual-stack in status order", ingress(corev1.LoadBalancerIngress{IP: "2001:db8::7"}, corev1.LoadBalancerIngress{IP: "198.51.100.7"}),
			ltAddrs("2001:db8::7", "198.51.100.7")},
		{"hostname-only and malformed entries skipped", ingress(
			corev1.LoadBalancerIngress{Hostname: "lb.example.com"},
			corev1.LoadBalancerIngress{IP: "198.51.100.300"},
			corev1.LoadBalancerIngress{IP: "198.51.100.8", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)},
		), ltAddrs("198.51.100.8")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, service.Addresses(tc.svc), ltAddrCmp); diff != "" {
				t.Errorf("ingressAddrs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPoolsFingerprint(t *testing.T) {
	pool := func(name, uid string, gen int64) heraldv1.IPAddressPool {
		return heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid), Generation: gen}}
	}
	base := []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("b", "uid-b", 2), pool("c", "uid-c", 1)}
	tests := []struct {
		name     string
		pools    []heraldv1.IPAddressPool
		wantSame bool
	}{
		{"same list", []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("b", "uid-b", 2), pool("c", "uid-c", 1)}, true},
		{"other order", []heraldv1.IPAddressPool{pool("c", "uid-c", 1), pool("a", "uid-a", 1), pool("b", "uid-b", 2)}, true},
		{"status-only change keeps the generation", func() []heraldv1.IPAddressPool {
			l := []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("b", "uid-b", 2), pool("c", "uid-c", 1)}
			l[1].Status.AssignedIPv4 = "3"
			return l
		}(), true},
		{"generation changed", []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("b", "uid-b", 3), pool("c", "uid-c", 1)}, false},
		{"pool added", []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("b", "uid-b", 2), pool("c", "uid-c", 1), pool("d", "uid-d", 1)}, false},
		{"pool removed", []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("c", "uid-c", 1)}, false},
		{"pool recreated under the same name", []heraldv1.IPAddressPool{pool("a", "uid-a", 1), pool("b", "uid-b2", 2), pool("c", "uid-c", 1)}, false},
		{"no pools", nil, false},
	}
	want := poolsFingerprint(base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := poolsFingerprint(tc.pools)
			if diff := cmp.Diff(tc.wantSame, got == want); diff != "" {
				t.Errorf("fingerprint %q vs base %q: same (-want +got):\n%s", got, want, diff)
			}
		})
	}
}

func TestCountsDue(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cond := func(reason string) []metav1.Condition {
		return []metav1.Condition{{Type: heraldv1.ConditionReady, Status: metav1.ConditionTrue, Reason: reason}}
	}
	st := func(assigned, available string, c []metav1.Condition) heraldv1.IPAddressPoolStatus {
		return heraldv1.IPAddressPoolStatus{ObservedGeneration: 1, CapacityIPv4: "8", AssignedIPv4: assigned, AvailableIPv4: available,
			Conditions: c}
	}
	tests := []struct {
		name      string
		old, cur  heraldv1.IPAddressPoolStatus
		last, now time.Time
		write     bool
		after     time.Duration
	}{
		{name: "first write", old: st("", "", nil), cur: st("1", "7", cond("Valid")), now: t0, write: true},
		{name: "counts only, written 1 s ago: wait 4 s", old: st("1", "7", cond("Valid")), cur: st("2", "6", cond("Valid")),
			last: t0, now: t0.Add(time.Second), after: 4 * time.Second},
		{name: "counts only, written 5 s ago", old: st("1", "7", cond("Valid")), cur: st("2", "6", cond("Valid")),
			last: t0, now: t0.Add(5 * time.Second), write: true},
		{name: "a condition changed: at once", old: st("1", "7", cond("Valid")), cur: st("1", "7", cond("Invalid")),
			last: t0, now: t0.Add(time.Millisecond), write: true},
		{name: "the capacity changed: at once", old: st("1", "7", cond("Valid")),
			cur:  heraldv1.IPAddressPoolStatus{ObservedGeneration: 1, CapacityIPv4: "16", AssignedIPv4: "1", AvailableIPv4: "15", Conditions: cond("Valid")},
			last: t0, now: t0.Add(time.Millisecond), write: true},
		{name: "a new generation: at once", old: st("1", "7", cond("Valid")),
			cur:  heraldv1.IPAddressPoolStatus{ObservedGeneration: 2, CapacityIPv4: "8", AssignedIPv4: "1", AvailableIPv4: "7", Conditions: cond("Valid")},
			last: t0, now: t0.Add(time.Millisecond), write: true},
		{name: "exhausted: at once", old: st("7", "1", cond("Valid")), cur: st("8", "0", cond("Valid")),
			last: t0, now: t0.Add(time.Millisecond), write: true},
		{name: "no longer exhausted: at once", old: st("8", "0", cond("Valid")), cur: st("7", "1", cond("Valid")),
			last: t0, now: t0.Add(time.Millisecond), write: true},
		{name: "IPv6 counts only: wait", old: heraldv1.IPAddressPoolStatus{CapacityIPv6: "16", AssignedIPv6: "1", AvailableIPv6: "15"},
			cur:  heraldv1.IPAddressPoolStatus{CapacityIPv6: "16", AssignedIPv6: "2", AvailableIPv6: "14"},
			last: t0, now: t0.Add(2 * time.Second), after: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write, after := countsDue(tt.old, tt.cur, tt.last, tt.now)
			if write != tt.write || after != tt.after {
				t.Errorf("countsDue = %v, %v; want %v, %v", write, after, tt.write, tt.after)
			}
		})
	}
}
