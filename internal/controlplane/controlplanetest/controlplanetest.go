// Package controlplanetest starts a real kube-apiserver and etcd with Herald's CRDs for one test
// (internal/controlplane), stopped when the test ends.
package controlplanetest

import (
	"os"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/controlplane"
)

// Start skips t under -short or with HERALD_SKIP_CONTROLPLANE set; otherwise it starts a control plane, stopped
// when t ends, and returns it with a client for it.
func Start(t testing.TB) (*controlplane.ControlPlane, client.Client) {
	t.Helper()
	if testing.Short() || os.Getenv("HERALD_SKIP_CONTROLPLANE") != "" {
		t.Skip("integration test: needs the control plane (not under -short)")
	}
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	c, err := client.New(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cp, c
}
