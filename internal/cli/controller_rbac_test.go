package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/access"
	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/controlplane/controlplanetest"
)

// The controller as its ServiceAccount, bound to the roles config/ ships, with leader election on as the
// Deployment runs it (the e2e lab runs one replica without it): it takes the Lease, creates the gossip key
// Secret, releases the Lease when stopped, and the API server refuses none of its requests.
func TestControllerAsServiceAccount(t *testing.T) {
	cp, admin := controlplanetest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cp.InstallRBAC(ctx); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "controller.kubeconfig")
	if err := cp.WriteComponentKubeconfig(ctx, controlplane.Controller, kubeconfig); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	run := runController(fs)
	if err := fs.Parse([]string{"--kubeconfig", kubeconfig, "--leader-elect", "--metrics-bind-address=0",
		"--health-probe-bind-address=0", "--leader-retry-period=200ms"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stopped := false
	var runErr error
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
	}
	t.Cleanup(stop) // before the control plane stops

	ns := controlplane.SystemNamespace
	lease := &coordinationv1.Lease{}
	leaseKey := client.ObjectKey{Namespace: ns, Name: "herald-controller.herald.dev"}
	secretKey := client.ObjectKey{Namespace: ns, Name: "herald-memberlist"}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			stopped, runErr = true, err
			return false, fmt.Errorf("the controller stopped: %w", err)
		default:
		}
		if err := admin.Get(ctx, leaseKey, lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return false, nil
		}
		return admin.Get(ctx, secretKey, &corev1.Secret{}) == nil, nil
	})
	waitErr := err
	stop()
	if runErr != nil {
		t.Errorf("the controller stopped with %v", runErr)
	}

	reqs, err := access.ReadAudit(cp.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, r := range reqs {
		if r.User != controlplane.Controller.Username() {
			continue
		}
		if r.Forbidden() {
			t.Errorf("refused: %s", r)
		}
		used[r.Verb+" "+r.Resource] = true
	}
	if waitErr != nil {
		t.Fatalf("waiting for the controller to lead and create the gossip key: %v", waitErr)
	}
	for _, want := range []string{"create leases", "update leases", "create secrets"} {
		if !used[want] {
			var all []string
			for k := range used {
				all = append(all, k)
			}
			t.Errorf("the audit log lacks %q; the controller's requests: %s", want, strings.Join(all, ", "))
		}
	}
}
