package speaker

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/iface"
)

// Membership wiring: which Nodes this speaker tries to join, and when; the gossip key it uses (checkKey); the
// interface MACs it publishes (setLinks). Which Nodes to join: memberlist finds peers only through the
// addresses it is given; the speaker gives it the InternalIPs of the Nodes that are not members. A join to a
// node that is powered off waits for memberlist's TCPTimeout (2 s) instead of being refused, so joins run off
// the event loop, one goroutine per peer and all at once, and report back as events; and a peer that did not
// answer, or that memberlist has just declared dead, is tried again only after a backoff, unless its Node
// changes (its address, or its Ready condition).

// peer is this speaker's standing with one Node that is not (or was not, at the last look) a live member.
type peer struct {
	Addr     string    // host:port of the Node's InternalIP and the memberlist port
	Print    string    // the part of the Node whose change resets the backoff: its InternalIP and Ready condition
	Member   bool      // it was a live member at the last look
	Failures int       // joins in a row that did not reach it
	NextAt   time.Time // no join before then
	InFlight bool      // a join to it is running
}

// joinCandidate is a Node with an InternalIP, other than this speaker's own.
type joinCandidate struct {
	Name, Addr, Print string
}

// joinPolicy bounds the backoff between joins to a peer that does not answer.
type joinPolicy struct {
	Base, Max time.Duration
}

// delay is the wait after the n-th join in a row that did not reach a peer (n >= 1): Base, doubling to Max.
func (p joinPolicy) delay(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// joinTargets updates peers from the Nodes (cands) and the live members, and returns, sorted, the peers to join
// now: those not live, not being joined, and whose backoff has passed. A peer that was a live member and is not
// any more (it left, or memberlist declared it dead) waits Base before its first try; a new peer, or one whose
// Node changed, is tried at once.
func joinTargets(cands []joinCandidate, live map[string]bool, peers map[string]*peer, now time.Time, p joinPolicy) []string {
	seen := make(map[string]bool, len(cands))
	var out []string
	for _, c := range cands {
		seen[c.Name] = true
		pr := peers[c.Name]
		if pr == nil {
			pr = &peer{Addr: c.Addr, Print: c.Print}
			peers[c.Name] = pr
		}
		if pr.Print != c.Print {
			pr.Addr, pr.Print, pr.Failures, pr.NextAt = c.Addr, c.Print, 0, now
		}
		if live[c.Name] {
			pr.Member, pr.Failures, pr.NextAt = true, 0, time.Time{}
			continue
		}
		if pr.Member {
			pr.Member, pr.NextAt = false, now.Add(p.Base)
		}
		if pr.InFlight || now.Before(pr.NextAt) {
			continue
		}
		out = append(out, c.Name)
	}
	for name, pr := range peers {
		if !seen[name] && !pr.InFlight {
			delete(peers, name)
		}
	}
	slices.Sort(out)
	return out
}

// joined records the end of a join to a peer: a failure backs it off; a success waits Base before another try,
// by when memberlist should list it.
func (pr *peer) joined(err error, now time.Time, p joinPolicy) {
	pr.InFlight = false
	if err != nil {
		pr.Failures++
		pr.NextAt = now.Add(p.delay(pr.Failures))
		return
	}
	pr.Failures = 0
	pr.NextAt = now.Add(p.Base)
}

// joinResult is the end of one join, for the loop.
type joinResult struct {
	Node string
	Err  error
	Took time.Duration
}

// joinCandidates lists the Nodes with an InternalIP other than this one, from the cache.
func (a *agent) joinCandidates(ctx context.Context) ([]joinCandidate, error) {
	var nodes corev1.NodeList
	if err := a.client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	out := make([]joinCandidate, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.Name == a.cfg.NodeName {
			continue
		}
		ip := ""
		for _, ad := range n.Status.Addresses {
			if ad.Type == corev1.NodeInternalIP {
				ip = ad.Address
				break
			}
		}
		if ip == "" {
			continue
		}
		ready := "unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = string(c.Status) + "@" + c.LastTransitionTime.UTC().Format(time.RFC3339)
			}
		}
		out = append(out, joinCandidate{Name: n.Name, Addr: net.JoinHostPort(ip, strconv.Itoa(a.cfg.Port)), Print: ip + " " + ready})
	}
	return out, nil
}

// rejoin starts joins, off the loop, to the Nodes that are not live members and are due a try. It returns how
// many it started.
func (a *agent) rejoin(ctx context.Context) int {
	cands, err := a.joinCandidates(ctx)
	if err != nil {
		a.log.Error(err, "listing Nodes to join")
		return 0
	}
	live := map[string]bool{}
	for _, m := range a.members.Members() {
		live[m.Name] = true
	}
	now := a.cfg.Clock.Now()
	targets := joinTargets(cands, live, a.peers, now, a.joinPolicy)
	for _, name := range targets {
		pr := a.peers[name]
		pr.InFlight = true
		addr := pr.Addr
		a.joins.Go(func() {
			start := a.cfg.Clock.Now()
			_, err := a.members.Join([]string{addr})
			select {
			case a.joined <- joinResult{Node: name, Err: err, Took: a.cfg.Clock.Since(start)}:
			case <-ctx.Done():
			}
		})
	}
	return len(targets)
}

// onJoined applies the end of a join. A peer that stops answering is logged once, and again when it answers.
func (a *agent) onJoined(r joinResult) {
	pr, ok := a.peers[r.Node]
	if !ok {
		return
	}
	before := pr.Failures
	pr.joined(r.Err, a.cfg.Clock.Now(), a.joinPolicy)
	switch {
	case r.Err != nil && before == 0:
		a.log.Info("cannot reach a peer to join it; trying again with backoff", "peer", r.Node, "addr", pr.Addr,
			"took", r.Took.Round(time.Millisecond).String(), "retry", pr.NextAt.Sub(a.cfg.Clock.Now()).Round(time.Millisecond).String(), "error", r.Err.Error())
	case r.Err != nil:
		a.log.V(1).Info("still cannot reach a peer to join it", "peer", r.Node, "failures", pr.Failures,
			"retry", pr.NextAt.Sub(a.cfg.Clock.Now()).Round(time.Millisecond).String(), "error", r.Err.Error())
	case before > 0:
		a.log.Info("joined a peer that did not answer before", "peer", r.Node, "failures", before)
	default:
		a.log.V(1).Info("joined a peer", "peer", r.Node, "took", r.Took.Round(time.Millisecond).String())
	}
}

// joinAll joins every Node that is not a member, all at once, and waits for the joins to end (at most
// memberlist's TCPTimeout, whatever the number of peers down): at start-up, before the first decision, so that
// a speaker alone does not elect itself for every address while gossip catches up.
func (a *agent) joinAll(ctx context.Context) {
	n := a.rejoin(ctx)
	contacted := 0
	for range n {
		select {
		case r := <-a.joined:
			a.onJoined(r)
			if r.Err == nil {
				contacted++
			}
		case <-ctx.Done():
			return
		}
	}
	if n > 0 {
		a.log.Info("joined peers", "tried", n, "reached", contacted)
	}
}

// checkKey switches memberlist to a new gossip key when the Secret changes. Every speaker watches the same
// Secret and switches within moments of the others; the old key keeps decrypting for a grace period meanwhile.
func (a *agent) checkKey(ctx context.Context) {
	key, err := a.readKey(ctx)
	if err != nil {
		a.log.V(1).Info("gossip key unusable; keeping the current one", "reason", err.Error())
		return
	}
	if bytes.Equal(key, a.key) {
		return
	}
	if err := a.members.SetKey(key); err != nil {
		a.log.Error(err, "switching to the new gossip key; keeping the current one")
		return
	}
	a.key = key
	a.log.Info("switched to the new gossip key from the Secret")
}

func (a *agent) setLinks(ls []iface.Link) {
	old := candidateMACs(a.curLinks)
	a.curLinks = ls
	now := candidateMACs(ls)
	if !slices.EqualFunc(old, now, func(x, y net.HardwareAddr) bool { return x.String() == y.String() }) {
		if err := a.members.UpdateMACs(now); err != nil {
			a.log.Error(err, "publishing interface MACs")
		}
	}
}
