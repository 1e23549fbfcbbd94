package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// SystemNamespace is the namespace Herald's components run in (config/manager/namespace.yaml).
const SystemNamespace = "herald-system"

// Component is one of Herald's in-cluster components as config/ ships it: the ServiceAccount it runs as and the
// kustomize directory holding that account, its roles and their bindings.
type Component struct {
	Name           string // controller, speaker
	ServiceAccount string // in SystemNamespace
	RBACDir        string // relative to the repository root; its kustomization.yaml lists the files
}

// Username is the API server's name for the component's ServiceAccount.
func (c Component) Username() string {
	return "system:serviceaccount:" + SystemNamespace + ":" + c.ServiceAccount
}

// Herald's in-cluster components.
var (
	Controller = Component{Name: "controller", ServiceAccount: "herald-controller", RBACDir: "config/rbac"}
	Speaker    = Component{Name: "speaker", ServiceAccount: "herald-speaker", RBACDir: "config/speaker/rbac"}
	Components = []Component{Controller, Speaker}
)

// namespaceManifest creates SystemNamespace.
const namespaceManifest = "config/manager/namespace.yaml"

// tokenLifetime is how long the components' tokens are valid: longer than any test run or demo.
const tokenLifetime = 24 * time.Hour

// RBACFiles are the manifests InstallRBAC applies, relative to root: the namespace, then each component's
// kustomization resources (ServiceAccount, roles, bindings) in the order listed.
func RBACFiles(root string) ([]string, error) {
	files := []string{namespaceManifest}
	for _, c := range Components {
		b, err := os.ReadFile(filepath.Join(root, c.RBACDir, "kustomization.yaml"))
		if err != nil {
			return nil, fmt.Errorf("reading the RBAC of the %s: %w", c.Name, err)
		}
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			return nil, fmt.Errorf("parsing %s/kustomization.yaml: %w", c.RBACDir, err)
		}
		for _, r := range k.Resources {
			files = append(files, filepath.Join(c.RBACDir, r))
		}
	}
	return files, nil
}

// ReadManifests decodes every object of the YAML files (paths relative to root).
func ReadManifests(root string, files []string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("parsing %s: %w", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, &u)
			}
		}
	}
	return objs, nil
}

// InstallRBAC creates Herald's namespace and the ServiceAccounts, roles and bindings config/ ships, read from
// the repository, as the admin.
func (cp *ControlPlane) InstallRBAC(ctx context.Context) error {
	files, err := RBACFiles(cp.Root)
	if err != nil {
		return err
	}
	objs, err := ReadManifests(cp.Root, files)
	if err != nil {
		return err
	}
	c, err := client.New(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// WriteComponentKubeconfig asks the TokenRequest API for a token of the component's ServiceAccount and writes a
// kubeconfig using it to path: the component then has exactly the rights its roles grant.
func (cp *ControlPlane) WriteComponentKubeconfig(ctx context.Context, comp Component, path string) error {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	secs := int64(tokenLifetime / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, comp.ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting a token for %s: %w", comp.Username(), err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["herald"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	kc.AuthInfos[comp.ServiceAccount] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["herald"] = &clientcmdapi.Context{Cluster: "herald", AuthInfo: comp.ServiceAccount,
		Namespace: SystemNamespace}
	kc.CurrentContext = "herald"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ComponentKubeconfig is the file name WriteComponentKubeconfigs gives a component's kubeconfig.
func ComponentKubeconfig(comp Component) string { return comp.Name + ".kubeconfig" }

// WriteComponentKubeconfigs writes the kubeconfig of every component into dir (ComponentKubeconfig).
func (cp *ControlPlane) WriteComponentKubeconfigs(ctx context.Context, dir string) error {
	for _, comp := range Components {
		if err := cp.WriteComponentKubeconfig(ctx, comp, filepath.Join(dir, ComponentKubeconfig(comp))); err != nil {
			return err
		}
	}
	return nil
}
