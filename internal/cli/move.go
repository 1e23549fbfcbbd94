package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/internal/placement"
)

const moveUsageText = `Usage: herald move NAMESPACE/SERVICE --to NODE [--dry-run] [--wait DURATION] [--kubeconfig FILE]
       herald move NAMESPACE/SERVICE --unpin [--dry-run]

Puts a Service's load-balancer addresses on NODE: pins the Service to it (annotation herald.dev/node), and the
node answering them now hands them over (a handoff: it answers until NODE accepts, so no request goes
unanswered). A pin stays: the addresses go back to NODE after a failover once it is eligible again (fail-back
would otherwise move them back to the election's choice). --unpin removes it; the addresses then stay where
they are until a fail-back moves them.

NODE must be eligible (a live member, not drained, selected by the L2Advertisements of the Service's pool and,
for externalTrafficPolicy Local, running a ready endpoint): otherwise the move is refused with the reason,
computed from the live cluster with the decision the speakers run. Services sharing the address move with it.

--dry-run prints where the addresses would go and changes nothing.

Exit status: 0 done (with --dry-run: computed); 1 NODE may not announce the Service (refused), or the
addresses were not on NODE after --wait; 2 bad usage, no such Service, or the API server unreachable.

Flags:
`

// runMove runs herald move.
func runMove(args []string, stdout, stderr io.Writer) int {
	var c drainConfig
	var to string
	var unpin bool
	fs := newFlagSet("move", moveUsageText, stderr)
	c.flags(fs, "print where the addresses would go, change nothing")
	fs.StringVar(&to, "to", "", "the node to put the Service's addresses on")
	fs.BoolVar(&unpin, "unpin", false, "remove the Service's pin instead")
	fs.DurationVar(&c.wait, "wait", time.Minute, "how long to wait for the node to announce the addresses; 0 returns once pinned")
	target, rest, code, done := parsePlacement(fs, args)
	if done {
		return code
	}
	usageErr := usageError(stderr, "move", drainError)
	ns, name, ok := strings.Cut(target, "/")
	switch {
	case target == "":
		return usageErr("the Service to move (NAMESPACE/SERVICE) is missing")
	case !ok || ns == "" || name == "" || strings.Contains(name, "/"):
		return usageErr("%q: want NAMESPACE/SERVICE", target)
	case len(rest) > 0:
		return usageErr("unexpected argument %q", rest[0])
	case (to == "") == !unpin:
		return usageErr("give either --to NODE or --unpin")
	case c.wait < 0:
		return usageErr("--wait %v: want 0 or more", c.wait)
	case c.timeout <= 0:
		return usageErr("--timeout %v: want more than 0", c.timeout)
	}
	svc := types.NamespacedName{Namespace: ns, Name: name}
	cl, _, err := kubeClient(c.kubeconfig, c.context)
	if err != nil {
		fmt.Fprintf(stderr, "herald move: %v\n", err)
		return drainError
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	call, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := placement.Load(call, cl, placement.Options{Namespace: c.speakerNS, Class: c.class})
	if err != nil {
		fmt.Fprintf(stderr, "herald move: %v\n", err)
		return drainError
	}
	m, err := st.MoveTo(svc, to)
	if err != nil {
		fmt.Fprintf(stderr, "herald move: %v\n", err)
		if strings.HasPrefix(err.Error(), "no Service") || strings.Contains(err.Error(), "no load-balancer address") {
			return drainError
		}
		return drainPending
	}
	verb := "moves"
	if c.dryRun {
		verb = "would move"
	}
	switch {
	case unpin:
		fmt.Fprintf(stdout, "Unpinning %s: its addresses stay on %s until a fail-back moves them (live members: %s).\n", svc, orDash(m.To), st.LiveFrom)
	case m.From == to:
		fmt.Fprintf(stdout, "%s is answered by %s already; pinning it there (live members: %s).\n", svc, to, st.LiveFrom)
	default:
		fmt.Fprintf(stdout, "Pinning %s to %s %s its addresses (live members: %s):\n", svc, to, verb, st.LiveFrom)
		printMoves(stdout, []placement.Move{m})
	}
	if c.dryRun {
		return drainOK
	}
	if err := placement.SetPin(call, cl, svc, to); err != nil {
		fmt.Fprintf(stderr, "herald move: %v\n", err)
		return drainError
	}
	if unpin || c.wait == 0 {
		return drainOK
	}
	deadline := time.Now().Add(c.wait)
	for {
		by, err := placement.AnnouncedBy(ctx, cl, svc)
		if err != nil {
			fmt.Fprintf(stderr, "herald move: %v\n", err)
			return drainError
		}
		if by == to {
			fmt.Fprintf(stdout, "%s is announced by %s.\n", svc, to)
			return drainOK
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "herald move: %s is still announced by %s after %v (pinned to %s: see herald status and its Announcement)\n", svc, orDash(by), c.wait, to)
			return drainPending
		}
		select {
		case <-ctx.Done():
			return drainError
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}
