package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/validate"
)

// Exit codes of herald validate.
const (
	validateOK       = 0 // no error (and with --strict no warning)
	validateFindings = 1 // some finding is an error, or with --strict a warning
	validateError    = 2 // bad usage, an unreadable file, or the cluster unreachable
)

const validateUsageText = `Usage: herald validate [-f FILE|DIR|-]... [--from-cluster [--kubeconfig FILE] [--context NAME]]
                       [-o text|json] [--strict]

Finds the mistakes in a Layer-2 configuration that the CRDs' schema and CEL rules cannot see, because they
span objects, and says how to fix each:
  pool-overlap                   IPAddressPools listing the same addresses (IPv4 or IPv6)
  pool-not-found                 an L2Advertisement naming a pool that does not exist
  pool-selector-matches-nothing  an ipAddressPoolSelector that matches no pool
  node-selector-matches-nothing  a nodeSelector that matches no Node (needs Nodes: --from-cluster, or in -f)
  service-selector-matches-nothing  a serviceSelector of an L2Advertisement that matches no Service (checked when there are Services)
  preferred-node-selector-matches-nothing
                                 a preferredNodeSelector that matches no Node, or only Nodes its advertisement's
                                 nodeSelectors leave out, so that it prefers no node (warning; needs Nodes)
  pool-not-announced             a pool no L2Advertisement announces (warning)
  service-request                a Service requesting an address no pool holds (spec.loadBalancerIP,
                                 herald.dev/load-balancer-ips or MetalLB's loadBalancerIPs), a pool that
                                 does not exist (herald.dev/ip-pool or MetalLB's address-pool), or
                                 annotations the controller refuses
  interface-not-found            an interface an L2Advertisement names that no node answers on. Speakers
                                 publish their interfaces only in Announcements (status.interfaces, and the
                                 reason NoInterface of an elected node with none usable): an interface no
                                 Announcement mentions is reported unchecked
  local-no-ready-endpoint        a Service with externalTrafficPolicy Local without a ready endpoint (needs
                                 EndpointSlices: --from-cluster, or the Service's in -f)
  invalid-address, invalid-selector
                                 what the API server would refuse, in files that did not go through it
  metallb-not-translated         MetalLB configuration Herald's translation leaves out (unchecked)

Input (at least one of):
  -f FILE|DIR|-   manifests: multi-document YAML or JSON, kubectl's List output, a directory (read
                  recursively: *.yaml, *.yml, *.json), or - for stdin. Repeat -f for several. Herald's
                  IPAddressPool, L2Advertisement and Announcement, Services, Nodes and EndpointSlices are
                  read; MetalLB's IPAddressPool and L2Advertisement (metallb.io) and its legacy ConfigMap
                  through herald migrate's translation; other kinds are passed over.
  --from-cluster  read the same kinds from the cluster (kubeconfig as kubectl: --kubeconfig, $KUBECONFIG,
                  ~/.kube/config, in-cluster), in every namespace, and ConfigMaps and metallb.io's kinds for
                  MetalLB's configuration: the kubeconfig's user must be allowed to list them (when it may not
                  list MetalLB's, that part is reported unchecked). With -f as well, the files' objects replace
                  the cluster's of the same kind and name, as applying them would: check a change before
                  applying it.

Output:
  -o text   a summary line, then each finding, worst first: "SEVERITY CHECK: OBJECT FIELD", the message,
            and "fix: ..." under it.
  -o json   {"version": 1, "ok", "strict", "counts": {"errors", "warnings", "unchecked"},
             "objects": {"ipAddressPools", "l2Advertisements", "services", "nodes", "endpointSlices",
                         "announcements"},
             "findings": [{"check", "severity", "object", "field", "message", "fix"}]}
            Fields are only ever added, never renamed.
  Severities: error (does not work as written), warning (works, probably not as meant), unchecked (the
  input lacks what the check needs).

Exit status: 0 no error (warnings and unchecked alone do not fail); 1 some finding is an error, or with
--strict a warning; 2 bad usage, an unreadable file or manifest, or the API server unreachable.

Flags:
`

// validateConfig is the parsed command line of herald validate.
type validateConfig struct {
	paths                              pathList
	fromCluster, strict                bool
	kubeconfig, context, output, class string
	timeout                            time.Duration
}

// runValidate runs `herald validate`.
func runValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c validateConfig
	fs := newFlagSet("validate", validateUsageText, stderr)
	fs.Var(&c.paths, "f", "a manifest file, a directory of them, or - for stdin (repeatable)")
	fs.Var(&c.paths, "filename", "same as -f")
	fs.BoolVar(&c.fromCluster, "from-cluster", false, "read the configuration, Services, Nodes, EndpointSlices and Announcements from the cluster")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "with --from-cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&c.context, "context", "", "with --from-cluster: kubeconfig context (default: the current one)")
	fs.StringVar(&c.output, "o", "text", "output format: text or json")
	fs.StringVar(&c.output, "output", "text", "same as -o")
	fs.BoolVar(&c.strict, "strict", false, "exit 1 on warnings too")
	fs.StringVar(&c.class, "load-balancer-class", controllers.DefaultLoadBalancerClass, "loadBalancerClass Herald serves besides Services that name none")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "with --from-cluster: how long to wait for the API server")
	if code, done := parseFlags(fs, args, validateOK, validateError); done {
		return code
	}
	usageErr := usageError(stderr, "validate", validateError)
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q; name input files with -f", fs.Arg(0))
	case len(c.paths) == 0 && !c.fromCluster:
		return usageErr("no input: give -f FILE|DIR|- or --from-cluster")
	case (c.kubeconfig != "" || c.context != "") && !c.fromCluster:
		return usageErr("--kubeconfig and --context need --from-cluster")
	case c.output != "text" && c.output != "json":
		return usageErr("-o %q: the output format is text or json", c.output)
	case c.timeout <= 0:
		return usageErr("--timeout %v: want more than 0", c.timeout)
	}

	snap, err := readValidateInput(c, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "herald validate: %v\n", err)
		return validateError
	}
	report := validate.NewReport(snap, c.strict)
	write := report.WriteText
	if c.output == "json" {
		write = report.WriteJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(stderr, "herald validate: writing the output: %v\n", err)
		return validateError
	}
	if !report.OK {
		return validateFindings
	}
	return validateOK
}

// readValidateInput reads the cluster, then lays the files' objects over it.
func readValidateInput(c validateConfig, stdin io.Reader, stderr io.Writer) (*validate.Snapshot, error) {
	objs, err := readPaths(c.paths, stdin)
	if err != nil {
		return nil, err
	}
	files, ignored, err := validate.FromObjects(objs, c.class)
	if err != nil {
		return nil, err
	}
	if ignored > 0 {
		fmt.Fprintf(stderr, "herald validate: passed over %d objects of kinds it does not check\n", ignored)
	}
	if !c.fromCluster {
		return files, nil
	}
	cl, _, err := kubeClient(c.kubeconfig, c.context)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	snap, err := validate.ReadCluster(ctx, cl, c.class)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster: %w", err)
	}
	snap.Overlay(files)
	return snap, nil
}
