package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/doctor"
)

const doctorUsage = `Usage: herald doctor [flags]

Checks this node's kernel settings, interfaces and routes for what breaks Layer-2 announcing, and says how to
fix each finding. Exit code: 0 without errors, 1 with errors, 2 on bad usage.

Flags:
`

// doctorFlags is the command line of `herald doctor`.
type doctorFlags struct {
	vips, interfaces, peers, output, node string
	port                                  int
	timeout                               time.Duration
	fromCluster                           bool
	kubeconfig, class                     string
}

// runDoctor runs `herald doctor`.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, doctorUsage)
		fs.PrintDefaults()
	}
	var f doctorFlags
	fs.StringVar(&f.vips, "vip", "", "load-balancer addresses to check, comma-separated")
	fs.StringVar(&f.interfaces, "interfaces", "", "interfaces the L2Advertisement names for them, comma-separated; empty means by subnet")
	fs.StringVar(&f.peers, "peers", "", "other nodes' speakers as host[:port], comma-separated, to check the memberlist port is reachable")
	fs.IntVar(&f.port, "memberlist-port", doctor.DefaultMemberlistPort, "memberlist port of peers given without one")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Second, "how long to wait for each peer")
	fs.StringVar(&f.node, "node-name", "", "this node's name in the report; empty means the host name")
	fs.StringVar(&f.output, "o", "text", "output format: text or json")
	fs.BoolVar(&f.fromCluster, "from-cluster", false, "also check the load-balancer addresses of Herald's Services, and probe the other Nodes' InternalIPs")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "with --from-cluster: kubeconfig file; empty means in-cluster, or $KUBECONFIG")
	fs.StringVar(&f.class, "load-balancer-class", controllers.DefaultLoadBalancerClass, "with --from-cluster: loadBalancerClass Herald serves besides Services that name none")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	opts, err := f.options(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "herald doctor: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.fromCluster {
		if err := f.addFromCluster(ctx, &opts); err != nil {
			fmt.Fprintf(stderr, "herald doctor: %v\n", err)
			return 1
		}
	}
	h, err := doctor.Gather(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "herald doctor: %v\n", err)
		return 1
	}
	findings := doctor.Check(h)
	findings = append(findings, doctor.ProbePeers(ctx, h.Peers, f.timeout)...)
	r := doctor.Report{Node: h.Node, Findings: findings}
	if f.output == "json" {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald doctor: %v\n", err)
		return 1
	}
	if doctor.HasErrors(findings) {
		return 1
	}
	return 0
}

// addFromCluster adds the addresses of Herald's Services and the other Nodes' InternalIPs to opts.
func (f *doctorFlags) addFromCluster(ctx context.Context, opts *doctor.GatherOptions) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	node := opts.Node
	if node == "" {
		if node, err = os.Hostname(); err != nil {
			return fmt.Errorf("host name: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	vips, peers, err := doctor.FromCluster(ctx, c, doctor.ClusterOptions{Node: node, LoadBalancerClass: f.class,
		MemberlistPort: f.port, Interfaces: splitList(f.interfaces)})
	if err != nil {
		return err
	}
	opts.VIPs = append(opts.VIPs, vips...)
	opts.Peers = append(opts.Peers, peers...)
	return nil
}

// options checks the flags and turns them into what Gather needs.
func (f *doctorFlags) options(rest []string) (doctor.GatherOptions, error) {
	var opts doctor.GatherOptions
	if len(rest) > 0 {
		return opts, fmt.Errorf("unexpected arguments %q", rest)
	}
	if f.output != "text" && f.output != "json" {
		return opts, fmt.Errorf("-o %q: want text or json", f.output)
	}
	if f.port < 1 || f.port > 65535 {
		return opts, fmt.Errorf("--memberlist-port %d: want 1-65535", f.port)
	}
	if f.timeout <= 0 {
		return opts, fmt.Errorf("--timeout %v: want more than 0", f.timeout)
	}
	ifaces := splitList(f.interfaces)
	for _, s := range splitList(f.vips) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return opts, fmt.Errorf("--vip %q: %w", s, err)
		}
		opts.VIPs = append(opts.VIPs, doctor.VIP{Addr: a, Interfaces: ifaces})
	}
	if len(ifaces) > 0 && len(opts.VIPs) == 0 && !f.fromCluster {
		return opts, fmt.Errorf("--interfaces needs --vip")
	}
	for _, s := range splitList(f.peers) {
		p, err := parsePeer(s, f.port)
		if err != nil {
			return opts, fmt.Errorf("--peers %q: %w", s, err)
		}
		opts.Peers = append(opts.Peers, p)
	}
	opts.Node = f.node
	return opts, nil
}

// parsePeer reads host, host:port, an IPv6 address, or [IPv6]:port.
func parsePeer(s string, port int) (doctor.Peer, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return doctor.Peer{Addr: a.String(), Port: port}, nil
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return doctor.Peer{}, err
		}
		return doctor.Peer{Addr: s, Port: port}, nil // a host name without a port
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 1 || p > 65535 {
		return doctor.Peer{}, fmt.Errorf("port %q: want 1-65535", ps)
	}
	if host == "" {
		return doctor.Peer{}, fmt.Errorf("no host")
	}
	return doctor.Peer{Addr: host, Port: p}, nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
