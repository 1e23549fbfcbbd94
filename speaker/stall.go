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
// addresses another device claimed (answered for, announced) while this node was not answering: a peer holds
// those now, and this node probes them again and defers to it. A probe without a claim is a takeover under way:
// the loop listens until the prober must have announced (the probe's length after the probe was read, plus
// stallMargin) and judges by what it heard; a peer that saw this node come back meanwhile gives up and announces
// nothing, and the key is kept. A stall below the bound with nothing pending is resolved at once, from the frames
// read so far; above it, the loop first listens for stallListen, so that the whole backlog is read. Listening
// never lasts longer than stallListenMax: a key still only probed then is withdrawn. A stall longer than
// stallTrustWire withdraws everything: the guard's socket may have dropped frames by then.
//
// Probes of this node's own that the stall interrupted keep going: a result that arrives before the stall is
// resolved waits for the resolution, and counts unless another device claimed the key meanwhile (then the key is
// probed again). Restarting them instead would livelock a node that stalls every CFS period.

const (
	// stallMargin is taken off the takeover bound for what the bound's arithmetic leaves out: a peer's clock and
	// scheduling running a little ahead, a probe sent a little before this process stopped. It is also what the
	// loop waits beyond a prober's probe before it concludes the prober announced nothing.
	stallMargin = 50 * time.Millisecond
	// stallListen is how long, after a stall above the takeover bound, the loop reads the frames queued while it
	// was stopped before it decides what to keep. The backlog is read in well under a millisecond on an idle
	// machine; the rest is room for a busy one (the stall may be a CPU starvation that is not quite over), and
	// for a peer's probe sent just before this node resumed to arrive.
	stallListen = 50 * time.Millisecond
	// stallListenMax bounds the listening after a stall, whatever keeps arriving.
	stallListenMax = 500 * time.Millisecond
	// stallTrustWire is the longest stall whose backlog is trusted to hold every frame sent meanwhile: the
	// guard's receive buffer (guard.readBufferBytes, 4 MiB, about 4,000 queued frames) filled at the rate a
	// 10,000-address cluster's health probing makes other speakers answer (about 1,000 frames/s), with room to
	// spare. A longer stall withdraws every address.
	stallTrustWire = 3 * time.Second
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
	// since is when the loop learnt of the stall; listen fires when it is to be judged again (nil when it was
	// resolved at once).
	since  time.Time
	listen <-chan time.Time
	// claimed holds, per key, the first other device heard claiming one of its addresses since the process
	// stopped; probed, per key, when another device's latest probe of one of them was read.
	claimed map[string]responder
	probed  map[string]time.Time
	// results are this node's probe results that arrived before the stall was resolved.
	results []probeResult
}

// heard records a frame read while the process had stalled (or before the stall is resolved).
func (s *stallCheck) heard(key string, r responder, probe bool, now time.Time) {
	if r.Class == classSelf || r.Class == classKernel {
		return
	}
	if probe {
		if s.probed == nil {
			s.probed = map[string]time.Time{}
		}
		s.probed[key] = now
		return
	}
	if s.claimed == nil {
		s.claimed = map[string]responder{}
	}
	if _, ok := s.claimed[key]; !ok {
		s.claimed[key] = r
	}
}

// pending is when the last probe heard must have been followed by its prober's announcement, if there is to be
// one (zero when no probe waits for its outcome).
func (s *stallCheck) pending(probeTime time.Duration) time.Time {
	var until time.Time
	for key, at := range s.probed {
		if _, ok := s.claimed[key]; ok {
			continue
		}
		if t := at.Add(probeTime + stallMargin); t.After(until) {
			until = t
		}
	}
	return until
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

// onStall handles a stall of d reported by the detector. Below the takeover bound, with no probe heard that
// waits for its outcome, it is resolved at once; otherwise it is judged again after stallListen.
func (a *agent) onStall(d time.Duration) {
	sc := &a.stallCheck
	now := a.cfg.Clock.Now()
	if sc.stalled == 0 {
		sc.since = now
	}
	sc.stalled = max(sc.stalled, d)
	if sc.listen != nil {
		return // already listening; the timer judges
	}
	if sc.stalled < a.takeoverBound() && sc.pending(a.probeTime()).IsZero() {
		a.resolveStall()
		return
	}
	sc.listen = a.cfg.Clock.After(stallListen)
}

// judgeStall runs when the listening timer fires: it resolves the stall, or listens on while a probe heard may
// still be followed by its prober's announcement.
func (a *agent) judgeStall() {
	sc := &a.stallCheck
	now := a.cfg.Clock.Now()
	if until := sc.pending(a.probeTime()); now.Before(until) && now.Sub(sc.since) < stallListenMax {
		sc.listen = a.cfg.Clock.After(min(until.Sub(now), sc.since.Add(stallListenMax).Sub(now)))
		return
	}
	a.resolveStall()
}

// resolveStall decides, after a stall, which addresses this node answers again: it withdraws the keys another
// device claimed meanwhile, or still only probed when listening ended (all of them after a stall longer than
// stallTrustWire), probes again the keys its own interrupted probes may have misjudged, and lets the responders
// answer the rest at once.
func (a *agent) resolveStall() {
	sc := a.stallCheck
	a.stallCheck = stallCheck{}
	bound := a.takeoverBound()
	trusted := sc.stalled <= stallTrustWire
	touched := func(key string) (responder, bool) {
		if r, ok := sc.claimed[key]; ok {
			return r, true
		}
		if at, ok := sc.probed[key]; ok && a.cfg.Clock.Now().Before(at.Add(a.probeTime()+stallMargin)) {
			// Listening ended with the probe's outcome unknown.
			return responder{MAC: "a probe"}, true
		}
		return responder{}, false
	}
	var withdrawn, reprobed []string
	kept := 0
	for key, c := range a.claims {
		_, t := touched(key)
		switch {
		case c.State == claimHeld && (t || !trusted):
			a.setClaim(key, claim{Gen: c.Gen + 1})
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
		a.log.Info("this process did not run for a while; no other device claimed its addresses meanwhile, answering on",
			"stalled", stalled, "bound", bound.String(), "listened", listened, "kept", kept, "probedByOthers", len(sc.probed))
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
		a.log.Info("this process did not run for a while and others claimed some of its addresses meanwhile; stopped answering those and probing them again, answering on for the rest",
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
