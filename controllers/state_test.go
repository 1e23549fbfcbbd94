package controllers

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
)

// TestRebuildKeepsAddressInNoPool: a Service keeps an address whose pool was deleted (its allocation fails and
// its status still holds the address). A controller that restarts meanwhile must remember that address as the
// running one does, so that when a pool holding it comes back the Service keeps it and no other Service gets it.
// Before Restore, the restarted controller forgot the address: TestConfigChurn (seed 1796636504579706621, sequence
// 2, shrunk to 6 steps) saw a pool come back and hand it to a second Service while the first still held it.
func TestRebuildKeepsAddressInNoPool(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	held := ltService(func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.64"}}
	})
	other := ltService(func(s *corev1.Service) {
		s.Name = "other"
		s.Annotations = map[string]string{AnnotationLoadBalancerIPs: "198.51.100.64"}
	})
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(held, other).Build()
	ctx := context.Background()
	s := newAllocations(DefaultLoadBalancerClass) // the restarted controller, with no pool in the cluster
	if err := s.ensureLoaded(ctx, c); err != nil {
		t.Fatal(err)
	}
	pool := &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "back"},
		Spec: heraldv1.IPAddressPoolSpec{Addresses: addresses("198.51.100.66-198.51.100.67", "198.51.100.64/30")}}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := s.syncPools(ctx, c); err != nil {
		t.Fatal(err)
	}

	req := func(svc *corev1.Service) ipam.Request {
		sr, err := requestFor(svc)
		if err != nil {
			t.Fatal(err)
		}
		sr.Pools = []string{"back"}
		return sr.Request
	}
	// The other Service, reconciled first, may not take the address.
	_, err := s.allocate(req(other))
	var ie *ipam.Error
	if !errors.As(err, &ie) || ie.Reason != ipam.ReasonInUse {
		t.Errorf("another Service requesting the held address: error %v, want %s", err, ipam.ReasonInUse)
	}
	got, err := s.allocate(req(held))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ltAddrs("198.51.100.64"), got, ltAddrCmp); diff != "" {
		t.Errorf("the Service's addresses once its pool is back (-want +got):\n%s", diff)
	}
}
