package controllers

import (
	"fmt"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// TestTwoReplicas runs two controllers with leader election: one allocates; when it stops, the other takes
// over, keeps every address and goes on allocating without handing any address out twice.
func TestTwoReplicas(t *testing.T) {
	needControlPlane(t)
	createPool(t, "replicas", heraldv1.IPAddressPoolSpec{Addresses: addresses("198.51.100.128/28")})
	ns := newNamespace(t, nil)
	lease, renew, retryP := 2*time.Second, 1500*time.Millisecond, 200*time.Millisecond
	opts := func() ctrl.Options {
		return ctrl.Options{LeaderElection: true, LeaderElectionID: "herald-test-replicas", LeaderElectionNamespace: ns,
			LeaderElectionReleaseOnCancel: true, LeaseDuration: &lease, RenewDeadline: &renew, RetryPeriod: &retryP}
	}
	stopA := startControllerWith(t, opts())
	create(t, lbService(ns, "s0", 80, inPool("replicas")))
	waitIngress(t, ns, "s0", "198.51.100.128")
	startControllerWith(t, opts())
	for i := 1; i < 4; i++ {
		create(t, lbService(ns, fmt.Sprintf("s%d", i), 80, inPool("replicas")))
		waitIngress(t, ns, fmt.Sprintf("s%d", i), fmt.Sprintf("198.51.100.%d", 128+i))
	}
	stopA()
	create(t, lbService(ns, "after", 80, inPool("replicas")))
	waitIngress(t, ns, "after", "198.51.100.132")
	for i := 0; i < 4; i++ {
		waitIngress(t, ns, fmt.Sprintf("s%d", i), fmt.Sprintf("198.51.100.%d", 128+i))
	}
}
