package kubenode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/internal/lab"
)

// cniBinDir is where Debian's containernetworking-plugins puts the plugins.
const cniBinDir = "/usr/lib/cni"

// containerdTimeout bounds the wait for a node's containerd to serve.
const containerdTimeout = time.Minute

// containerdConfig is a node's containerd configuration (version 2, containerd 1.6): everything it writes is under
// the node's root and state dirs, sandboxes' network namespaces included (netns_mounts_under_state_dir), so that
// nodes share nothing. restrict_oom_score_adj: the lab runs without CAP_SYS_RESOURCE, so runc cannot raise a
// container's oom_score_adj above its own.
const containerdConfig = `version = 2
root = "%[1]s/containerd"
state = "%[2]s/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "%[2]s/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[3]s"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "%[2]s/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "` + cniBinDir + `"
    conf_dir = "%[2]s/cni"
`

// cniConfig is a node's pod network: a bridge, cni0, in the node's namespace, the node's PodCIDR from host-local
// (its allocations under the node's state dir), pods routed by the node. The network's name, the cluster's,
// prefixes the files libcni caches under /var/lib/cni/results, which Close removes.
const cniConfig = `{
  "cniVersion": "0.4.0",
  "name": "%[1]s",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "%[2]s"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "%[3]s/ipam"}}
  ]
}
`

// kubeletConfig is a node's kubelet configuration. cgroup v1 (these machines) needs failCgroupV1: false since
// 1.35; the cgroupfs driver with a cgroup root of the node's own, made beforehand (makeCgroup). Image garbage
// collection is off (no registry can give an imported image back) and the eviction thresholds are low, since the
// nodes share one disk and memory with the machine.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://%[2]s/containerd.sock
address: %[3]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
failSwapOn: false
clusterDomain: cluster.local
resolvConf: ""
oomScoreAdj: 0
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 1Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
podLogsDir: %[4]s/pod-logs
volumePluginDir: %[4]s/volume-plugins
localStorageCapacityIsolation: false
serializeImagePulls: false
maxPods: 30
nodeStatusUpdateFrequency: 2s
`

// proxyConfig is a node's kube-proxy configuration: nftables mode; the conntrack table's size and timeouts, which
// are the machine's, are left alone.
const proxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: %[1]s}
hostnameOverride: %[2]s
clusterCIDR: %[3]s
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`

// Socket is the path of the node's containerd socket.
func (n *Node) Socket() string { return filepath.Join(n.state, "containerd.sock") }

// start starts the node's containerd, imports the images, and starts its kubelet and kube-proxy.
func (n *Node) start(ctx context.Context, cfg Config) error {
	l := n.c.lab
	for _, d := range []string{n.state, n.data, filepath.Join(n.state, "cni")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := makeCgroup(n.cgroup + "/system"); err != nil {
		return err
	}
	if err := n.Host.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		return err
	}
	files := map[string]string{
		"containerd.toml":        fmt.Sprintf(containerdConfig, n.data, n.state, cfg.SandboxImage),
		"cni/10-herald.conflist": fmt.Sprintf(cniConfig, n.c.name, n.PodCIDR, n.state),
		"kubelet.yaml":           fmt.Sprintf(kubeletConfig, n.cgroup, n.state, n.Host.IPv4, n.data),
		"kube-proxy.yaml":        fmt.Sprintf(proxyConfig, l.Kubeconfig, n.Name, ClusterCIDR),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(n.state, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	var err error
	if n.Containerd, err = n.startAgent(n.Name+"-containerd", "containerd",
		"--config", filepath.Join(n.state, "containerd.toml")); err != nil {
		return err
	}
	if err := n.waitContainerd(ctx); err != nil {
		return err
	}
	for _, img := range cfg.Images {
		if err := n.Import(ctx, img); err != nil {
			return err
		}
	}
	if n.Kubelet, err = n.startAgent(n.Name+"-kubelet", l.Bin("kubelet"),
		"--config="+filepath.Join(n.state, "kubelet.yaml"), "--kubeconfig="+l.Kubeconfig,
		"--hostname-override="+n.Name, "--node-ip="+n.Host.IPv4.String(),
		"--root-dir="+filepath.Join(n.data, "kubelet"), "--v=1"); err != nil {
		return err
	}
	n.Proxy, err = n.startAgent(n.Name+"-kube-proxy", l.Bin("kube-proxy"),
		"--config="+filepath.Join(n.state, "kube-proxy.yaml"))
	return err
}

// startAgent starts one of the node's agents in the node's namespace (network only: see lab.StartNetOnly) and
// moves it into the node's cgroup, where the containerd shims it starts stay too.
func (n *Node) startAgent(name string, argv ...string) (*lab.Proc, error) {
	p, err := n.c.lab.StartNetOnly(n.Host, name, nil, argv...)
	if err != nil {
		return nil, err
	}
	if err := addToCgroup(n.cgroup+"/system", p.Pid()); err != nil {
		return nil, errors.Join(err, p.Kill())
	}
	return p, nil
}

// ctr runs containerd's ctr against the node's containerd, in its k8s.io namespace (the CRI's).
func (n *Node) ctr(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, "ctr", append([]string{"--address", n.Socket(), "--namespace", "k8s.io"},
		args...)...).CombinedOutput()
}

// waitContainerd waits until the node's containerd answers.
func (n *Node) waitContainerd(ctx context.Context) error {
	deadline := time.Now().Add(containerdTimeout)
	for {
		out, err := n.ctr(ctx, "version")
		if err == nil {
			return nil
		}
		if n.Containerd.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("containerd of %s does not serve: %v: %s; its log %s ends:\n%s", n.Name, err,
				strings.TrimSpace(string(out)), n.Containerd.Log(), n.Containerd.LogTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Import imports an image tarball into the node's containerd (its k8s.io namespace, the CRI's).
func (n *Node) Import(ctx context.Context, tarball string) error {
	if out, err := n.ctr(ctx, "images", "import", "--platform", "linux/amd64", tarball); err != nil {
		return fmt.Errorf("importing %s into %s: %w: %s", tarball, n.Name, err, out)
	}
	return nil
}

// KillContainer kills the task of a container (its id from the Pod's status, without "containerd://") with
// SIGKILL, as `kill -9` of its process would; the kubelet sees it exit.
func (n *Node) KillContainer(ctx context.Context, id string) error {
	if out, err := n.ctr(ctx, "tasks", "kill", "--signal", "SIGKILL", id); err != nil {
		return fmt.Errorf("killing container %s on %s: %w: %s", id, n.Name, err, out)
	}
	return nil
}

// PowerOff takes the node down as a power loss does: every process of the node (containerd, the kubelet,
// kube-proxy, the shims and every container) is frozen and killed at once, and its link goes down, so that peers
// see its addresses time out. The node cannot be started again.
func (n *Node) PowerOff() error {
	var errs []error
	freezer := filepath.Join(cgroupBase, "freezer", n.cgroup, "freezer.state")
	errs = append(errs, os.WriteFile(freezer, []byte("FROZEN"), 0o644))
	errs = append(errs, n.c.lab.SetLink(n.Host, false))
	errs = append(errs, signalCgroup(n.cgroup, syscall.SIGKILL))
	errs = append(errs, os.WriteFile(freezer, []byte("THAWED"), 0o644))
	errs = append(errs, waitCgroupEmpty(n.cgroup, 10*time.Second))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("powering %s off: %w", n.Name, err)
	}
	return nil
}
