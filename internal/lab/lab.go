// Package lab builds a Layer-2 test network of Linux network namespaces joined by a bridge, with a real control
// plane and real processes in the namespaces: the contract is the one of `ip netns`, one namespace per host.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netns"
	"k8s.io/client-go/rest"

	"github.com/heraldlb/herald/internal/controlplane"
)

// The lab's addresses: documentation ranges, never put on an interface of the host's initial namespace.
var (
	Subnet4 = netip.MustParsePrefix("198.51.100.0/24")
	Subnet6 = netip.MustParsePrefix("2001:db8:100::/64")
)

// Host numbers: the last byte of a host's addresses.
const (
	firstOtherNum = 201
	cpHostNum     = 2
	clientHostNum = 3
	firstNodeNum  = 11
	maxNodes      = 254 - firstNodeNum + 1
)

// APIServerPort is the port of the control plane's API server on the cp host.
const APIServerPort = 6443

// Config configures a lab.
type Config struct {
	// Name is the prefix of every namespace, <Name>-<role>; default hl<pid> (hl<pid>x<k> for the k-th lab open
	// at once in this process). Lower-case letters, digits and '-', at most 32 characters.
	Name string
	// Nodes is the number of node namespaces: <prefix>-n1 .. -nN, hosts node1 .. nodeN.
	Nodes int
	// Root is the repository root, whose bin/ holds etcd, kube-apiserver, kubectl and herald; default
	// controlplane.RepoRoot().
	Root string
	// Logs is the directory for process logs and the kubeconfig; default a temporary directory, removed by Close
	// unless Keep.
	Logs string
	// Keep keeps the default Logs directory after Close.
	Keep bool
	// ControlPlane starts etcd and kube-apiserver in the cp namespace.
	ControlPlane bool
	// Bare leaves Herald out of the control plane (its CRDs, namespace, ServiceAccounts and roles, the
	// components' kubeconfigs): for a cluster that installs Herald with its chart (internal/kubenode).
	Bare bool
	// Others names further hosts on the bridge (a rogue host, a flooder): namespace <prefix>-<name>, host
	// numbers 201 and up. Names are lower-case letters and digits, at most 8 characters.
	Others []string
	// Log receives progress; default discards.
	Log logr.Logger
}

// Host is one network namespace with one interface, eth0, on the lab bridge.
type Host struct {
	// Name is "node1".."nodeN", "client" or "cp".
	Name string
	// NS is the network namespace's name.
	NS string
	// Link is its interface on the lab bridge, inside the namespace.
	Link string
	// IPv4 is 198.51.100.<n>/24: cp .2, client .3, nodes .11, .12, ...
	IPv4 netip.Addr
	// IPv6 is 2001:db8:100::<n>/64, the same digits as IPv4's last byte.
	IPv6 netip.Addr
	// MAC is Link's address: 02:00:c6:33:64:<n in hex>.
	MAC net.HardwareAddr

	lab  *Lab
	num  int            // n above
	ns   netns.NsHandle // open for the lab's lifetime
	port string         // Link's peer in the switch namespace, on the bridge

	mu     sync.Mutex // guards extras
	extras int        // links added by AddLink
}

// Lab is a running lab. Close removes it.
type Lab struct {
	// Prefix starts every namespace name.
	Prefix string
	// Switch is the namespace holding the bridge; it has no address.
	Switch string
	// CP is the control plane's host, nil without ControlPlane.
	CP *Host
	// Client is a host for tests to act from.
	Client *Host
	// Nodes are the node hosts.
	Nodes []*Host
	// Others are the hosts Config.Others named, in order.
	Others []*Host
	// Kubeconfig is an admin kubeconfig whose server, https://198.51.100.2:6443, is reachable from inside the lab
	// namespaces only; empty without ControlPlane.
	Kubeconfig string
	// AuditLog is the API server's audit log: every request by Herald's ServiceAccounts (internal/access reads
	// it); empty without ControlPlane.
	AuditLog string
	// Root is the repository root.
	Root string
	// Logs is the directory of the process logs.
	Logs string

	log        logr.Logger
	switchNS   netns.NsHandle
	origin     netns.NsHandle // this process's own namespace, to switch the main thread back to
	rmLogs     bool           // Close removes Logs
	bare       bool           // Config.Bare
	namespaces []string       // created, in order
	hosts      []*Host
	spawner    *spawner
	restConfig *rest.Config // from Kubeconfig, without the dialer

	mu    sync.Mutex // guards procs and closed
	procs []*Proc
	// closed is set by Close; Start refuses then.
	closed bool

	closeOnce sync.Once
	closeErr  error
}

var (
	validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	otherName = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

	prefixesMu sync.Mutex          // guards prefixes
	prefixes   = map[string]bool{} // prefixes of the labs open in this process
)

// New builds a lab: the switch namespace with the bridge, the client and node hosts, and with ControlPlane the cp
// host running etcd and kube-apiserver. It first removes stale labs (CleanStale). On error everything made so far
// is removed. It needs root, and iproute2 (hack/lab-deps.sh installs what the lab uses).
func New(ctx context.Context, cfg Config) (_ *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the lab needs iproute2's ip (run hack/lab-deps.sh): %w", err)
	}
	if cfg.Nodes < 0 || cfg.Nodes > maxNodes {
		return nil, fmt.Errorf("lab nodes %d: want 0 to %d", cfg.Nodes, maxNodes)
	}
	log := cfg.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	if err := CleanStale(); err != nil {
		log.Error(err, "removing stale labs failed")
	}
	prefix, err := claimPrefix(cfg.Name)
	if err != nil {
		return nil, err
	}
	l := &Lab{Prefix: prefix, Switch: prefix + "-sw", Root: cfg.Root, Logs: cfg.Logs, log: log,
		switchNS: netns.None(), origin: netns.None(), bare: cfg.Bare}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if l.Root == "" {
		if l.Root, err = controlplane.RepoRoot(); err != nil {
			return nil, err
		}
	}
	if l.Logs == "" {
		if l.Logs, err = os.MkdirTemp("", "herald-lab-"+prefix+"-"); err != nil {
			return nil, fmt.Errorf("creating the lab's log directory: %w", err)
		}
		l.rmLogs = !cfg.Keep
	} else if err := os.MkdirAll(l.Logs, 0o755); err != nil {
		return nil, fmt.Errorf("creating the lab's log directory: %w", err)
	}
	if l.origin, err = netns.Get(); err != nil {
		return nil, fmt.Errorf("opening this process's network namespace: %w", err)
	}
	l.spawner = newSpawner()
	if err := l.buildSwitch(ctx); err != nil {
		return nil, err
	}
	if cfg.ControlPlane {
		if l.CP, err = l.addHost(ctx, "cp", "cp", cpHostNum); err != nil {
			return nil, err
		}
	}
	if l.Client, err = l.addHost(ctx, "client", "client", clientHostNum); err != nil {
		return nil, err
	}
	for i, name := range cfg.Others {
		if !otherName.MatchString(name) || name == "client" || name == "cp" || strings.HasPrefix(name, "node") || name == "sw" {
			return nil, fmt.Errorf("lab host name %q: want 1 to 8 lower-case letters and digits, not a name the lab uses", name)
		}
		h, err := l.addHost(ctx, name, name, firstOtherNum+i)
		if err != nil {
			return nil, err
		}
		l.Others = append(l.Others, h)
	}
	for i := 1; i <= cfg.Nodes; i++ {
		h, err := l.addHost(ctx, fmt.Sprintf("node%d", i), fmt.Sprintf("n%d", i), firstNodeNum+i-1)
		if err != nil {
			return nil, err
		}
		l.Nodes = append(l.Nodes, h)
	}
	log.Info("lab network ready", "prefix", prefix, "nodes", cfg.Nodes, "logs", l.Logs)
	if cfg.ControlPlane {
		if err := l.startControlPlane(ctx); err != nil {
			return nil, err
		}
		log.Info("lab control plane ready", "kubeconfig", l.Kubeconfig)
	}
	return l, nil
}

// claimPrefix picks the lab's namespace prefix and checks no namespace uses it yet.
func claimPrefix(name string) (string, error) {
	prefixesMu.Lock()
	defer prefixesMu.Unlock()
	if name == "" {
		name = fmt.Sprintf("hl%d", os.Getpid())
		for k := 2; prefixes[name]; k++ {
			name = fmt.Sprintf("hl%dx%d", os.Getpid(), k)
		}
	}
	if !validName.MatchString(name) {
		return "", fmt.Errorf("lab name %q: want lower-case letters, digits and '-', at most 32 characters", name)
	}
	if prefixes[name] {
		return "", fmt.Errorf("a lab named %q is open in this process", name)
	}
	existing, err := listNetns()
	if err != nil {
		return "", err
	}
	for _, ns := range existing {
		if strings.HasPrefix(ns, name+"-") {
			return "", fmt.Errorf("network namespace %s exists: a lab named %q runs, or was left behind (ip netns delete it)", ns, name)
		}
	}
	prefixes[name] = true
	return name, nil
}

// Hosts are every host of the lab: cp (if any), client, nodes.
func (l *Lab) Hosts() []*Host { return append([]*Host(nil), l.hosts...) }

// Bin is the path of a binary in the repository's bin/.
func (l *Lab) Bin(name string) string { return filepath.Join(l.Root, "bin", name) }

// Close stops every process the lab started (the control plane with SIGTERM, so that it stops etcd and
// kube-apiserver, the others with SIGKILL to their process group), kills whatever still runs in the lab's
// namespaces, deletes the namespaces and, unless kept, the log directory. It is idempotent.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	procs := append([]*Proc(nil), l.procs...)
	l.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if p.graceful {
			_ = p.Signal(syscall.SIGTERM)
		} else {
			_ = p.Kill()
		}
	}
	for _, p := range procs {
		grace := 5 * time.Second
		if p.graceful {
			grace = 30 * time.Second
		}
		select {
		case <-p.done:
		case <-time.After(grace):
			l.log.Info("process did not stop in time: killing it", "process", p.name, "pid", p.Pid())
			_ = p.Kill()
			<-p.done
		}
	}
	// What the processes started and left (etcd and kube-apiserver after a killed control-plane child, daemons
	// of a test) is found by namespace.
	for _, ns := range l.namespaces {
		if err := killNetns(ns, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range l.hosts {
		_ = h.ns.Close()
	}
	if l.switchNS.IsOpen() {
		_ = l.switchNS.Close()
	}
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		errs = append(errs, delNetns(l.namespaces[i]))
	}
	if l.origin.IsOpen() {
		_ = l.origin.Close()
	}
	if l.spawner != nil {
		l.spawner.stop()
	}
	if l.rmLogs {
		errs = append(errs, os.RemoveAll(l.Logs))
	}
	prefixesMu.Lock()
	delete(prefixes, l.Prefix)
	prefixesMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing lab %s: %w", l.Prefix, err)
	}
	return nil
}

// Port is the name of h's bridge port: the peer of h's Link in the Switch namespace. Rules on it act as the
// switch port h is plugged into.
func (h *Host) Port() string { return h.port }

// Do runs fn on a locked OS thread switched into h's network namespace. Sockets opened in fn stay in the
// namespace and may be used from any goroutine afterwards. The thread is discarded after fn.
func (h *Host) Do(fn func() error) error {
	if err := inNetns(h.ns, h.lab.origin, fn); err != nil {
		return fmt.Errorf("in %s (%s): %w", h.Name, h.NS, err)
	}
	return nil
}

// DialContext opens a connection from inside h's namespace, like net.Dialer.DialContext.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := dialIn(ctx, h.ns, h.lab.origin, network, address)
	if err != nil {
		return nil, fmt.Errorf("dialing %s %s from %s: %w", network, address, h.Name, err)
	}
	return c, nil
}

// Run runs name with argv inside h's namespace (`ip netns exec`) and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, argv ...string) ([]byte, error) {
	return h.RunInput(ctx, "", name, argv...)
}

// RunInput is Run with stdin.
func (h *Host) RunInput(ctx context.Context, stdin, name string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, argv...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("running %s in %s: %w: %s", strings.Join(append([]string{name}, argv...), " "), h.Name,
			err, tail(out))
	}
	return out, nil
}

// Interface looks up a link of h by name, from inside its namespace.
func (h *Host) Interface(name string) (*net.Interface, error) {
	var ifi *net.Interface
	err := h.Do(func() error {
		var err error
		ifi, err = net.InterfaceByName(name)
		return err
	})
	return ifi, err
}

// tail shortens command output for an error message.
func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}
