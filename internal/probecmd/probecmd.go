// Package probecmd is `herald probe`: arping and ndisc6 for load-balancer addresses. For each target address it
// chooses an interface (the kernel's route, or -I) and a source address, sends a number of ARP requests (IPv4)
// or Neighbor Solicitations (IPv6) with internal/probe, prints who answered each with its round-trip time, and
// sums up: requests answered, the distinct MACs (with their node when known), latency percentiles, and whether
// more than one MAC answered (DUPLICATE). The exit code says which: see ExitOK and the others.
package probecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
)

// Options configures Run.
type Options struct {
	Targets []Target
	// Interface is -I: the interface for every target; empty means the kernel's route to each.
	Interface string
	// Source is -s: the sender address; invalid means choose per target.
	Source netip.Addr
	// Count requests per target, Interval apart; each waits Wait for answers. A request is sent Interval after
	// the previous one, or when the previous one's wait is over if that is later.
	Count    int
	Interval time.Duration
	Wait     time.Duration
	// Nodes names the nodes of known MACs (any spelling net.ParseMAC reads); may be nil.
	Nodes map[string]string
	// JSON selects the JSON report instead of text.
	JSON bool
}

// JSONVersion is the version of the JSON report; it changes only if a field changes meaning or goes.
const JSONVersion = 1

// Report is the JSON output of herald probe.
type Report struct {
	Version  int `json:"version"`
	ExitCode int `json:"exitCode"`
	// Interrupted is true when a signal stopped the probing early; the requests not finished are left out.
	Interrupted bool           `json:"interrupted,omitempty"`
	Targets     []TargetReport `json:"targets"`
}

// TargetReport is what probing one address found.
type TargetReport struct {
	Address         string   `json:"address"`
	Service         string   `json:"service,omitempty"`
	Protocol        string   `json:"protocol"`
	Interface       string   `json:"interface,omitempty"`
	InterfaceReason string   `json:"interfaceReason,omitempty"`
	Source          string   `json:"source,omitempty"`
	SourceReason    string   `json:"sourceReason,omitempty"`
	Warnings        []string `json:"warnings,omitempty"`
	// Error is why the target could not be probed (or stopped being): exit code 2.
	Error    string    `json:"error,omitempty"`
	Requests []Request `json:"requests"`
	Summary  Summary   `json:"summary"`
}

// prober is what Run needs of a *probe.Prober.
type prober interface {
	Once(ctx context.Context, target netip.Addr, wait time.Duration) ([]probe.Reply, error)
	Close() error
}

// env is Run's view of the host; tests replace it.
type env struct {
	links func() ([]iface.Link, error)
	route func(netip.Addr) (route, error)
	open  func(ifindex int, src netip.Addr) (prober, error)
}

func hostEnv() env {
	return env{
		links: func() ([]iface.Link, error) { return iface.List(0) },
		route: kernelRoute,
		open: func(ifindex int, src netip.Addr) (prober, error) {
			ifi, err := net.InterfaceByIndex(ifindex)
			if err != nil {
				return nil, err
			}
			p, err := probe.New(wire.InterfaceOf(ifi), src)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
	}
}

// Run probes every target and writes the text (streaming) or JSON report to stdout, errors to stderr, and
// returns the exit code. The interfaces, routes and sockets are those of the calling thread's network
// namespace: everything that depends on it happens on the calling goroutine before probing starts.
func Run(ctx context.Context, opts Options, stdout, stderr io.Writer) int {
	return run(ctx, opts, hostEnv(), stdout, stderr)
}

// target is one target's state during a run.
type target struct {
	rep    TargetReport
	plan   Plan
	prober prober
}

func run(ctx context.Context, opts Options, e env, stdout, stderr io.Writer) int {
	if opts.Count < 1 || opts.Wait <= 0 || opts.Interval < 0 || len(opts.Targets) == 0 {
		fmt.Fprintf(stderr, "herald probe: want at least one target, a count of 1 or more, a wait over 0 and an interval of 0 or more\n")
		return ExitError
	}
	nodes := canonicalNodes(opts.Nodes)
	links, err := e.links()
	if err != nil {
		fmt.Fprintf(stderr, "herald probe: listing the interfaces: %v\n", err)
		return ExitError
	}
	ts := make([]*target, 0, len(opts.Targets))
	for _, tg := range opts.Targets {
		t := &target{rep: TargetReport{Address: tg.Addr.String(), Service: tg.Service, Protocol: ProtocolARP,
			Requests: []Request{}}}
		if tg.Addr.Is6() {
			t.rep.Protocol = ProtocolNDP
		}
		ts = append(ts, t)
		p, err := makePlan(tg, links, e.route, planOptions{Interface: opts.Interface, Source: opts.Source})
		t.plan = p
		t.rep.Interface, t.rep.InterfaceReason, t.rep.Warnings = p.Interface, p.InterfaceReason, p.Warnings
		if err != nil {
			t.rep.Error = strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
			continue
		}
		t.rep.Source, t.rep.SourceReason = p.Source.String(), p.SourceReason
		if t.prober, err = e.open(p.InterfaceIndex, p.Source); err != nil {
			t.rep.Error = openError(p, err)
		}
	}
	defer func() {
		for _, t := range ts {
			if t.prober != nil {
				t.prober.Close()
			}
		}
	}()

	out := &lockedWriter{w: stdout}
	for _, t := range ts {
		if t.rep.Error != "" {
			fmt.Fprintf(stderr, "herald probe: %s: %s\n", t.plan.Target, t.rep.Error)
			continue
		}
		if !opts.JSON {
			writeHeader(out, t, opts)
		}
	}

	var wg sync.WaitGroup
	interrupted := make([]bool, len(ts))
	for i, t := range ts {
		if t.prober == nil {
			continue
		}
		wg.Go(func() { interrupted[i] = probeTarget(ctx, t, opts, nodes, out) })
	}
	wg.Wait()

	rep := Report{Version: JSONVersion, Targets: []TargetReport{}}
	var codes []int
	for i, t := range ts {
		t.rep.Summary = Summarize(t.rep.Requests)
		rep.Interrupted = rep.Interrupted || interrupted[i]
		code := t.rep.Summary.ExitCode
		if t.rep.Error != "" {
			code = ExitError
		}
		codes = append(codes, code)
		rep.Targets = append(rep.Targets, t.rep)
	}
	rep.ExitCode = ExitCode(codes...)
	for _, t := range ts {
		if t.prober != nil && t.rep.Error != "" { // failed while probing; the others were reported before
			fmt.Fprintf(stderr, "herald probe: %s: %s\n", t.plan.Target, t.rep.Error)
		}
	}
	if opts.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "herald probe: writing the report: %v\n", err)
			return ExitError
		}
		return rep.ExitCode
	}
	for i, t := range ts {
		if t.prober != nil {
			writeSummary(out, &rep.Targets[i], t.plan.Target)
		}
	}
	if rep.Interrupted {
		fmt.Fprintln(out, "interrupted: the request in progress is not counted")
	}
	return rep.ExitCode
}

// openError explains why the socket could not be opened; a permission error names CAP_NET_RAW.
func openError(p Plan, err error) string {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Sprintf("%v: sending ARP/NDP requests needs CAP_NET_RAW: run as root (sudo), or give the binary the "+
			"capability (sudo setcap cap_net_raw+ep \"$(command -v herald)\")", err)
	}
	return err.Error()
}

// probeTarget sends opts.Count requests for t and records them in t.rep; it returns true when ctx ended first.
func probeTarget(ctx context.Context, t *target, opts Options, nodes map[string]string, out io.Writer) bool {
	start := time.Now()
	for seq := 1; seq <= opts.Count; seq++ {
		if seq > 1 {
			if d := time.Until(start.Add(time.Duration(seq-1) * opts.Interval)); d > 0 {
				timer := time.NewTimer(d)
				select {
				case <-ctx.Done():
					timer.Stop()
					return true
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return true
		}
		sent := time.Now()
		replies, err := t.prober.Once(ctx, t.plan.Target.Addr, opts.Wait)
		if ctx.Err() != nil {
			return true
		}
		if err != nil {
			t.rep.Error = err.Error()
			return false
		}
		req := request(seq, sent, replies, nodes)
		t.rep.Requests = append(t.rep.Requests, req)
		if !opts.JSON {
			writeRequest(out, t.plan.Target.Addr, req, opts.Wait)
		}
	}
	return false
}

// request groups replies by MAC, in order of first answer.
func request(seq int, sent time.Time, replies []probe.Reply, nodes map[string]string) Request {
	r := Request{Seq: seq, Sent: sent.UTC(), Answers: []Answer{}}
	for _, rep := range replies {
		mac := rep.MAC.String()
		found := false
		for i := range r.Answers {
			if r.Answers[i].MAC == mac {
				r.Answers[i].Replies++
				found = true
			}
		}
		if !found {
			r.Answers = append(r.Answers, Answer{MAC: mac, Node: nodes[mac], RTTSeconds: rep.RTT.Seconds(), Replies: 1})
		}
	}
	return r
}

// canonicalNodes re-keys a MAC → node map by net.HardwareAddr.String()'s spelling.
func canonicalNodes(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if m, err := net.ParseMAC(k); err == nil {
			out[m.String()] = v
		}
	}
	return out
}

// lockedWriter serialises the lines of targets probed at once.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
