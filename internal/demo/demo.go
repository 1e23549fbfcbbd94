// Package demo runs Herald's demo (make demo): a three-node network-namespace lab (internal/lab) with the real
// control plane, controller and speakers, the sample pools and Services of config/samples, what a client sees on
// the wire for every address (ARP, RFC 826; NDP, RFC 4861), and how long an address is dark when its speaker dies.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/probe"
)

// Namespace holds the sample Services.
const Namespace = "herald-demo"

// ErrNotRoot is returned by Run when the process is not root: the lab creates network namespaces.
var ErrNotRoot = errors.New("the demo builds a lab of network namespaces and needs root: run sudo make demo")

// Config configures the demo.
type Config struct {
	// Bin holds kubectl, and herald unless Herald is set; default <repo>/bin. The control plane's etcd and
	// kube-apiserver always come from <repo>/bin (see internal/lab).
	Bin string
	// Herald is the herald binary the controller and the speakers run; default <Bin>/herald.
	Herald string
	// Out receives the demo's output; nil discards it.
	Out io.Writer
	// Wait keeps the lab running after the demo until ctx is done.
	Wait bool
}

// demo is one run of the demo. Everything but out is used from Run's goroutine only.
type demo struct {
	out        io.Writer // safe for concurrent use: the lab's logger writes to it too
	root       string    // repository root
	kubectlBin string    // kubectl binary
	herald     string    // herald binary

	lab      *lab.Lab
	c        client.Client
	nodes    map[string]*lab.Host // by node name
	names    []string             // node names, in order
	ctrl     *lab.Proc            // the running controller, nil when none
	starts   int                  // controllers started so far
	speakers map[string]*lab.Proc // by node name
	p4, p6   *probe.Prober        // the client's probers

	// problems are the checks that failed; Run reports them at the end.
	problems []string
}

// Run runs the demo: it builds the lab, starts the controller and a speaker per node, applies the samples,
// prints every Service's addresses with the node that announces them and what the client sees, sends one TCP
// request through a Service address, restarts the controller, kills the announcing speaker of one address and
// hands it over gracefully once more, measuring each outage from the client. It removes the lab before
// returning, also when ctx is cancelled, and returns an error naming every check that failed.
func Run(ctx context.Context, cfg Config) (err error) {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	d, err := newDemo(cfg)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	began := time.Now()

	if err := d.buildLab(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.closeLab()) }()
	if err := d.startCluster(ctx); err != nil {
		return err
	}
	if err := d.applySamples(ctx); err != nil {
		return err
	}
	before, err := d.waitForAddresses(ctx)
	if err != nil {
		return err
	}
	anns, err := d.waitForAnnouncements(ctx, before)
	if err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	if err := d.wire(ctx, before, anns); err != nil {
		return err
	}
	web, err := webIPv4(before)
	if err != nil {
		return err
	}
	if err := d.tcp(ctx, web, anns["web"].Status.Node); err != nil {
		return err
	}
	if err := d.restart(ctx, before); err != nil {
		return err
	}
	next, err := d.failover(ctx, web, anns["web"].Status.Node, syscall.SIGKILL)
	if err != nil {
		return err
	}
	if _, err := d.failover(ctx, web, next, syscall.SIGTERM); err != nil {
		return err
	}

	d.step("Done in %s", time.Since(began).Round(100*time.Millisecond))
	if len(d.problems) == 0 {
		d.detail("every check passed")
	} else {
		for _, p := range d.problems {
			d.detail("PROBLEM: %s", p)
		}
	}
	if cfg.Wait {
		if err := d.wait(ctx); err != nil {
			return err
		}
	}
	if len(d.problems) > 0 {
		return fmt.Errorf("%d checks failed: %s", len(d.problems), strings.Join(d.problems, "; "))
	}
	return nil
}

// newDemo checks the configuration and finds the binaries.
func newDemo(cfg Config) (*demo, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	d := &demo{out: &lockedWriter{w: out}, root: root, nodes: map[string]*lab.Host{}, speakers: map[string]*lab.Proc{}}
	bin := cfg.Bin
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	d.kubectlBin = filepath.Join(bin, "kubectl")
	d.herald = cfg.Herald
	if d.herald == "" {
		d.herald = filepath.Join(bin, "herald")
	}
	if d.herald, err = filepath.Abs(d.herald); err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.kubectlBin); err != nil {
		return nil, fmt.Errorf("kubectl missing: run make controlplane (hack/tools.sh controlplane): %w", err)
	}
	if _, err := os.Stat(d.herald); err != nil {
		return nil, fmt.Errorf("herald missing: run make build: %w", err)
	}
	return d, nil
}

// wait keeps the lab running until ctx is done, after saying how to look at it.
func (d *demo) wait(ctx context.Context) error {
	// Two of the three speakers were stopped by the failovers: bring them back for whoever looks.
	for _, name := range d.names {
		if d.speakers[name].Exited() {
			if err := d.startSpeaker(name); err != nil {
				return err
			}
		}
	}
	if err := d.waitMembers(ctx, len(d.names)); err != nil {
		return err
	}
	l := d.lab
	d.step("The lab keeps running until Ctrl-C (every speaker runs again). Try:")
	d.detail("ip netns exec %s %s --kubeconfig %s get announcements -A", l.CP.NS, d.kubectlBin, l.Kubeconfig)
	d.detail("ip netns exec %s %s --kubeconfig %s get svc,events -n %s", l.CP.NS, d.kubectlBin, l.Kubeconfig, Namespace)
	d.detail("ip netns exec %s arping -c 3 -I %s <address>", l.Client.NS, l.Client.Link)
	d.detail("ip netns exec %s ip neigh", l.Client.NS)
	d.detail("Process logs: %s", l.Logs)
	select {
	case <-ctx.Done():
		fmt.Fprintln(d.out)
		d.step("Stopping")
		return nil
	case <-d.ctrl.Done():
		return exitedError("the controller", d.ctrl)
	}
}

// step prints the title of a step.
func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

// detail prints a line under a step.
func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// problem records a failed check; Run fails with it at the end.
func (d *demo) problem(format string, args ...any) {
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// errTimeout is wrapped by the error poll returns when its time is up.
var errTimeout = errors.New("timed out")

// pollInterval is the time between two looks at the cluster or the wire.
const pollInterval = 100 * time.Millisecond

// poll calls cond until it reports done, returns an error, the timeout passes, ctx is done or the controller
// exits. cond's status says what is still missing, for the timeout's error.
func (d *demo) poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (done bool, status string, err error)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var ctrlDone <-chan struct{}
	if d.ctrl != nil {
		ctrlDone = d.ctrl.Done()
	}
	for {
		done, status, err := cond(ctx)
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return interrupted(ctx)
		case <-ctrlDone:
			return exitedError("the controller", d.ctrl)
		case <-deadline.C:
			msg := fmt.Sprintf("%v after %s: %s", errTimeout, timeout, status)
			if d.ctrl != nil {
				msg += "; the controller's log ends:\n" + indent(d.ctrl.LogTail())
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

// interrupted is the error of a demo cut short by ctx.
func interrupted(ctx context.Context) error {
	return fmt.Errorf("interrupted: %w", context.Cause(ctx))
}

// exitedError describes a process that exited without being asked to.
func exitedError(what string, p *lab.Proc) error {
	return fmt.Errorf("%s exited unexpectedly (%v); its log %s ends:\n%s", what, p.Wait(), p.Log(), indent(p.LogTail()))
}

// indent indents every line of s by four spaces.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
