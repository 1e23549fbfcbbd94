package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/heraldlb/herald/speaker"
)

// faultKind is one kind of fault the soak injects.
type faultKind int

const (
	fKill       faultKind = iota // kill -9 a speaker, restart it after Hold
	fStop                        // SIGSTOP a speaker for Hold
	fPartition                   // drop gossip between Nodes and the rest (only into Nodes when OneWay) for Hold
	fLoss                        // random loss of Loss % of the frames both ways on a node's link for Hold
	fFlap                        // a node's link down for Hold, up for flapUp, Flaps times
	fAPIServer                   // kube-apiserver: SIGSTOP for Hold (Pause), or kill -9 and restart after Hold
	fEtcd                        // etcd: the same
	fController                  // kill -9 the controller, restart it after Hold
	fRogue                       // the rogue host answers for Service Svc's address for Hold
	fRecreate                    // delete Service Svc, create it again (same address) after Hold
	numFaultKinds
)

var faultNames = [numFaultKinds]string{"kill-9", "sigstop", "partition", "loss", "link-flap", "apiserver", "etcd",
	"controller", "rogue", "recreate"}

// faultWeights are how often each kind is drawn after the first round (which has one of each).
var faultWeights = [numFaultKinds]int{3, 3, 2, 2, 2, 1, 1, 1, 2, 2}

func (k faultKind) String() string { return faultNames[k] }

// flapUp is how long a flapping link stays up between two cuts.
const flapUp = 2 * time.Second

// plannedFault is one fault of a soak's schedule: a pure function of the seed, so a run can be replayed.
type plannedFault struct {
	ID     int
	At     time.Duration // from the start of the run
	Hold   time.Duration
	Kind   faultKind
	Nodes  []string // kill, stop, loss, flap: one node; partition: the side cut off from the others
	OneWay bool     // partition: only traffic into Nodes is dropped
	Pause  bool     // apiserver, etcd: SIGSTOP and SIGCONT instead of kill -9 and restart
	Loss   int      // loss: percent of frames dropped
	Flaps  int      // link-flap: how many cuts
	Svc    int      // rogue, recreate: the Service's index
}

func (f plannedFault) String() string {
	b := fmt.Sprintf("#%d +%v %s hold=%v", f.ID, f.At.Round(time.Millisecond), f.Kind, f.Hold.Round(time.Millisecond))
	switch f.Kind {
	case fKill, fStop:
		b += " node=" + f.Nodes[0]
	case fPartition:
		b += fmt.Sprintf(" side=%v one_way=%v", f.Nodes, f.OneWay)
	case fLoss:
		b += fmt.Sprintf(" node=%s loss=%d%%", f.Nodes[0], f.Loss)
	case fFlap:
		b += fmt.Sprintf(" node=%s cuts=%d", f.Nodes[0], f.Flaps)
	case fAPIServer, fEtcd:
		b += fmt.Sprintf(" pause=%v", f.Pause)
	case fRogue, fRecreate:
		b += fmt.Sprintf(" service=%d", f.Svc)
	}
	return b
}

// span is how long the fault occupies what it touches, recovery included: no other fault of the same resources
// is planned inside it.
func (f plannedFault) span() time.Duration {
	switch f.Kind {
	case fKill:
		return f.Hold + 15*time.Second // the restarted speaker starting and joining
	case fStop:
		return f.Hold + 2*time.Second
	case fPartition:
		return f.Hold + 5*time.Second // the members finding each other again
	case fFlap:
		return time.Duration(f.Flaps) * (f.Hold + flapUp)
	case fAPIServer, fEtcd:
		if f.Pause {
			return f.Hold + 5*time.Second
		}
		return f.Hold + 30*time.Second // the restarted process serving again
	case fController:
		return f.Hold + 10*time.Second
	case fRogue:
		// After the rogue host lets go, Herald answers again at its next probe, up to the conflict back-off's
		// longest delay later: no other claim until then.
		return f.Hold + speaker.DefaultConflictRetryMax
	case fRecreate:
		return f.Hold + 10*time.Second
	}
	return f.Hold
}

// resources are what the fault holds exclusively, and "out:<node>" for a node it takes out of service (kill,
// stop, flap): at most maxOut nodes are out at once.
func (f plannedFault) resources() []string {
	switch f.Kind {
	case fKill, fStop:
		return []string{"proc:" + f.Nodes[0], "out:" + f.Nodes[0]}
	case fFlap:
		return []string{"link:" + f.Nodes[0], "out:" + f.Nodes[0]}
	case fLoss:
		return []string{"link:" + f.Nodes[0]}
	case fPartition:
		return []string{"partition"}
	case fAPIServer, fEtcd:
		return []string{"controlplane"}
	case fController:
		return []string{"controller"}
	case fRogue:
		return []string{"rogue", fmt.Sprintf("svc:%d", f.Svc)}
	case fRecreate:
		return []string{fmt.Sprintf("svc:%d", f.Svc)}
	}
	return nil
}

// Limits of the schedule: at most maxConcurrent faults overlap, and at most maxOut of the nodes are out of
// service at once (so that every Service of externalTrafficPolicy Cluster keeps a node to fail over to).
const (
	maxConcurrent = 3
	maxOut        = 2
)

// planSoak draws the schedule of a soak of duration d over nodes and services Services from seed: a fault every
// 1-5 s, one of each kind first (in an order drawn from the seed), then kinds by faultWeights; a fault that would
// break the limits or share a resource with one under way is dropped (in the first round, moved later instead).
// Every fault ends, recovery included, before d.
func planSoak(seed uint64, d time.Duration, nodes []string, services int) []plannedFault {
	rng := rand.New(rand.NewPCG(seed, 16))
	var plan []plannedFault
	first := rng.Perm(int(numFaultKinds))
	total := 0
	for _, w := range faultWeights {
		total += w
	}
	at := 2 * time.Second
	for i := 0; ; i++ {
		at += time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
		if at >= d {
			break
		}
		var kind faultKind
		if i < len(first) {
			kind = faultKind(first[i])
		} else {
			r := rng.IntN(total)
			for kind = 0; r >= faultWeights[kind]; kind++ {
				r -= faultWeights[kind]
			}
		}
		f := drawFault(rng, kind, nodes, services)
		f.At = at
		for i < len(first) && !fits(plan, f, d) && f.At < d {
			f.At += time.Second // the first round has every kind: wait for room
		}
		if fits(plan, f, d) {
			f.ID = len(plan) + 1
			plan = append(plan, f)
		}
	}
	return plan
}

// drawFault draws a fault's parameters.
func drawFault(rng *rand.Rand, kind faultKind, nodes []string, services int) plannedFault {
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	node := func() string { return nodes[rng.IntN(len(nodes))] }
	f := plannedFault{Kind: kind}
	switch kind {
	case fKill:
		f.Nodes, f.Hold = []string{node()}, between(500*time.Millisecond, 5*time.Second)
	case fStop:
		// 50 ms to 10 s, log-uniform: as many stalls under the detection time as over it.
		lo, hi := float64(50*time.Millisecond), float64(10*time.Second)
		f.Nodes, f.Hold = []string{node()}, time.Duration(lo*math.Pow(hi/lo, rng.Float64()))
	case fPartition:
		perm := rng.Perm(len(nodes))
		for _, i := range perm[:1+rng.IntN(2)] {
			f.Nodes = append(f.Nodes, nodes[i])
		}
		slices.Sort(f.Nodes)
		f.OneWay, f.Hold = rng.IntN(2) == 0, between(2*time.Second, 30*time.Second)
	case fLoss:
		f.Nodes, f.Hold, f.Loss = []string{node()}, between(5*time.Second, 30*time.Second), 1+rng.IntN(20)
	case fFlap:
		f.Nodes, f.Hold, f.Flaps = []string{node()}, between(200*time.Millisecond, 5*time.Second), 1+rng.IntN(3)
	case fAPIServer, fEtcd:
		f.Pause = rng.IntN(2) == 0
		if f.Pause {
			f.Hold = between(time.Second, 30*time.Second)
		} else {
			f.Hold = between(0, 10*time.Second)
		}
	case fController:
		f.Hold = between(0, 10*time.Second)
	case fRogue:
		f.Svc, f.Hold = rng.IntN(services), between(2*time.Second, 20*time.Second)
	case fRecreate:
		f.Svc, f.Hold = rng.IntN(services), between(0, 5*time.Second)
	}
	return f
}

// fits tells whether f can join plan: it ends before d, shares no resource with a fault it overlaps, and keeps
// the limits (counted over every fault it overlaps anywhere, which is stricter than at each instant).
func fits(plan []plannedFault, f plannedFault, d time.Duration) bool {
	if f.At+f.span() > d {
		return false
	}
	mine := f.resources()
	out := map[string]bool{}
	for _, r := range mine {
		if n, ok := strings.CutPrefix(r, "out:"); ok {
			out[n] = true
		}
	}
	overlapping := 0
	for _, g := range plan {
		if g.At >= f.At+f.span() || f.At >= g.At+g.span() {
			continue
		}
		overlapping++
		for _, r := range g.resources() {
			if n, ok := strings.CutPrefix(r, "out:"); ok {
				out[n] = true
				continue
			}
			if slices.Contains(mine, r) {
				return false
			}
		}
	}
	return overlapping < maxConcurrent && len(out) <= maxOut
}
