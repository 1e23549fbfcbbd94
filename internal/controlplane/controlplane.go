// Package controlplane starts a real Kubernetes control plane (etcd and kube-apiserver, built by hack/tools.sh
// into bin/) with Herald's CRDs installed, for integration tests and the demo. The API server authorizes with
// Node,RBAC like a cluster's and writes an audit log of the requests Herald's ServiceAccounts make.
package controlplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Service address ranges of the control plane: documentation and benchmarking ranges, never put on an
// interface, so that dual-stack Services can be created.
const (
	ServiceCIDRv4 = "198.19.0.0/16"
	// NodePortRange is the API server's --service-node-port-range: wide enough for 10,000 Local Services.
	NodePortRange = "20000-59999"
	ServiceCIDRv6 = "2001:db8:ffff::/108"
	// KubernetesServiceIPv4 is the kubernetes Service's ClusterIP, the first address of ServiceCIDRv4.
	KubernetesServiceIPv4 = "198.19.0.1"
)

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	env    *envtest.Environment
	Config *rest.Config
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an admin kubeconfig for kubectl and the controller process.
	Kubeconfig string
	// Root is the repository root.
	Root string
	// AuditLog is the API server's audit log (JSON lines): Metadata of every request by a ServiceAccount of
	// herald-system (auditPolicy), read with internal/access.
	AuditLog string
	dir      string
}

// Options configures StartWith. The zero value is what Start uses.
type Options struct {
	// ListenAddress is the host:port the API server serves on; its host also goes into the serving certificate
	// and the kubeconfig's server URL. Default: a free port on 127.0.0.1.
	ListenAddress string
	// Root is the repository root (bin/ and config/crd/bases); default RepoRoot().
	Root string
	// AuditLog is where the API server writes its audit log; default audit.log in the control plane's
	// temporary directory.
	AuditLog string
	// Bare leaves Herald's CRDs out, for a cluster that installs Herald with its chart, and runs the API server
	// with the ServiceAccount admission plugin (envtest disables it), which mounts pods' ServiceAccount tokens, and
	// reaching kubelets by InternalIP: for real nodes (internal/kubenode).
	Bare bool
}

// AuthorizationMode is the API server's --authorization-mode: a cluster's (kubeadm's), so that the components
// are held to the roles config/ ships; the admin identity of Config and Kubeconfig is in system:masters.
const AuthorizationMode = "Node,RBAC"

// auditPolicy records, at Metadata level (who, verb, resource, response code; no bodies), every request by a
// ServiceAccount of Herald's namespace, and nothing else. Watches are logged when they start as well as when
// they end, so that a watch still open at the end of a run counts.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:` + SystemNamespace + `"]
  - level: None
`

// Start starts etcd and kube-apiserver from <repo>/bin and installs the CRDs under config/crd/bases.
func Start() (*ControlPlane, error) {
	return StartWith(Options{})
}

// StartWith is Start with options: for the network-namespace lab, an API server on a given address.
func StartWith(opts Options) (*ControlPlane, error) {
	root := opts.Root
	if root == "" {
		var err error
		if root, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing: run hack/tools.sh controlplane (or make controlplane): %w", b, err)
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	// The pid in the name lets lab.CleanStale remove the directory if this process dies without Stop.
	dir, err := os.MkdirTemp("", fmt.Sprintf("herald-controlplane-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	auditLog := opts.AuditLog
	if auditLog == "" {
		auditLog = filepath.Join(dir, "audit.log")
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	if opts.Bare {
		env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	}
	api := env.ControlPlane.GetAPIServer()
	api.Configure().Set("service-cluster-ip-range", ServiceCIDRv4+","+ServiceCIDRv6)
	api.Configure().Set("authorization-mode", AuthorizationMode)
	api.Configure().Set("audit-policy-file", policy)
	api.Configure().Set("audit-log-path", auditLog)
	api.Configure().Set("audit-log-format", "json")
	// Not rotated in practice (100 GB; 0 means lumberjack's default of 100 MB): the tests read the requests since
	// a mark from this one file, and a 10,000-Service creation storm writes more than 100 MB.
	api.Configure().Set("audit-log-maxsize", "100000")
	// Node ports are only numbers here (no kube-proxy listens on them), but every externalTrafficPolicy Local
	// LoadBalancer Service takes one for its health check: the default range's 2,768 run out long before a
	// 10,000-Service benchmark does.
	api.Configure().Set("service-node-port-range", NodePortRange)
	if opts.Bare {
		api.Configure().Disable("disable-admission-plugins")
		// Nodes' names resolve nowhere: reach kubelets (logs, exec) by their InternalIP.
		api.Configure().Set("kubelet-preferred-address-types", "InternalIP")
		// Pods dial the kubernetes Service's address, the first of the range: the serving certificate names it.
		certs := filepath.Join(dir, "certs")
		ips := []net.IP{net.ParseIP(KubernetesServiceIPv4)}
		if host, _, err := net.SplitHostPort(opts.ListenAddress); err == nil && net.ParseIP(host) != nil {
			ips = append(ips, net.ParseIP(host))
		}
		err := os.Mkdir(certs, 0o700)
		if err == nil {
			api.SecureServing.CA, err = writeServingCerts(certs, ips...)
		}
		if err != nil {
			return nil, errors.Join(err, os.RemoveAll(dir))
		}
		api.CertDir = certs
	}
	if opts.ListenAddress != "" {
		host, port, err := net.SplitHostPort(opts.ListenAddress)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("control plane listen address %q: %w", opts.ListenAddress, err),
				os.RemoveAll(dir))
		}
		api.SecureServing.ListenAddr = envtest.ListenAddr{Address: host, Port: port}
	}
	cfg, err := env.Start()
	if err != nil {
		// Start may fail after etcd and kube-apiserver are up (a CRD refused): stop what did start.
		return nil, errors.Join(fmt.Errorf("starting the control plane: %w", err), env.Stop(), os.RemoveAll(dir))
	}
	cp := &ControlPlane{env: env, Config: cfg, Scheme: scheme, Root: root, AuditLog: auditLog, dir: dir}
	if err := cp.writeKubeconfig(); err != nil {
		return nil, errors.Join(err, cp.Stop())
	}
	return cp, nil
}

func (cp *ControlPlane) writeKubeconfig() error {
	user, err := cp.env.AddUser(envtest.User{Name: "herald-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the admin kubeconfig: %w", err)
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	return os.WriteFile(cp.Kubeconfig, kc, 0o600)
}

// Stop stops the control plane and removes its files.
func (cp *ControlPlane) Stop() error {
	err := cp.env.Stop()
	if cp.dir != "" {
		err = errors.Join(err, os.RemoveAll(cp.dir))
	}
	return err
}

// RepoRoot finds the repository root: the nearest directory above the working directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from inside the Herald repository")
		}
		dir = parent
	}
}
