package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/migrate"
)

// Exit codes of herald migrate.
const (
	migrateOK         = 0 // everything translated
	migrateError      = 1 // unreadable input or cluster
	migrateUsage      = 2 // bad flags
	migrateIncomplete = 3 // output written, but some notes are warnings or skipped
)

const migrateUsageText = `Usage: herald migrate [-f FILE|DIR|-]... [--from-cluster [--kubeconfig PATH]]
                      [--keep-metallb-annotations] [--services] [-o yaml|json]

Translate MetalLB's Layer-2 configuration into Herald's IPAddressPools and L2Advertisements.

Input (at least one of):
  -f FILE|DIR|-   MetalLB manifests: multi-document YAML or JSON, kubectl's List output, a directory (read
                  recursively: *.yaml, *.yml, *.json), or - for stdin. Repeat -f for several.
  --from-cluster  read MetalLB's resources (metallb.io IPAddressPool, L2Advertisement and the BGP kinds),
                  a legacy ConfigMap (MetalLB < 0.13: data key "config" with address-pools) and the Services
                  of type LoadBalancer from the cluster of --kubeconfig, else $KUBECONFIG, in-cluster config
                  or ~/.kube/config.

What is translated:
  - IPAddressPool: addresses, autoAssign, avoidBuggyIPs, serviceAllocation. Herald's pools are
    cluster-scoped: a second pool of the same name in another namespace becomes <namespace>-<name>.
    Addresses Herald refuses are left out, each with a note.
  - L2Advertisement: ipAddressPools (renamed pools followed), ipAddressPoolSelectors, nodeSelectors,
    serviceSelectors, preferredNodeSelectors, interfaces.
  - The legacy ConfigMap and AddressPool: layer2 pools, plus one L2Advertisement (metallb-legacy-layer2)
    for them. BGP pools, BGPAdvertisement, BGPPeer, BFDProfile and Community are skipped: Herald announces
    on Layer 2 only. A pool MetalLB announced by BGP only is not announced by Herald until an
    L2Advertisement selects it; none is made for it.
  - Services of type LoadBalancer: the metallb.universe.tf/ and metallb.io/ annotations loadBalancerIPs,
    address-pool and allow-shared-ip become herald.dev/load-balancer-ips, ip-pool and allow-shared-ip.
    Herald reads MetalLB's spellings too, so this rewrite is cosmetic. A Service with a loadBalancerClass
    other than herald.dev/l2 (such as metallb) is ignored by Herald, and since the class cannot be changed
    the Service must be recreated: each such Service gets a note.

Output:
  stdout          the pools and advertisements, for kubectl apply -f. In YAML the notes come first as
                  "# note:" comments.
  --services      print, instead, minimal Service objects (namespace, name, Herald's annotations) meant for
                    kubectl apply --server-side --field-manager=herald-migrate -f FILE
                  which changes nothing else in the Services, followed by the kubectl annotate commands
                  that remove MetalLB's annotations once MetalLB is gone (server-side apply cannot remove
                  annotations another field manager owns; with -o json these commands go to stderr).
  --keep-metallb-annotations
                  leave Services' MetalLB annotations as they are.
  -o yaml|json    output format (default yaml; json is one v1 List).
  stderr          every note, as "note: <severity>: <source> <field>: <message>". Severity is warning
                  (translated, but something was dropped or behaves differently), skipped (not translated)
                  or info.

Exit status: 0 everything translated; 3 output written, but some notes are warnings or skipped;
1 an error (unreadable file, bad YAML, cluster unreachable, no MetalLB in the cluster); 2 bad usage.

Flags:
`

// pathList is a repeatable -f flag.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }

// readPaths decodes the objects of every -f path in turn: a file, a directory or - for stdin (once).
func readPaths(paths []string, stdin io.Reader) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	stdinRead := false
	for _, p := range paths {
		var o []*unstructured.Unstructured
		var err error
		if p == "-" {
			if stdinRead {
				return nil, errors.New("-f - given twice: stdin can be read once")
			}
			stdinRead = true
			o, err = migrate.Decode("<stdin>", stdin)
		} else {
			o, err = migrate.ReadPath(p)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// migrateConfig is the parsed command line of herald migrate.
type migrateConfig struct {
	Paths       pathList
	FromCluster bool
	Kubeconfig  string
	KeepMetalLB bool
	Services    bool
	Output      string
}

// migrateClient connects to the cluster of a kubeconfig ("" for the default one); tests replace it.
var migrateClient = func(kubeconfig string) (client.Reader, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return c, nil
}

// runMigrate runs `herald migrate`.
func runMigrate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c migrateConfig
	fs := newFlagSet("migrate", migrateUsageText, stderr)
	fs.Var(&c.Paths, "f", "a MetalLB manifest file, a directory of them, or - for stdin (repeatable)")
	fs.Var(&c.Paths, "filename", "same as -f")
	fs.BoolVar(&c.FromCluster, "from-cluster", false, "read MetalLB's configuration and the LoadBalancer Services from the cluster")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig for --from-cluster (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
	fs.BoolVar(&c.KeepMetalLB, "keep-metallb-annotations", false, "leave Services' MetalLB annotations alone (Herald reads them too)")
	fs.BoolVar(&c.Services, "services", false, "print the Service annotation changes instead of the pools and advertisements")
	fs.StringVar(&c.Output, "o", "yaml", "output format: yaml or json")
	if code, done := parseFlags(fs, args, migrateOK, migrateUsage); done {
		return code
	}
	usageErr := usageError(stderr, "migrate", migrateUsage)
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q; name input files with -f", fs.Arg(0))
	case len(c.Paths) == 0 && !c.FromCluster:
		return usageErr("no input: give -f FILE|DIR|- or --from-cluster")
	case c.Kubeconfig != "" && !c.FromCluster:
		return usageErr("--kubeconfig needs --from-cluster")
	case c.Output != "yaml" && c.Output != "json":
		return usageErr("-o %q: the output format is yaml or json", c.Output)
	}

	objs, err := readMigrateInput(c, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "herald migrate: %v\n", err)
		return migrateError
	}
	res, err := migrate.Translate(objs, migrate.Options{KeepMetalLBAnnotations: c.KeepMetalLB})
	if err != nil {
		fmt.Fprintf(stderr, "herald migrate: %v\n", err)
		return migrateError
	}
	var out bytes.Buffer
	if err := writeMigrateOutput(&out, stderr, c, res); err != nil {
		fmt.Fprintf(stderr, "herald migrate: %v\n", err)
		return migrateError
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		fmt.Fprintf(stderr, "herald migrate: writing the output: %v\n", err)
		return migrateError
	}
	if !res.Complete() {
		return migrateIncomplete
	}
	return migrateOK
}

// readMigrateInput reads every -f path, then the cluster.
func readMigrateInput(c migrateConfig, stdin io.Reader) ([]*unstructured.Unstructured, error) {
	objs, err := readPaths(c.Paths, stdin)
	if err != nil {
		return nil, err
	}
	if c.FromCluster {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cl, err := migrateClient(c.Kubeconfig)
		if err != nil {
			return nil, err
		}
		o, err := migrate.ReadCluster(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("reading the cluster: %w", err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// writeMigrateOutput writes the requested stream to w; with -o json the removal commands go to stderr.
func writeMigrateOutput(w, stderr io.Writer, c migrateConfig, res *migrate.Result) error {
	switch {
	case c.Output == "yaml" && c.Services:
		return migrate.WriteServicesYAML(w, res)
	case c.Output == "yaml":
		return migrate.WriteYAML(w, res)
	case c.Services:
		for _, cmd := range res.RemoveCommands() {
			fmt.Fprintf(stderr, "once MetalLB is uninstalled, run: %s\n", cmd)
		}
		return migrate.WriteJSON(w, res.ServiceObjects())
	default:
		objs, err := res.Objects()
		if err != nil {
			return err
		}
		return migrate.WriteJSON(w, objs)
	}
}
