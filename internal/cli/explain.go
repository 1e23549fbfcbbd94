package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/heraldlb/herald/speaker"
)

// Exit codes of herald explain.
const (
	explainAnswered   = 0 // exactly one speaker answers the address
	explainUnanswered = 1 // no speaker answers it, or more than one does, or a speaker could not be asked
	explainError      = 2 // bad usage, kubeconfig, or the API server unreachable
)

const explainUsageText = `Usage: herald explain ADDRESS|NAMESPACE/SERVICE [--kubeconfig FILE] [--context NAME]
                      [--speaker-namespace NS] [-o text|json]

Asks every speaker why it answers ARP/NDP for an address, or why not: from its own last decision and its claim
on the address (elected or not and why, the election order of the live members, deferring to another speaker
or to a device that is not a speaker, no interface, probing, a stall). With NAMESPACE/SERVICE, each address of
the Service's status.loadBalancer.ingress.

The speakers are reached through the API server (the Pods' proxy subresource, on their metrics port, path
` + speaker.ExplainPath + `): the caller needs get on pods/proxy in the speakers' namespace.

Output:
  -o text  per address, one line per node ("*" marks the nodes that answer), then the details of each node
  -o json  {"version": 1, "addresses": [{"address", "nodes": [EXPLANATION...], "errors": [TEXT...]}]}, an
           EXPLANATION being {"node", "address", "answering", "summary", "details": [TEXT...]}

Exit status: 0 each address is answered by exactly one speaker; 1 some address by none or by more than one, or
a speaker could not be asked; 2 bad usage, an unreadable kubeconfig, or the API server unreachable.

Flags:
`

// explained is what herald explain found for one address.
type explained struct {
	Address string                `json:"address"`
	Nodes   []speaker.Explanation `json:"nodes"`
	Errors  []string              `json:"errors,omitempty"`
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	var kubeconfig, kubeContext, speakerNS, output string
	var timeout time.Duration
	fs := newFlagSet("explain", explainUsageText, stderr)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&speakerNS, "speaker-namespace", "herald-system", "namespace of the speaker Pods")
	fs.StringVar(&output, "o", "text", "output format: text or json")
	fs.StringVar(&output, "output", "text", "same as -o")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for each call")
	target, rest, code, done := parseArg(fs, args, explainAnswered, explainError)
	if done {
		return code
	}
	usageErr := usageError(stderr, "explain", explainError)
	switch {
	case target == "":
		return usageErr("the address (or NAMESPACE/SERVICE) to explain is missing")
	case len(rest) > 0:
		return usageErr("unexpected argument %q", rest[0])
	case output != "text" && output != "json":
		return usageErr("-o %q: want text or json", output)
	case timeout <= 0:
		return usageErr("--timeout %v: want more than 0", timeout)
	}
	addr, addrErr := netip.ParseAddr(target)
	ns, name, isSvc := strings.Cut(target, "/")
	if addrErr != nil && (!isSvc || ns == "" || name == "" || strings.Contains(name, "/")) {
		return usageErr("%q: want an IP address or NAMESPACE/SERVICE", target)
	}
	rc, _, err := kubeConfig(kubeconfig, kubeContext)
	if err != nil {
		fmt.Fprintf(stderr, "herald explain: %v\n", err)
		return explainError
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		fmt.Fprintf(stderr, "herald explain: %v\n", err)
		return explainError
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, timeout) }
	var addrs []netip.Addr
	if addrErr == nil {
		addrs = []netip.Addr{addr}
	} else {
		c, cancel := call()
		svc, err := cs.CoreV1().Services(ns).Get(c, name, metav1.GetOptions{})
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "herald explain: %v\n", err)
			return explainError
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			fmt.Fprintf(stderr, "herald explain: Service %s has no load-balancer address yet (status.loadBalancer.ingress)\n", target)
			return explainUnanswered
		}
	}
	c, cancel := call()
	pods, err := cs.CoreV1().Pods(speakerNS).List(c, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "herald explain: listing the speaker Pods in %s: %v\n", speakerNS, err)
		return explainError
	}
	if len(pods.Items) == 0 {
		fmt.Fprintf(stderr, "herald explain: no speaker Pod in namespace %s (label app.kubernetes.io/component=speaker); see --speaker-namespace\n", speakerNS)
		return explainError
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Spec.NodeName < pods.Items[j].Spec.NodeName })
	var out []explained
	code = explainAnswered
	for _, a := range addrs {
		e := explained{Address: a.String()}
		answering := 0
		for _, p := range pods.Items {
			c, cancel := call()
			ex, err := askSpeaker(c, cs, &p, a)
			cancel()
			if err != nil {
				e.Errors = append(e.Errors, fmt.Sprintf("%s (pod %s): %v", p.Spec.NodeName, p.Name, err))
				continue
			}
			if ex.Answering {
				answering++
			}
			e.Nodes = append(e.Nodes, ex)
		}
		if answering != 1 || len(e.Errors) > 0 {
			code = explainUnanswered
		}
		out = append(out, e)
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Version   int         `json:"version"`
			Addresses []explained `json:"addresses"`
		}{1, out})
		return code
	}
	for i, e := range out {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s:\n", e.Address)
		for _, ex := range e.Nodes {
			mark := " "
			if ex.Answering {
				mark = "*"
			}
			fmt.Fprintf(stdout, "%s %s: %s\n", mark, ex.Node, ex.Summary)
		}
		for _, msg := range e.Errors {
			fmt.Fprintf(stdout, "! %s\n", msg)
		}
		for _, ex := range e.Nodes {
			fmt.Fprintf(stdout, "  %s:\n", ex.Node)
			for _, d := range ex.Details {
				fmt.Fprintf(stdout, "    %s\n", d)
			}
		}
	}
	return code
}

// askSpeaker asks the speaker of Pod p, through the API server's proxy to its metrics port, why it answers a or not.
func askSpeaker(ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, a netip.Addr) (speaker.Explanation, error) {
	var ex speaker.Explanation
	port := ""
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "metrics" {
				port = strconv.Itoa(int(cp.ContainerPort))
			}
		}
	}
	if port == "" {
		return ex, fmt.Errorf("the pod has no port named metrics")
	}
	if p.Status.Phase != corev1.PodRunning {
		return ex, fmt.Errorf("the pod is %s", p.Status.Phase)
	}
	body, err := cs.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, port, speaker.ExplainPath,
		map[string]string{"address": a.String()}).DoRaw(ctx)
	if err != nil {
		return ex, fmt.Errorf("asking it: %w (%s)", err, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &ex); err != nil {
		return ex, fmt.Errorf("its answer: %w", err)
	}
	return ex, nil
}
