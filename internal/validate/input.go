package validate

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/migrate"
)

// FromObjects sorts decoded objects (Lists expanded) into a Snapshot: Herald's IPAddressPools, L2Advertisements
// and Announcements, Services, Nodes and EndpointSlices as they are, and MetalLB's kinds (metallb.io, and a
// legacy ConfigMap) through migrate's translation. It returns how many objects of other kinds it passed over.
// The error names an object it cannot read.
func FromObjects(objs []*unstructured.Unstructured, class string) (*Snapshot, int, error) {
	flat, err := migrate.Flatten(objs)
	if err != nil {
		return nil, 0, err
	}
	s := &Snapshot{Class: class}
	var metallb []*unstructured.Unstructured
	ignored := 0
	for _, u := range flat {
		gvk := u.GroupVersionKind()
		var into any
		switch {
		case gvk.Group == migrate.MetalLBGroup, gvk.Group == "" && gvk.Kind == "ConfigMap":
			metallb = append(metallb, u)
		case gvk == heraldv1.GroupVersion.WithKind("IPAddressPool"):
			into = grow(&s.Pools)
		case gvk == heraldv1.GroupVersion.WithKind("L2Advertisement"):
			into = grow(&s.Advertisements)
		case gvk == heraldv1.GroupVersion.WithKind("Announcement"):
			into = grow(&s.Announcements)
		case gvk == corev1.SchemeGroupVersion.WithKind("Service"):
			into = grow(&s.Services)
		case gvk == corev1.SchemeGroupVersion.WithKind("Node"):
			into = grow(&s.Nodes)
		case gvk == discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"):
			into = grow(&s.EndpointSlices)
		case gvk.Group == heraldv1.GroupVersion.Group:
			return nil, 0, fmt.Errorf("%s %s (%s): Herald's kinds are IPAddressPool, L2Advertisement and Announcement of %s",
				gvk.Kind, u.GetName(), u.GetAPIVersion(), heraldv1.GroupVersion)
		default:
			ignored++
		}
		if into == nil {
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
			return nil, 0, fmt.Errorf("reading %s %s: %w", gvk.Kind, objectKey(u), err)
		}
	}
	if err := s.addMetalLB(metallb); err != nil {
		return nil, 0, err
	}
	return s, ignored, nil
}

// grow appends a zero element to *s and returns it.
func grow[T any](s *[]T) *T {
	*s = append(*s, *new(T))
	return &(*s)[len(*s)-1]
}

func objectKey(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// addMetalLB translates MetalLB's objects and adds the resulting pools and advertisements.
func (s *Snapshot) addMetalLB(objs []*unstructured.Unstructured) error {
	if len(objs) == 0 {
		return nil
	}
	res, err := migrate.Translate(objs, migrate.Options{})
	if err != nil {
		return fmt.Errorf("reading MetalLB's objects: %w", err)
	}
	if s.MetalLB == nil {
		s.MetalLB = map[string]string{}
	}
	for _, p := range res.Pools {
		s.MetalLB["IPAddressPool "+p.Name] = p.Annotations[migrate.AnnotationMigratedFrom]
		s.Pools = append(s.Pools, p)
	}
	for _, a := range res.Advertisements {
		s.MetalLB["L2Advertisement "+a.Name] = a.Annotations[migrate.AnnotationMigratedFrom]
		s.Advertisements = append(s.Advertisements, a)
	}
	for _, n := range res.Notes {
		if n.Severity == migrate.SeveritySkipped {
			s.Untranslated = append(s.Untranslated, n)
		}
	}
	return nil
}

// ReadCluster reads a Snapshot from a cluster: Herald's pools, advertisements and Announcements, the Services,
// Nodes and EndpointSlices, and MetalLB's configuration when it is installed and may be read (MetalLBUnread says
// why not when listing it is forbidden). The client must know core/v1, discovery/v1 and herald.dev/v1alpha1.
func ReadCluster(ctx context.Context, c client.Reader, class string) (*Snapshot, error) {
	s := &Snapshot{FromCluster: true, Class: class}
	var (
		pools  heraldv1.IPAddressPoolList
		advs   heraldv1.L2AdvertisementList
		anns   heraldv1.AnnouncementList
		svcs   corev1.ServiceList
		nodes  corev1.NodeList
		slices discoveryv1.EndpointSliceList
	)
	for _, l := range []struct {
		what string
		list client.ObjectList
	}{
		{"IPAddressPools", &pools}, {"L2Advertisements", &advs}, {"Announcements", &anns},
		{"Services", &svcs}, {"Nodes", &nodes}, {"EndpointSlices", &slices},
	} {
		if err := c.List(ctx, l.list); err != nil {
			return nil, fmt.Errorf("listing %s: %w", l.what, err)
		}
	}
	s.Pools, s.Advertisements, s.Announcements = pools.Items, advs.Items, anns.Items
	s.Services, s.Nodes, s.EndpointSlices = svcs.Items, nodes.Items, slices.Items
	metallb, err := migrate.ReadCluster(ctx, c)
	switch {
	case errors.Is(err, migrate.ErrNoMetalLB):
		return s, nil
	case apierrors.IsForbidden(err):
		// A Herald-only cluster's operator may not list every ConfigMap: check the rest.
		s.MetalLBUnread = err.Error()
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("reading MetalLB's configuration: %w", err)
	}
	var cfg []*unstructured.Unstructured
	for _, u := range metallb {
		if u.GetKind() != "Service" { // listed above
			cfg = append(cfg, u)
		}
	}
	return s, s.addMetalLB(cfg)
}

// Overlay adds the objects of o to s, each replacing the object of s of the same kind, namespace and name, as
// applying o would: to check files against a cluster.
func (s *Snapshot) Overlay(o *Snapshot) {
	s.Pools = overlay(s.Pools, o.Pools)
	s.Advertisements = overlay(s.Advertisements, o.Advertisements)
	s.Services = overlay(s.Services, o.Services)
	s.Nodes = overlay(s.Nodes, o.Nodes)
	s.EndpointSlices = overlay(s.EndpointSlices, o.EndpointSlices)
	s.Announcements = overlay(s.Announcements, o.Announcements)
	for k, v := range o.MetalLB {
		if s.MetalLB == nil {
			s.MetalLB = map[string]string{}
		}
		s.MetalLB[k] = v
	}
	s.Untranslated = append(s.Untranslated, o.Untranslated...)
}

func overlay[T any, P interface {
	*T
	metav1.Object
}](base, over []T) []T {
	key := func(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }
	at := make(map[string]int, len(base))
	for i := range base {
		at[key(P(&base[i]))] = i
	}
	for _, o := range over {
		if i, ok := at[key(P(&o))]; ok {
			base[i] = o
			continue
		}
		at[key(P(&o))] = len(base)
		base = append(base, o)
	}
	return base
}
