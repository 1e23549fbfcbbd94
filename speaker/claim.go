package speaker

import (
	"net/netip"
	"time"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
)

// A claim is this node's standing on one announcement key, beside the election: being elected is not enough
// to answer. Before answering for an address for the first time the node probes the wire (RFC 5227 / RFC 4862),
// and it defers to whoever already answers: another speaker that holds the address (after a failover, a
// partition, a restart of this node) or a device that owns it. While it answers, the guard watches for others
// claiming the address and settles split brains by a rule both sides compute alone. The functions here are
// pure: the event loop feeds them what happened and acts on what they return.

type claimState uint8

const (
	claimIdle     claimState = iota // not elected (or nothing to answer on)
	claimProbing                    // elected; probing before the first announcement
	claimHeld                       // answering
	claimDeferred                   // elected, but a speaker (Holder) or a foreign device (Foreign) answers
)

func (s claimState) String() string {
	return [...]string{"idle", "probing", "held", "deferred"}[s]
}

// responderClass says who sent a frame claiming an address.
type responderClass uint8

const (
	classSelf    responderClass = iota // this node's responder
	classSpeaker                       // another Herald speaker, by the MACs members publish
	classForeign                       // anyone else
	classKernel                        // this node's kernel (our MAC, for an address we do not answer there)
)

func (c responderClass) String() string {
	return [...]string{"self", "speaker", "foreign", "kernel"}[c]
}

// responder is a classified claimant.
type responder struct {
	Class responderClass
	Node  string // classSpeaker: its node
	MAC   string
	Addr  netip.Addr // the address it claimed
}

// conflict is another device answering for a key this node announces (or yields): what the Announcement
// status, the Events and the metrics report while it lasts.
type conflict struct {
	Kind  heraldv1.ConflictKind
	Addr  netip.Addr
	MAC   string
	Node  string
	Since time.Time // first seen
	Seen  time.Time // last seen
}

// claim is one key's state. The zero value is idle.
type claim struct {
	State claimState
	Since time.Time // held: answering since; probing: probe start; deferred: since
	Gen   uint64    // probe generation: a result of an older probe is stale
	// Holder is the speaker a deferred claim waits for (kept while the claim probes again); HolderOK whether, at
	// the last decision, it was a live member eligible for the key, and HolderSince since when it had been a live
	// member without a break. Any change of the two (it left, failed, became ineligible, or left and came back)
	// makes the claim probe at once, whether or not a probe is in flight: a deferral never outlives its holder.
	Holder      string
	HolderOK    bool
	HolderSince time.Time
	// Rechecked says that the last probe found Holder answering while it was not a live, eligible member, and
	// the claim re-probed after recheckDelay instead of backing off; a second such result backs off.
	Rechecked bool
	// Foreign is the device a deferred (yield) or defending (held) claim conflicts with.
	Foreign  *responder
	RetryAt  time.Time     // deferred: probe again from then on
	Backoff  time.Duration // the last retry delay; doubles up to guardPolicy.RetryMax
	Conflict *conflict
	// A held claim the election gives to another node is handed over (handoff.go): HandTo is the node offered the
	// key until HandUntil, while this node keeps answering; HandMust says this node may not keep the key if the
	// offer is not accepted in time (it is no longer eligible), as against a fail-back, which is retried from
	// NextOffer on.
	HandTo    string
	HandUntil time.Time
	HandMust  bool
	NextOffer time.Time
	// ProbeErr says why the last probe failed (no frame could be sent): the claim defers to nobody and probes
	// again at RetryAt, without answering, since nothing was checked on the wire.
	ProbeErr string
	// Lost is when an idle claim stopped answering for a reason the nodes that defer to it cannot see: this node
	// had no interface to answer on (its link went down) while it still won the key, or a stall's resolution
	// withdrew the key (stall.go). Until guardPolicy.RetryMax has passed, the node counts as the key's holder in
	// its decisions, so that it probes and answers again (once the link is back): the nodes that defer to it
	// would leave the key dark until their backoff ran out.
	Lost time.Time
}

// holderView is what the membership says of a speaker that holds a key, at a decision or when a probe result
// arrives: whether it is a live member eligible for the key, and since when it has been a live member without a
// break (zero when it is not one).
type holderView struct {
	OK    bool
	Since time.Time
}

// recheckDelay is how long a claim waits before probing again when its probe found a speaker answering that is
// not a live, eligible member (it left, or failed, while the probe ran): long enough for replies the leaving
// speaker sent before it stopped to drain, short beside a failover (memberlist's detection is about 0.5 s).
const recheckDelay = 100 * time.Millisecond

// partitionRetry caps the backoff of a claim deferred to a speaker that still answers but is not a live member
// (a partition hides it from memberlist). Nothing but a probe can tell when such a holder stops answering (it
// dies, or its link goes): its membership cannot change any more, so no event cuts the wait, and an exponential
// backoff left its addresses dark for seconds, up to --conflict-retry-max, after it died (found by the soak).
// The cost is one probe a second per address held across a partition.
const partitionRetry = time.Second

// guardPolicy are the guard's settings.
type guardPolicy struct {
	// Defend announces over a foreign device that owns an address (and re-announces when it claims it again);
	// the default, yield, stops answering and reports the conflict, because announcing over a real host hijacks it.
	Defend bool
	// RetryMin and RetryMax bound the backoff between probes of a deferred claim.
	RetryMin, RetryMax time.Duration
	// ClearAfter is how long a conflict must go unseen to count as resolved.
	ClearAfter time.Duration
}

func (p guardPolicy) withDefaults() guardPolicy {
	if p.RetryMin <= 0 {
		p.RetryMin = DefaultConflictRetryMin
	}
	if p.RetryMax < p.RetryMin {
		p.RetryMax = DefaultConflictRetryMax
		if p.RetryMax < p.RetryMin {
			p.RetryMax = p.RetryMin
		}
	}
	if p.ClearAfter <= 0 {
		p.ClearAfter = DefaultConflictClearAfter
	}
	return p
}

// outcome is what the loop must do after a claim changed.
type outcome uint8

const (
	outNone       outcome = iota
	outProbe              // start a probe of generation claim.Gen
	outAnnounce           // start answering (the claim is held now)
	outRelease            // stop answering (the claim left held)
	outReannounce         // keep answering and re-send gratuitous ARP / unsolicited NA at once
	outOffer              // keep answering; offer the key to claim.HandTo
	outHandOver           // stop answering, then tell the taker to answer at once (a take)
)

// report says which Event a change deserves, if any.
type report uint8

const (
	reportNone         report = iota
	reportConflict            // a new conflict (Warning)
	reportResolved            // a conflict ended (Normal)
	reportDeferred            // deferred to a speaker that already answers (Normal)
	reportLostConflict        // yielded to another speaker by the split-brain rule (Normal)
)

// elect updates a claim after a decision. elected says this node won the key and has an interface to answer on;
// holder is what the membership says of the claim's Holder now (the zero view when there is none).
func (c claim) elect(elected bool, holder holderView, now time.Time, p guardPolicy) (claim, outcome) {
	// The holder's membership changed since the claim last looked: it left or failed (or became ineligible), it
	// came back, or it left and came back between two decisions (a restart: it answers nothing yet).
	holderChanged := c.Holder != "" && (c.HolderOK != holder.OK || (holder.OK && !holder.Since.Equal(c.HolderSince)))
	if !elected {
		// The claim keeps the view of the holder it last acted on: a holder that leaves while this node is not
		// elected (another node is) must still count as a change once this node is, or the claim would wait for
		// its retry (up to guardPolicy.RetryMax) with nobody answering. Soak seed 1207 at +21m55s: the holder and
		// then the node elected in its place lost their links one after the other; the next node left the
		// address dark for 2.5 s.
		switch c.State {
		case claimHeld:
			return claim{Holder: c.Holder, HolderOK: holder.OK, HolderSince: holder.Since}, outRelease
		case claimProbing:
			c.State, c.Gen = claimIdle, c.Gen+1
			return c, outNone
		case claimDeferred:
			if c.Holder == "" {
				// A foreign device's address that is not ours to claim any more.
				return claim{Gen: c.Gen}, outNone
			}
		}
		return c, outNone
	}
	c.HolderOK, c.HolderSince = holder.OK, holder.Since
	switch c.State {
	case claimIdle:
		return c.probe(now), outProbe
	case claimProbing:
		if holderChanged {
			// What the probe in flight hears of the holder may be from before the change: start again.
			return c.probe(now), outProbe
		}
	case claimDeferred:
		if holderChanged || !now.Before(c.RetryAt) {
			return c.probe(now), outProbe
		}
	}
	return c, outNone
}

// lose stops answering a held claim that this node still wins but cannot answer on now (no interface), and
// remembers when (Lost).
func (c claim) lose(now time.Time) (claim, outcome) {
	if c.State != claimHeld {
		return c, outNone
	}
	return claim{Gen: c.Gen, Lost: now}, outRelease
}

// holds says whether this node counts as the key's holder in a decision at now: it answers, or it stopped for a
// reason the others cannot see (claim.Lost) less than p.RetryMax ago.
func (c claim) holds(now time.Time, p guardPolicy) bool {
	return c.State == claimHeld || (c.State == claimIdle && !c.Lost.IsZero() && now.Sub(c.Lost) < p.RetryMax)
}

func (c claim) probe(now time.Time) claim {
	c.State, c.Since, c.Gen = claimProbing, now, c.Gen+1
	return c
}

// probed applies the result of probe gen: the other devices that claimed the key's addresses meanwhile
// (this node's own responder and kernel left out). holder says what the membership says of a speaker now, when
// the result arrives: a speaker found answering counts as the key's holder only if it is a live member eligible
// for the key and has been one since before the probe started. One that is not (it left or failed while the
// probe ran, or came back meanwhile and answers nothing yet) makes the claim probe again after recheckDelay
// rather than back off; only if the next probe finds it again does the claim back off.
func (c claim) probed(gen uint64, found []responder, holder func(node string) holderView, now time.Time, p guardPolicy) (claim, outcome, report) {
	if c.State != claimProbing || gen != c.Gen {
		return c, outNone, reportNone
	}
	c.ProbeErr = ""
	var speaker, foreign *responder
	for i := range found {
		r := &found[i]
		switch r.Class {
		case classSpeaker:
			if speaker == nil || r.Node < speaker.Node {
				speaker = r
			}
		case classForeign:
			if foreign == nil {
				foreign = r
			}
		}
	}
	switch {
	case speaker != nil:
		// Another speaker answers: it holds the address (we failed over to it, or came back, or a partition
		// hides it from memberlist). Taking the address back would cost its clients a second move.
		hv := holder(speaker.Node)
		if hv.OK && hv.Since.After(c.Since) {
			hv = holderView{} // it (re)joined while the probe ran: what it answered may be from before
		}
		same := c.Holder == speaker.Node
		c.State, c.Holder, c.HolderOK, c.HolderSince, c.Foreign, c.Conflict = claimDeferred, speaker.Node, hv.OK, hv.Since, nil, nil
		c.Since = now
		switch {
		case hv.OK:
			c.Rechecked = false
			c.retry(now, p)
		case !c.Rechecked:
			c.Rechecked = true
			c.RetryAt = now.Add(recheckDelay)
		default:
			c.retry(now, p)
			if c.Backoff > partitionRetry {
				c.Backoff, c.RetryAt = partitionRetry, now.Add(partitionRetry)
			}
		}
		if same {
			return c, outNone, reportNone
		}
		return c, outNone, reportDeferred
	case foreign != nil && !p.Defend:
		c.State, c.Holder, c.HolderOK, c.HolderSince, c.Rechecked, c.Foreign = claimDeferred, "", false, time.Time{}, false, foreign
		c.retry(now, p)
		rep := c.noteConflict(heraldv1.ConflictForeign, foreign, now)
		return c, outNone, rep
	case foreign != nil:
		c.State, c.Since, c.Holder, c.HolderOK, c.HolderSince, c.Rechecked, c.Foreign, c.Backoff = claimHeld, now, "", false, time.Time{}, false, foreign, 0
		rep := c.noteConflict(heraldv1.ConflictForeign, foreign, now)
		return c, outAnnounce, rep
	}
	rep := reportNone
	if c.Conflict != nil {
		rep = reportResolved
	}
	return claim{State: claimHeld, Since: now, Gen: c.Gen}, outAnnounce, rep
}

// probeRetryMin and probeRetryMax bound the wait before probing again after a probe that could not be sent.
const (
	probeRetryMin = 100 * time.Millisecond
	probeRetryMax = time.Second
)

// probeFailed applies probe gen's failure: no frame went out (the queue was full, the link refused), so nothing
// on the wire was checked and the node may not answer. The claim probes again after a backoff from probeRetryMin
// doubling to probeRetryMax. The probe before answering is what keeps two nodes from answering one address; a
// node that answered anyway after a failed probe answered beside the holder (the soak, seed 1207).
func (c claim) probeFailed(gen uint64, err error, now time.Time) claim {
	if c.State != claimProbing || gen != c.Gen {
		return c
	}
	backoff := probeRetryMin
	if c.ProbeErr != "" {
		backoff = min(2*c.Backoff, probeRetryMax)
	}
	// What the claim deferred to before this probe (a holder, a device) still stands: nothing new was heard.
	return claim{State: claimDeferred, Since: now, Gen: c.Gen, ProbeErr: err.Error(), Backoff: backoff, RetryAt: now.Add(backoff),
		Holder: c.Holder, HolderOK: c.HolderOK, HolderSince: c.HolderSince, Foreign: c.Foreign, Conflict: c.Conflict}
}

// darkReported cuts a deferred claim's backoff short: the address's watcher reports it dark and its
// corroborator agrees (nobody answers), so whatever the claim defers to does not answer. It reports whether the
// claim now probes earlier than it would have.
func (c claim) darkReported(now time.Time) (claim, bool) {
	if c.State != claimDeferred || !now.Before(c.RetryAt) {
		return c, false
	}
	c.RetryAt = now
	return c, true
}

// retry arms the next probe of a deferred claim with exponential backoff.
func (c *claim) retry(now time.Time, p guardPolicy) {
	switch {
	case c.Backoff <= 0:
		c.Backoff = p.RetryMin
	case c.Backoff < p.RetryMax:
		c.Backoff = min(2*c.Backoff, p.RetryMax)
	}
	c.RetryAt = now.Add(c.Backoff)
}

// noteConflict records (or refreshes) the claim's conflict and says whether it is new.
func (c *claim) noteConflict(kind heraldv1.ConflictKind, r *responder, now time.Time) report {
	if c.Conflict != nil && c.Conflict.Kind == kind && c.Conflict.MAC == r.MAC && c.Conflict.Addr == r.Addr {
		c.Conflict.Seen = now
		return reportNone
	}
	c.Conflict = &conflict{Kind: kind, Addr: r.Addr, MAC: r.MAC, Node: r.Node, Since: now, Seen: now}
	return reportConflict
}

// observed applies a frame seen on the wire in which r claims one of the key's addresses.
//
// Two speakers answering for one key (a partition, a stalled node, views that differ for a moment) each see
// the other's gratuitous frames and replies, and each applies the same rule, with nothing exchanged: the node
// that comes first in the key's election order keeps the address and re-announces it, so that client caches
// converge at once; the other stops answering and defers to it.
func (c claim) observed(key, self string, r responder, holder func(node string) holderView, now time.Time, p guardPolicy) (claim, outcome, report) {
	switch c.State {
	case claimHeld:
		switch r.Class {
		case classSpeaker:
			if splitBrainWinner(key, self, r.Node) == self {
				rep := c.noteConflict(heraldv1.ConflictSpeaker, &r, now)
				return c, outReannounce, rep
			}
			hv := holder(r.Node)
			d := claim{State: claimDeferred, Since: now, Gen: c.Gen, Holder: r.Node, HolderOK: hv.OK, HolderSince: hv.Since}
			d.retry(now, p)
			return d, outRelease, reportLostConflict
		case classForeign:
			rep := c.noteConflict(heraldv1.ConflictForeign, &r, now)
			if p.Defend {
				c.Foreign = &r
				return c, outReannounce, rep
			}
			d := claim{State: claimDeferred, Since: now, Gen: c.Gen, Foreign: &r, Conflict: c.Conflict}
			d.retry(now, p)
			return d, outRelease, rep
		}
	case claimDeferred:
		if c.Conflict != nil && r.Class == classForeign && r.MAC == c.Conflict.MAC {
			c.Conflict.Seen = now
		}
	}
	return c, outNone, reportNone
}

// tick resolves a held claim's conflict that has not been seen for ClearAfter.
func (c claim) tick(now time.Time, p guardPolicy) (claim, report) {
	if c.State == claimHeld && c.Conflict != nil && now.Sub(c.Conflict.Seen) >= p.ClearAfter {
		c.Conflict, c.Foreign = nil, nil
		return c, reportResolved
	}
	return c, reportNone
}

// due is when tick or a decision next has something to do for the claim; zero when nothing is pending.
func (c claim) due(p guardPolicy) time.Time {
	var t time.Time
	switch {
	case c.State == claimDeferred:
		return c.RetryAt
	case c.State == claimHeld && c.Conflict != nil:
		t = c.Conflict.Seen.Add(p.ClearAfter)
	}
	for _, h := range []time.Time{c.HandUntil, c.NextOffer} {
		if c.State == claimHeld && !h.IsZero() && (t.IsZero() || h.Before(t)) {
			t = h
		}
	}
	return t
}

// splitBrainWinner is the node of a and b that keeps key when both answer for it: the one first in the key's
// election order. Both compute it alone, from the two names.
func splitBrainWinner(key, a, b string) string {
	return election.Order(key, []string{a, b})[0]
}
