package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/lab"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/wire"
	"github.com/heraldlb/herald/speaker"
)

const (
	labNodes       = 3
	systemNS       = "herald-system" // where the controller keeps the speakers' gossip key
	speakerMetrics = 9122            // the speakers' metrics port, on each node's own address
	membersTimeout = 60 * time.Second
	stopGrace      = 10 * time.Second // between SIGTERM and SIGKILL
)

// buildLab builds the lab: the switch, the client, the nodes and the control plane in the cp namespace.
func (d *demo) buildLab(ctx context.Context) error {
	d.step("Building the lab: %d nodes, a client and a control plane, each in its own network namespace, on one bridge",
		labNodes)
	start := time.Now()
	l, err := lab.New(ctx, lab.Config{Nodes: labNodes, ControlPlane: true, Root: d.root, Log: newLineLogger(d.out, "lab")})
	if err != nil {
		if ctx.Err() != nil {
			return errors.Join(interrupted(ctx), err)
		}
		return fmt.Errorf("building the lab: %w", err)
	}
	d.lab = l
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    HOST\tNAMESPACE\tIPV4\tIPV6\tMAC (eth0)")
	for _, h := range l.Hosts() {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", h.Name, h.NS, h.IPv4, h.IPv6, h.MAC)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, h := range l.Nodes {
		d.nodes[h.Name] = h
		d.names = append(d.names, h.Name)
	}
	d.detail("etcd and kube-apiserver run in %s, API server https://%s:%d; ready after %s", l.CP.NS, l.CP.IPv4,
		lab.APIServerPort, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// closeLab closes the probers and the lab, and checks that no namespace of the lab is left.
func (d *demo) closeLab() error {
	var errs []error
	for _, p := range []*probe.Prober{d.p4, d.p6} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	prefix := d.lab.Prefix
	d.step("Removing the lab: stopping its processes, deleting its namespaces %s-*", prefix)
	errs = append(errs, d.lab.Close())
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		errs = append(errs, fmt.Errorf("ip netns list: %w", err))
	} else {
		var left []string
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
				left = append(left, f[0])
			}
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("network namespaces left behind: %s", strings.Join(left, " ")))
		} else {
			d.detail("ip netns list shows no %s-* namespace", prefix)
		}
	}
	return errors.Join(errs...)
}

// startCluster makes the lab a cluster: the herald-system namespace, a Node per node host (there is no kubelet
// to register them), the controller in the cp namespace, a speaker in every node namespace, and the client's
// probers. It returns once every speaker sees every other.
func (d *demo) startCluster(ctx context.Context) error {
	scheme, err := speaker.Scheme()
	if err != nil {
		return err
	}
	cfg := d.lab.RESTConfig()
	cfg.QPS, cfg.Burst = 50, 100
	if d.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	d.step("The API server authorizes with %s; namespace %s, the ServiceAccounts and RBAC of config/ are installed",
		controlplane.AuthorizationMode, systemNS)
	d.step("Creating the Nodes (no kubelet runs: their InternalIP is written by hand)")
	for _, name := range d.names {
		h := d.nodes[name]
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
		if err := d.c.Create(ctx, n); err != nil {
			return fmt.Errorf("creating Node %s: %w", name, err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: h.IPv4.String()},
			{Type: corev1.NodeHostName, Address: name}}
		if err := d.c.Status().Update(ctx, n); err != nil {
			return fmt.Errorf("setting Node %s's addresses: %w", name, err)
		}
	}
	if err := d.startController(); err != nil {
		return err
	}
	d.step("Starting a speaker on every node, in the node's namespace, as ServiceAccount %s/%s with only NET_RAW and NET_ADMIN",
		systemNS, controlplane.Speaker.ServiceAccount)
	for _, name := range d.names {
		if err := d.startSpeaker(name); err != nil {
			return err
		}
	}
	if err := d.waitMembers(ctx, len(d.names)); err != nil {
		return err
	}
	return d.openProbers()
}

// startController starts the controller in the cp namespace and leaves it in d.ctrl.
func (d *demo) startController() error {
	d.starts++
	args := []string{"controller", "--kubeconfig", d.lab.ComponentKubeconfig(controlplane.Controller),
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0"}
	d.step("Starting the controller in %s as ServiceAccount %s/%s, without capabilities: herald %s", d.lab.CP.NS,
		systemNS, controlplane.Controller.ServiceAccount, strings.Join(args, " "))
	p, err := d.lab.StartConfined(d.lab.CP, fmt.Sprintf("controller-%d", d.starts), nil, lab.ControllerConfinement,
		append([]string{d.herald}, args...)...)
	if err != nil {
		return fmt.Errorf("starting the controller: %w", err)
	}
	d.ctrl = p
	d.detail("pid %d, logging to %s", p.Pid(), p.Log())
	return nil
}

// startSpeaker starts (or starts again) the speaker of a node in the node's namespace.
func (d *demo) startSpeaker(name string) error {
	h := d.nodes[name]
	args := []string{"speaker", "--kubeconfig", d.lab.ComponentKubeconfig(controlplane.Speaker), "--node-name", name,
		"--bind-address", h.IPv4.String(),
		"--metrics-bind-address", net.JoinHostPort(h.IPv4.String(), strconv.Itoa(speakerMetrics)),
		"--health-probe-bind-address=0"}
	logName := "speaker-" + name
	if old := d.speakers[name]; old != nil {
		logName += "-" + strconv.Itoa(old.Pid())
	}
	p, err := d.lab.StartConfined(h, logName, nil, lab.SpeakerConfinement, append([]string{d.herald}, args...)...)
	if err != nil {
		return fmt.Errorf("starting the speaker of %s: %w", name, err)
	}
	d.speakers[name] = p
	d.detail("%s: pid %d: herald %s", name, p.Pid(), strings.Join(args, " "))
	return nil
}

// waitMembers waits until every running speaker counts n members in its memberlist (herald_speaker_members).
func (d *demo) waitMembers(ctx context.Context, n int) error {
	d.step("Waiting for every speaker to see %d members", n)
	start := time.Now()
	err := d.poll(ctx, membersTimeout, func(ctx context.Context) (bool, string, error) {
		for _, name := range d.names {
			p := d.speakers[name]
			if p.Exited() {
				return false, "", exitedError("the speaker of "+name, p)
			}
			v, err := d.metric(ctx, name, "herald_speaker_members")
			if err != nil {
				return false, err.Error(), nil
			}
			if int(v) != n {
				return false, fmt.Sprintf("%s sees %v members", name, v), nil
			}
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	d.detail("they do, %s after the start", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// metric reads one unlabelled metric from a node's speaker, from inside the node's namespace.
func (d *demo) metric(ctx context.Context, node, name string) (float64, error) {
	h := d.nodes[node]
	addr := net.JoinHostPort(h.IPv4.String(), strconv.Itoa(speakerMetrics))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scraping the speaker of %s: %w", node, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scraping the speaker of %s: %w", node, err)
	}
	return 0, fmt.Errorf("the speaker of %s does not export %s", node, name)
}

// openProbers opens the client's ARP and NDP probers, inside the client's namespace.
func (d *demo) openProbers() error {
	c := d.lab.Client
	return c.Do(func() error {
		ifi, err := net.InterfaceByName(c.Link)
		if err != nil {
			return err
		}
		if d.p4, err = probe.New(wire.InterfaceOf(ifi), c.IPv4); err != nil {
			return err
		}
		d.p6, err = probe.New(wire.InterfaceOf(ifi), c.IPv6)
		return err
	})
}

// stop sends p SIGTERM and waits for it to exit, with SIGKILL after stopGrace. An exit by SIGTERM or with
// status 0 is a clean one.
func stop(ctx context.Context, p *lab.Proc) error {
	if err := p.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		return err
	}
	select {
	case <-p.Done():
	case <-time.After(stopGrace):
		_ = p.Kill()
		<-p.Done()
		return fmt.Errorf("pid %d did not exit within %s of SIGTERM; its log ends:\n%s", p.Pid(), stopGrace, indent(p.LogTail()))
	case <-ctx.Done():
		_ = p.Kill()
		<-p.Done()
		return interrupted(ctx)
	}
	return cleanExit(p.Wait())
}

// cleanExit tells a process's exit error apart from an exit by SIGTERM, which is clean.
func cleanExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}

// kubectl runs kubectl with the lab's admin kubeconfig inside the cp namespace, where the API server is.
func (d *demo) kubectl(ctx context.Context, args ...string) (string, error) {
	out, err := d.lab.CP.Run(ctx, d.kubectlBin, append([]string{"--kubeconfig", d.lab.Kubeconfig}, args...)...)
	if err != nil && ctx.Err() != nil {
		return "", interrupted(ctx)
	}
	return string(out), err
}
