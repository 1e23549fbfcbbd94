package placement

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/speaker"
)

var nodes = []string{"n1", "n2", "n3"}

// lab is a cluster of three nodes, a pool and an advertisement of it, and one Service per address, each
// announced by the election's choice; svc0 is externalTrafficPolicy Local with its only endpoint on the node
// that announces it.
func lab(t *testing.T, n int, pods ...corev1.Pod) (client.Client, []netip.Addr) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "lab"}, Spec: heraldv1.IPAddressPoolSpec{Addresses: []heraldv1.AddressRange{"198.51.100.0/24"}}},
		&heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lab", Namespace: "herald-system"}, Spec: heraldv1.L2AdvertisementSpec{IPAddressPools: []string{"lab"}}},
	}
	for _, name := range nodes {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}})
	}
	var vips []netip.Addr
	for i := range n {
		v := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		vips = append(vips, v)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: fmt.Sprintf("svc%d", i)},
			Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: v.String()}}}}}
		holder := election.Order(v.String(), nodes)[0]
		if i == 0 {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			objs = append(objs, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "svc0-x",
				Labels: map[string]string{discoveryv1.LabelServiceName: "svc0"}}, AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.5"}, NodeName: ptr.To(holder),
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}})
		}
		objs = append(objs, svc, &heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: svc.Name},
			Status: heraldv1.AnnouncementStatus{Node: holder, Addresses: []string{v.String()}}})
	}
	for i := range pods {
		objs = append(objs, &pods[i])
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&heraldv1.Announcement{}).Build(), vips
}

// TestDrainMoves: draining a node moves each address it answers to the next node in the address's order, but
// for a Local Service whose only endpoint is there, which has nowhere to go and says why; nothing else moves.
func TestDrainMoves(t *testing.T) {
	cl, vips := lab(t, 30)
	ctx := context.Background()
	st, err := Load(ctx, cl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.LiveFrom, "no speaker Pod") || len(st.Cluster.Live) != 3 {
		t.Errorf("live members %v from %q, want the three Nodes, for lack of speaker Pods", st.Cluster.Live, st.LiveFrom)
	}
	drained := election.Order(vips[0].String(), nodes)[0] // holds svc0, the Local one
	moves, err := st.DrainMoves(drained)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, v := range vips {
		if election.Order(v.String(), nodes)[0] == drained {
			held++
		}
	}
	if len(moves) != held {
		t.Fatalf("%d moves, want one per address %s answers (%d)", len(moves), drained, held)
	}
	for _, m := range moves {
		v := m.Addrs[0]
		if m.From != drained {
			t.Errorf("%s: from %s, want %s", v, m.From, drained)
		}
		if v == vips[0] {
			if m.To != "" || !strings.Contains(m.Why, "externalTrafficPolicy Local") {
				t.Errorf("%s (Local, its endpoint on the drained node) goes to %q (%q), want nowhere, saying why", v, m.To, m.Why)
			}
			continue
		}
		if want := election.Order(v.String(), nodes)[1]; m.To != want {
			t.Errorf("%s goes to %s, want %s, next in its order", v, m.To, want)
		}
	}
	if _, err := st.DrainMoves("n9"); err == nil || !strings.Contains(err.Error(), `no Node "n9"`) {
		t.Errorf("draining a node that does not exist: %v", err)
	}

	// Drained: the label is set, and undraining brings back (by fail-back) what the election gives the node.
	if err := SetDrained(ctx, cl, drained, true); err != nil {
		t.Fatal(err)
	}
	if st, err = Load(ctx, cl, Options{}); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.Drained(drained); !d {
		t.Fatalf("%s not drained after SetDrained", drained)
	}
	// The moves happened: the Announcements name the new nodes.
	for _, m := range moves {
		if m.To == "" {
			continue
		}
		an := &heraldv1.Announcement{}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "web", Name: m.Services[0].Name}, an); err != nil {
			t.Fatal(err)
		}
		an.Status.Node = m.To
		if err := cl.Status().Update(ctx, an); err != nil {
			t.Fatal(err)
		}
	}
	if st, err = Load(ctx, cl, Options{}); err != nil {
		t.Fatal(err)
	}
	back, err := st.UndrainMoves(drained)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != held-1 {
		t.Errorf("undraining brings back %d addresses, want the %d that moved", len(back), held-1)
	}
	for _, m := range back {
		if m.To != drained || m.From == drained || !strings.Contains(m.Why, "fail-back") {
			t.Errorf("undrain: %+v", m)
		}
	}
	if err := SetDrained(ctx, cl, drained, false); err != nil {
		t.Fatal(err)
	}
	var n corev1.Node
	if err := cl.Get(ctx, client.ObjectKey{Name: drained}, &n); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Labels[DrainLabel]; ok || n.Labels["kubernetes.io/hostname"] != drained {
		t.Errorf("after undrain the labels are %v: want the drain label gone and the others kept", n.Labels)
	}
}

// TestLiveFromPods: with speaker Pods, the live members are the nodes of the Ready ones.
func TestLiveFromPods(t *testing.T) {
	pod := func(name, node string, ready corev1.ConditionStatus) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: name,
			Labels: map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker"}},
			Spec:   corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}}
	}
	cl, vips := lab(t, 5, pod("a", "n1", corev1.ConditionTrue), pod("b", "n2", corev1.ConditionFalse), pod("c", "n3", corev1.ConditionTrue))
	st, err := Load(context.Background(), cl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st.Cluster.Live) != "[n1 n3]" || !strings.Contains(st.LiveFrom, "2 Ready speaker Pods") {
		t.Errorf("live members %v from %q, want [n1 n3] from the Ready Pods", st.Cluster.Live, st.LiveFrom)
	}
	// An address n2 holds by its Announcement is not kept there: n2 is not a live member.
	for _, v := range vips {
		if election.Order(v.String(), nodes)[0] != "n2" {
			continue
		}
		moves, _ := st.DrainMoves("n2")
		if len(moves) != 0 {
			t.Errorf("draining n2, which is not live, moves %d addresses; it answers none", len(moves))
		}
		break
	}
}

// TestMoveTo: pinning a Service to an eligible node puts its address there, whoever the election prefers; a node
// that may not announce it is refused, saying why.
func TestMoveTo(t *testing.T) {
	cl, vips := lab(t, 3)
	ctx := context.Background()
	if err := SetDrained(ctx, cl, "n2", true); err != nil {
		t.Fatal(err)
	}
	st, err := Load(ctx, cl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := types.NamespacedName{Namespace: "web", Name: "svc1"}
	ord := election.Order(vips[1].String(), nodes)
	to := ord[len(ord)-1]
	if to == "n2" {
		to = ord[len(ord)-2]
	}
	m, err := st.MoveTo(svc, to)
	// n2 is drained: the address is where the election puts it among n1 and n3.
	if from := election.Order(vips[1].String(), []string{"n1", "n3"})[0]; err != nil || m.To != to || m.From != from {
		t.Errorf("move to %s: %+v, %v", to, m, err)
	}
	for _, tc := range []struct{ to, want string }{
		{"n2", "it is drained"},
		{"n9", "there is no such Node"},
	} {
		if _, err := st.MoveTo(svc, tc.to); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("move to %s: %v, want a refusal saying %q", tc.to, err, tc.want)
		}
	}
	// svc0 is Local, its only endpoint on the node its election prefers: anywhere else is refused.
	other := election.Order(vips[0].String(), nodes)[1]
	if other == "n2" {
		other = election.Order(vips[0].String(), nodes)[2]
	}
	if _, err := st.MoveTo(types.NamespacedName{Namespace: "web", Name: "svc0"}, other); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Errorf("moving a Local Service away from its endpoint: %v", err)
	}
	if _, err := st.MoveTo(types.NamespacedName{Namespace: "web", Name: "nope"}, "n1"); err == nil || !strings.Contains(err.Error(), "no Service web/nope") {
		t.Errorf("moving a Service that does not exist: %v", err)
	}
	if err := SetPin(ctx, cl, svc, to); err != nil {
		t.Fatal(err)
	}
	var got corev1.Service
	if err := cl.Get(ctx, svc, &got); err != nil || got.Annotations[speaker.AnnotationNode] != to {
		t.Fatalf("pin: %v, %v", got.Annotations, err)
	}
	if err := SetPin(ctx, cl, svc, ""); err != nil {
		t.Fatal(err)
	}
	if err := cl.Get(ctx, svc, &got); err != nil || got.Annotations[speaker.AnnotationNode] != "" {
		t.Fatalf("unpin: %v, %v", got.Annotations, err)
	}
}
