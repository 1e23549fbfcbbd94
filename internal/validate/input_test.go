package validate

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/migrate"
)

func readTestdata(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := migrate.ReadPath(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestFromObjectsMetalLB checks MetalLB's kinds through migrate's translation: findings name the MetalLB
// object, and what the translation leaves out is reported unchecked.
func TestFromObjectsMetalLB(t *testing.T) {
	s, ignored, err := FromObjects(readTestdata(t, "metallb.yaml"), controllers.DefaultLoadBalancerClass)
	if err != nil {
		t.Fatal(err)
	}
	if ignored != 1 || len(s.Nodes) != 2 || len(s.Pools) != 3 || len(s.Advertisements) != 1 || s.FromCluster {
		t.Fatalf("ignored %d, want 1; %d Nodes, %d pools, %d advertisements, FromCluster %v", ignored, len(s.Nodes), len(s.Pools), len(s.Advertisements), s.FromCluster)
	}
	want := []string{
		"error pool-overlap IPAddressPool prod (from metallb.io IPAddressPool metallb-system/prod) spec.addresses[0]",
		"error pool-not-found L2Advertisement l2 (from metallb.io L2Advertisement metallb-system/l2) spec.ipAddressPools[2]",
		"warning pool-not-announced IPAddressPool edge ",
		"unchecked metallb-not-translated metallb.io IPAddressPool metallb-system/lab spec.addresses[1]",
	}
	if diff := cmp.Diff(want, brief(Check(s))); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}

func TestFromObjectsErrors(t *testing.T) {
	obj := func(apiVersion, kind string, spec any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": "x"}}}
		if spec != nil {
			u.Object["spec"] = spec
		}
		return u
	}
	tests := []struct {
		name string
		in   *unstructured.Unstructured
		want string
	}{
		{"another version of Herald's API", obj("herald.dev/v1beta1", "IPAddressPool", nil), "IPAddressPool x (herald.dev/v1beta1): Herald's kinds are IPAddressPool, L2Advertisement and Announcement of herald.dev/v1alpha1"},
		{"an unknown kind of Herald's", obj("herald.dev/v1alpha1", "BGPPeer", nil), "BGPPeer x (herald.dev/v1alpha1): Herald's kinds are"},
		{"a spec of the wrong shape", obj("herald.dev/v1alpha1", "IPAddressPool", map[string]any{"addresses": "198.51.100.0/24"}), "reading IPAddressPool x"},
		{"no name", &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Node"}}, "a Node without metadata.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := FromObjects([]*unstructured.Unstructured{tt.in}, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// TestOverlay: objects of files replace the cluster's of the same name, and add to them.
func TestOverlay(t *testing.T) {
	cluster := clean()
	files := &Snapshot{Pools: []heraldv1.IPAddressPool{
		pool("internal", map[string]string{"tier": "internal"}, "198.51.100.48/28"),
		pool("new", map[string]string{"tier": "internal"}, "198.18.0.0/24"),
	}}
	cluster.Overlay(files)
	var got []string
	for _, p := range cluster.Pools {
		got = append(got, p.Name+"="+string(p.Spec.Addresses[0]))
	}
	if diff := cmp.Diff([]string{"web=198.51.100.0/26", "internal=198.51.100.48/28", "new=198.18.0.0/24"}, got); diff != "" {
		t.Errorf("pools after Overlay (-want +got):\n%s", diff)
	}
	if !cluster.FromCluster || len(cluster.Nodes) != 2 {
		t.Errorf("Overlay lost the cluster's Nodes or FromCluster")
	}
}

// TestReadClusterForbidden: a user who may not list ConfigMaps (where MetalLB's legacy configuration lives) still
// gets Herald's configuration checked, and is told what was not.
func TestReadClusterForbidden(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	pool := pool("web", nil, "198.51.100.0/26")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&pool).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			gvk := list.GetObjectKind().GroupVersionKind()
			switch {
			case gvk.Group == migrate.MetalLBGroup:
				return &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
			case gvk.Kind == "ConfigMapList":
				return apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("RBAC says no"))
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
	s, err := ReadCluster(context.Background(), c, controllers.DefaultLoadBalancerClass)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"warning pool-not-announced IPAddressPool web ", "unchecked metallb-not-translated MetalLB configuration "}
	if diff := cmp.Diff(want, brief(Check(s))); diff != "" || !s.FromCluster || len(s.Pools) != 1 {
		t.Errorf("FromCluster %v, %d pools; Check (-want +got):\n%s", s.FromCluster, len(s.Pools), diff)
	}
}
