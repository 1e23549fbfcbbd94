package controlplane_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/heraldlb/herald/internal/controlplane"
)

// A bare control plane has no Herald CRDs, and its serving certificate names the kubernetes Service's address,
// which pods dial.
func TestBareControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	cp, err := controlplane.StartWith(controlplane.Options{Bare: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("the API server does not serve with its own CA: %v", err)
	}
	if _, err := cs.Discovery().ServerResourcesForGroupVersion("herald.dev/v1alpha1"); !apierrors.IsNotFound(err) {
		t.Errorf("herald.dev/v1alpha1 on a bare control plane: %v, want NotFound", err)
	}
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ips := conn.ConnectionState().PeerCertificates[0].IPAddresses
	if !slices.ContainsFunc(ips, func(ip net.IP) bool { return ip.Equal(net.ParseIP(controlplane.KubernetesServiceIPv4)) }) {
		t.Errorf("serving certificate names %v, not the kubernetes Service's %s", ips, controlplane.KubernetesServiceIPv4)
	}
}
