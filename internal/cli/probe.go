package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/probecmd"
)

const probeUsageText = `Usage: herald probe [flags] IP | [NAMESPACE/]SERVICE

Asks the network from this host who answers for a load-balancer address, like arping and ndisc6: sends
-c ARP requests (IPv4) or Neighbor Solicitations (IPv6), -i apart, waits -w after each for answers, and prints
every answering MAC with its round-trip time, then a summary per address: requests sent and answered, the
distinct MACs (with their node when an Announcement's health probe names it), latency p50/p90/p99/max, and
DUPLICATE when more than one MAC answered a request. Run it on a host of the same Layer-2 network (a node or
a client); it needs CAP_NET_RAW (root).

Target:
  IP                  an IPv4 or IPv6 address; fe80::1%eth0 for a link-local one
  NAMESPACE/SERVICE   every status.loadBalancer.ingress IP of the Service, probed at the same time, read
                      through --kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  SERVICE             the same in -n NAMESPACE, default the kubeconfig context's namespace

Interface and source:
  The interface is -I, else the one the kernel routes the address out of (ip route get); the output says
  which and why, and warns when the route goes via a gateway (no connected subnet holds the address, so
  only proxy ARP/NDP would answer). The source is -s, else the interface's address in the target's
  subnet, else another address of it; an interface without an IPv4 address sends ARP probes (sender
  0.0.0.0, RFC 5227).

Output (-o text): a header per address, one line per request ("198.51.100.10 seq=1: 02:00:00:00:00:0b
(node n1) 0.412 ms"), then a summary whose last line is the verdict: OK, LOSSY, DARK, DUPLICATE or CHANGED
(one MAC at a time, but not always the same one: the address moved while probed).
-o json: {"version": 1, "exitCode", "interrupted", "targets": [{"address", "service", "protocol",
"interface", "interfaceReason", "source", "sourceReason", "warnings", "error", "requests": [{"seq", "sent",
"answers": [{"mac", "node", "rttSeconds", "replies"}]}], "summary": {"sent", "answered", "unanswered": [SEQ],
"duplicateRequests": [SEQ], "responders": [{"mac", "node", "requests", "firstSeq", "lastSeq"}],
"latency": {"p50Seconds", "p90Seconds", "p99Seconds", "maxSeconds"}, "duplicate", "verdict", "exitCode"}}]}

Exit status (the worst over the addresses):
  0  every request answered, by one and the same MAC
  1  some request unanswered: the address is dark (nobody answered) or lossy
  3  more than one MAC answered: a DUPLICATE answer to one request, or the MAC CHANGED between requests
     (takes precedence over 1)
  2  bad usage, the Service unreadable or without an address, no route or usable interface, no permission
     to open a packet socket (CAP_NET_RAW), or a socket error

Flags (also after the target):
`

// probeClient connects to the cluster; tests replace it.
var probeClient = func(kubeconfig, kubeContext string) (client.Reader, string, error) {
	return kubeClient(kubeconfig, kubeContext)
}

// probeRun probes; tests replace it.
var probeRun = probecmd.Run

// probeConfig is the parsed command line of herald probe.
type probeConfig struct {
	iface, source, kubeconfig, context, namespace, output string
	count                                                 int
	interval, wait                                        secondsFlag
	timeout                                               time.Duration
}

// secondsFlag is a duration that also reads a bare number as seconds, as arping does ("-i 0.2").
type secondsFlag time.Duration

func (s *secondsFlag) String() string { return time.Duration(*s).String() }
func (s *secondsFlag) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = secondsFlag(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want a duration such as 500ms or a number of seconds")
	}
	*s = secondsFlag(d)
	return nil
}

// runProbe runs `herald probe`.
func runProbe(args []string, stdout, stderr io.Writer) int {
	c := probeConfig{interval: secondsFlag(time.Second), wait: secondsFlag(time.Second)}
	fs := flag.NewFlagSet("herald probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(fs.Output(), probeUsageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.iface, "I", "", "interface to send on (default: the kernel's route to each address)")
	fs.IntVar(&c.count, "c", 3, "requests per address")
	fs.Var(&c.interval, "i", "interval between requests (a duration, or seconds)")
	fs.Var(&c.wait, "w", "how long to wait for answers after each request (a duration, or seconds)")
	fs.StringVar(&c.source, "s", "", "source address (default: the interface's address in the target's subnet; 0.0.0.0 for ARP probes)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig, for a Service target (default: $KUBECONFIG, ~/.kube/config, in-cluster); with an IP, read Announcements to name nodes")
	fs.StringVar(&c.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&c.namespace, "n", "", "namespace of a SERVICE given without one (default: the context's)")
	fs.StringVar(&c.namespace, "namespace", "", "same as -n")
	fs.StringVar(&c.output, "o", "text", "output format: text or json")
	fs.StringVar(&c.output, "output", "text", "same as -o")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the API server")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return probecmd.ExitOK
		}
		return probecmd.ExitError
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "herald probe: "+format+"\nRun 'herald probe -h' for usage.\n", a...)
		return probecmd.ExitError
	}
	var src netip.Addr
	switch {
	case len(rest) == 0:
		return usageErr("no target: give an IP or NAMESPACE/SERVICE")
	case len(rest) > 1:
		return usageErr("one target at a time, got %q", rest)
	case c.count < 1:
		return usageErr("-c %d: want 1 or more", c.count)
	case c.interval < 0:
		return usageErr("-i %v: want 0 or more", c.interval.String())
	case c.wait <= 0:
		return usageErr("-w %v: want more than 0", c.wait.String())
	case c.output != "text" && c.output != "json":
		return usageErr("-o %q: the output format is text or json", c.output)
	case c.timeout <= 0:
		return usageErr("--timeout %v: want more than 0", c.timeout)
	case c.source != "":
		if src, err = netip.ParseAddr(c.source); err != nil || src.Zone() != "" {
			return usageErr("-s %q: want an IP address without zone", c.source)
		}
		src = src.Unmap()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := probecmd.Options{Interface: c.iface, Source: src, Count: c.count, Interval: time.Duration(c.interval),
		Wait: time.Duration(c.wait), JSON: c.output == "json"}
	arg := rest[0]
	if a, err := netip.ParseAddr(arg); err == nil {
		opts.Targets = []probecmd.Target{{Addr: a.WithZone("").Unmap(), Zone: a.Zone()}}
		if c.kubeconfig != "" || c.context != "" {
			if cl, _, err := probeClient(c.kubeconfig, c.context); err == nil {
				kctx, cancel := context.WithTimeout(ctx, c.timeout)
				opts.Nodes = knownMACs(kctx, cl, "", "", stderr)
				cancel()
			} else {
				fmt.Fprintf(stderr, "herald probe: not naming nodes: %v\n", err)
			}
		}
	} else {
		if strings.Contains(arg, "%") || strings.Count(arg, "/") > 1 || strings.HasPrefix(arg, "/") || strings.HasSuffix(arg, "/") {
			return usageErr("%q is neither an IP address nor NAMESPACE/SERVICE", arg)
		}
		cl, ctxNamespace, err := probeClient(c.kubeconfig, c.context)
		if err != nil {
			fmt.Fprintf(stderr, "herald probe: %v\n", err)
			return probecmd.ExitError
		}
		ns, name, ok := strings.Cut(arg, "/")
		if !ok {
			ns, name = cmp.Or(c.namespace, ctxNamespace), arg
		} else if c.namespace != "" && c.namespace != ns {
			return usageErr("-n %s and %s name two namespaces", c.namespace, arg)
		}
		kctx, cancel := context.WithTimeout(ctx, c.timeout)
		opts.Targets, err = serviceTargets(kctx, cl, ns, name)
		if err == nil {
			opts.Nodes = knownMACs(kctx, cl, ns, name, stderr)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "herald probe: %v\n", err)
			return probecmd.ExitError
		}
	}
	return probeRun(ctx, opts, stdout, stderr)
}

// parseInterspersed parses flags before and after positional arguments ("herald probe 198.51.100.5 -c 5"),
// and returns the positional ones. After "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if consumed := len(args) - len(left); consumed > 0 && args[consumed-1] == "--" {
			return append(rest, left...), nil
		}
		if len(left) == 0 {
			return rest, nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

// serviceTargets are the ingress IPs of a Service of type LoadBalancer, IPv4 first.
func serviceTargets(ctx context.Context, c client.Reader, ns, name string) ([]probecmd.Target, error) {
	var s corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", ns, name, err)
	}
	var addrs []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	if len(addrs) == 0 {
		why := "no load-balancer address yet"
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			why = "not of type LoadBalancer"
		}
		return nil, fmt.Errorf("service %s/%s has no address to probe: %s", ns, name, why)
	}
	out := make([]probecmd.Target, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, probecmd.Target{Addr: a, Service: ns + "/" + name})
	}
	return out, nil
}

// knownMACs maps the MACs that Announcements' health probes and conflicts name to their nodes: all
// Announcements when it may list them, else the Service's own (ns/name, when given). Failures only cost the
// node names; they are reported to stderr.
func knownMACs(ctx context.Context, c client.Reader, ns, name string, stderr io.Writer) map[string]string {
	var list heraldv1.AnnouncementList
	err := c.List(ctx, &list)
	if err != nil && name != "" {
		var an heraldv1.Announcement
		if gerr := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &an); gerr == nil {
			list.Items, err = []heraldv1.Announcement{an}, nil
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald probe: not naming nodes: reading Announcements: %v\n", err)
		return nil
	}
	// The most recent probe wins when two Announcements disagree about a MAC.
	slices.SortStableFunc(list.Items, func(a, b heraldv1.Announcement) int {
		return lastProbe(&a).Compare(lastProbe(&b))
	})
	out := map[string]string{}
	for _, an := range list.Items {
		if cf := an.Status.Conflict; cf != nil && cf.MAC != "" && cf.Node != "" {
			out[cf.MAC] = cf.Node
		}
		if h := an.Status.Health; h != nil {
			for _, a := range h.Addresses {
				for _, r := range a.Responders {
					if r.Node != "" {
						out[r.MAC] = r.Node
					}
				}
			}
		}
	}
	return out
}

func lastProbe(an *heraldv1.Announcement) time.Time {
	if h := an.Status.Health; h != nil && h.LastProbe != nil {
		return h.LastProbe.Time
	}
	return time.Time{}
}
