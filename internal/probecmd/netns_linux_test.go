//go:build linux

package probecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/netnstest"
)

// The lab's MACs.
const (
	macBr   = "02:00:00:00:01:0a" // a's bridge
	macHB   = "02:00:00:00:01:0b" // b on the bridge
	macHC   = "02:00:00:00:01:0c" // c on the bridge
	macBare = "02:00:00:00:02:0b" // b on the bare link
)

// probeLab is three namespaces: a, the prober, with bridge br0 (198.51.100.1/24, 2001:db8:100::1/64) whose
// ports lead to b and c, and a veth "bare" without IPv4 address to b (203.0.113.9/24 there). b holds .50 and
// ::50; b and c both hold .60 and ::60; c holds .51.
type probeLab struct {
	a, b, c *netnstest.NS
}

func newProbeLab(t *testing.T) *probeLab {
	t.Helper()
	netnstest.NeedRoot(t)
	netnstest.NeedTools(t, "ip")
	l := &probeLab{a: netnstest.New(t, "probe-a"), b: netnstest.New(t, "probe-b"), c: netnstest.New(t, "probe-c")}
	// Every link is made inside the lab's namespaces, never in this one.
	l.a.Run(t, "ip", "link", "add", "br0", "address", macBr, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	netnstest.Run(t, "ip", "link", "add", "pb", "netns", l.a.Name, "type", "veth", "peer", "name", "eth0", "netns", l.b.Name)
	netnstest.Run(t, "ip", "link", "add", "pc", "netns", l.a.Name, "type", "veth", "peer", "name", "eth0", "netns", l.c.Name)
	netnstest.Run(t, "ip", "link", "add", "bare", "netns", l.a.Name, "type", "veth", "peer", "name", "bare", "netns", l.b.Name)
	for _, port := range []string{"pb", "pc"} {
		l.a.Run(t, "ip", "link", "set", port, "master", "br0", "up")
	}
	l.a.Run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "br0")
	l.a.Run(t, "ip", "addr", "add", "2001:db8:100::1/64", "dev", "br0", "nodad")
	l.a.Run(t, "ip", "link", "set", "br0", "up")
	l.a.Run(t, "ip", "link", "set", "bare", "up")
	for ns, setup := range map[*netnstest.NS]struct {
		mac   string
		addrs []string
	}{
		l.b: {macHB, []string{"198.51.100.50/24", "198.51.100.60/24", "2001:db8:100::50/64", "2001:db8:100::60/64"}},
		l.c: {macHC, []string{"198.51.100.51/24", "198.51.100.60/24", "2001:db8:100::60/64"}},
	} {
		ns.Run(t, "ip", "link", "set", "eth0", "address", setup.mac, "up")
		for _, a := range setup.addrs {
			args := []string{"addr", "add", a, "dev", "eth0"}
			if strings.Contains(a, ":") {
				args = append(args, "nodad")
			}
			ns.Run(t, "ip", args...)
		}
	}
	l.b.Run(t, "ip", "link", "set", "bare", "address", macBare, "up")
	l.b.Run(t, "ip", "addr", "add", "203.0.113.9/24", "dev", "bare")

	// The bridge is up once a port forwards.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", l.a.Name, "-o", "link", "show", "br0").CombinedOutput()
		if strings.Contains(string(out), "state UP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("br0 not up after 10s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

// run runs herald probe's Run inside a with JSON output.
func (l *probeLab) run(t *testing.T, opts Options) (int, Report, string) {
	t.Helper()
	opts.JSON = true
	opts.Count, opts.Interval, opts.Wait = 3, 50*time.Millisecond, 300*time.Millisecond
	var stdout, stderr bytes.Buffer
	var code int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.a.Do(func() error {
		code = Run(ctx, opts, &stdout, &stderr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return code, rep, stderr.String()
}

func TestNetns(t *testing.T) {
	l := newProbeLab(t)
	addr := netip.MustParseAddr
	type want struct {
		code      int
		verdict   string
		macs      []string
		iface     string
		source    string
		ifaceWhy  string
		answered  int
		stderrHas string
	}
	tests := []struct {
		name   string
		opts   Options
		target string
		want   want
	}{
		{name: "IPv4 answered by b's kernel", target: "198.51.100.50",
			want: want{code: ExitOK, verdict: VerdictOK, macs: []string{macHB}, iface: "br0", source: "198.51.100.1",
				ifaceWhy: "the kernel's route to 198.51.100.50: dev br0 src 198.51.100.1", answered: 3}},
		{name: "IPv4 nobody has", target: "198.51.100.77",
			want: want{code: ExitUnanswered, verdict: VerdictDark, macs: []string{}, iface: "br0", source: "198.51.100.1"}},
		{name: "IPv4 held by b and c", target: "198.51.100.60",
			want: want{code: ExitDuplicate, verdict: VerdictDuplicate, macs: []string{macHB, macHC}, iface: "br0", answered: 3}},
		{name: "IPv6 answered by b's kernel", target: "2001:db8:100::50",
			want: want{code: ExitOK, verdict: VerdictOK, macs: []string{macHB}, iface: "br0", source: "2001:db8:100::1", answered: 3}},
		{name: "IPv6 nobody has", target: "2001:db8:100::77",
			want: want{code: ExitUnanswered, verdict: VerdictDark, macs: []string{}, iface: "br0"}},
		{name: "IPv6 held by b and c", target: "2001:db8:100::60",
			want: want{code: ExitDuplicate, verdict: VerdictDuplicate, macs: []string{macHB, macHC}, iface: "br0", answered: 3}},
		{name: "ARP probe from an interface without IPv4", target: "203.0.113.9", opts: Options{Interface: "bare"},
			want: want{code: ExitOK, verdict: VerdictOK, macs: []string{macBare}, iface: "bare", source: "0.0.0.0", ifaceWhy: "-I bare", answered: 3}},
		{name: "no route", target: "203.0.113.99",
			want: want{code: ExitError, macs: []string{}, stderrHas: "no route to 203.0.113.99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Targets = []Target{{Addr: addr(tt.target)}}
			code, rep, stderr := l.run(t, opts)
			if code != tt.want.code || rep.ExitCode != code {
				t.Errorf("exit code %d (report %d), want %d; stderr: %s", code, rep.ExitCode, tt.want.code, stderr)
			}
			if len(rep.Targets) != 1 {
				t.Fatalf("%d targets in the report", len(rep.Targets))
			}
			tr := rep.Targets[0]
			macs := []string{}
			for _, r := range tr.Summary.Responders {
				macs = append(macs, r.MAC)
			}
			slices.Sort(macs)
			if diff := cmp.Diff(tt.want.macs, macs); diff != "" {
				t.Errorf("responders (-want +got):\n%s", diff)
			}
			if tt.want.stderrHas != "" {
				if !strings.Contains(stderr, tt.want.stderrHas) || !strings.Contains(tr.Error, tt.want.stderrHas) {
					t.Errorf("stderr %q / error %q do not hold %q", stderr, tr.Error, tt.want.stderrHas)
				}
				return
			}
			if tr.Summary.Verdict != tt.want.verdict || tr.Summary.Sent != 3 || tr.Summary.Answered != tt.want.answered {
				t.Errorf("summary %+v, want verdict %s, 3 sent, %d answered", tr.Summary, tt.want.verdict, tt.want.answered)
			}
			if tr.Interface != tt.want.iface {
				t.Errorf("interface %s (%s), want %s", tr.Interface, tr.InterfaceReason, tt.want.iface)
			}
			if tt.want.source != "" && tr.Source != tt.want.source {
				t.Errorf("source %s (%s), want %s", tr.Source, tr.SourceReason, tt.want.source)
			}
			if !strings.Contains(tr.InterfaceReason, tt.want.ifaceWhy) {
				t.Errorf("interface reason %q does not hold %q", tr.InterfaceReason, tt.want.ifaceWhy)
			}
			if l := tr.Summary.Latency; tt.want.answered > 0 && (l == nil || l.MaxSeconds <= 0 || l.MaxSeconds > 0.3 || l.P50Seconds > l.MaxSeconds) {
				t.Errorf("latency %+v, want within the wait", l)
			}
		})
	}

	t.Run("dual-stack targets at once, text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := -1
		opts := Options{Targets: []Target{{Addr: addr("198.51.100.50"), Service: "shop/web"}, {Addr: addr("2001:db8:100::60"), Service: "shop/web"}},
			Count: 2, Interval: 50 * time.Millisecond, Wait: 300 * time.Millisecond, Nodes: map[string]string{macHB: "node-b"}}
		if err := l.a.Do(func() error { code = Run(context.Background(), opts, &stdout, &stderr); return nil }); err != nil {
			t.Fatal(err)
		}
		if code != ExitDuplicate {
			t.Errorf("exit code %d, want 3 (the IPv6 address is duplicate); stderr %s", code, stderr.String())
		}
		for _, w := range []string{
			"PROBE 198.51.100.50 (shop/web) with ARP on br0 from 198.51.100.1",
			"198.51.100.50 seq=2: " + macHB + " (node node-b) ",
			"OK: every request answered by " + macHB + " (node node-b) alone",
			"  DUPLICATE\n",
			"DUPLICATE: more than one MAC answered requests 1-2",
		} {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("stdout does not hold %q:\n%s", w, stdout.String())
			}
		}
	})
}
