package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/placement"
)

// Exit codes of herald drain and undrain.
const (
	drainOK      = 0 // done (or, with --dry-run, computed)
	drainPending = 1 // addresses still on the node after --wait, or some would have no node to go to
	drainError   = 2 // bad usage, a Node that does not exist, kubeconfig or API server trouble
)

const drainUsageText = `Usage: herald drain NODE [--dry-run] [--wait DURATION] [--kubeconfig FILE] [--context NAME]

Moves every load-balancer address off NODE before maintenance. It labels the Node
node.kubernetes.io/exclude-from-external-load-balancers (the well-known label the speakers honour, as other
load-balancer implementations do): each address NODE answers is handed to the next node in its election order,
which answers at once (a handoff: NODE answers until the taker accepts, so no request goes unanswered), and NODE
takes no new address. Then it waits until no Announcement names NODE, up to --wait.

--dry-run computes from the live cluster, with the decision the speakers run, which address goes where, prints
it and changes nothing. The live members are the nodes with a Ready speaker Pod (or, where there is none, every
Node that is not NotReady); the output says which.

Undo with herald undrain NODE.

Exit status: 0 done (with --dry-run: computed); 1 addresses still on NODE after --wait, or (with --dry-run) an
address no other node may answer, which would go dark; 2 bad usage, no such Node, or the API server unreachable.

Flags:
`

const undrainUsageText = `Usage: herald undrain NODE [--dry-run] [--kubeconfig FILE] [--context NAME]

Lets NODE take new addresses again: removes the label herald drain set. No address moves back at once (the
nodes holding them keep them); those whose election prefers NODE come back by fail-back, each a handoff, once
NODE has been a member for the speakers' --failback-after (30 s by default; never with 0). It prints which.

--dry-run prints the same and changes nothing.

Exit status: 0 done (with --dry-run: computed); 2 bad usage, no such Node, or the API server unreachable.

Flags:
`

// drainConfig is the parsed command line of herald drain and undrain.
type drainConfig struct {
	kubeconfig, context, speakerNS, class string
	dryRun                                bool
	wait, timeout                         time.Duration
}

// flags declares the flags drain, undrain and move share.
func (c *drainConfig) flags(fs *flag.FlagSet, dryRun string) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&c.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&c.speakerNS, "speaker-namespace", "herald-system", "namespace of the speaker Pods (to find the live members)")
	fs.StringVar(&c.class, "load-balancer-class", controllers.DefaultLoadBalancerClass, "loadBalancerClass Herald serves besides Services that name none")
	fs.BoolVar(&c.dryRun, "dry-run", false, dryRun)
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for each call to the API server")
}

// parsePlacement parses the flags of drain, undrain and move (parseArg).
func parsePlacement(fs *flag.FlagSet, args []string) (arg string, rest []string, code int, done bool) {
	return parseArg(fs, args, drainOK, drainError)
}

// parseArg parses the flags of a command whose one argument (a node, a Service, an address) may come before the
// flags, as in kubectl drain NODE --flags, or after them. It returns that argument ("" when missing) and what
// follows it; code and done as parseFlags, with its ok and usage codes.
func parseArg(fs *flag.FlagSet, args []string, ok, usage int) (arg string, rest []string, code int, done bool) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		arg, args = args[0], args[1:]
	}
	if code, done := parseFlags(fs, args, ok, usage); done {
		return "", nil, code, true
	}
	rest = fs.Args()
	if arg == "" && len(rest) > 0 {
		arg, rest = rest[0], rest[1:]
	}
	return arg, rest, 0, false
}

func runDrain(args []string, stdout, stderr io.Writer) int {
	return drainCommand("drain", true, args, stdout, stderr)
}
func runUndrain(args []string, stdout, stderr io.Writer) int {
	return drainCommand("undrain", false, args, stdout, stderr)
}

func drainCommand(name string, drain bool, args []string, stdout, stderr io.Writer) int {
	var c drainConfig
	text := drainUsageText
	if !drain {
		text = undrainUsageText
	}
	fs := newFlagSet(name, text, stderr)
	c.flags(fs, "print what would move where, change nothing")
	if drain {
		fs.DurationVar(&c.wait, "wait", 2*time.Minute, "how long to wait for the addresses to leave the node; 0 returns once labelled")
	}
	node, rest, code, done := parsePlacement(fs, args)
	if done {
		return code
	}
	usageErr := usageError(stderr, name, drainError)
	switch {
	case node == "":
		return usageErr("the node to %s is missing", name)
	case len(rest) > 0:
		return usageErr("unexpected argument %q", rest[0])
	case c.wait < 0:
		return usageErr("--wait %v: want 0 or more", c.wait)
	case c.timeout <= 0:
		return usageErr("--timeout %v: want more than 0", c.timeout)
	}
	cl, _, err := kubeClient(c.kubeconfig, c.context)
	if err != nil {
		fmt.Fprintf(stderr, "herald %s: %v\n", name, err)
		return drainError
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	call, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := placement.Load(call, cl, placement.Options{Namespace: c.speakerNS, Class: c.class})
	if err != nil {
		fmt.Fprintf(stderr, "herald %s: %v\n", name, err)
		return drainError
	}
	var moves []placement.Move
	if drain {
		moves, err = st.DrainMoves(node)
	} else {
		moves, err = st.UndrainMoves(node)
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald %s: %v\n", name, err)
		return drainError
	}
	was, _ := st.Drained(node)
	verb := "moves"
	if c.dryRun {
		verb = "would move"
	}
	switch {
	case drain && was:
		fmt.Fprintf(stdout, "Node %s is drained already (label %s).\n", node, placement.DrainLabel)
	case drain:
		fmt.Fprintf(stdout, "Draining %s %s %d addresses (live members: %s):\n", node, verb, len(moves), st.LiveFrom)
	case !was:
		fmt.Fprintf(stdout, "Node %s is not drained.\n", node)
	default:
		fmt.Fprintf(stdout, "Undraining %s moves nothing at once; %d addresses come back to it by fail-back (live members: %s):\n", node, len(moves), st.LiveFrom)
	}
	dark := printMoves(stdout, moves)
	if c.dryRun {
		if drain && dark > 0 {
			return drainPending
		}
		return drainOK
	}
	if drain != was {
		if err := placement.SetDrained(call, cl, node, drain); err != nil {
			fmt.Fprintf(stderr, "herald %s: %v\n", name, err)
			return drainError
		}
		if drain {
			fmt.Fprintf(stdout, "Labelled %s %s.\n", node, placement.DrainLabel)
		} else {
			fmt.Fprintf(stdout, "Removed the label %s from %s.\n", placement.DrainLabel, node)
		}
	}
	if !drain || c.wait == 0 {
		return drainOK
	}
	return waitDrained(ctx, cl, node, c.wait, stdout, stderr)
}

// printMoves prints one move a line and returns how many have nowhere to go.
func printMoves(w io.Writer, moves []placement.Move) (dark int) {
	if len(moves) == 0 {
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESSES\tSERVICES\tFROM\tTO")
	for _, m := range moves {
		to := m.To
		if to == "" {
			to, dark = "nobody: "+m.Why, dark+1
		} else if m.Why != "" {
			to += " (" + m.Why + ")"
		}
		addrs := make([]string, len(m.Addrs))
		for i, a := range m.Addrs {
			addrs[i] = a.String()
		}
		from := m.From
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.Join(addrs, ","), placement.Names(m.Services), from, to)
	}
	tw.Flush()
	return dark
}

// waitDrained waits until no Announcement names node, printing what is left now and then.
func waitDrained(ctx context.Context, cl client.Client, node string, wait time.Duration, stdout, stderr io.Writer) int {
	deadline := time.Now().Add(wait)
	last := -1
	for {
		left, err := placement.Holding(ctx, cl, node)
		if err != nil {
			fmt.Fprintf(stderr, "herald drain: %v\n", err)
			return drainError
		}
		if len(left) == 0 {
			fmt.Fprintf(stdout, "No Announcement names %s: drained.\n", node)
			return drainOK
		}
		if len(left) != last {
			fmt.Fprintf(stdout, "%d Services still announced by %s...\n", len(left), node)
			last = len(left)
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "herald drain: %d Services still announced by %s after %v: %s\n", len(left), node, wait, placement.Names(left))
			return drainPending
		}
		select {
		case <-ctx.Done():
			return drainError
		case <-time.After(500 * time.Millisecond):
		}
	}
}
