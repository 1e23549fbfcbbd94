package doctor

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func lbService(ns, name string, class *string, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func node(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func TestFromCluster(t *testing.T) {
	ours, theirs := "herald.dev/l2", "other.example/lb"
	clusterIP := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "internal"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	hostname := lbService("a", "aws", nil)
	hostname.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example"}}
	tests := []struct {
		name      string
		objs      []client.Object
		wantVIPs  []VIP
		wantPeers []Peer
	}{
		{name: "empty cluster"},
		{
			name: "Services of Herald's class or none, sorted by address; other nodes' InternalIPs",
			objs: []client.Object{
				lbService("shop", "web", nil, "198.51.100.11", "2001:db8::11"),
				lbService("shop", "api", &ours, "198.51.100.10"),
				lbService("other", "x", &theirs, "198.51.100.99"),
				clusterIP, hostname,
				node("n1", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.51.100.2"}),
				node("n2", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.51.100.3"},
					corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.3"},
					corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n2"},
					corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "2001:db8::3"}),
			},
			wantVIPs: []VIP{
				{Addr: netip.MustParseAddr("198.51.100.10"), Service: "shop/api", Interfaces: []string{"eth0"}},
				{Addr: netip.MustParseAddr("198.51.100.11"), Service: "shop/web", Interfaces: []string{"eth0"}},
				{Addr: netip.MustParseAddr("2001:db8::11"), Service: "shop/web", Interfaces: []string{"eth0"}},
			},
			wantPeers: []Peer{{Addr: "198.51.100.3", Port: 7000}, {Addr: "2001:db8::3", Port: 7000}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(tt.objs...).WithStatusSubresource().Build()
			vips, peers, err := FromCluster(context.Background(), c, ClusterOptions{
				Node: "n1", LoadBalancerClass: ours, MemberlistPort: 7000, Interfaces: []string{"eth0"}})
			if err != nil {
				t.Fatalf("FromCluster: %v", err)
			}
			if diff := cmp.Diff(tt.wantVIPs, vips, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("VIPs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPeers, peers); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
		})
	}
}
