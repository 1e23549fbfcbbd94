//go:build linux

package demo

import (
	"bytes"
	"context"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/netnstest"
)

func TestMain(m *testing.M) {
	// The lab runs the test binary again inside its namespaces for the control plane and the web servers.
	if handled, code := lab.Child(); handled {
		os.Exit(code)
	}
	flag.Parse()
	os.Exit(m.Run())
}

// The sample pools (config/samples/pools.yaml) and the lab's own hosts (internal/lab).
var (
	demoV4 = []netip.Prefix{netip.MustParsePrefix("198.51.100.64/28"), netip.MustParsePrefix("198.51.100.100/30"),
		netip.MustParsePrefix("198.51.100.104/30"), netip.MustParsePrefix("198.51.100.108/31"),
		netip.MustParsePrefix("198.51.100.110/32")} // 198.51.100.64/28 and 198.51.100.100-198.51.100.110
	demoV6 = netip.MustParsePrefix("2001:db8:100::1:0/112")
	dualV4 = netip.MustParsePrefix("203.0.113.0/29")
	dualV6 = netip.MustParsePrefix("2001:db8:200::/120")
)

// row is one line of the demo's wire table.
type row struct {
	service, addr, announcer, interfaces string
	seen                                 []string // node names of the responders
	result                               string
}

// TestDemo runs the whole demo, with a herald built from the current source, and checks what it printed.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo builds a lab with a control plane, the controller and speakers; skipped with -short")
	}
	netnstest.NeedRoot(t)
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	for _, tool := range []string{"kubectl", "etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("bin/%s is missing (run make controlplane): %v", tool, err)
			}
			t.Skipf("bin/%s is missing; run make controlplane to build it (under CI=true this fails): %v", tool, err)
		}
	}
	herald := filepath.Join(t.TempDir(), "herald")
	build := exec.Command("go", "build", "-o", herald, "./cmd/herald")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/herald: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	start := time.Now()
	err = Run(ctx, Config{Bin: bin, Herald: herald, Out: &buf})
	out := buf.String()
	t.Logf("demo output (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Errorf("Run: %v", err)
	}

	rows := wireTable(t, out)
	addrs := map[string][]netip.Addr{}
	for _, r := range rows {
		a, err := netip.ParseAddr(r.addr)
		if err != nil {
			t.Fatalf("Service %s: address %q: %v", r.service, r.addr, err)
		}
		addrs[r.service] = append(addrs[r.service], a)
		// Exactly one responder on the wire, the node the Announcement names.
		if r.announcer == "" || !slices.Equal(r.seen, []string{r.announcer}) || r.result != "ok" {
			t.Errorf("%s %s: announced by %s, the client sees %v (%s); want the announcer alone", r.service, r.addr,
				r.announcer, r.seen, r.result)
		}
		if r.interfaces != "eth0" {
			t.Errorf("%s %s announced on %s, want eth0", r.service, r.addr, r.interfaces)
		}
	}
	var names []string
	for name := range addrs {
		names = append(names, name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"api6", "dns-tcp", "dns-udp", "dual", "legacy", "pinned", "web"}, names); diff != "" {
		t.Errorf("Services in the wire table (-want +got):\n%s", diff)
	}
	if got := addrs["web"]; len(got) != 1 || !got[0].Is4() || !inAny(got[0], demoV4) {
		t.Errorf("web has %v, want one IPv4 address from demo-v4", got)
	}
	if got := addrs["api6"]; len(got) != 1 || !demoV6.Contains(got[0]) {
		t.Errorf("api6 has %v, want one IPv6 address from demo-v6", got)
	}
	if tcp, udp := addrs["dns-tcp"], addrs["dns-udp"]; len(tcp) != 1 || !slices.Equal(tcp, udp) || !inAny(tcp[0], demoV4) {
		t.Errorf("dns-tcp has %v and dns-udp %v, want the same single address from demo-v4", tcp, udp)
	}
	if got, want := addrs["pinned"], netip.MustParseAddr("198.51.100.105"); len(got) != 1 || got[0] != want {
		t.Errorf("pinned has %v, want %s", got, want)
	}
	if got, want := addrs["legacy"], netip.MustParseAddr("198.51.100.106"); len(got) != 1 || got[0] != want {
		t.Errorf("legacy has %v, want %s", got, want)
	}
	if got := addrs["dual"]; len(got) != 2 || !dualV4.Contains(got[0]) || !dualV6.Contains(got[1]) {
		t.Errorf("dual has %v, want an IPv4 address from %s and an IPv6 one from %s", got, dualV4, dualV6)
	}
	// No pool hands out an address of the lab's hosts (cp .2, client .3, nodes .11-.13, decoys .2xx).
	for name, as := range addrs {
		for _, a := range as {
			if b := a.As16(); lab.Subnet4.Contains(a) && (b[15] < 16 || b[15] >= 200) ||
				lab.Subnet6.Contains(a) && b[12] == 0 && b[13] == 0 {
				t.Errorf("Service %s has %s, an address the lab gives its hosts", name, a)
			}
		}
	}

	// The TCP request through web's address reached the announcer.
	tcpRE := regexp.MustCompile(`(?m)^    TCP (\S+):80 from the client: answered by (\S+) in \S+ \(the announcer\): ok$`)
	if m := tcpRE.FindStringSubmatch(out); m == nil {
		t.Error("no answered TCP request in the output")
	} else if want := addrs["web"]; len(want) == 0 || m[1] != want[0].String() {
		t.Errorf("the TCP request went to %s, want web's %v", m[1], want)
	}

	if !strings.Contains(out, "Every Service kept its addresses across the controller restart.") {
		t.Error("the output does not say that every Service kept its addresses across the controller restart")
	}

	// A crash failover and a graceful handover, each to a new node, without two MACs answering at once.
	moveRE := regexp.MustCompile(`(?m)^    (failover \(kill -9\)|handover \(SIGTERM\)): (\S+) -> (\S+) in (\S+); (\d+) of (\d+) probes unanswered; (\d+) answered by two MACs: (\S+)$`)
	moves := moveRE.FindAllStringSubmatch(out, -1)
	if len(moves) != 2 || !strings.HasPrefix(moves[0][1], "failover") || !strings.HasPrefix(moves[1][1], "handover") {
		t.Fatalf("want a failover line and then a handover line, got %q", moves)
	}
	webNode := ""
	for _, r := range rows {
		if r.service == "web" {
			webNode = r.announcer
		}
	}
	if moves[0][2] != webNode {
		t.Errorf("the failover stopped %s, want web's announcer %s", moves[0][2], webNode)
	}
	if moves[1][2] != moves[0][3] {
		t.Errorf("the handover stopped %s, want the failover's new announcer %s", moves[1][2], moves[0][3])
	}
	seen := map[string]bool{}
	for _, m := range moves {
		if m[2] == m[3] || !strings.HasPrefix(m[3], "node") {
			t.Errorf("%s: %s -> %s, want another node", m[1], m[2], m[3])
		}
		if _, err := time.ParseDuration(m[4]); err != nil {
			t.Errorf("%s: outage %q: %v", m[1], m[4], err)
		}
		if m[7] != "0" || m[8] != "ok" {
			t.Errorf("%s: %s answered by two MACs, result %s", m[1], m[7], m[8])
		}
		seen[m[2]], seen[m[3]] = true, true
	}
	if len(seen) != 3 {
		t.Errorf("the failover and the handover involve %v, want all three nodes", seen)
	}
	if !strings.Contains(out, "    every check passed\n") {
		t.Error("the output does not say that every check passed")
	}

	// Nothing of the lab is left.
	m := regexp.MustCompile(`deleting its namespaces (\S+)-\*`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("the output does not name the lab's namespaces")
	}
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ns), m[1]+"-") {
		t.Errorf("namespaces of %s left behind:\n%s", m[1], ns)
	}
}

// TestNotRoot checks that the demo refuses at once, without root.
func TestNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root")
	}
	start := time.Now()
	err := Run(t.Context(), Config{})
	if err != ErrNotRoot {
		t.Fatalf("Run without root: %v, want ErrNotRoot", err)
	}
	if !strings.Contains(err.Error(), "sudo make demo") {
		t.Errorf("the error %q does not say to run sudo make demo", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %s to refuse", d)
	}
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
}

// wireTable parses the demo's table of what the client sees.
func wireTable(t *testing.T, out string) []row {
	t.Helper()
	lines := strings.Split(out, "\n")
	start := -1
	for i, l := range lines {
		if strings.Join(strings.Fields(l), " ") == "SERVICE ADDRESS ANNOUNCER INTERFACES CLIENT SEES RESULT" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatal("no wire table (SERVICE ADDRESS ANNOUNCER INTERFACES CLIENT SEES RESULT) in the output")
	}
	var rows []row
	for _, l := range lines[start:] {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] == "==>" {
			break
		}
		if len(f) != 6 {
			t.Fatalf("wire table line %q does not have 6 columns", l)
		}
		r := row{service: f[0], addr: f[1], announcer: f[2], interfaces: f[3], result: f[5]}
		if f[4] != "-" {
			for _, s := range strings.Split(f[4], ",") {
				name, _, _ := strings.Cut(s, "(")
				r.seen = append(r.seen, name)
			}
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatal("the wire table is empty")
	}
	return rows
}
