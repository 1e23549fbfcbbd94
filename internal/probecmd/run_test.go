package probecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/probe"
)

// fakeProber answers request n of a target with script[target][n-1]: "a", "b", "ab" as in reqs, "" nobody,
// "!" an error.
type fakeProber struct {
	mu     sync.Mutex
	script map[string][]string
	calls  map[string]int
	closed bool
}

func (f *fakeProber) Once(ctx context.Context, target netip.Addr, wait time.Duration) ([]probe.Reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[target.String()]++
	steps := f.script[target.String()]
	n := f.calls[target.String()]
	if n > len(steps) {
		return nil, nil
	}
	var out []probe.Reply
	for i, c := range steps[n-1] {
		switch c {
		case '!':
			return nil, errors.New("sending a request: network is down")
		case 'a':
			out = append(out, probe.Reply{MAC: hwA, RTT: time.Duration(i+1) * time.Millisecond, Seq: 1})
		case 'b':
			out = append(out, probe.Reply{MAC: hwB, RTT: time.Duration(i+1) * time.Millisecond, Seq: 1})
		}
	}
	return out, nil
}

func (f *fakeProber) Close() error { f.closed = true; return nil }

func fakeEnv(f *fakeProber, openErr error) env {
	return env{
		links: func() ([]iface.Link, error) { return testLinks(), nil },
		route: func(a netip.Addr) (route, error) {
			if a.Is4() {
				return route{Type: unix.RTN_UNICAST, LinkIndex: 2, Src: netip.MustParseAddr("198.51.100.2")}, nil
			}
			return route{Type: unix.RTN_UNICAST, LinkIndex: 2}, nil
		},
		open: func(ifindex int, src netip.Addr) (prober, error) {
			if openErr != nil {
				return nil, openErr
			}
			return f, nil
		},
	}
}

func TestRun(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8:1::10")
	tests := []struct {
		name    string
		targets []Target
		script  map[string][]string
		openErr error
		code    int
		stdout  []string // substrings of the text output
		stderr  []string
	}{
		{name: "ok", targets: []Target{{Addr: v4, Service: "shop/web"}}, script: map[string][]string{"198.51.100.10": {"a", "a", "a"}},
			code: ExitOK, stdout: []string{
				"PROBE 198.51.100.10 (shop/web) with ARP on eth0 from 198.51.100.2: 3 requests 0s apart",
				"  interface eth0: the kernel's route to 198.51.100.10: dev eth0 src 198.51.100.2\n",
				"198.51.100.10 seq=1: 02:00:00:00:00:0a (node n1) 1.000 ms\n",
				"--- 198.51.100.10 (shop/web) ARP on eth0 ---\n3 requests sent, 3 answered, 0 unanswered\n",
				"responders: 02:00:00:00:00:0a (node n1) answered 3 of 3\n",
				"latency: p50 1.000 ms, p90 1.000 ms, p99 1.000 ms, max 1.000 ms\n",
				"OK: every request answered by 02:00:00:00:00:0a (node n1) alone\n",
			}},
		{name: "lossy", targets: []Target{{Addr: v4}}, script: map[string][]string{"198.51.100.10": {"a", "", "a"}},
			code: ExitUnanswered, stdout: []string{"198.51.100.10 seq=2: no answer within 50ms\n", "LOSSY: 1 of 3 requests unanswered (2)"}},
		{name: "dark", targets: []Target{{Addr: v4}}, script: map[string][]string{},
			code: ExitUnanswered, stdout: []string{"responders: none\n", "DARK: no request answered: nothing on eth0 answers ARP for 198.51.100.10"}},
		{name: "duplicate", targets: []Target{{Addr: v4}}, script: map[string][]string{"198.51.100.10": {"ab", "ba", "a"}},
			code: ExitDuplicate, stdout: []string{
				"198.51.100.10 seq=1: 02:00:00:00:00:0a (node n1) 1.000 ms, 02:00:00:00:00:0b 2.000 ms  DUPLICATE\n",
				"DUPLICATE: more than one MAC answered requests 1-2: 02:00:00:00:00:0a (node n1), 02:00:00:00:00:0b;",
			}},
		{name: "repeated replies of one MAC are not a duplicate", targets: []Target{{Addr: v4}}, script: map[string][]string{"198.51.100.10": {"aa", "a", "a"}},
			code: ExitOK, stdout: []string{"seq=1: 02:00:00:00:00:0a (node n1) 1.000 ms (2 replies)\n"}},
		{name: "changed", targets: []Target{{Addr: v4}}, script: map[string][]string{"198.51.100.10": {"a", "b", "b"}},
			code: ExitDuplicate, stdout: []string{"CHANGED: ", "02:00:00:00:00:0a (node n1) (requests 1-1), 02:00:00:00:00:0b (requests 2-3)"}},
		{name: "dual-stack: worst wins", targets: []Target{{Addr: v4}, {Addr: v6}},
			script: map[string][]string{"198.51.100.10": {"a", "a", "a"}, "2001:db8:1::10": {"", "", ""}},
			code:   ExitUnanswered, stdout: []string{"OK: every request", "PROBE 2001:db8:1::10 with NDP on eth0 from 2001:db8:1::2", "DARK"}},
		{name: "socket error mid-run", targets: []Target{{Addr: v4}}, script: map[string][]string{"198.51.100.10": {"a", "!"}},
			code: ExitError, stdout: []string{"1 request sent, 1 answered"}, stderr: []string{"network is down"}},
		{name: "no permission", targets: []Target{{Addr: v4}}, openErr: fmt.Errorf("opening a packet socket on eth0: %w", os.NewSyscallError("socket", syscall.EPERM)),
			code: ExitError, stderr: []string{"needs CAP_NET_RAW", "setcap cap_net_raw+ep"}},
		{name: "no route for one target: probe the other", targets: []Target{{Addr: netip.MustParseAddr("fe80::1")}, {Addr: v4}},
			script: map[string][]string{"198.51.100.10": {"a", "a", "a"}},
			code:   ExitError, stdout: []string{"OK: every request"}, stderr: []string{"fe80::1 is link-local"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"text", "json"} {
				f := &fakeProber{script: tt.script, calls: map[string]int{}}
				var stdout, stderr bytes.Buffer
				opts := Options{Targets: tt.targets, Count: 3, Wait: 50 * time.Millisecond, JSON: format == "json",
					Nodes: map[string]string{"02-00-00-00-00-0A": "n1"}}
				code := run(context.Background(), opts, fakeEnv(f, tt.openErr), &stdout, &stderr)
				if code != tt.code {
					t.Errorf("%s: exit code %d, want %d; stdout:\n%s\nstderr:\n%s", format, code, tt.code, stdout.String(), stderr.String())
				}
				for _, w := range tt.stderr {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("%s: stderr does not hold %q:\n%s", format, w, stderr.String())
					}
				}
				if tt.openErr == nil && !f.closed && len(tt.script) > 0 {
					t.Errorf("%s: prober not closed", format)
				}
				if format == "text" {
					for _, w := range tt.stdout {
						if !strings.Contains(stdout.String(), w) {
							t.Errorf("stdout does not hold %q:\n%s", w, stdout.String())
						}
					}
					continue
				}
				var rep Report
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
					t.Fatalf("JSON: %v\n%s", err, stdout.String())
				}
				if rep.Version != 1 || rep.ExitCode != tt.code || len(rep.Targets) != len(tt.targets) {
					t.Errorf("JSON version %d exitCode %d targets %d:\n%s", rep.Version, rep.ExitCode, len(rep.Targets), stdout.String())
				}
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	f := &fakeProber{script: map[string][]string{"198.51.100.10": {"ab", ""}}, calls: map[string]int{}}
	var stdout, stderr bytes.Buffer
	opts := Options{Targets: []Target{{Addr: netip.MustParseAddr("198.51.100.10"), Service: "shop/web"}}, Count: 2,
		Wait: 10 * time.Millisecond, JSON: true, Nodes: map[string]string{macB: "n2"}}
	if code := run(context.Background(), opts, fakeEnv(f, nil), &stdout, &stderr); code != ExitDuplicate {
		t.Fatalf("exit code %d, want 3; stderr %s", code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	target := got["targets"].([]any)[0].(map[string]any)
	for _, r := range target["requests"].([]any) {
		delete(r.(map[string]any), "sent")
	}
	want := map[string]any{
		"address": "198.51.100.10", "service": "shop/web", "protocol": "ARP", "interface": "eth0",
		"interfaceReason": "the kernel's route to 198.51.100.10: dev eth0 src 198.51.100.2",
		"source":          "198.51.100.2", "sourceReason": "eth0's address in the target's subnet (the kernel's preferred source)",
		"requests": []any{
			map[string]any{"seq": 1.0, "answers": []any{
				map[string]any{"mac": macA, "rttSeconds": 0.001, "replies": 1.0},
				map[string]any{"mac": macB, "node": "n2", "rttSeconds": 0.002, "replies": 1.0},
			}},
			map[string]any{"seq": 2.0, "answers": []any{}},
		},
		"summary": map[string]any{
			"sent": 2.0, "answered": 1.0, "unanswered": []any{2.0}, "duplicateRequests": []any{1.0},
			"responders": []any{
				map[string]any{"mac": macA, "requests": 1.0, "firstSeq": 1.0, "lastSeq": 1.0},
				map[string]any{"mac": macB, "node": "n2", "requests": 1.0, "firstSeq": 1.0, "lastSeq": 1.0},
			},
			"latency":   map[string]any{"p50Seconds": 0.001, "p90Seconds": 0.002, "p99Seconds": 0.002, "maxSeconds": 0.002},
			"duplicate": true, "verdict": "Duplicate", "exitCode": 3.0,
		},
	}
	if diff := cmp.Diff(want, target); diff != "" {
		t.Errorf("JSON target (-want +got):\n%s", diff)
	}
	if got["version"] != 1.0 || got["exitCode"] != 3.0 {
		t.Errorf("JSON header: %v", got)
	}
}

// TestRunInterval: requests go -i apart, the first at once; an interrupted run stops early and says so.
func TestRunInterval(t *testing.T) {
	f := &fakeProber{script: map[string][]string{"198.51.100.10": {"a", "a", "a", "a"}}, calls: map[string]int{}}
	var stdout, stderr bytes.Buffer
	opts := Options{Targets: []Target{{Addr: netip.MustParseAddr("198.51.100.10")}}, Count: 3, Interval: 100 * time.Millisecond, Wait: time.Millisecond}
	start := time.Now()
	if code := run(context.Background(), opts, fakeEnv(f, nil), &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit code %d; stderr %s", code, stderr.String())
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("3 requests 100ms apart took %v, want about 200ms", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	f.calls = map[string]int{}
	stdout.Reset()
	opts.Count = 100
	if code := run(ctx, opts, fakeEnv(f, nil), &stdout, &stderr); code != ExitOK {
		t.Fatalf("interrupted run: exit code %d; stdout %s", code, stdout.String())
	}
	if !strings.Contains(stdout.String(), "2 requests sent") || !strings.Contains(stdout.String(), "interrupted") {
		t.Errorf("interrupted run after 150ms of 100ms intervals: want 2 requests and a note:\n%s", stdout.String())
	}
}
