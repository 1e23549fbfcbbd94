package migrate

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClusterKinds are the MetalLB kinds ReadCluster lists, each with the versions tried in order.
var ClusterKinds = []struct {
	Kind     string
	Versions []string
}{
	{"IPAddressPool", []string{"v1beta1"}},
	{"L2Advertisement", []string{"v1beta1"}},
	{"BGPAdvertisement", []string{"v1beta1"}},
	{"BGPPeer", []string{"v1beta2", "v1beta1"}},
	{"BFDProfile", []string{"v1beta1"}},
	{"Community", []string{"v1beta1"}},
	{"AddressPool", []string{"v1beta1", "v1alpha1"}},
}

// ErrNoMetalLB is returned by ReadCluster when the cluster has neither MetalLB's CRDs nor a legacy ConfigMap.
var ErrNoMetalLB = errors.New("no MetalLB configuration in this cluster: the metallb.io CRDs are not installed and no ConfigMap holds a legacy MetalLB config (data key \"config\" with address-pools)")

// ReadCluster lists MetalLB's objects in every namespace, the ConfigMaps that may hold MetalLB's legacy
// configuration and the Services of type LoadBalancer, as unstructured objects. A MetalLB kind whose CRD is
// not installed is passed over; when none is and no legacy ConfigMap exists, the error is ErrNoMetalLB.
func ReadCluster(ctx context.Context, c client.Reader) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	crds := false
	for _, k := range ClusterKinds {
		for _, v := range k.Versions {
			items, err := list(ctx, c, schema.GroupVersionKind{Group: MetalLBGroup, Version: v, Kind: k.Kind})
			if meta.IsNoMatchError(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			crds = true
			out = append(out, items...)
			break
		}
	}
	cms, err := list(ctx, c, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		return nil, err
	}
	legacy := false
	for _, cm := range cms {
		if probe, _ := Translate([]*unstructured.Unstructured{cm}, Options{}); probe != nil && (len(probe.Pools) > 0 || len(probe.Notes) > 0) {
			out = append(out, cm)
			legacy = true
		}
	}
	if !crds && !legacy {
		return nil, ErrNoMetalLB
	}
	svcs, err := list(ctx, c, schema.GroupVersionKind{Version: "v1", Kind: "Service"})
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if t, _, _ := unstructured.NestedString(s.Object, "spec", "type"); t == "LoadBalancer" {
			out = append(out, s)
		}
	}
	return out, nil
}

// list lists the objects of one kind in every namespace.
func list(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, l); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("listing %s: %w", gvk.GroupKind(), err)
	}
	out := make([]*unstructured.Unstructured, len(l.Items))
	for i := range l.Items {
		l.Items[i].SetGroupVersionKind(gvk)
		out[i] = &l.Items[i]
	}
	return out, nil
}
