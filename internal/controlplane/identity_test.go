package controlplane_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/access"
	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/controlplane/controlplanetest"
)

// A component's kubeconfig authenticates as its ServiceAccount with exactly the rights config/ grants: the
// speaker lists Services but may not create a Secret, and the audit log records both, the second as 403.
func TestComponentIdentity(t *testing.T) {
	cp, _ := controlplanetest.Start(t)
	ctx := context.Background()
	if err := cp.InstallRBAC(ctx); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/speaker.kubeconfig"
	if err := cp.WriteComponentKubeconfig(ctx, controlplane.Speaker, path); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(rc, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &corev1.ServiceList{}); err != nil {
		t.Errorf("the speaker listing Services: %v", err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: controlplane.SystemNamespace, Name: "not-granted"}}
	if err := c.Create(ctx, sec); !apierrors.IsForbidden(err) {
		t.Errorf("the speaker creating a Secret: %v, want Forbidden", err)
	}

	reqs, err := access.ReadAudit(cp.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	var list, create bool
	for _, r := range reqs {
		if r.User != controlplane.Speaker.Username() {
			t.Errorf("audit log entry of another user: %s", r)
		}
		list = list || (r.Verb == "list" && r.Resource == "services" && r.Code == 200)
		create = create || (r.Verb == "create" && r.Resource == "secrets" && r.Forbidden())
	}
	if !list || !create {
		var all []string
		for _, r := range reqs {
			all = append(all, r.String())
		}
		t.Errorf("audit log: services list allowed %t, secrets create forbidden %t; want both:\n%s", list, create,
			strings.Join(all, "\n"))
	}
}

// Every Role and ClusterRole config/ ships is bound to the component whose directory holds it: a role generated
// from markers but bound to no one grants nothing.
func TestShippedRolesBound(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := controlplane.RBACFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := controlplane.ReadManifests(root, files)
	if err != nil {
		t.Fatal(err)
	}
	grants, err := access.Grants(objs)
	if err != nil {
		t.Fatal(err)
	}
	var roles int
	for _, o := range objs {
		if o.GetKind() != "Role" && o.GetKind() != "ClusterRole" {
			continue
		}
		roles++
		rules, _, _ := unstructuredRules(o.Object)
		for _, comp := range controlplane.Components {
			if !strings.HasSuffix(o.GetName(), comp.Name) {
				continue
			}
			for _, r := range rules {
				k := access.Key{Group: r.group, Resource: r.resource, Namespace: o.GetNamespace(), Verb: r.verb}
				if !access.Allows(grants[comp.Username()], k) {
					t.Errorf("%s %s grants %+v, but no binding gives it to %s", o.GetKind(), o.GetName(), k, comp.Username())
				}
			}
		}
	}
	if roles < 2 {
		t.Errorf("found %d roles in %v", roles, files)
	}
}

type flatRule struct{ group, resource, verb string }

// unstructuredRules flattens the rules of a role object.
func unstructuredRules(obj map[string]any) ([]flatRule, bool, error) {
	var out []flatRule
	rules, _ := obj["rules"].([]any)
	for _, r := range rules {
		m, _ := r.(map[string]any)
		for _, g := range strs(m["apiGroups"]) {
			for _, res := range strs(m["resources"]) {
				for _, v := range strs(m["verbs"]) {
					out = append(out, flatRule{g, res, v})
				}
			}
		}
	}
	return out, len(out) > 0, nil
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, s := range l {
		if str, ok := s.(string); ok {
			out = append(out, str)
		}
	}
	return out
}
