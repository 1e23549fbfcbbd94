package migrate

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/controlplane/controlplanetest"
)

// TestOutputAcceptedByAPIServer applies the translated output of every fixture to a real kube-apiserver with
// Herald's CRDs installed: the schema and its CEL rules must accept every pool and advertisement, and the
// Service documents must apply server-side as the help text says. MetalLB's CRDs are not installed: the
// cluster-reading path is tested with a fake client (cluster_test.go).
func TestOutputAcceptedByAPIServer(t *testing.T) {
	_, c := controlplanetest.Start(t)
	ctx := context.Background()

	// Without MetalLB's CRDs, the real client's REST mapper reports no match for metallb.io, and with no
	// legacy ConfigMap either there is nothing to migrate.
	if _, err := ReadCluster(ctx, c); !errors.Is(err, ErrNoMetalLB) {
		t.Fatalf("ReadCluster without MetalLB: error %v, want ErrNoMetalLB", err)
	}
	legacy := readInputs(t, "legacy-configmap.yaml")[0]
	if err := c.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "metallb-system"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, legacy.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	read, err := ReadCluster(ctx, c)
	if err != nil {
		t.Fatalf("ReadCluster with a legacy ConfigMap and no CRDs: %v", err)
	}
	if diff := cmp.Diff([]string{"ConfigMap metallb-system/config"}, objectNames(read)); diff != "" {
		t.Errorf("ReadCluster (-want +got):\n%s", diff)
	}

	// The schema is in force: an address Translate leaves out is refused.
	refused := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "herald.dev/v1alpha1", "kind": "IPAddressPool",
		"metadata": map[string]any{"name": "refused"},
		"spec":     map[string]any{"addresses": []any{"203.0.113.77/24"}},
	}}
	if err := c.Create(ctx, refused); !apierrors.IsInvalid(err) {
		t.Fatalf("creating a pool with host bits set: error %v, want Invalid (is the CRD's validation installed?)", err)
	}

	inputs := readInputs(t, "crds.yaml", "legacy-configmap.yaml", "services.yaml")
	res, err := Translate(inputs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteYAML(&out, res); err != nil {
		t.Fatal(err)
	}
	docs, err := Decode("output", &out)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(res.Pools) + len(res.Advertisements); len(docs) != want || want == 0 {
		t.Fatalf("output holds %d documents, want %d", len(docs), want)
	}
	for _, d := range docs {
		if err := c.Create(ctx, d); err != nil {
			t.Errorf("the API server refuses %s %s: %v", d.GetKind(), d.GetName(), err)
		}
	}

	// Services: create the originals, then apply the Service documents server-side.
	for _, ns := range []string{"shop", "blog"} {
		n := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		if err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range readInputs(t, "services.yaml") {
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("creating Service %s/%s: %v", u.GetNamespace(), u.GetName(), err)
		}
	}
	out.Reset()
	if err := WriteServicesYAML(&out, res); err != nil {
		t.Fatal(err)
	}
	svcDocs, err := Decode("services output", &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcDocs) == 0 {
		t.Fatal("no Service documents")
	}
	for _, d := range svcDocs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(d), client.FieldOwner(FieldManager)); err != nil {
			t.Errorf("server-side apply of Service %s/%s: %v", d.GetNamespace(), d.GetName(), err)
		}
	}
	web := &unstructured.Unstructured{}
	web.SetAPIVersion("v1")
	web.SetKind("Service")
	if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, web); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"herald.dev/load-balancer-ips":               "198.51.100.5",
		"metallb.universe.tf/loadBalancerIPs":        "198.51.100.5", // removed by the kubectl annotate commands, later
		"metallb.universe.tf/ip-allocated-from-pool": "production",
	}
	if diff := cmp.Diff(want, web.GetAnnotations()); diff != "" {
		t.Errorf("annotations of shop/web after apply (-want +got):\n%s", diff)
	}
	if ports, _, _ := unstructured.NestedSlice(web.Object, "spec", "ports"); len(ports) != 1 {
		t.Errorf("shop/web has %d ports after apply, want its 1 port untouched", len(ports))
	}
}
