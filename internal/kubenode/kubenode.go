// Package kubenode turns the lab's node namespaces (internal/lab) into real Kubernetes nodes, laid out as kind lays
// out its nodes: each runs containerd (Debian's, with runc and the CNI plugins), a kubelet and kube-proxy in
// nftables mode, with its own root dirs, sockets and cgroup root; kube-controller-manager and kube-scheduler run
// beside the API server. Pod networks are routed between the nodes over the lab bridge.
package kubenode

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/lab"
)

// ClusterCIDR is the pod network: node i (from 1) gets 198.18.<64+i>.0/24 (PodCIDR). It is inside 198.18.0.0/15,
// outside the Services' 198.19.0.0/16 (internal/controlplane).
var ClusterCIDR = netip.MustParsePrefix("198.18.64.0/18")

// ServiceCIDR is the API server's IPv4 Service range.
const ServiceCIDR = controlplane.ServiceCIDRv4

// Where the nodes keep their files: stateBase for sockets, configurations and containerd's state, dataBase for
// containerd's and the kubelet's root dirs; each in a directory named after the lab.
var (
	stateBase = "/run/herald-kubenode"
	dataBase  = "/var/lib/herald-kubenode"
)

// readyTimeout bounds the wait for every node to turn Ready: containerd, the image imports, the kubelets and
// kube-proxies start on a shared two-core machine.
const readyTimeout = 4 * time.Minute

// Config configures Start.
type Config struct {
	// Images are image tarballs (an OCI layout or `docker save` output, as hack/tools/image writes them) imported
	// into every node's containerd. One must hold SandboxImage.
	Images []string
	// SandboxImage is the image of the pods' sandbox (pause) containers, from Images: no registry is reachable.
	SandboxImage string
	// Log receives progress; default discards.
	Log logr.Logger
}

// Cluster is the nodes of a lab and the controllers beside its API server. Close stops them and undoes every
// change they made to the machine.
type Cluster struct {
	// Nodes are the lab's nodes, in order.
	Nodes []*Node
	// Client is a client for the lab's API server, usable from this process's namespace.
	Client kubernetes.Interface

	lab            *lab.Lab
	name           string // herald-kubenode-<prefix>: the cgroups' prefix
	state, data    string // this cluster's directories under stateBase and dataBase
	log            logr.Logger
	ctrlMgr, sched *lab.Proc
	saved          map[string]string // host sysctls the kubelet changes, as found

	closeOnce sync.Once
	closeErr  error
}

// Node is one lab node turned into a Kubernetes node.
type Node struct {
	// Name is the Node's name, the lab host's: node1, node2, ...
	Name string
	// Host is the lab host.
	Host *lab.Host
	// PodCIDR is the node's pod network.
	PodCIDR netip.Prefix
	// Containerd, Kubelet and Proxy are the node's agents.
	Containerd, Kubelet, Proxy *lab.Proc

	c           *Cluster
	state, data string // the node's directories
	cgroup      string // the kubelet's cgroupRoot, in every cgroup v1 hierarchy
}

// Start turns every node of l, which must have a bare control plane (lab.Config{ControlPlane: true, Bare: true}),
// into a Kubernetes node and waits until all are Ready. What an earlier run left behind when its process died is
// removed first. On error everything started is stopped. It needs root and the packages of hack/lab-deps.sh, and
// bin/ must hold kubelet, kube-proxy, kube-controller-manager and kube-scheduler (hack/tools.sh nodes).
func Start(ctx context.Context, l *lab.Lab, cfg Config) (_ *Cluster, err error) {
	if l.CP == nil || l.Kubeconfig == "" {
		return nil, errors.New("kubenode: the lab needs a control plane")
	}
	for _, b := range []string{"kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(l.Bin(b)); err != nil {
			return nil, fmt.Errorf("kubenode: %s missing: run hack/tools.sh nodes (make nodes): %w", b, err)
		}
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("kubenode: %s missing: run hack/lab-deps.sh (make lab-deps): %w", b, err)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			return nil, fmt.Errorf("kubenode: CNI plugin %s missing: run hack/lab-deps.sh (make lab-deps): %w", p, err)
		}
	}
	if cfg.SandboxImage == "" {
		return nil, errors.New("kubenode: Config.SandboxImage is required")
	}
	log := cfg.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	if err := CleanStale(); err != nil {
		log.Error(err, "removing what earlier real-node labs left failed")
	}
	c := &Cluster{lab: l, name: "herald-kubenode-" + l.Prefix, state: filepath.Join(stateBase, l.Prefix),
		data: filepath.Join(dataBase, l.Prefix), log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := c.claim(); err != nil {
		return nil, err
	}
	kc, err := os.ReadFile(l.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubenode: reading the kubeconfig: %w", err)
	}
	rc := l.RESTConfig()
	if c.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, err
	}
	apiCfg, err := clientcmd.Load(kc)
	if err != nil {
		return nil, fmt.Errorf("kubenode: parsing the kubeconfig: %w", err)
	}
	var ca []byte
	for _, cl := range apiCfg.Clusters {
		ca = cl.CertificateAuthorityData
	}
	caFile := filepath.Join(c.state, "ca.crt")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		return nil, err
	}
	if err := c.startControllers(caFile); err != nil {
		return nil, err
	}
	for i, h := range l.Nodes {
		n := &Node{Name: h.Name, Host: h, c: c,
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(64 + i + 1), 0}), 24),
			state:   filepath.Join(c.state, h.Name), data: filepath.Join(c.data, h.Name),
			cgroup: "/" + c.name + "-" + h.Name}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.routes(ctx); err != nil {
		return nil, err
	}
	// The nodes start one after another: containerd's image import and the kubelet's start are the heavy part,
	// and the machine has two cores.
	for _, n := range c.Nodes {
		if err := n.start(ctx, cfg); err != nil {
			return nil, fmt.Errorf("kubenode: starting %s: %w", n.Name, err)
		}
		log.Info("node started", "node", n.Name, "podCIDR", n.PodCIDR)
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	log.Info("real nodes ready", "nodes", len(c.Nodes))
	return c, nil
}

// claim makes the cluster's directories and records its owner and the host sysctls the kubelets will change, so
// that CleanStale can undo the run should this process die before Close.
func (c *Cluster) claim() error {
	for _, d := range []string{c.state, c.data} {
		if _, err := os.Stat(d); err == nil {
			return fmt.Errorf("kubenode: %s exists: a real-node lab named %s runs", d, c.lab.Prefix)
		}
	}
	var err error
	if c.saved, err = readSysctls(kubeletSysctls); err != nil {
		return err
	}
	var b strings.Builder
	for _, k := range kubeletSysctls {
		fmt.Fprintf(&b, "%s=%s\n", k, c.saved[k])
	}
	// The state dir appears with its owner file in it (a rename), so that CleanStale never sees it ownerless.
	if err := os.MkdirAll(stateBase, 0o755); err != nil {
		return fmt.Errorf("kubenode: %w", err)
	}
	tmp, err := os.MkdirTemp(stateBase, ".claim-")
	if err != nil {
		return fmt.Errorf("kubenode: %w", err)
	}
	err = errors.Join(
		os.WriteFile(filepath.Join(tmp, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644),
		os.WriteFile(filepath.Join(tmp, sysctlFile), []byte(b.String()), 0o644))
	if err == nil {
		err = os.Rename(tmp, c.state)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("kubenode: claiming %s: %w", c.state, err), os.RemoveAll(tmp))
	}
	if err := os.MkdirAll(c.data, 0o755); err != nil {
		return fmt.Errorf("kubenode: %w", err)
	}
	return nil
}

// startControllers starts kube-controller-manager and kube-scheduler in the control plane's namespace.
func (c *Cluster) startControllers(caFile string) error {
	l := c.lab
	var err error
	c.ctrlMgr, err = l.Start(l.CP, "kube-controller-manager", nil, l.Bin("kube-controller-manager"),
		"--kubeconfig="+l.Kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1",
		"--cert-dir="+filepath.Join(c.state, "kcm"), "--root-ca-file="+caFile,
		"--service-cluster-ip-range="+ServiceCIDR, "--cluster-cidr="+ClusterCIDR.String(),
		"--allocate-node-cidrs=false", "--use-service-account-credentials=false",
		// A node that stops reporting turns NotReady 20 s later (the default is 50 s).
		"--node-monitor-grace-period=20s", "--node-monitor-period=2s")
	if err != nil {
		return err
	}
	c.sched, err = l.Start(l.CP, "kube-scheduler", nil, l.Bin("kube-scheduler"),
		"--kubeconfig="+l.Kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1",
		"--cert-dir="+filepath.Join(c.state, "scheduler"))
	return err
}

// routes sends every node's pod network to that node, from every other node and from the control plane (pods
// reach the API server through kube-proxy without masquerading). Nodes route the Services' range to the control
// plane's host, which forwards nothing: a socket needs a route to a ClusterIP before kube-proxy's DNAT rewrites
// the packet, as a host-network pod's connection to the API server's Service does; nodes have no default route.
func (c *Cluster) routes(ctx context.Context) error {
	for _, n := range c.Nodes {
		if _, err := n.Host.Run(ctx, "ip", "route", "add", ServiceCIDR, "via", c.lab.CP.IPv4.String()); err != nil {
			return fmt.Errorf("kubenode: routing the Services' range: %w", err)
		}
	}
	for _, h := range append([]*lab.Host{c.lab.CP}, c.lab.Nodes...) {
		for _, n := range c.Nodes {
			if n.Host == h {
				continue
			}
			if _, err := h.Run(ctx, "ip", "route", "add", n.PodCIDR.String(), "via", n.Host.IPv4.String()); err != nil {
				return fmt.Errorf("kubenode: routing %s: %w", n.PodCIDR, err)
			}
		}
	}
	return nil
}

// waitReady waits until every node is Ready.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		var notReady []string
		for _, n := range c.Nodes {
			if ok, why := n.ready(ctx); !ok {
				notReady = append(notReady, n.Name+": "+why)
			}
			for _, p := range []*lab.Proc{n.Containerd, n.Kubelet, n.Proxy} {
				if p.Exited() {
					return fmt.Errorf("kubenode: %s exited: %v; its log %s ends:\n%s", filepath.Base(p.Log()), p.Wait(),
						p.Log(), p.LogTail())
				}
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubenode: nodes not ready (%s): %w; kubelet log %s ends:\n%s",
				strings.Join(notReady, "; "), ctx.Err(), c.Nodes[0].Kubelet.Log(), c.Nodes[0].Kubelet.LogTail())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ready tells whether the Node is Ready, and if not why.
func (n *Node) ready(ctx context.Context) (bool, string) {
	node, err := n.c.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue, cond.Message
		}
	}
	return false, "no Ready condition yet"
}

// PodLogs returns the end (up to lines lines) of the logs of every container of namespace ns that ran on the
// nodes, by "node/pod/container/N.log": read from the nodes' files, which Close removes.
func (c *Cluster) PodLogs(ns string, lines int) map[string]string {
	out := map[string]string{}
	for _, n := range c.Nodes {
		files, _ := filepath.Glob(filepath.Join(n.data, "pod-logs", ns+"_*", "*", "*.log"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if len(ls) > lines {
				ls = ls[len(ls)-lines:]
			}
			rel, _ := filepath.Rel(filepath.Join(n.data, "pod-logs"), f)
			out[n.Name+"/"+rel] = strings.Join(ls, "\n")
		}
	}
	return out
}

// Close stops the controllers and every node's agents and containers, unmounts what they mounted, removes their
// cgroups, files and CNI state, and restores the host sysctls the kubelets changed. Close the lab afterwards. It
// is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for _, p := range []*lab.Proc{c.ctrlMgr, c.sched} {
			if p != nil {
				errs = append(errs, p.Kill())
			}
		}
		for _, n := range c.Nodes {
			if n.Kubelet != nil {
				errs = append(errs, n.Kubelet.Kill())
			}
		}
		errs = append(errs, cleanup(c.name, c.state, c.data))
		if c.saved != nil {
			errs = append(errs, writeSysctls(c.saved))
		}
		errs = append(errs, os.RemoveAll(c.state), os.RemoveAll(c.data))
		removeEmpty(stateBase, dataBase)
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
