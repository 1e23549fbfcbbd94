//go:build linux

package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/netnstest"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
)

func TestMain(m *testing.M) {
	if handled, code := lab.Child(); handled {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// The VIP of the DNAT test: in the lab's subnets, configured on no interface.
var (
	vip4 = netip.MustParseAddr("198.51.100.200")
	vip6 = netip.MustParseAddr("2001:db8:100::200")
)

// TestLab builds a lab with two nodes and the control plane and checks what the e2e tests rely on, then that
// Close leaves nothing behind.
func TestLab(t *testing.T) {
	netnstest.NeedRoot(t)
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.New(ctx, lab.Config{Nodes: 2, ControlPlane: true})
	if err != nil {
		t.Fatalf("lab.New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	t.Logf("lab with control plane up in %v", time.Since(start).Round(time.Millisecond))
	node1, node2, client := l.Nodes[0], l.Nodes[1], l.Client

	t.Run("hosts", func(t *testing.T) {
		type host struct {
			Name, NS, Link string
			IPv4, IPv6     netip.Addr
			MAC            string
		}
		var got []host
		for _, h := range l.Hosts() {
			got = append(got, host{h.Name, h.NS, h.Link, h.IPv4, h.IPv6, h.MAC.String()})
		}
		p := l.Prefix
		want := []host{
			{"cp", p + "-cp", "eth0", addr("198.51.100.2"), addr("2001:db8:100::2"), "02:00:c6:33:64:02"},
			{"client", p + "-client", "eth0", addr("198.51.100.3"), addr("2001:db8:100::3"), "02:00:c6:33:64:03"},
			{"node1", p + "-n1", "eth0", addr("198.51.100.11"), addr("2001:db8:100::11"), "02:00:c6:33:64:0b"},
			{"node2", p + "-n2", "eth0", addr("198.51.100.12"), addr("2001:db8:100::12"), "02:00:c6:33:64:0c"},
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("hosts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(fmt.Sprintf("hl%d", os.Getpid()), l.Prefix); diff != "" {
			t.Errorf("prefix (-want +got):\n%s", diff)
		}
	})

	t.Run("addresses only inside", func(t *testing.T) {
		// The host's own namespace has no lab address; the switch has no address at all.
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			p := netip.MustParsePrefix(a.String())
			if lab.Subnet4.Overlaps(p) || lab.Subnet6.Overlaps(p) {
				t.Errorf("the host's namespace has lab address %v", p)
			}
		}
		out, err := exec.CommandContext(ctx, "ip", "-n", l.Switch, "-o", "addr", "show").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "inet") {
			t.Errorf("the switch namespace has addresses:\n%s", out)
		}
		out, err = node1.Run(ctx, "ip", "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"inet 198.51.100.11/24", "inet6 2001:db8:100::11/64"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("node1 eth0 lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "tentative") {
			t.Errorf("node1 eth0 has a tentative address:\n%s", out)
		}
	})

	// Probers on the client, IPv4 and IPv6, for the subtests below.
	var p4, p6 *probe.Prober
	if err := client.Do(func() error {
		ifi, err := net.InterfaceByName(client.Link)
		if err != nil {
			return err
		}
		if p4, err = probe.New(wire.InterfaceOf(ifi), client.IPv4); err != nil {
			return err
		}
		p6, err = probe.New(wire.InterfaceOf(ifi), client.IPv6)
		return err
	}); err != nil {
		t.Fatalf("opening probers on the client: %v", err)
	}
	t.Cleanup(func() { p4.Close(); p6.Close() })
	who := func(t *testing.T, target netip.Addr) []string {
		t.Helper()
		p := p4
		if target.Is6() {
			p = p6
		}
		replies, err := p.Once(ctx, target, 300*time.Millisecond)
		if err != nil {
			t.Fatalf("Once(%v): %v", target, err)
		}
		var macs []string
		for _, r := range replies {
			macs = append(macs, r.MAC.String())
		}
		return macs
	}

	t.Run("probe", func(t *testing.T) {
		tests := []struct {
			name   string
			target netip.Addr
			want   []string
		}{
			{name: "node1 IPv4", target: node1.IPv4, want: []string{node1.MAC.String()}},
			{name: "node1 IPv6", target: node1.IPv6, want: []string{node1.MAC.String()}},
			{name: "node2 IPv4", target: node2.IPv4, want: []string{node2.MAC.String()}},
			{name: "node2 IPv6", target: node2.IPv6, want: []string{node2.MAC.String()}},
			{name: "nobody IPv4", target: vip4},
			{name: "nobody IPv6", target: vip6},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if diff := cmp.Diff(tt.want, who(t, tt.target)); diff != "" {
					t.Errorf("answers (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("RESTConfig", func(t *testing.T) {
		cfg := l.RESTConfig()
		if diff := cmp.Diff("https://198.51.100.2:6443", cfg.Host); diff != "" {
			t.Errorf("API server (-want +got):\n%s", diff)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing namespaces: %v", err)
		}
		var names []string
		for _, ns := range list.Items {
			names = append(names, ns.Name)
		}
		for _, want := range []string{"default", "kube-system"} {
			if !slices.Contains(names, want) {
				t.Errorf("namespaces %v lack %s", names, want)
			}
		}
	})

	t.Run("kubectl", func(t *testing.T) {
		out, err := l.Kubectl(ctx, "get", "ns", "default", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("namespace/default", strings.TrimSpace(string(out))); diff != "" {
			t.Errorf("kubectl get ns (-want +got):\n%s", diff)
		}
		// The control plane has Herald's CRDs.
		out, err = l.Kubectl(ctx, "get", "crd", "ipaddresspools.herald.dev", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		want := "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.herald.dev"
		if diff := cmp.Diff(want, strings.TrimSpace(string(out))); diff != "" {
			t.Errorf("kubectl get crd (-want +got):\n%s", diff)
		}
	})

	t.Run("web behind DNAT", func(t *testing.T) {
		web, err := l.StartWeb(ctx, node1, "web-node1", 8080, "node1")
		if err != nil {
			t.Fatal(err)
		}
		for _, vip := range []netip.Addr{vip4, vip6} {
			if err := l.DNAT(node1, vip, 80, 8080); err != nil {
				t.Fatal(err)
			}
			// Nothing answers ARP/NDP for the VIP here (a speaker would): a static neighbour entry on the client.
			if _, err := client.Run(ctx, "ip", "neigh", "replace", vip.String(), "lladdr", node1.MAC.String(), "dev",
				client.Link); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name    string
			network string
			vip     netip.Addr
			want    string
		}{
			{name: "TCP IPv4", network: "tcp", vip: vip4, want: "node1\n"},
			{name: "TCP IPv6", network: "tcp", vip: vip6, want: "node1\n"},
			{name: "UDP IPv4", network: "udp", vip: vip4, want: "node1"},
			{name: "UDP IPv6", network: "udp", vip: vip6, want: "node1"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := ask(ctx, client, tt.network, netip.AddrPortFrom(tt.vip, 80), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			})
		}
		// Another port is not redirected: node1 drops what is sent to an address it does not have.
		if _, err := ask(ctx, client, "tcp", netip.AddrPortFrom(vip4, 81), 300*time.Millisecond); err == nil {
			t.Error("connected to the VIP on port 81, which has no DNAT")
		}
		if err := web.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := web.Wait(); err != nil {
			t.Errorf("the web server did not stop cleanly on SIGTERM: %v; log:\n%s", err, web.LogTail())
		}
	})

	t.Run("SetLink", func(t *testing.T) {
		if err := l.SetLink(node2, false); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string(nil), who(t, node2.IPv4)); diff != "" {
			t.Errorf("answers with node2's cable out (-want +got):\n%s", diff)
		}
		if err := l.SetLink(node2, true); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{node2.MAC.String()}, who(t, node2.IPv4)); diff != "" {
			t.Errorf("answers with node2's cable back (-want +got):\n%s", diff)
		}
	})

	t.Run("AddLink", func(t *testing.T) {
		decoy6 := netip.MustParsePrefix("2001:db8:100::50/64")
		if err := l.AddLink(node2, "decoy", netip.MustParsePrefix("198.51.100.50/24"), decoy6); err != nil {
			t.Fatal(err)
		}
		const decoyMAC = "02:01:c6:33:64:0c"
		// NDP answers only on the link holding the address.
		if diff := cmp.Diff([]string{decoyMAC}, who(t, decoy6.Addr())); diff != "" {
			t.Errorf("IPv6 answers (-want +got):\n%s", diff)
		}
		// ARP, by Linux's default (arp_ignore=0), answers on every link: the decoy is among the answers.
		if got := who(t, netip.MustParseAddr("198.51.100.50")); !slices.Contains(got, decoyMAC) {
			t.Errorf("IPv4 answers %v lack the decoy's %s", got, decoyMAC)
		}
		if err := l.AddLink(node2, "outside", netip.MustParsePrefix("203.0.113.5/24"), netip.Prefix{}); err == nil {
			t.Error("AddLink took an address outside the lab's subnet")
		}
	})

	t.Run("processes", func(t *testing.T) {
		sleep, err := l.Start(node2, "sleep", nil, "sleep", "600")
		if err != nil {
			t.Fatal(err)
		}
		if sleep.Exited() {
			t.Fatal("sleep exited at once")
		}
		if err := sleep.Kill(); err != nil {
			t.Fatal(err)
		}
		var exit *exec.ExitError
		if err := sleep.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("Wait after Kill: %v, want killed by SIGKILL", err)
		}
		if !sleep.Exited() {
			t.Error("Exited is false after Wait")
		}

		sh, err := l.Start(node2, "sh", []string{"LAB_WORD=hello"}, "sh", "-c", `echo "$LAB_WORD from $(ip -o -4 addr show dev eth0 | awk '{print $4}')"; exit 3`)
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Errorf("Wait: %v, want exit status 3", err)
		}
		b, err := os.ReadFile(sh.Log())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("hello from 198.51.100.12/24\n")) {
			t.Errorf("log %s lacks the output run in node2:\n%s", sh.Log(), b)
		}
	})

	// Close: every namespace and every process in them goes, the control plane's etcd and kube-apiserver too.
	inodes := map[uint64]string{}
	var nsNames []string
	for _, h := range append(l.Hosts(), &lab.Host{NS: l.Switch}) {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", h.NS), &st); err != nil {
			t.Fatal(err)
		}
		inodes[st.Ino] = h.NS
		nsNames = append(nsNames, h.NS)
	}
	before := pidsIn(t, inodes)
	if len(before[l.CP.NS]) < 3 {
		t.Errorf("processes in the cp namespace before Close: %v, want the child, etcd and kube-apiserver", before[l.CP.NS])
	}
	p4.Close() // sockets in a namespace keep it alive, though they are no process
	p6.Close()
	logs := l.Logs
	start = time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start).Round(time.Millisecond))
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if after := pidsIn(t, inodes); len(after) > 0 {
		t.Errorf("processes left in the lab's namespaces: %v", after)
	}
	for _, pid := range slices.Concat(mapsValues(before)...) {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d, in the lab before Close, is still there (%v)", pid, err)
		}
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nsNames {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left:\n%s", ns, out)
		}
	}
	if _, err := os.Stat(logs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log directory %s left (%v)", logs, err)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// ask sends a word to a server from inside h and returns its answer, within wait.
func ask(ctx context.Context, h *lab.Host, network string, to netip.AddrPort, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := h.DialContext(ctx, network, to.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if network == "udp" {
		if _, err := c.Write([]byte("hello")); err != nil {
			return "", err
		}
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// pidsIn maps the names of the namespaces among inodes to the processes in them (other than this one).
func pidsIn(t *testing.T, inodes map[uint64]string) map[string][]int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if ns, ok := inodes[st.Ino]; ok {
			found[ns] = append(found[ns], pid)
		}
	}
	return found
}

func mapsValues(m map[string][]int) [][]int {
	var v [][]int
	for _, pids := range m {
		v = append(v, pids)
	}
	return v
}

// TestParentDeath kills a process that holds a lab, as a crashed test would die, and checks that what the lab
// started goes with it (the control plane stopping etcd and kube-apiserver on its parent-death signal) and that
// CleanStale removes the namespaces left.
func TestParentDeath(t *testing.T) {
	netnstest.NeedRoot(t)
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	if os.Getenv("LAB_TEST_HOLDER") == "1" {
		return // run as the holder by TestLabHolder, not as a test
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLabHolder$", "-test.v")
	cmd.Env = append(os.Environ(), "LAB_TEST_HOLDER=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The holder prints "lab <prefix> <logs> ready" once its lab runs.
	var prefix, logs string
	buf := make([]byte, 0, 4096)
	deadline := time.Now().Add(3 * time.Minute)
	for prefix == "" && time.Now().Before(deadline) {
		chunk := make([]byte, 512)
		n, err := stdout.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for _, line := range strings.Split(string(buf), "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[0] == "lab" && f[3] == "ready" {
				prefix, logs = f[1], f[2]
			}
		}
		if err != nil {
			t.Fatalf("the holder stopped before its lab ran: %v\nstdout:\n%s\nstderr:\n%s", err, buf, stderr.String())
		}
	}
	inodes := map[uint64]string{}
	for _, role := range []string{"sw", "cp", "client", "n1"} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", prefix+"-"+role), &st); err != nil {
			t.Fatalf("the holder's lab: %v", err)
		}
		inodes[st.Ino] = prefix + "-" + role
	}
	// The sleep enters n1 once `ip netns exec` has switched namespace: wait for it.
	var before map[string][]int
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if before = pidsIn(t, inodes); len(before[prefix+"-cp"]) >= 3 && len(before[prefix+"-n1"]) >= 1 {
			break
		}
	}
	if len(before[prefix+"-cp"]) < 3 || len(before[prefix+"-n1"]) < 1 {
		t.Fatalf("processes in the holder's lab: %v, want the control plane's three and a sleep on n1", before)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The processes go on their own: the sleep at once, the control plane once it has stopped etcd and
	// kube-apiserver. Poll for it: how long it takes is not what is tested.
	var left map[string][]int
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if left = pidsIn(t, inodes); len(left) == 0 {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left in the dead holder's lab: %v", left)
	}
	// The control plane stopped etcd and kube-apiserver itself, on its parent-death signal (SIGTERM).
	cpLog, err := os.ReadFile(filepath.Join(logs, "controlplane.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cpLog, []byte("lab controlplane: stopped\n")) {
		t.Errorf("the control plane did not stop cleanly when its parent died; its log:\n%s", cpLog)
	}
	// Temporary directories named after the dead holder go; one named after this live process stays.
	deadTemp := filepath.Join(os.TempDir(), fmt.Sprintf("herald-e2e-bin-%d-test", cmd.Process.Pid))
	liveTemp := filepath.Join(os.TempDir(), fmt.Sprintf("herald-controlplane-%d-test", os.Getpid()))
	for _, d := range []string{deadTemp, liveTemp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(deadTemp); os.RemoveAll(liveTemp) })
	if err := lab.CleanStale(); err != nil {
		t.Errorf("CleanStale: %v", err)
	}
	if _, err := os.Stat(deadTemp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CleanStale left %s, named after the dead holder (%v)", deadTemp, err)
	}
	if _, err := os.Stat(liveTemp); err != nil {
		t.Errorf("CleanStale removed %s, named after this live process: %v", liveTemp, err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix+"-") {
		t.Errorf("CleanStale left the dead holder's namespaces:\n%s", out)
	}
	if _, err := os.Stat(logs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CleanStale left the dead holder's log directory %s (%v)", logs, err)
	}
}

// TestLabHolder is TestParentDeath's holder: it builds a lab and waits to be killed.
func TestLabHolder(t *testing.T) {
	if os.Getenv("LAB_TEST_HOLDER") != "1" {
		t.Skip("run by TestParentDeath")
	}
	l, err := lab.New(context.Background(), lab.Config{Nodes: 1, ControlPlane: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(l.Nodes[0], "sleep", nil, "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("lab %s %s ready\n", l.Prefix, l.Logs)
	select {} // until killed
}

// TestLinksUsableAtOnce checks that New, AddLink and SetLink(up) return only once frames pass: the kernel brings
// links, bridge ports and IPv6 addresses into service asynchronously, and a probe sent right after must be
// answered. Each round is one chance for a race to show.
func TestLinksUsableAtOnce(t *testing.T) {
	netnstest.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.New(ctx, lab.Config{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab without control plane up in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if l.CP != nil || l.Kubeconfig != "" || l.RESTConfig() != nil {
		t.Error("a lab without ControlPlane has a control plane")
	}
	var p4, p6 *probe.Prober
	if err := l.Client.Do(func() error {
		ifi, err := net.InterfaceByName(l.Client.Link)
		if err != nil {
			return err
		}
		if p4, err = probe.New(wire.InterfaceOf(ifi), l.Client.IPv4); err != nil {
			return err
		}
		p6, err = probe.New(wire.InterfaceOf(ifi), l.Client.IPv6)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p4.Close(); p6.Close() })
	answers := func(target netip.Addr) int {
		p := p4
		if target.Is6() {
			p = p6
		}
		r, err := p.Once(ctx, target, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return len(r)
	}
	for _, target := range []netip.Addr{l.Nodes[1].IPv4, l.Nodes[1].IPv6} {
		if got := answers(target); got != 1 {
			t.Errorf("right after New: %d answers for %v, want 1", got, target)
		}
	}
	for i := 1; i <= 5; i++ {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:100::1:%d", i))
		if err := l.AddLink(l.Nodes[0], fmt.Sprintf("extra%d", i), netip.Prefix{}, netip.PrefixFrom(a, 64)); err != nil {
			t.Fatal(err)
		}
		if got := answers(a); got != 1 {
			t.Errorf("right after AddLink %d: %d answers for %v, want 1", i, got, a)
		}
	}
	n := l.Nodes[1]
	for i := 1; i <= 3; i++ {
		if err := l.SetLink(n, false); err != nil {
			t.Fatal(err)
		}
		if err := l.SetLink(n, true); err != nil {
			t.Fatal(err)
		}
		for _, target := range []netip.Addr{n.IPv4, n.IPv6} {
			if got := answers(target); got != 1 {
				t.Errorf("right after SetLink up %d: %d answers for %v, want 1", i, got, target)
			}
		}
	}
}
