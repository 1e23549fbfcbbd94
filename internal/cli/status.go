package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/status"
)

// Exit codes of herald status.
const (
	statusOK       = 0 // every listed Service announced, no conflict, healthy or health not known yet
	statusProblems = 1 // some Service not announced, in conflict or unhealthy
	statusError    = 2 // bad usage, kubeconfig, or the API server unreachable
)

const statusUsageText = `Usage: herald status [--kubeconfig FILE] [--context NAME] [-n NAMESPACE | -A] [-o table|wide|json]

Shows every Service of type LoadBalancer that has an address (status.loadBalancer.ingress) joined with its
Announcement: the node whose speaker answers ARP/NDP for it, on which interfaces, the verdict of the watching
speaker's latest health probe, who answered it (MAC and node), how long ago, and the Announced, Conflict and
Healthy conditions. A Service with an address and no Announcement is listed as NotAnnounced. Services still
waiting for an address (<pending>) and Services of another loadBalancerClass are not listed.

Namespace: -n NAMESPACE, -A for all; default the kubeconfig context's namespace, as kubectl.

STATUS column (JSON "state"), worst first:
  NotAnnounced  no Announcement, Announced is not True, or an address of the Service is not in it
  Conflict      another device answers for an address (status.conflict, or Conflict=True)
  Unhealthy     the health probe found an address Dark, Duplicate, WrongResponder or ForeignResponder,
                or Healthy=False
  Announced     announced; health not known yet (no probe result or no watching node)
  Healthy       announced, and the probe found exactly the announcing node answering
The problems of each Service that is not Healthy are printed to stderr with -o table and wide.

Output:
  -o table  NAMESPACE NAME ADDRESSES NODE INTERFACES HEALTH RESPONDERS LAST-PROBE STATUS; sorted by
            namespace and name, one Service a line, "-" for an empty cell, no blank inside a cell
  -o wide   the same, then SINCE WATCHER CONDITIONS (Type=Status/Reason,...)
  -o json   {"version": 1, "ok": BOOL, "services": [ROW...]}, a ROW being
              {"namespace", "name", "addresses": [IP...], "announcement": BOOL, "node", "interfaces": [...],
               "announcedAddresses": [...], "since": RFC3339,
               "health": {"verdict", "watcher", "lastProbe", "since",
                          "addresses": [{"address", "verdict", "responders": [{"mac", "node", "latencySeconds"}]}]},
               "conflict": {"kind", "address", "mac", "node", "since"},
               "conditions": [{"type", "status", "reason", "message", "lastTransitionTime"}],
               "state", "problems": [TEXT...]}
            Fields that are empty are left out. Columns and fields are only ever added, never renamed.

Exit status: 0 every listed Service is Healthy or Announced (also when none is listed); 1 some Service is
NotAnnounced, Conflict or Unhealthy; 2 bad usage, an unreadable kubeconfig, or the API server unreachable.

Flags:
`

// statusConfig is the parsed command line of herald status.
type statusConfig struct {
	kubeconfig, context, namespace, output, class string
	all                                           bool
	timeout                                       time.Duration
}

// runStatus runs `herald status`.
func runStatus(args []string, stdout, stderr io.Writer) int {
	var c statusConfig
	fs := newFlagSet("status", statusUsageText, stderr)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&c.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&c.namespace, "n", "", "namespace (default: the context's)")
	fs.StringVar(&c.namespace, "namespace", "", "same as -n")
	fs.BoolVar(&c.all, "A", false, "every namespace")
	fs.BoolVar(&c.all, "all-namespaces", false, "same as -A")
	fs.StringVar(&c.output, "o", status.FormatTable, "output format: table, wide or json")
	fs.StringVar(&c.output, "output", status.FormatTable, "same as -o")
	fs.StringVar(&c.class, "load-balancer-class", controllers.DefaultLoadBalancerClass, "loadBalancerClass Herald serves besides Services that name none")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the API server")
	if code, done := parseFlags(fs, args, statusOK, statusError); done {
		return code
	}
	usageErr := usageError(stderr, "status", statusError)
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case c.all && c.namespace != "":
		return usageErr("-n and -A exclude each other")
	case c.output != status.FormatTable && c.output != status.FormatWide && c.output != status.FormatJSON:
		return usageErr("-o %q: the output format is table, wide or json", c.output)
	case c.timeout <= 0:
		return usageErr("--timeout %v: want more than 0", c.timeout)
	}

	cl, ctxNamespace, err := kubeClient(c.kubeconfig, c.context)
	if err != nil {
		fmt.Fprintf(stderr, "herald status: %v\n", err)
		return statusError
	}
	opts := status.Options{Namespace: c.namespace, LoadBalancerClass: c.class}
	if !c.all && opts.Namespace == "" {
		opts.Namespace = ctxNamespace
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rows, err := status.Gather(ctx, cl, opts)
	if err != nil {
		fmt.Fprintf(stderr, "herald status: %v\n", err)
		return statusError
	}
	if len(rows) == 0 && c.output != status.FormatJSON {
		where := "in namespace " + opts.Namespace
		if opts.Namespace == "" {
			where = "in any namespace"
		}
		fmt.Fprintf(stderr, "No Services of type LoadBalancer with an address %s.\n", where)
		return statusOK
	}
	if err := status.Render(stdout, rows, c.output, time.Now()); err != nil {
		fmt.Fprintf(stderr, "herald status: writing the output: %v\n", err)
		return statusError
	}
	if c.output != status.FormatJSON {
		for _, r := range rows {
			for _, p := range r.Problems {
				fmt.Fprintf(stderr, "%s/%s: %s\n", r.Namespace, r.Name, p)
			}
		}
	}
	if status.ExitCode(rows) != 0 {
		return statusProblems
	}
	return statusOK
}
