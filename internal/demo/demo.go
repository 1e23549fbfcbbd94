// Package demo runs Herald's demo (make demo): a real control plane, the herald controller as a child process and
// the sample pools and Services of config/samples applied with kubectl, then shows what the controller did and
// that a controller restart keeps every Service's address.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/controlplane"
)

// Namespace holds the sample Services.
const Namespace = "herald-demo"

// The sample manifests, relative to the repository root, applied in this order.
var samples = []string{"config/samples/pools.yaml", "config/samples/services.yaml"}

const (
	addressTimeout = 60 * time.Second       // for every Service to get its addresses
	settleTimeout  = 10 * time.Second       // then for pool counts and Events to catch up
	readyTimeout   = 30 * time.Second       // for pools to turn Ready, for a restarted controller to start
	stopGrace      = 5 * time.Second        // between SIGTERM and SIGKILL
	restartSettle  = 3 * time.Second        // how long the restarted controller runs before addresses are compared
	pollInterval   = 200 * time.Millisecond // between two looks at the cluster
)

// startedMarker is what the controller logs once it has rebuilt its allocations from Service status, the first
// thing it does when it reconciles.
const startedMarker = "rebuilt allocations from Service status"

// Config configures the demo.
type Config struct {
	// Bin holds kubectl, and herald unless Herald is set; default <repo>/bin. The control plane's etcd and
	// kube-apiserver always come from <repo>/bin (see internal/controlplane).
	Bin string
	// Herald is the herald binary; default <Bin>/herald.
	Herald string
	// Out receives the demo's output; nil discards it.
	Out io.Writer
	// Wait keeps the control plane and the controller running after the demo until ctx is done.
	Wait bool
}

// demo is one run of the demo.
type demo struct {
	out     io.Writer
	root    string // repository root
	kubectl string // kubectl binary
	herald  string // herald binary
	dir     string // temporary directory: controller logs
	cp      *controlplane.ControlPlane
	c       client.Client
	ctrl    *controller // the running controller, nil when none
	starts  int         // controllers started so far
}

// Run runs the demo: it starts a control plane and the controller, applies the samples, prints the Services'
// addresses, the pools and the Events, restarts the controller and checks that no Service's address moved. It
// stops everything it started before returning, also when ctx is cancelled.
func Run(ctx context.Context, cfg Config) (err error) {
	d, err := newDemo(cfg)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return interrupted(ctx)
	}

	d.step("Starting etcd and kube-apiserver (%s)", filepath.Join(d.root, "bin"))
	cp, err := controlplane.Start()
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the control plane: %w", stopErr))
		}
	}()
	d.cp = cp
	d.detail("API server %s; Herald's CRDs installed; Service CIDRs %s and %s", cp.Config.Host,
		controlplane.ServiceCIDRv4, controlplane.ServiceCIDRv6)
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	if d.c, err = client.New(cp.Config, client.Options{Scheme: cp.Scheme}); err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	if d.dir, err = os.MkdirTemp("", "herald-demo-"); err != nil {
		return err
	}
	defer func() {
		if rmErr := os.RemoveAll(d.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}()
	// Registered after the directory's removal, so it runs first: the controller stops before its log goes.
	defer func() {
		if d.ctrl != nil {
			err = errors.Join(err, d.ctrl.stop())
		}
	}()

	if err := d.startController(ctx); err != nil {
		return err
	}
	if err := d.applySamples(ctx); err != nil {
		return err
	}
	before, err := d.waitForAddresses(ctx)
	if err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	if err := d.restart(ctx, before); err != nil {
		return err
	}

	if !cfg.Wait {
		return nil
	}
	d.step("Everything keeps running until Ctrl-C. Try:")
	fmt.Fprintf(d.out, "    export KUBECONFIG=%s\n", cp.Kubeconfig)
	fmt.Fprintf(d.out, "    %s get svc,events -n %s\n", d.kubectl, Namespace)
	fmt.Fprintf(d.out, "    %s get ipaddresspools -o wide\n", d.kubectl)
	fmt.Fprintf(d.out, "  The controller logs to %s\n", d.ctrl.logPath)
	select {
	case <-ctx.Done():
		fmt.Fprintln(d.out)
		d.step("Stopping")
		return nil
	case <-d.ctrl.done:
		return d.ctrl.exitedError()
	}
}

// newDemo checks the configuration and finds the binaries.
func newDemo(cfg Config) (*demo, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	d := &demo{out: cfg.Out, root: root}
	if d.out == nil {
		d.out = io.Discard
	}
	bin := cfg.Bin
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	d.kubectl = filepath.Join(bin, "kubectl")
	d.herald = cfg.Herald
	if d.herald == "" {
		d.herald = filepath.Join(bin, "herald")
	}
	if d.herald, err = filepath.Abs(d.herald); err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.kubectl); err != nil {
		return nil, fmt.Errorf("kubectl missing: run make controlplane (hack/tools.sh controlplane): %w", err)
	}
	if _, err := os.Stat(d.herald); err != nil {
		return nil, fmt.Errorf("herald missing: run make build: %w", err)
	}
	return d, nil
}

// step prints the title of a step.
func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

// detail prints a line under a step.
func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// startController starts the controller and leaves it in d.ctrl.
func (d *demo) startController(ctx context.Context) error {
	d.starts++
	logPath := filepath.Join(d.dir, fmt.Sprintf("controller-%d.log", d.starts))
	args := []string{"controller", "--kubeconfig", d.cp.Kubeconfig, "--leader-elect=false",
		"--metrics-bind-address=0", "--health-probe-bind-address=0"}
	d.step("Starting the controller: herald %s", strings.Join(args, " "))
	c, err := startController(ctx, d.herald, args, logPath)
	if err != nil {
		return err
	}
	d.ctrl = c
	d.detail("pid %d, logging to %s", c.cmd.Process.Pid, logPath)
	return nil
}

// applySamples applies the pools, waits until the controller has read them, then applies the Services, so that
// the Services are allocated in the order they are listed and the result does not depend on timing.
func (d *demo) applySamples(ctx context.Context) error {
	for i, f := range samples {
		d.step("kubectl apply -f %s", f)
		out, err := d.run(ctx, "apply", "-f", filepath.Join(d.root, f))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			d.detail("%s", line)
		}
		if i == 0 {
			if err := d.waitForReadyPools(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitForReadyPools waits until every pool and L2Advertisement is Ready: the controller has read them.
func (d *demo) waitForReadyPools(ctx context.Context) error {
	d.step("Waiting for the controller to mark the pools and the L2Advertisement Ready")
	return d.poll(ctx, readyTimeout, func(ctx context.Context) (bool, string, error) {
		var pools heraldv1.IPAddressPoolList
		if err := d.c.List(ctx, &pools); err != nil {
			return false, "", err
		}
		var advs heraldv1.L2AdvertisementList
		if err := d.c.List(ctx, &advs); err != nil {
			return false, "", err
		}
		var pending []string
		for _, p := range pools.Items {
			if !meta.IsStatusConditionTrue(p.Status.Conditions, heraldv1.ConditionReady) {
				pending = append(pending, "IPAddressPool "+p.Name)
			}
		}
		for _, a := range advs.Items {
			if !meta.IsStatusConditionTrue(a.Status.Conditions, heraldv1.ConditionReady) {
				pending = append(pending, "L2Advertisement "+a.Name)
			}
		}
		if len(pools.Items) == 0 {
			pending = append(pending, "the pools to appear")
		}
		return len(pending) == 0, "not Ready: " + strings.Join(pending, ", "), nil
	})
}

// waitForAddresses waits until every Service of the namespace has its addresses, then, briefly, until the pools'
// counts and the Events have caught up, and returns each Service's addresses.
func (d *demo) waitForAddresses(ctx context.Context) (map[string][]string, error) {
	d.step("Waiting (at most %s) for every Service in %s to get its addresses", addressTimeout, Namespace)
	start := time.Now()
	var addrs map[string][]string
	err := d.poll(ctx, addressTimeout, func(ctx context.Context) (bool, string, error) {
		var err error
		if addrs, err = d.addresses(ctx); err != nil {
			return false, "", err
		}
		var waiting []string
		for name, a := range addrs {
			if len(a) == 0 {
				waiting = append(waiting, name)
			}
		}
		slices.Sort(waiting)
		return len(addrs) > 0 && len(waiting) == 0, "Services without an address: " + strings.Join(waiting, ", "), nil
	})
	if err != nil {
		return nil, err
	}
	d.detail("%d Services have their addresses after %s", len(addrs), time.Since(start).Round(time.Millisecond))

	// The pools' status and the Events are written after the Services' status: wait for them so that the
	// tables below are complete.
	err = d.poll(ctx, settleTimeout, func(ctx context.Context) (bool, string, error) {
		return d.settled(ctx, addrs)
	})
	if errors.Is(err, errTimeout) {
		d.detail("(pool counts or Events still settling: %v)", err)
	} else if err != nil {
		return nil, err
	}
	return addrs, nil
}

// settled reports whether the pools count every address the Services hold and every Service has its
// IPAllocated Event.
func (d *demo) settled(ctx context.Context, addrs map[string][]string) (bool, string, error) {
	distinct := map[string]bool{}
	for _, a := range addrs {
		for _, ip := range a {
			distinct[ip] = true
		}
	}
	var pools heraldv1.IPAddressPoolList
	if err := d.c.List(ctx, &pools); err != nil {
		return false, "", err
	}
	var counted uint64
	for _, p := range pools.Items {
		for _, s := range []string{p.Status.AssignedIPv4, p.Status.AssignedIPv6} {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				counted += n
			}
		}
	}
	if counted != uint64(len(distinct)) {
		return false, fmt.Sprintf("the pools count %d addresses in use, the Services hold %d", counted, len(distinct)), nil
	}
	var events eventsv1.EventList
	if err := d.c.List(ctx, &events, client.InNamespace(Namespace)); err != nil {
		return false, "", err
	}
	announced := map[string]bool{}
	for _, e := range events.Items {
		if e.Reason == controllers.EventIPAllocated && e.Regarding.Kind == "Service" {
			announced[e.Regarding.Name] = true
		}
	}
	var missing []string
	for name := range addrs {
		if !announced[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	return len(missing) == 0, "no " + controllers.EventIPAllocated + " Event yet for " + strings.Join(missing, ", "), nil
}

// addresses returns the load-balancer addresses of every Service in the namespace, by name.
func (d *demo) addresses(ctx context.Context) (map[string][]string, error) {
	var svcs corev1.ServiceList
	if err := d.c.List(ctx, &svcs, client.InNamespace(Namespace)); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(svcs.Items))
	for _, s := range svcs.Items {
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			}
		}
		out[s.Name] = ips
	}
	return out, nil
}

// show prints, with kubectl, the Services, the pools, the L2Advertisements and the namespace's Events.
func (d *demo) show(ctx context.Context) error {
	d.step("What the controller did (kubectl runs with --kubeconfig %s)", d.cp.Kubeconfig)
	for _, args := range [][]string{
		{"get", "svc", "-n", Namespace, "-o",
			"custom-columns=NAME:.metadata.name,POLICY:.spec.ipFamilyPolicy,ADDRESSES:.status.loadBalancer.ingress[*].ip"},
		{"get", "ipaddresspools"},
		{"get", "l2advertisements"},
		// "events" is core/v1, where the events.k8s.io/v1 fields regarding and note read involvedObject and
		// message. eventTime, in microseconds, keeps the order in which they happened (creationTimestamp, in
		// seconds, ties).
		{"get", "events", "-n", Namespace, "--sort-by=.eventTime", "-o",
			"custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message"},
	} {
		out, err := d.run(ctx, args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "\n$ kubectl %s\n%s", strings.Join(args, " "), out)
	}
	fmt.Fprintln(d.out)
	return nil
}

// restart stops the controller, starts it again, lets it run and checks that every Service kept the addresses
// it had before.
func (d *demo) restart(ctx context.Context, before map[string][]string) error {
	d.step("Restarting the controller: the new one rebuilds its allocations from the Services' status")
	if err := d.ctrl.stop(); err != nil {
		return err
	}
	d.detail("stopped with SIGTERM (%s)", d.ctrl.cmd.ProcessState)
	d.ctrl = nil
	if err := d.startController(ctx); err != nil {
		return err
	}
	if err := d.poll(ctx, readyTimeout, func(context.Context) (bool, string, error) {
		log, err := os.ReadFile(d.ctrl.logPath)
		return bytes.Contains(log, []byte(startedMarker)), "the controller has not logged " + strconv.Quote(startedMarker), err
	}); err != nil {
		return err
	}
	d.detail("it rebuilt its allocations; letting it run for %s", restartSettle)
	select {
	case <-ctx.Done():
		return interrupted(ctx)
	case <-d.ctrl.done:
		return d.ctrl.exitedError()
	case <-time.After(restartSettle):
	}
	after, err := d.addresses(ctx)
	if err != nil {
		return err
	}

	names := make([]string, 0, len(before))
	for name := range before {
		names = append(names, name)
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    SERVICE\tBEFORE\tAFTER\tRESULT")
	var moved []string
	for _, name := range names {
		was, now := strings.Join(before[name], ","), strings.Join(after[name], ",")
		verdict := "kept"
		if was != now {
			verdict = "MOVED"
			moved = append(moved, fmt.Sprintf("%s from %s to %s", name, was, orNone(now)))
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", name, was, orNone(now), verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(moved) > 0 {
		return fmt.Errorf("addresses moved across the controller restart: %s; the end of the controller's log:\n%s",
			strings.Join(moved, "; "), d.ctrl.logTail())
	}
	fmt.Fprintf(d.out, "Every Service kept its addresses across the controller restart.\n")
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// run runs kubectl with the admin kubeconfig from the repository root and returns its output; its error holds
// kubectl's stderr.
func (d *demo) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.kubectl, append([]string{"--kubeconfig", d.cp.Kubeconfig}, args...)...)
	cmd.Dir = d.root
	cmd.SysProcAttr = childAttr()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", interrupted(ctx)
		}
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// errTimeout is wrapped by the error poll returns when its time is up.
var errTimeout = errors.New("timed out")

// poll calls cond until it reports done, returns an error, the timeout passes, ctx is done or the controller
// exits. cond's status says what is still missing, for the timeout's error.
func (d *demo) poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (done bool, status string, err error)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var status string
	for {
		done, s, err := cond(ctx)
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		status = s
		select {
		case <-ctx.Done():
			return interrupted(ctx)
		case <-d.ctrl.done:
			return d.ctrl.exitedError()
		case <-deadline.C:
			return fmt.Errorf("%w after %s: %s; the end of the controller's log:\n%s", errTimeout, timeout, status, d.ctrl.logTail())
		case <-tick.C:
		}
	}
}

// interrupted is the error of a demo cut short by ctx.
func interrupted(ctx context.Context) error {
	return fmt.Errorf("interrupted: %w", context.Cause(ctx))
}

// controller is a running herald controller process.
type controller struct {
	cmd     *exec.Cmd
	logPath string
	cancel  context.CancelFunc
	done    chan struct{} // closed when the process has exited
	// reported is set once an unexpected exit has been reported, so that stop does not report it again.
	reported bool
}

// startController starts herald with args, its output going to logPath. The process gets SIGTERM when ctx is
// done or stop is called, and SIGKILL stopGrace later if it is still running; on Linux the kernel kills it
// should the demo die first.
func startController(ctx context.Context, herald string, args []string, logPath string) (*controller, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, herald, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("starting the controller: %w", err), log.Close())
	}
	c := &controller{cmd: cmd, logPath: logPath, cancel: cancel, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the outcome is read from cmd.ProcessState
		_ = log.Close()
		close(c.done)
	}()
	return c, nil
}

// stop sends the controller SIGTERM, waits for it to exit (SIGKILL after stopGrace) and reports an exit that
// was not clean. It may be called more than once.
func (c *controller) stop() error {
	c.cancel()
	<-c.done
	if c.reported {
		return nil
	}
	ps := c.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if ws.Signal() == syscall.SIGTERM {
			return nil
		}
		return fmt.Errorf("the controller did not exit within %s of SIGTERM (%s); the end of its log:\n%s", stopGrace, ps, c.logTail())
	}
	if !ps.Success() {
		return fmt.Errorf("the controller failed (%s); the end of its log:\n%s", ps, c.logTail())
	}
	return nil
}

// exitedError describes a controller that exited without being asked to.
func (c *controller) exitedError() error {
	c.reported = true
	return fmt.Errorf("the controller exited unexpectedly (%s); the end of its log:\n%s", c.cmd.ProcessState, c.logTail())
}

// logTail returns the last lines of the controller's log, indented.
func (c *controller) logTail() string {
	const lines = 20
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "    " + strings.Join(all, "\n    ")
}
