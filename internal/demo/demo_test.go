package demo

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/controlplane"
)

// TestDemo runs the whole demo, with a herald built from the current source, and checks what it printed.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo starts a control plane and the controller; skipped with -short")
	}
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

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = Run(ctx, Config{Bin: bin, Herald: herald, Out: &out})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	addrs := serviceTable(t, out.String())
	for _, name := range []string{"web", "api6", "dual", "dns-tcp", "dns-udp", "pinned", "legacy"} {
		a, ok := addrs[name]
		if !ok {
			t.Errorf("Service %s is not in the table", name)
			continue
		}
		if len(a) == 0 {
			t.Errorf("Service %s has no address", name)
		}
	}
	for name, a := range addrs {
		if len(a) == 0 {
			t.Errorf("Service %s has no address", name)
		}
	}
	if got := addrs["web"]; len(got) != 1 || !got[0].Is4() {
		t.Errorf("web has %v, want one IPv4 address", got)
	}
	if got := addrs["api6"]; len(got) != 1 || !got[0].Is6() {
		t.Errorf("api6 has %v, want one IPv6 address", got)
	}
	if tcp, udp := addrs["dns-tcp"], addrs["dns-udp"]; len(tcp) != 1 || !slices.Equal(tcp, udp) {
		t.Errorf("dns-tcp has %v and dns-udp %v, want the same single address", tcp, udp)
	}
	if got, want := addrs["pinned"], netip.MustParseAddr("198.51.100.105"); len(got) != 1 || got[0] != want {
		t.Errorf("pinned has %v, want %s", got, want)
	}
	if got, want := addrs["legacy"], netip.MustParseAddr("198.51.100.106"); len(got) != 1 || got[0] != want {
		t.Errorf("legacy has %v, want %s", got, want)
	}
	if got := addrs["dual"]; len(got) != 2 || !got[0].Is4() || !got[1].Is6() {
		t.Errorf("dual has %v, want an IPv4 and an IPv6 address", got)
	}
	// demo-v4 (198.51.100.0/28 and 198.51.100.100-110) avoids buggy addresses.
	demoV4 := netip.MustParsePrefix("198.51.100.0/24")
	for name, as := range addrs {
		for _, a := range as {
			if b := a.As16(); demoV4.Contains(a) && (b[15] == 0 || b[15] == 255) {
				t.Errorf("Service %s has %s from demo-v4, which avoids addresses ending in .0 and .255", name, a)
			}
		}
	}

	if !strings.Contains(out.String(), "Every Service kept its addresses across the controller restart.") {
		t.Error("the output does not say that every Service kept its addresses across the restart")
	}
	kept := 0
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && addrs[f[0]] != nil && (f[3] == "kept" || f[3] == "MOVED") {
			if f[3] != "kept" {
				t.Errorf("restart: %s", line)
			}
			kept++
		}
	}
	if kept != len(addrs) {
		t.Errorf("the restart table has %d rows, want one per Service (%d)", kept, len(addrs))
	}
}

// serviceTable parses the table of `kubectl get svc -o custom-columns=NAME:...,POLICY:...,ADDRESSES:...` in the
// demo's output into each Service's addresses.
func serviceTable(t *testing.T, out string) map[string][]netip.Addr {
	t.Helper()
	lines := strings.Split(out, "\n")
	start := -1
	for i, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "NAME" && f[1] == "POLICY" && f[2] == "ADDRESSES" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatal("no Service table (NAME POLICY ADDRESSES) in the output")
	}
	addrs := map[string][]netip.Addr{}
	for _, l := range lines[start:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			break
		}
		if len(f) != 3 {
			t.Fatalf("Service table line %q does not have 3 columns", l)
		}
		var as []netip.Addr
		if f[2] != "<none>" {
			for _, s := range strings.Split(f[2], ",") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					t.Fatalf("Service %s: address %q: %v", f[0], s, err)
				}
				as = append(as, a)
			}
		}
		addrs[f[0]] = as
	}
	if len(addrs) == 0 {
		t.Fatal("the Service table is empty")
	}
	return addrs
}
