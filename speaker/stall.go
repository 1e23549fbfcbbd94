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
// So the loop does not withdraw everything. It keeps what nobody touched and withdraws the keys whose addresses
// another device probed or claimed while this node was not answering: a peer holds those now, or may (a probe is a
// takeover under way, and the taker's gratuitous ARPs may never come: a taker that stalls itself drops them), and
// this node probes them again and defers to whoever answers. A stall below the bound is resolved at once, from
// the frames read so far; above it, the loop first listens for stallListen, so that the whole backlog is read. A
// stall longer than stallTrustWire withdraws everything: a mass takeover probes thousands of addresses a second,
// and the guard's socket may have dropped frames by then.
//
// Probes of this node's own that the stall interrupted keep going: a result that arrives before the stall is
// resolved waits for the resolution, and counts unless another device probed or claimed the key meanwhile (then
// the key is probed again). Restarting them instead would livelock a node that stalls every CFS period.

const (
	// stallMargin is taken off the takeover bound for what the bound's arithmetic leaves out: a peer's clock and
	// scheduling running a little ahead, a probe sent a little before this process stopped.
	stallMargin = 50 * time.Millisecond
	// stallListen is how long, after a stall above the takeover bound, the loop reads the frames queued while it
	// was stopped before it decides what to keep. The backlog is read in well under a millisecond on an idle
	// machine; the rest is room for a busy one (the stall may be a CPU starvation that is not quite over), and
	// for a peer's probe sent just before this node resumed to arrive.
	stallListen = 50 * time.Millisecond
	// stallTrustWire is the longest stall whose backlog is trusted to hold every frame sent meanwhile. A peer
	// that declares this node dead (400 ms at the earliest) probes its addresses at up to --probe-rate, 20,000
	// frames/s: in the 600 ms left of a 1 s stall, 12,000 frames, which the guard's receive buffer
	// (guard.readBufferBytes, 16 MiB, about 16,000 queued frames) holds with the ordinary traffic beside them. A
	// longer stall withdraws every address. (A 3 s trust with a 4 MiB buffer let a 10,000-address takeover
	// overflow the backlog: the stalled node kept addresses its peer had taken, and both answered.)
	stallTrustWire = time.Second
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
	// since is when the loop learnt of the stall; listen fires when it is to be resolved (nil when it was
	// resolved at once).
	since  time.Time
	listen <-chan time.Time
	// claimed and probed hold, per key, the first other device heard claiming, or probing, one of its addresses
	// since the process stopped.
	claimed map[string]responder
	probed  map[string]responder
	// results are this node's probe results that arrived before the stall was resolved.
	results []probeResult
}

// heard records a frame read while the process had stalled (or before the stall is resolved).
func (s *stallCheck) heard(key string, r responder, probe bool) {
	if r.Class == classSelf || r.Class == classKernel {
		return
	}
	m := &s.claimed
	if probe {
		m = &s.probed
	}
	if *m == nil {
		*m = map[string]responder{}
	}
	if _, ok := (*m)[key]; !ok {
		(*m)[key] = r
	}
}

// probeTime is how long a speaker's probe lasts before it answers: ProbeCount probes ProbeInterval apart, then
// ProbeWait (100 ms with the defaults).
func (a *agent) probeTime() time.Duration {
	return time.Duration(max(0, a.cfg.ProbeCount-1))*a.cfg.ProbeInterval + a.cfg.ProbeWait
}

// takeoverBound is the shortest time this process can stop running before a peer may answer for one of its
// addresses: the peer must first declare it dead (membership.Timings.EarliestDead for the members now), then
// probe the address before answering (probeTime), less stallMargin. With the defaults and up to 10 members:
// 400 + 100 - 50 = 450ms. docs/concepts.md has the derivation.
func (a *agent) takeoverBound() time.Duration {
	n := max(1, len(a.members.Members()))
	return a.cfg.Timings.EarliestDead(n) + a.probeTime() - stallMargin
}

// onStall handles a stall of d reported by the detector. Below the takeover bound it is resolved at once;
// otherwise after stallListen. A stall reported while another waits to be resolved lengthens the wait.
func (a *agent) onStall(d time.Duration) {
	sc := &a.stallCheck
	if sc.stalled == 0 {
		sc.since = a.cfg.Clock.Now()
	}
	sc.stalled = max(sc.stalled, d)
	if sc.listen != nil {
		return // already listening; the timer resolves it
	}
	if sc.stalled < a.takeoverBound() {
		a.resolveStall()
		return
	}
	sc.listen = a.cfg.Clock.After(stallListen)
}

// resolveStall decides, after a stall, which addresses this node answers again: it withdraws the keys another
// device probed or claimed meanwhile (all of them after a stall longer than stallTrustWire), probes again the keys its own interrupted probes may have misjudged, and lets the responders
// answer the rest at once.
func (a *agent) resolveStall() {
	sc := a.stallCheck
	a.stallCheck = stallCheck{}
	bound := a.takeoverBound()
	now := a.cfg.Clock.Now()
	// The guard drops sightings when the loop lags (a busy node, a long backlog after the stall): a dropped probe
	// or claim may be the one that says a peer took an address, so a drop since the last quiet moment makes the
	// wire untrustworthy, as a stall longer than stallTrustWire does.
	dropped := a.wire.Dropped() - a.dropMark
	trusted := sc.stalled <= stallTrustWire && dropped == 0
	touched := func(key string) (responder, bool) {
		if r, ok := sc.claimed[key]; ok {
			return r, true
		}
		r, ok := sc.probed[key]
		return r, ok
	}
	var withdrawn, reprobed []string
	kept := 0
	for key, c := range a.claims {
		_, t := touched(key)
		switch {
		case c.State == claimHeld && (t || !trusted):
			// Withdrawn, it still counts as the key's holder for a while (claim.Lost), so that it probes the key
			// again at the next decision even where the election prefers another node: that node defers to this
			// one, and would leave the key dark until its backoff ran out.
			a.setClaim(key, claim{Gen: c.Gen + 1, Lost: now})
			withdrawn = append(withdrawn, key)
		case c.State == claimHeld:
			kept++
		case c.State == claimProbing && (t || !trusted):
			a.setClaim(key, claim{Gen: c.Gen + 1})
			reprobed = append(reprobed, key)
		}
	}
	if len(withdrawn) > 0 {
		a.apply() // the responders stop answering the withdrawn keys before they answer again
	}
	action := "kept"
	if len(withdrawn) > 0 {
		action = "withdrew"
	}
	a.metrics.Stalls.WithLabelValues(action).Inc()
	a.metrics.StallWithdrawn.Add(float64(len(withdrawn)))
	stalled := sc.stalled.Round(time.Millisecond).String()
	listened := a.cfg.Clock.Since(sc.since).Round(time.Millisecond).String()
	switch {
	case len(withdrawn) == 0:
		a.log.Info("this process did not run for a while; no other device probed or claimed its addresses meanwhile, answering on",
			"stalled", stalled, "bound", bound.String(), "listened", listened, "kept", kept, "probedByOthers", len(sc.probed))
	case !trusted && dropped > 0:
		a.log.Info("this process did not run for a while, and the guard dropped frames it could not hand over in time; stopped answering and probing every address again",
			"stalled", stalled, "droppedFrames", dropped, "withdrawn", len(withdrawn))
	case !trusted:
		a.log.Info("this process did not run for longer than its wire backlog can be trusted; stopped answering and probing every address again",
			"stalled", stalled, "trusted", stallTrustWire.String(), "withdrawn", len(withdrawn))
	default:
		slices.Sort(withdrawn)
		examples := withdrawn[:min(len(withdrawn), 3)]
		var by []string
		for _, k := range examples {
			r, _ := touched(k)
			who := r.Node
			if who == "" {
				who = r.MAC
			}
			by = append(by, who)
		}
		a.log.Info("this process did not run for a while and others probed or claimed some of its addresses meanwhile; stopped answering those and probing them again, answering on for the rest",
			"stalled", stalled, "bound", bound.String(), "listened", listened, "withdrawn", len(withdrawn), "examples", examples,
			"by", by, "kept", kept, "reprobed", len(reprobed))
	}
	a.stall.Resume()
	// Probe results that waited for the resolution: a key probed again has a new generation, so its stale
	// result is ignored.
	changed := false
	for _, r := range sc.results {
		changed = a.onProbed(r) || changed
	}
	a.flushProbeLog()
	if changed {
		a.apply()
	}
	if len(withdrawn) > 0 || len(reprobed) > 0 {
		a.settlePending = true // probe them again at the next decision
	}
}
