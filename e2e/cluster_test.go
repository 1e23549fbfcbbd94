package e2e

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/kubenode"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
	"github.com/heraldlb/herald/speaker"
)

// heraldBin is the herald binary built from this tree for the lab's processes.
var heraldBin string

func TestMain(m *testing.M) {
	if handled, code := lab.Child(); handled {
		os.Exit(code)
	}
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // the test's own clients log nothing worth reading
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() || os.Geteuid() != 0 {
		return m.Run() // every test skips (or fails under CI=true) on its own
	}
	// What a real-node run killed before its cleanup left (pods' processes, mounts, cgroups, sysctls): undone
	// here as well as by the next real-node run.
	if err := kubenode.CleanStale(); err != nil {
		fmt.Fprintln(os.Stderr, "removing what earlier real-node labs left:", err)
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The pid in the name lets lab.CleanStale remove the directory if this process is killed.
	dir, err := os.MkdirTemp("", fmt.Sprintf("herald-e2e-bin-%d-", os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	heraldBin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", heraldBin, "./cmd/herald")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building herald: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if path := os.Getenv(envAccessReport); path != "" {
		if err := writeAccessReport(root, path); err != nil {
			fmt.Fprintf(os.Stderr, "writing the access report: %v\n", err)
			return 1
		}
	}
	return code
}

// needLab skips a test that needs root and the lab, except under CI=true, where it must run.
func needLab(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("end-to-end tests need root (network namespaces), and CI=true says they must run")
		}
		t.Skip("end-to-end tests need root (network namespaces)")
	}
}

// Addresses of the lab's pools. The lab subnet is 198.51.100.0/24 and 2001:db8:100::/64 on every node's eth0.
const (
	poolV4   = "198.51.100.100-198.51.100.199"
	poolV6   = "2001:db8:100::100-2001:db8:100::1ff"
	bulkPool = "198.18.0.0/23" // no node has this subnet: announced on the interface the advertisement names
	webPort  = 8080
)

// cluster is a lab with the control plane, the controller and one speaker per node.
type cluster struct {
	t       testing.TB
	ctx     context.Context
	lab     *lab.Lab
	c       client.Client
	ctrl    *lab.Proc
	speaker map[string]*lab.Proc // by node name
	hosts   map[string]*lab.Host // by node name
	p4, p6  *probe.Prober        // on the client
	extra   []string             // extra speaker flags
	// authzWarmups are the stretches after a restart of kube-apiserver (TestSoak) when it refuses requests its
	// roles allow, until its RBAC authorizer's caches fill: checkAccess counts those 403s apart.
	authzWarmups []span
}

func newCluster(t testing.TB, nodes int, speakerFlags ...string) *cluster {
	t.Helper()
	return newClusterWith(t, nodes, nil, speakerFlags...)
}

// newClusterWith is newCluster with further hosts on the bridge (lab.Config.Others).
func newClusterWith(t testing.TB, nodes int, others []string, speakerFlags ...string) *cluster {
	t.Helper()
	needLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l, err := lab.New(ctx, lab.Config{Nodes: nodes, ControlPlane: true, Others: others, Keep: os.Getenv("HERALD_E2E_KEEP") != ""})
	if err != nil {
		t.Fatalf("building the lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs were in %s", l.Logs)
		}
		if err := l.Close(); err != nil {
			t.Errorf("closing the lab: %v", err)
		}
	})
	scheme, err := speaker.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	rc := l.RESTConfig()
	rc.QPS, rc.Burst = 500, 1000 // client-go's default 5 QPS would make creating 200 Services take 40 s
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// herald-system, the components' ServiceAccounts and their RBAC are the lab's (config/, installed by
	// lab.New); the test acts as an admin.
	cl := &cluster{t: t, ctx: ctx, lab: l, c: c, speaker: map[string]*lab.Proc{}, hosts: map[string]*lab.Host{}, extra: speakerFlags}
	// Runs before the lab closes: the audit log is in its logs.
	t.Cleanup(func() { checkAccess(t, l.AuditLog, cl.authzWarmups) })
	for _, h := range l.Nodes {
		cl.hosts[h.Name] = h
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.Name, Labels: map[string]string{"kubernetes.io/hostname": h.Name}}}
		cl.create(n)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: h.IPv4.String()}, {Type: corev1.NodeHostName, Address: h.Name}}
		if err := c.Status().Update(ctx, n); err != nil {
			t.Fatalf("setting Node %s addresses: %v", h.Name, err)
		}
	}
	if err := cl.startController(); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Nodes {
		cl.startSpeaker(h.Name)
	}
	cl.openProbers()
	cl.waitMembers(nodes)
	return cl
}

// openProbers opens the client's IPv4 and IPv6 probers on its lab link, closed when the test ends.
func (c *cluster) openProbers() {
	c.t.Helper()
	l := c.lab
	if err := l.Client.Do(func() error {
		ifi, err := net.InterfaceByName(l.Client.Link)
		if err != nil {
			return err
		}
		if c.p4, err = probe.New(wire.InterfaceOf(ifi), l.Client.IPv4); err != nil {
			return err
		}
		c.p6, err = probe.New(wire.InterfaceOf(ifi), l.Client.IPv6)
		return err
	}); err != nil {
		c.t.Fatalf("opening the client's probers: %v", err)
	}
	c.t.Cleanup(func() { c.p4.Close(); c.p6.Close() })
}

// startController starts (or restarts) the controller.
func (c *cluster) startController() error {
	l := c.lab
	p, err := l.StartConfined(l.CP, "controller-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil, lab.ControllerConfinement,
		heraldBin, "controller", "--kubeconfig", l.ComponentKubeconfig(controlplane.Controller),
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0")
	if err != nil {
		return fmt.Errorf("starting the controller: %w", err)
	}
	c.ctrl = p
	return nil
}

// startSpeaker starts (or restarts) the speaker of a node.
func (c *cluster) startSpeaker(node string) {
	c.t.Helper()
	if err := c.startSpeakerErr(node); err != nil {
		c.t.Fatal(err)
	}
}

// startSpeakerErr is startSpeaker, for goroutines other than the test's.
func (c *cluster) startSpeakerErr(node string) error {
	h := c.hosts[node]
	args := append([]string{"speaker", "--kubeconfig", c.lab.ComponentKubeconfig(controlplane.Speaker), "--node-name", node,
		"--bind-address", h.IPv4.String(), "--metrics-bind-address", net.JoinHostPort(h.IPv4.String(), "9122"),
		"--health-probe-bind-address=0",
		// The fault scenarios count moves, and a fail-back (30 s after a node returns, by default) would move
		// addresses between them. The tests of fail-back and handoffs give --failback-after themselves.
		"--failback-after=0"}, c.extra...)
	p, err := c.lab.StartConfined(h, "speaker-"+node+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil,
		lab.SpeakerConfinement, append([]string{heraldBin}, args...)...)
	if err != nil {
		return fmt.Errorf("starting the speaker of %s: %w", node, err)
	}
	c.speaker[node] = p
	return nil
}

// metric reads one unlabelled metric from a node's speaker.
func (c *cluster) metric(node, name string) (float64, error) {
	body, err := c.metrics(node)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not exported by %s", name, node)
}

// onLo puts addr on lo of node (its kernel then answers ARP for it, without strict ARP) and returns the undo,
// which may be called more than once.
func (c *cluster) onLo(node string, addr netip.Addr) func() {
	c.t.Helper()
	h := c.hosts[node]
	if out, err := h.Run(c.ctx, "ip", "addr", "add", addr.String()+"/32", "dev", "lo"); err != nil {
		c.t.Fatalf("adding %s to lo on %s: %v %s", addr, node, err, out)
	}
	removed := false
	return func() {
		if !removed {
			removed = true
			if out, err := h.Run(c.ctx, "ip", "addr", "del", addr.String()+"/32", "dev", "lo"); err != nil {
				c.t.Errorf("removing %s from lo on %s: %v %s", addr, node, err, out)
			}
		}
	}
}

// waitMembers waits until every running speaker sees n members.
func (c *cluster) waitMembers(n int) {
	c.t.Helper()
	c.eventually(60*time.Second, fmt.Sprintf("every speaker sees %d members", n), func() (bool, string) {
		for node, p := range c.speaker {
			if p.Exited() {
				return false, fmt.Sprintf("the speaker of %s exited:\n%s", node, p.LogTail())
			}
			v, err := c.metric(node, "herald_speaker_members")
			if err != nil {
				return false, err.Error()
			}
			if int(v) != n {
				return false, fmt.Sprintf("%s sees %v members", node, v)
			}
		}
		return true, ""
	})
}

// ticks calls fn every d until ctx ends.
func ticks(ctx context.Context, d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// eventually polls cond every 100 ms until it holds or the timeout passes.
func (c *cluster) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(c.ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, why := cond()
		last = why
		return ok, nil
	})
	if err != nil {
		c.t.Fatalf("waiting %v for %s: %v (last: %s)", timeout, what, err, last)
	}
}

func (c *cluster) create(obj client.Object) {
	c.t.Helper()
	if err := c.c.Create(c.ctx, obj); err != nil {
		c.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func (c *cluster) delete(obj client.Object) {
	c.t.Helper()
	if err := c.c.Delete(c.ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		c.t.Fatalf("deleting %T %s: %v", obj, obj.GetName(), err)
	}
}

// pool creates an IPAddressPool and an L2Advertisement announcing it (interfaces and node selector optional),
// removed when the test ends.
func (c *cluster) pool(name string, addrs []string, advMut ...func(*heraldv1.L2Advertisement)) {
	c.t.Helper()
	p := &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.AutoAssign = ptr.To(false)
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, heraldv1.AddressRange(a))
	}
	c.create(p)
	adv := &heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	adv.Spec.IPAddressPools = []string{name}
	for _, m := range advMut {
		m(adv)
	}
	c.create(adv)
	c.t.Cleanup(func() { c.delete(adv); c.delete(p) })
}

// service creates a LoadBalancer Service drawing from pool and waits for its addresses.
func (c *cluster) service(ns, name, pool string, mut ...func(*corev1.Service)) (*corev1.Service, []netip.Addr) {
	c.t.Helper()
	if err := c.c.Get(c.ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
		c.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	s := serviceObject(ns, name, pool, mut...)
	c.create(s)
	var addrs []netip.Addr
	c.eventually(30*time.Second, "addresses for "+ns+"/"+name, func() (bool, string) {
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return false, err.Error()
		}
		addrs = addrs[:0]
		for _, in := range s.Status.LoadBalancer.Ingress {
			addrs = append(addrs, netip.MustParseAddr(in.IP))
		}
		return len(addrs) > 0, "no address yet"
	})
	return s, addrs
}

// serviceObject is the LoadBalancer Service c.service creates, with TCP and UDP port 80.
func serviceObject(ns, name, pool string, mut ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Annotations: map[string]string{"herald.dev/ip-pool": pool}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromInt32(webPort), Protocol: corev1.ProtocolTCP},
				{Name: "udp", Port: 80, TargetPort: intstr.FromInt32(webPort), Protocol: corev1.ProtocolUDP}}}}
	for _, m := range mut {
		m(s)
	}
	return s
}

// announcer waits for the Service's Announcement to name an announcing node (other than not, when given) and
// returns it.
func (c *cluster) announcer(s *corev1.Service, not string) (string, *heraldv1.Announcement) {
	c.t.Helper()
	var an heraldv1.Announcement
	c.eventually(30*time.Second, "an announcer for "+s.Name, func() (bool, string) {
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(s), &an); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(an.Status.Conditions, speaker.ConditionAnnounced)
		if cond == nil || cond.Status != metav1.ConditionTrue || an.Status.Node == not {
			return false, fmt.Sprintf("status %+v", an.Status)
		}
		return true, ""
	})
	return an.Status.Node, &an
}

// responders asks from the client who answers for addr, and returns the distinct MACs.
func (c *cluster) responders(addr netip.Addr) []string {
	c.t.Helper()
	macs, err := c.respondersErr(addr)
	if err != nil {
		c.t.Fatal(err)
	}
	return macs
}

// respondersErr is responders, for goroutines other than the test's.
func (c *cluster) respondersErr(addr netip.Addr) ([]string, error) {
	p := c.p4
	if addr.Is6() {
		p = c.p6
	}
	replies, err := p.Once(c.ctx, addr, 300*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("probing %s: %w", addr, err)
	}
	var macs []string
	for _, r := range replies {
		if m := r.MAC.String(); !slices.Contains(macs, m) {
			macs = append(macs, m)
		}
	}
	slices.Sort(macs)
	return macs, nil
}

// waitResponder waits until exactly one MAC answers for addr and it is want.
func (c *cluster) waitResponder(addr netip.Addr, want net.HardwareAddr) {
	c.t.Helper()
	c.eventually(20*time.Second, fmt.Sprintf("%s answered by %s alone", addr, want), func() (bool, string) {
		got := c.responders(addr)
		return len(got) == 1 && got[0] == want.String(), fmt.Sprintf("responders %v", got)
	})
}

// settled waits until the node the Service's Announcement names is the only one answering for addr on the
// wire, and returns it.
func (c *cluster) settled(s *corev1.Service, addr netip.Addr) string {
	c.t.Helper()
	var node string
	c.eventually(30*time.Second, "the announcer of "+s.Name+" alone on the wire", func() (bool, string) {
		var an heraldv1.Announcement
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(s), &an); err != nil {
			return false, err.Error()
		}
		node = an.Status.Node
		h := c.hosts[node]
		if h == nil {
			return false, fmt.Sprintf("status %+v", an.Status)
		}
		got := c.responders(addr)
		return len(got) == 1 && got[0] == h.MAC.String(), fmt.Sprintf("Announcement says %s, responders %v", node, got)
	})
	return node
}

// nodeOfMAC names the node whose interface has mac.
func (c *cluster) nodeOfMAC(mac string) string {
	for name, h := range c.hosts {
		if h.MAC.String() == mac {
			return name
		}
	}
	return "?" + mac
}

// endpoints makes the EndpointSlice of a Service list one ready endpoint on each of nodes (no controller does it
// in the lab).
func (c *cluster) endpoints(s *corev1.Service, nodes ...string) {
	c.t.Helper()
	sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name + "-lab",
		Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}}, AddressType: discoveryv1.AddressTypeIPv4}
	err := c.c.Get(c.ctx, client.ObjectKeyFromObject(sl), sl)
	if err != nil && !apierrors.IsNotFound(err) {
		c.t.Fatal(err)
	}
	sl.Endpoints = nil
	for i, n := range nodes {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.18.255.%d", i+1)},
			NodeName: ptr.To(n), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	if apierrors.IsNotFound(err) {
		c.create(sl)
		return
	}
	if err := c.c.Update(c.ctx, sl); err != nil {
		c.t.Fatal(err)
	}
}

// web starts a web server on every node answering its node name, and DNAT rules for the given addresses.
func (c *cluster) web(vips ...netip.Addr) {
	c.t.Helper()
	for name, h := range c.hosts {
		if _, err := c.lab.StartWeb(c.ctx, h, "web-"+name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), webPort, name); err != nil {
			c.t.Fatalf("web server on %s: %v", name, err)
		}
		for _, v := range vips {
			if err := c.lab.DNAT(h, v, 80, webPort); err != nil {
				c.t.Fatalf("DNAT on %s: %v", name, err)
			}
		}
	}
}

// get fetches vip:80 over TCP from the client and returns what the node behind it says.
func (c *cluster) get(vip netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 3*time.Second)
	defer cancel()
	conn, err := c.lab.Client.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, 80).String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if n == 0 && err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// clientNeighbour returns the MAC in the client kernel's neighbour table for addr, and its state.
func (c *cluster) clientNeighbour(addr netip.Addr) (mac, state string) {
	out, err := c.lab.Client.Run(c.ctx, "ip", "neigh", "show", addr.String(), "dev", c.lab.Client.Link)
	if err != nil {
		return "", err.Error()
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			mac = f[i+1]
		}
	}
	if len(f) > 0 {
		state = f[len(f)-1]
	}
	return mac, state
}
