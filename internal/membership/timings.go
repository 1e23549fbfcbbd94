package membership

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timings are the memberlist failure-detector and gossip settings. A zero
// field takes its DefaultTimings value. The package documentation explains
// how they combine into the time to detect a crashed member, and what
// shortening them costs.
type Timings struct {
	// ProbeInterval is how often each member probes one peer; also the
	// deadline of each probe (direct, indirect and TCP fallback).
	ProbeInterval time.Duration
	// ProbeTimeout is how long the direct UDP ping waits for its ack before
	// indirect probes are sent. Must be shorter than ProbeInterval.
	ProbeTimeout time.Duration
	// GossipInterval is how often queued updates (alive, suspect, dead,
	// metadata) are sent to GossipNodes random peers.
	GossipInterval time.Duration
	// PushPullInterval is how often a member exchanges its full state with
	// a random peer over TCP (anti-entropy).
	PushPullInterval time.Duration
	// TCPTimeout bounds TCP connections: joins, push/pull.
	TCPTimeout time.Duration

	// SuspicionMult scales the minimum suspicion timeout:
	// SuspicionMult * max(1, log10(n)) * ProbeInterval.
	SuspicionMult int
	// SuspicionMaxTimeoutMult is the maximum suspicion timeout as a multiple
	// of the minimum, used until other members confirm the suspicion.
	SuspicionMaxTimeoutMult int
	// RetransmitMult: each update is gossiped RetransmitMult *
	// ceil(log10(n+1)) times.
	RetransmitMult int
	// GossipNodes is the number of peers each gossip round goes to.
	GossipNodes int
	// IndirectChecks is the number of peers asked to ping a member that did
	// not answer a direct ping.
	IndirectChecks int
	// AwarenessMaxMultiplier caps Lifeguard's scaling of a struggling
	// member's own probe interval.
	AwarenessMaxMultiplier int
}

// DefaultTimings returns timings chosen for sub-second detection of a crashed
// member in a cluster of 3 to 10 members on a LAN: typically about 0.5s (see
// the package documentation for the arithmetic and the trade-offs).
func DefaultTimings() Timings {
	return Timings{
		ProbeInterval:           100 * time.Millisecond,
		ProbeTimeout:            50 * time.Millisecond,
		GossipInterval:          20 * time.Millisecond,
		PushPullInterval:        10 * time.Second,
		TCPTimeout:              2 * time.Second,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 2,
		RetransmitMult:          4,
		GossipNodes:             3,
		IndirectChecks:          3,
		AwarenessMaxMultiplier:  8,
	}
}

// withDefaults returns t with every zero field replaced by its default.
func (t Timings) withDefaults() Timings {
	d := DefaultTimings()
	dur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	num := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	dur(&t.ProbeInterval, d.ProbeInterval)
	dur(&t.ProbeTimeout, d.ProbeTimeout)
	dur(&t.GossipInterval, d.GossipInterval)
	dur(&t.PushPullInterval, d.PushPullInterval)
	dur(&t.TCPTimeout, d.TCPTimeout)
	num(&t.SuspicionMult, d.SuspicionMult)
	num(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	num(&t.RetransmitMult, d.RetransmitMult)
	num(&t.GossipNodes, d.GossipNodes)
	num(&t.IndirectChecks, d.IndirectChecks)
	num(&t.AwarenessMaxMultiplier, d.AwarenessMaxMultiplier)
	return t
}

// validate checks timings that have had their defaults applied.
func (t Timings) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", t.ProbeInterval},
		{"ProbeTimeout", t.ProbeTimeout},
		{"GossipInterval", t.GossipInterval},
		{"PushPullInterval", t.PushPullInterval},
		{"TCPTimeout", t.TCPTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"SuspicionMult", t.SuspicionMult},
		{"SuspicionMaxTimeoutMult", t.SuspicionMaxTimeoutMult},
		{"RetransmitMult", t.RetransmitMult},
		{"GossipNodes", t.GossipNodes},
		{"IndirectChecks", t.IndirectChecks},
		{"AwarenessMaxMultiplier", t.AwarenessMaxMultiplier},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", n.name, n.v))
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		errs = append(errs, fmt.Errorf("ProbeTimeout %v must be shorter than ProbeInterval %v", t.ProbeTimeout, t.ProbeInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("membership: invalid timings: %w", err)
	}
	return nil
}

// apply copies the timings into a memberlist configuration.
func (t Timings) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.GossipInterval = t.GossipInterval
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.RetransmitMult = t.RetransmitMult
	c.GossipNodes = t.GossipNodes
	c.IndirectChecks = t.IndirectChecks
	c.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
}

// SuspicionTimeout returns memberlist's suspicion timer bounds for a cluster
// of n members, and k, the number of independent confirmations that pull the
// timer from maxTimeout down to minTimeout (k = 0: the timer is minTimeout
// from the start).
// Zero fields of t take their defaults.
func (t Timings) SuspicionTimeout(n int) (minTimeout, maxTimeout time.Duration, k int) {
	t = t.withDefaults()
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	// Same rounding as memberlist's util.go suspicionTimeout.
	minTimeout = time.Duration(t.SuspicionMult) * time.Duration(scale*1000) * t.ProbeInterval / 1000
	maxTimeout = time.Duration(t.SuspicionMaxTimeoutMult) * minTimeout
	k = t.SuspicionMult - 2
	if n-2 < k {
		k = 0
	}
	return minTimeout, maxTimeout, k
}

// EarliestDead is the shortest time, after a member of an n-member cluster
// stops running, before any other member can declare it dead: a probe it
// cannot answer fails one ProbeInterval after it was sent (the earliest such
// probe was sent as it stopped), and the suspicion that follows lasts at least
// the minimum suspicion timeout, which confirmations only ever pull down to
// and Lifeguard's awareness only lengthens. With DefaultTimings it is 400ms
// for up to 10 members.
func (t Timings) EarliestDead(n int) time.Duration {
	t = t.withDefaults()
	minTimeout, _, _ := t.SuspicionTimeout(n)
	return t.ProbeInterval + minTimeout
}

// DetectionTime estimates how long after a member of an n-member cluster
// crashes the others declare it dead, assuming no packet loss and healthy
// survivors. typical assumes a probe reaches the crashed member within one
// ProbeInterval, the suspicion is confirmed in time and one gossip round
// spreads "dead". upper assumes the crashed member is probed last in a full
// round, no confirmation arrives (maximum suspicion timeout) and gossip needs
// two rounds.
func (t Timings) DetectionTime(n int) (typical, upper time.Duration) {
	t = t.withDefaults()
	minTimeout, maxTimeout, k := t.SuspicionTimeout(n)
	if k == 0 {
		maxTimeout = minTimeout
	}
	rounds := time.Duration(n - 1)
	if rounds < 1 {
		rounds = 1
	}
	typical = t.ProbeInterval + t.ProbeInterval + minTimeout + t.GossipInterval
	upper = rounds*t.ProbeInterval + t.ProbeInterval + maxTimeout + 2*t.GossipInterval
	return typical, upper
}
