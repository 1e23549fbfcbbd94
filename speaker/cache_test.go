package speaker

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// TestTrimForCache: what the speaker reads survives the trim; the rest is gone.
func TestTrimForCache(t *testing.T) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "u1", Labels: map[string]string{"app": "web"},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: "{...}", "other": "x"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	svc := &corev1.Service{ObjectMeta: meta(), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
		LoadBalancerClass: ptr.To("herald.dev/l2"), ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "web"}, ClusterIP: "198.19.0.10"},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.10"}}}}}
	wantSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("herald.dev/l2"),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
		Status: svc.Status}
	ready := true
	eps := &discoveryv1.EndpointSlice{ObjectMeta: meta(), Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.1.1"}, NodeName: ptr.To("node1"), Zone: ptr.To("z"),
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}, TargetRef: &corev1.ObjectReference{Name: "pod"}}}}
	wantEps := &discoveryv1.EndpointSlice{ObjectMeta: wantSvc.ObjectMeta,
		Endpoints: []discoveryv1.Endpoint{{NodeName: ptr.To("node1"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}}
	node := &corev1.Node{ObjectMeta: meta(), Spec: corev1.NodeSpec{PodCIDR: "198.18.0.0/24"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "203.0.113.1"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Images:     []corev1.ContainerImage{{Names: []string{"registry.example/big:1"}, SizeBytes: 1 << 30}},
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}
	wantNode := &corev1.Node{ObjectMeta: wantSvc.ObjectMeta, Status: corev1.NodeStatus{Addresses: node.Status.Addresses,
		Conditions: node.Status.Conditions}}
	an := &heraldv1.Announcement{ObjectMeta: meta(), Status: heraldv1.AnnouncementStatus{Node: "node1"}}
	wantAn := an.DeepCopy()
	wantAn.ManagedFields = nil
	wantAn.Annotations = map[string]string{"other": "x"}
	pinned := svc.DeepCopy()
	pinned.Annotations[AnnotationNode] = "node2"
	wantPinned := wantSvc.DeepCopy()
	wantPinned.Annotations = map[string]string{AnnotationNode: "node2"}
	for _, tt := range []struct{ in, want any }{{svc, wantSvc}, {pinned, wantPinned}, {eps, wantEps}, {node, wantNode}, {an, wantAn}} {
		got, err := trimForCache(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%T (-want +got):\n%s", tt.in, diff)
		}
	}
	if _, err := trimForCache(&corev1.Secret{}); err != nil {
		t.Errorf("a Secret: %v", err)
	}
}

// TestCachedList: from a store, the cached objects themselves (no copy); without one, the client's List.
func TestCachedList(t *testing.T) {
	svc := func(name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	}
	store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	a, b := svc("a"), svc("b")
	for _, s := range []*corev1.Service{a, b} {
		if err := store.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	items := func(l *corev1.ServiceList) []corev1.Service { return l.Items }
	got, err := cachedList[corev1.Service](context.Background(), nil, store, &corev1.ServiceList{}, items)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.ContainsFunc(got, func(s *corev1.Service) bool { return s == a }) ||
		!slices.ContainsFunc(got, func(s *corev1.Service) bool { return s == b }) {
		t.Errorf("from the store: %v, want the stored objects themselves", got)
	}
	c := fake.NewClientBuilder().WithObjects(svc("c")).Build()
	got, err = cachedList[corev1.Service](context.Background(), c, nil, &corev1.ServiceList{}, items)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "c" {
		t.Errorf("through the client: %v, want c", got)
	}
}

// TestLoopDecidesFromTheStore: with informer stores, a decision reads its Services and EndpointSlices from them,
// and keeps no list of them afterwards.
func TestLoopDecidesFromTheStore(t *testing.T) {
	nodes := nodeNames(2)
	h := newLoop(t, nodes[0], nodes, nodes, nil, nil)
	svcs := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	eps := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "only-in-the-store", UID: "u1"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: vip1.String()}}}}}
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "only-in-the-store-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: "only-in-the-store"}},
		Endpoints: []discoveryv1.Endpoint{{NodeName: ptr.To(nodes[1]), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}}
	if err := svcs.Add(s); err != nil {
		t.Fatal(err)
	}
	if err := eps.Add(es); err != nil {
		t.Fatal(err)
	}
	h.a.stores = cacheStores{services: svcs, endpointSlices: eps}
	h.start()
	var found bool
	h.inLoop(func() { _, found = h.a.plan.Groups[vip1.String()] })
	if !found {
		t.Fatalf("no group for %s: the decision did not read the store", vip1)
	}
	g := h.group(vip1)
	if len(g.Services) != 1 || g.Services[0].Name.Name != "only-in-the-store" {
		t.Fatalf("group of %s: %+v, want the stored Service", vip1, g.Services)
	}
	if g.Winner != nodes[1] {
		t.Errorf("winner %q, want %s, the one node with a Local endpoint (from the stored EndpointSlice)", g.Winner, nodes[1])
	}
	h.inLoop(func() {
		if h.a.in.Services != nil || h.a.in.Endpoints != nil {
			t.Errorf("the kept inputs still list %d Services and %d EndpointSlices", len(h.a.in.Services), len(h.a.in.Endpoints))
		}
	})
}
