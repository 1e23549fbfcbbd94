package migrate

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// fakeCluster is a controller-runtime fake client holding objs. With crds false, listing a MetalLB kind fails
// with the NoKindMatchError a real client's REST mapper returns on a cluster without MetalLB's CRDs. The fake stands in for the API server: installing MetalLB's CRDs into the real one
// for this test would need MetalLB's CRD manifests, which the repository does not carry.
func fakeCluster(t *testing.T, crds bool, objs ...*unstructured.Unstructured) client.Client {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			gvk := list.GetObjectKind().GroupVersionKind()
			if !crds && gvk.Group == MetalLBGroup {
				return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, SearchedVersions: []string{gvk.Version}}
			}
			return c.List(ctx, list, opts...)
		},
	})
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	return b.Build()
}

func TestReadCluster(t *testing.T) {
	crdObjs := readInputs(t, "crds.yaml")
	var metallb []*unstructured.Unstructured
	for _, u := range crdObjs {
		if u.GroupVersionKind().Group == MetalLBGroup {
			metallb = append(metallb, u)
		}
	}
	legacy := readInputs(t, "legacy-configmap.yaml")
	services := readInputs(t, "services.yaml")
	tests := []struct {
		name    string
		crds    bool
		objs    [][]*unstructured.Unstructured
		want    []string // kind namespace/name read, in order
		wantErr error
	}{
		{
			name: "CRDs and Services",
			crds: true,
			objs: [][]*unstructured.Unstructured{metallb, services},
			want: []string{
				"IPAddressPool lab/production", "IPAddressPool metallb-system/bgp-only", "IPAddressPool metallb-system/broken",
				"IPAddressPool metallb-system/production", "IPAddressPool metallb-system/reserved", "IPAddressPool metallb-system/unannounced",
				"L2Advertisement lab/front", "L2Advertisement metallb-system/by-label", "L2Advertisement metallb-system/front", "L2Advertisement metallb-system/only-broken",
				"BGPAdvertisement metallb-system/routed", "BGPPeer metallb-system/tor", "BFDProfile metallb-system/fast", "Community metallb-system/communities",
				"Service blog/classy", "Service blog/herald-class", "Service shop/both", "Service shop/conflict", "Service shop/dns-tcp", "Service shop/web",
			},
		},
		{
			name: "legacy ConfigMap without CRDs",
			objs: [][]*unstructured.Unstructured{legacy},
			want: []string{"ConfigMap metallb-system/config"},
		},
		{
			name:    "no MetalLB at all",
			objs:    [][]*unstructured.Unstructured{services},
			wantErr: ErrNoMetalLB,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all []*unstructured.Unstructured
			for _, o := range tt.objs {
				for _, u := range o {
					all = append(all, u.DeepCopy())
				}
			}
			got, err := ReadCluster(context.Background(), fakeCluster(t, tt.crds, all...))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, objectNames(got)); diff != "" {
				t.Errorf("objects read (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadClusterTranslates checks that what ReadCluster returns translates like the same objects from files.
func TestReadClusterTranslates(t *testing.T) {
	objs := readInputs(t, "legacy-configmap.yaml")
	read, err := ReadCluster(context.Background(), fakeCluster(t, true, objs[0].DeepCopy()))
	if err != nil {
		t.Fatal(err)
	}
	fromCluster, err := Translate(read, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := Translate(objs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromFile, fromCluster); diff != "" {
		t.Errorf("translation from the cluster differs from the file's (-file +cluster):\n%s", diff)
	}
}

// objectNames lists objects as "Kind namespace/name".
func objectNames(objs []*unstructured.Unstructured) []string {
	var names []string
	for _, u := range objs {
		names = append(names, source(u.GetKind(), u.GetNamespace(), u.GetName()))
	}
	return names
}
