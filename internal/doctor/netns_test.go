//go:build linux

package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/netnstest"
)

// newNS creates a network namespace removed when t ends, and runs setup in it with sh -e. Before setup, lo is
// up and the four ARP-related settings of "all" and "default" are set from conf ("arp_ignore=1 rp_filter=2"...),
// so links created by setup start from them whatever the host's own settings are.
func newNS(t *testing.T, conf, setup string) *netnstest.NS {
	t.Helper()
	ns := netnstest.New(t, "doctor") // lo is up
	var pre strings.Builder
	pre.WriteString("sysctl -qw net.ipv4.ip_forward=1\n")
	for _, kv := range strings.Fields(conf) {
		for _, dev := range []string{"all", "default"} {
			fmt.Fprintf(&pre, "sysctl -qw net.ipv4.conf.%s.%s\n", dev, kv)
		}
	}
	ns.Shell(t, pre.String()+setup)
	return ns
}

// within runs f on a thread inside namespace ns.
func within(t *testing.T, ns *netnstest.NS, f func()) {
	t.Helper()
	if err := ns.Do(func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func gatherIn(t *testing.T, ns *netnstest.NS, vips ...VIP) Host {
	t.Helper()
	var (
		h   Host
		err error
	)
	within(t, ns, func() { h, err = Gather(context.Background(), GatherOptions{Node: "n1", VIPs: vips}) })
	if err != nil {
		t.Fatalf("Gather in %s: %v", ns.Name, err)
	}
	return h
}

// problems are the warnings and errors among fs.
func problems(fs []Finding) []brief {
	var out []brief
	for _, f := range fs {
		if f.Severity == SeverityWarning || f.Severity == SeverityError {
			out = append(out, brief{f.Check, f.Severity, f.Subject, f.Fix})
		}
	}
	return out
}

const (
	goodConf = "arp_ignore=1 arp_announce=2 rp_filter=2 proxy_arp=0"
	// twoLinks gives the namespace eth0 in 198.51.100.0/24 and eth1 in 203.0.113.0/24.
	twoLinks = `
ip link add eth0 type veth peer name eth0p
ip link add eth1 type veth peer name eth1p
for l in eth0p eth1p eth0 eth1; do ip link set $l up; done
ip addr add 198.51.100.2/24 dev eth0
ip addr add 203.0.113.2/24 dev eth1
`
)

// ipvsSetup is a node where kube-proxy in IPVS mode put the VIP on kube-ipvs0 (a veth end with ARP off standing
// in for the dummy) and nothing raised arp_ignore.
const ipvsSetup = `
ip link add eth0 type veth peer name eth0p
ip link add kube-ipvs0 type veth peer name kipvsp
ip link set kube-ipvs0 arp off
for l in eth0p kipvsp eth0 kube-ipvs0; do ip link set $l up; done
ip addr add 198.51.100.2/24 dev eth0
ip addr add 198.51.100.10/32 dev kube-ipvs0
ip route add default via 198.51.100.1
`

func TestGatherCheckNetns(t *testing.T) {
	vip10 := vip("198.51.100.10")
	tests := []struct {
		name, conf, setup string
		vips              []VIP
		want              []brief
		mention           []string
	}{
		{
			name:  "arp_ignore 0 with the VIP on kube-ipvs0",
			conf:  "arp_ignore=0 arp_announce=2 rp_filter=0 proxy_arp=0",
			setup: ipvsSetup,
			vips:  []VIP{vip10},
			want: []brief{
				{CheckArpIgnore, SeverityError, "eth0", fixArpIgnore},
				{CheckIPVSStrictARP, SeverityError, "kube-ipvs0", fixIPVS},
			},
			mention: []string{"198.51.100.10 is configured on kube-ipvs0"},
		},
		{
			name:  "proxy_arp on the announcing interface",
			conf:  goodConf,
			setup: twoLinks + "ip route add default via 198.51.100.1\nsysctl -qw net.ipv4.conf.eth0.proxy_arp=1\n",
			vips:  []VIP{vip10},
			want:  []brief{{CheckProxyARP, SeverityError, "eth0", "sysctl -w net.ipv4.conf.eth0.proxy_arp=0"}},
		},
		{
			name:  "strict rp_filter with the default route out the other interface",
			conf:  "arp_ignore=1 arp_announce=2 rp_filter=0 proxy_arp=0",
			setup: twoLinks + "ip route add default via 203.0.113.1\nsysctl -qw net.ipv4.conf.all.rp_filter=1\n",
			vips:  []VIP{vip10},
			want: []brief{{CheckRPFilter, SeverityWarning, "eth0",
				"sysctl -w net.ipv4.conf.eth0.rp_filter=2 (loose: accept a source reachable through any interface)"}},
			mention: []string{"effectively 1 (all=1, eth0=0)", "the default route goes out eth1"},
		},
		{
			name:  "a DHCP-style /32 route shadowing the VIP's subnet",
			conf:  goodConf,
			setup: twoLinks + "ip route add default via 198.51.100.1\nip route add 198.51.100.10/32 via 203.0.113.1 dev eth1 proto dhcp\n",
			vips:  []VIP{vip10},
			want: []brief{{CheckShadowRoute, SeverityWarning, "198.51.100.10",
				"ip route del 198.51.100.10/32 via 203.0.113.1 dev eth1 proto dhcp and stop the DHCP client from installing it (classless static routes, option 121), or announce on eth1 by naming it in the L2Advertisement's spec.interfaces if the clients are there"}},
		},
		{
			name: "a clean node, IPv4 and IPv6",
			conf: goodConf,
			setup: twoLinks + "ip route add default via 198.51.100.1\n" +
				"ip addr add 2001:db8::2/64 dev eth0 nodad\nip route add ::/0 via 2001:db8::1 dev eth0\n",
			vips: []VIP{vip10, vip("2001:db8::10"), vip("203.0.113.10", "eth1")},
			mention: []string{"198.51.100.10 is announced on eth0 (its subnet 198.51.100.0/24 contains it)",
				"2001:db8::10 is announced on eth0 (its subnet 2001:db8::/64 contains it)",
				"203.0.113.10 is announced on eth1 (named by the L2Advertisement)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNS(t, tt.conf, tt.setup)
			got := Check(gatherIn(t, ns, tt.vips...))
			if diff := cmp.Diff(tt.want, problems(got)); diff != "" {
				t.Errorf("warnings and errors (-want +got):\n%s\nall: %+v", diff, got)
			}
			var all strings.Builder
			for _, f := range got {
				all.WriteString(f.Message + "\n")
			}
			for _, m := range tt.mention {
				if !strings.Contains(all.String(), m) {
					t.Errorf("messages do not mention %q:\n%s", m, all.String())
				}
			}
		})
	}
}

// TestGatherNetns checks the gathered facts themselves: settings per interface and routes with their device,
// gateway and protocol.
func TestGatherNetns(t *testing.T) {
	ns := newNS(t, goodConf, twoLinks+"ip route add default via 198.51.100.1 metric 50\n"+
		"ip route add 198.51.100.10/32 via 203.0.113.1 dev eth1 proto dhcp\nsysctl -qw net.ipv4.conf.eth1.rp_filter=1\n")
	h := gatherIn(t, ns)
	if h.Node != "n1" {
		t.Errorf("Node = %q, want n1", h.Node)
	}
	wantSys := map[string]string{
		"net.ipv4.conf.all.arp_ignore":  "1",
		"net.ipv4.conf.eth0.arp_ignore": "1",
		"net.ipv4.conf.eth1.rp_filter":  "1",
		"net.ipv4.conf.eth0.rp_filter":  "2",
		"net.ipv4.ip_forward":           "1",
	}
	gotSys := map[string]string{}
	for k := range wantSys {
		gotSys[k] = h.Sysctls[k]
	}
	if diff := cmp.Diff(wantSys, gotSys); diff != "" {
		t.Errorf("Sysctls (-want +got):\n%s", diff)
	}
	var got []string
	for _, r := range h.Routes {
		if r.Dst.Addr().Is4() {
			got = append(got, fmt.Sprintf("%s gw=%v dev=%s scope=%s proto=%s metric=%d", r.Dst, r.Gateway, r.Dev, r.Scope, r.Protocol, r.Metric))
		}
	}
	want := []string{
		"0.0.0.0/0 gw=198.51.100.1 dev=eth0 scope=global proto=boot metric=50",
		"198.51.100.0/24 gw=invalid IP dev=eth0 scope=link proto=kernel metric=0",
		"198.51.100.10/32 gw=203.0.113.1 dev=eth1 scope=global proto=dhcp metric=0",
		"203.0.113.0/24 gw=invalid IP dev=eth1 scope=link proto=kernel metric=0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IPv4 routes (-want +got):\n%s", diff)
	}
}

func TestProbePeersNetns(t *testing.T) {
	ns := newNS(t, goodConf, twoLinks)
	var (
		ln  net.Listener
		err error
	)
	within(t, ns, func() { ln, err = net.Listen("tcp", "198.51.100.2:0") })
	if err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	open := ln.Addr().(*net.TCPAddr).Port

	peers := []Peer{{Addr: "198.51.100.2", Port: open}, {Addr: "198.51.100.2"}}
	var got []Finding
	within(t, ns, func() { got = ProbePeers(context.Background(), peers, 2*time.Second) })
	want := []brief{
		{CheckMemberlistPort, SeverityOK, fmt.Sprintf("198.51.100.2:%d", open), ""},
		{CheckMemberlistPort, SeverityError, "198.51.100.2:7946",
			"allow TCP and UDP port 7946 between all nodes (host firewall, security groups), and check the speaker runs on 198.51.100.2"},
	}
	if diff := cmp.Diff(want, briefs(got, nil)); diff != "" {
		t.Errorf("ProbePeers() (-want +got):\n%s", diff)
	}
	if len(got) == 2 && (!strings.Contains(got[1].Message, "refused") || !strings.Contains(got[1].Message, "UDP not verified")) {
		t.Errorf("closed port message = %q, want it to say the connection was refused and UDP is not verified", got[1].Message)
	}
}

// heraldBinary builds cmd/herald once per test binary, or uses $HERALD_BIN when set.
var heraldBinary = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("HERALD_BIN"); p != "" {
		return p, nil
	}
	dir, err := os.MkdirTemp("", "herald-doctor-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "herald")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/herald")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/herald: %w: %s", err, out)
	}
	return bin, nil
})

// TestDoctorCommandNetns runs `herald doctor -o json` inside namespaces and checks the JSON and the exit code.
func TestDoctorCommandNetns(t *testing.T) {
	netnstest.NeedRoot(t)
	if testing.Short() {
		t.Skip("builds the herald binary")
	}
	bin, err := heraldBinary()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("HERALD_BIN") == "" {
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	}
	tests := []struct {
		name, conf, setup string
		args              []string
		wantCode          int
		want              []brief
	}{
		{
			name:     "IPVS without strictARP: errors, exit 1",
			conf:     "arp_ignore=0 arp_announce=2 rp_filter=0 proxy_arp=0",
			setup:    ipvsSetup,
			args:     []string{"--vip", "198.51.100.10"},
			wantCode: 1,
			want: []brief{
				{CheckArpIgnore, SeverityError, "eth0", fixArpIgnore},
				{CheckIPVSStrictARP, SeverityError, "kube-ipvs0", fixIPVS},
			},
		},
		{
			name:     "clean node with a named interface: exit 0",
			conf:     goodConf,
			setup:    twoLinks + "ip route add default via 198.51.100.1\n",
			args:     []string{"--vip", "203.0.113.10", "--interfaces", "eth1"},
			wantCode: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNS(t, tt.conf, tt.setup)
			args := append([]string{"netns", "exec", ns.Name, bin, "doctor", "-o", "json", "--node-name", "n1"}, tt.args...)
			cmd := exec.Command("ip", args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("run herald doctor: %v", err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			var r Report
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("output is not a JSON report: %v\n%s", err, out)
			}
			if r.Node != "n1" {
				t.Errorf("node = %q, want n1", r.Node)
			}
			if diff := cmp.Diff(tt.want, problems(r.Findings)); diff != "" {
				t.Errorf("warnings and errors in the JSON (-want +got):\n%s", diff)
			}
			if !strings.Contains(string(out), `"check": "vip_interface"`) {
				t.Errorf("no vip_interface finding in:\n%s", out)
			}
		})
	}
	t.Run("bad usage exits 2", func(t *testing.T) {
		for _, args := range [][]string{{"-o", "yaml"}, {"--vip", "not-an-address"}, {"--peers", "a:b:c"}, {"--interfaces", "eth0"}} {
			err := exec.Command(bin, append([]string{"doctor"}, args...)...).Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("herald doctor %q: %v, want exit code 2", args, err)
			}
		}
	})
}
