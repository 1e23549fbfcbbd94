package speaker

import (
	"slices"
	"time"

	"github.com/heraldlb/herald/internal/stall"
)

// Stall handling: what this node does when it finds it has not run for a while (a CPU stall, a CFS throttle, a
// SIGSTOP, a paused VM). While it stalled its responders answered nothing; the stall detector keeps them silent
// (announce.Config.Fresh) until the loop has decided which addresses it may answer again.
//
// A peer can only start answering for one of this node's addresses after it has declared this node dead and
// probed the address (RFC 5227 / RFC 4862) without hearing an answer. Both leave traces:
//   - no peer can have done it within the takeover bound (takeoverBound, derived in docs/concepts.md);
//   - a peer that did it sent probes for the address, and then gratuitous ARPs / unsolicited NAs, on the link
//     this node answers on; the guard's socket queued them while this process was stopped.
//
// So the loop does not withdraw everything. It keeps what nobody touched and withdraws only the keys whose
// addresses another device probed or claimed while this node was not answering: those are the ones a peer may
// have taken (or be taking) over. A stall below the bound is resolved at once, from the frames read so far;
// above it, the loop first listens for stallListen, so that the whole backlog is read, then resolves it. A stall
// longer than stallTrustWire withdraws everything: the guard's socket may have dropped frames by then.

const (
	// stallMargin is taken off the takeover bound for what the bound's arithmetic leaves out: a peer's clock and
	// scheduling running a little ahead, a probe sent a little before this process stopped.
	stallMargin = 50 * time.Millisecond
	// stallListen is how long, after a stall above the takeover bound, the loop reads the frames queued while it
	// was stopped before it decides what to keep. The backlog is read in well under a millisecond on an idle
	// machine; the rest is room for a busy one (the stall may be a CPU starvation that is not quite over), and
	// for a peer's probe sent just before this node resumed to arrive.
	stallListen = 50 * time.Millisecond
	// stallTrustWire is the longest stall whose backlog is trusted to hold every frame sent meanwhile: the
	// guard's receive buffer (guard.readBufferBytes, 4 MiB, about 4,000 queued frames) filled at the rate a
	// 10,000-address cluster's health probing makes other speakers answer (about 1,000 frames/s), with room to
	// spare. A longer stall withdraws every address.
	stallTrustWire = 3 * time.Second
	// stallSettle is how long after a stall that withdrew addresses the speaker starts no probe: the peer that
	// was probing one of them finishes its probe (100 ms with the defaults) and answers first, so that this
	// node's probe finds it and defers rather than racing it.
	stallSettle = 300 * time.Millisecond
)

// stallDetector is the stall detector as the loop uses it (internal/stall.Detector).
type stallDetector interface {
	Fresh() bool
	Stalls() <-chan time.Duration
	Resume()
}

var _ stallDetector = (*stall.Detector)(nil)

// stallCheck is what the loop gathers between a stall and its resolution.
type stallCheck struct {
	// stalled is the longest stall not yet resolved; zero when none is pending.
	stalled time.Duration
	// listen fires when the stall is to be resolved (nil when it is resolved at once).
	listen <-chan time.Time
	// touched holds, per key, the first other device heard probing or claiming one of its addresses since the
	// process stopped.
	touched map[string]responder
}

// heard records a frame read while the process had stalled (or before the stall is resolved).
func (s *stallCheck) heard(key string, r responder) {
	if r.Class == classSelf || r.Class == classKernel {
		return
	}
	if s.touched == nil {
		s.touched = map[string]responder{}
	}
	if _, ok := s.touched[key]; !ok {
		s.touched[key] = r
	}
}

// takeoverBound is the shortest time this process can stop running before a peer may answer for one of its
// addresses: the peer must first declare it dead (membership.Timings.EarliestDead for the members now), then
// probe the address before answering (ProbeCount probes ProbeInterval apart, then ProbeWait), less stallMargin.
// With the defaults and up to 10 members: 400 + 100 - 50 = 450ms. docs/concepts.md has the derivation.
func (a *agent) takeoverBound() time.Duration {
	n := max(1, len(a.members.Members()))
	probe := time.Duration(max(0, a.cfg.ProbeCount-1))*a.cfg.ProbeInterval + a.cfg.ProbeWait
	return a.cfg.Timings.EarliestDead(n) + probe - stallMargin
}

// onStall handles a stall of d reported by the detector. Below the takeover bound it is resolved at once; above
// it, after stallListen. A stall reported while another waits to be resolved lengthens the wait.
func (a *agent) onStall(d time.Duration) {
	sc := &a.stallCheck
	sc.stalled = max(sc.stalled, d)
	if sc.stalled < a.takeoverBound() && sc.listen == nil {
		a.resolveStall()
		return
	}
	sc.listen = a.cfg.Clock.After(stallListen)
}

// resolveStall decides, after a stall, which addresses this node answers again: it withdraws the keys another
// device probed or claimed meanwhile (all of them after a stall longer than stallTrustWire), restarts the probes
// the stall interrupted, and lets the responders answer the rest at once.
func (a *agent) resolveStall() {
	sc := a.stallCheck
	a.stallCheck = stallCheck{}
	bound := a.takeoverBound()
	trusted := sc.stalled <= stallTrustWire
	var withdrawn, reprobed []string
	kept := 0
	for key, c := range a.claims {
		switch c.State {
		case claimHeld:
			if _, touched := sc.touched[key]; touched || !trusted {
				a.setClaim(key, claim{Gen: c.Gen + 1})
				withdrawn = append(withdrawn, key)
			} else {
				kept++
			}
		case claimProbing:
			// What the probe heard spans the stall; it is started again at the next decision.
			a.setClaim(key, claim{Gen: c.Gen + 1})
			reprobed = append(reprobed, key)
		}
	}
	if len(withdrawn) > 0 {
		a.settleUntil = a.cfg.Clock.Now().Add(stallSettle)
		a.settlePending = true
		a.apply() // the responders stop answering the withdrawn keys before they answer again
	}
	action := "kept"
	if len(withdrawn) > 0 {
		action = "withdrew"
	}
	a.metrics.Stalls.WithLabelValues(action).Inc()
	a.metrics.StallWithdrawn.Add(float64(len(withdrawn)))
	stalled := sc.stalled.Round(time.Millisecond).String()
	switch {
	case len(withdrawn) == 0:
		a.log.Info("this process did not run for a while; no other device touched its addresses meanwhile, answering on",
			"stalled", stalled, "bound", bound.String(), "kept", kept, "reprobed", len(reprobed))
	case !trusted:
		a.log.Info("this process did not run for longer than its wire backlog can be trusted; stopped answering and probing every address again",
			"stalled", stalled, "trusted", stallTrustWire.String(), "withdrawn", len(withdrawn))
	default:
		slices.Sort(withdrawn)
		examples := withdrawn[:min(len(withdrawn), 3)]
		var by []string
		for _, k := range examples {
			r := sc.touched[k]
			who := r.Node
			if who == "" {
				who = r.MAC
			}
			by = append(by, who)
		}
		a.log.Info("this process did not run for a while and others probed or claimed some of its addresses meanwhile; stopped answering those and probing them again, answering on for the rest",
			"stalled", stalled, "bound", bound.String(), "withdrawn", len(withdrawn), "examples", examples, "by", by,
			"kept", kept, "reprobed", len(reprobed))
	}
	a.stall.Resume()
}
