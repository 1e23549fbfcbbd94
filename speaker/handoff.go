package speaker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// A handoff moves keys between two live speakers without the silence of a failover. A failover must probe
// first (claim.go): the node taking over cannot know whether the old holder still answers. When the holder
// gives a key up on purpose, it can say so, and the taker can answer at once:
//
//   - A move while the holder could keep answering (a fail-back to the node the election prefers, the holder
//     drained or otherwise no longer eligible) is an offer: the holder keeps answering and offers the keys to
//     the node the election now names. That node accepts the keys it would win with the holder left out and can
//     answer on an interface; the holder then stops answering them and sends a take; the taker answers at once
//     (gratuitous ARP / unsolicited NA), without probing. Between the holder's last reply and the taker's first
//     there is one message, never two answerers.
//   - An offer not accepted within handoffWait is dropped: a fail-back is tried again after handoffRetry, and a
//     holder that must go (it is not eligible any more) stops answering and sends the take anyway, which the
//     taker uses only if it can.
//   - A speaker shutting down (SIGTERM) cannot wait for an answer: it stops answering and sends takes to the
//     next node in each key's order, then leaves the cluster.
//
// A take also tells its receiver to leave the sender out of the key's election until it answers (at most
// handoffTTL), so that the two agree on the move before the sender's own state (a leave, a label) reaches the
// receiver. Messages go over
// memberlist's encrypted TCP stream (membership.List.Send) off the event loop. A lost message costs what it
// costs today: the taker learns of the move from the membership or the guard, and probes.

const (
	// handoffWait is how long a holder keeps answering for an offer to be accepted.
	handoffWait = time.Second
	// handoffRetry is how long a fail-back whose offer was not accepted waits before it is offered again.
	handoffRetry = 10 * time.Second
	// handoffTTL is how long a take leaves its sender out of the key's election at the receiver.
	handoffTTL = 5 * time.Second
	// handoffMaxKeys bounds the keys one message carries (and what a receiver accepts).
	handoffMaxKeys = 50_000
)

type handoffKind string

const (
	handoffOffer  handoffKind = "offer"
	handoffAccept handoffKind = "accept"
	handoffTake   handoffKind = "take"
)

// handoffMagic starts every handoff message, so that other messages members may send one day are told apart.
const handoffMagic = 'H'

// handoffMsg is one message of the handoff: From offers (accepts, takes) Keys to (from) To.
type handoffMsg struct {
	Kind handoffKind `json:"kind"`
	From string      `json:"from"`
	To   string      `json:"to"`
	Keys []string    `json:"keys"`
}

func encodeHandoff(m handoffMsg) []byte {
	b, _ := json.Marshal(m) // strings only: cannot fail
	return append([]byte{handoffMagic}, b...)
}

// decodeHandoff parses a message and checks it: a known kind, two different node names, and between 1 and
// handoffMaxKeys keys, each an IP address (a group key).
func decodeHandoff(b []byte) (handoffMsg, error) {
	var m handoffMsg
	if len(b) == 0 || b[0] != handoffMagic {
		return m, errors.New("not a handoff message")
	}
	if err := json.Unmarshal(b[1:], &m); err != nil {
		return m, fmt.Errorf("handoff message: %w", err)
	}
	switch {
	case m.Kind != handoffOffer && m.Kind != handoffAccept && m.Kind != handoffTake:
		return m, fmt.Errorf("handoff message of unknown kind %q", m.Kind)
	case m.From == "" || m.To == "" || m.From == m.To:
		return m, fmt.Errorf("handoff %s from %q to %q: want two different nodes", m.Kind, m.From, m.To)
	case len(m.Keys) == 0 || len(m.Keys) > handoffMaxKeys:
		return m, fmt.Errorf("handoff %s with %d keys (want 1 to %d)", m.Kind, len(m.Keys), handoffMaxKeys)
	}
	for _, k := range m.Keys {
		if _, err := netip.ParseAddr(k); err != nil {
			return m, fmt.Errorf("handoff %s: key %q is not an address", m.Kind, k)
		}
	}
	return m, nil
}

// handTarget says where a held claim the election gives away goes: To, the node the election names (a live
// member), and Must, whether this node is not eligible for the key any more. The zero value: nowhere (the key
// is released at once, as before handoffs).
type handTarget struct {
	To   string
	Must bool
}

// handedIn is a take this node received for a key: From is left out of the key's election until Until, or until
// the take makes this node's claim answer (then this node holds the key, and the holder rule keeps it here).
type handedIn struct {
	From  string
	Until time.Time
}

// hand updates a held claim that the last decision did not elect: offer it to hand.To, wait for the answer,
// and when none comes, keep it (a fail-back: offer again from NextOffer on) or give it up (hand.Must).
func (c claim) hand(hand handTarget, now time.Time, p guardPolicy) (claim, outcome) {
	switch {
	case c.State != claimHeld:
		return c, outNone
	case hand.To == "":
		return claim{Holder: c.Holder, HolderOK: c.HolderOK, HolderSince: c.HolderSince}, outRelease
	case c.HandTo == hand.To && now.Before(c.HandUntil):
		c.HandMust = c.HandMust || hand.Must
		return c, outNone // the offer is out
	case c.HandTo == hand.To && (hand.Must || c.HandMust):
		return claim{Gen: c.Gen}, outHandOver
	case c.HandTo == hand.To:
		c.HandTo, c.HandUntil, c.HandMust, c.NextOffer = "", time.Time{}, false, now.Add(handoffRetry)
		return c, outNone
	case !hand.Must && now.Before(c.NextOffer):
		return c, outNone
	}
	c.HandTo, c.HandUntil, c.HandMust, c.NextOffer = hand.To, now.Add(handoffWait), hand.Must, time.Time{}
	return c, outOffer
}

// accepted applies from's acceptance of an offer: a claim offered to from stops answering and hands over.
func (c claim) accepted(from string) (claim, outcome) {
	if c.State != claimHeld || c.HandTo != from {
		return c, outNone
	}
	return claim{Gen: c.Gen}, outHandOver
}

// taken applies a take from the key's holder to an elected claim: it answers at once, without a probe, unless it
// already answers, or defers to somebody else (another speaker, a foreign device).
func (c claim) taken(from string, now time.Time) (claim, outcome) {
	switch {
	case c.State == claimHeld:
		return c, outNone
	case c.State == claimDeferred && (c.Foreign != nil || (c.Holder != "" && c.Holder != from)):
		return c, outNone
	}
	return claim{State: claimHeld, Since: now, Gen: c.Gen + 1}, outAnnounce
}

// handTarget is where a held claim of g goes when this node is not elected for it: the election's winner, if it
// is another live member.
func (a *agent) handTarget(g *group) handTarget {
	self := a.cfg.NodeName
	if g.Winner == "" || g.Winner == self || !a.live[g.Winner] {
		return handTarget{}
	}
	return handTarget{To: g.Winner, Must: g.eligible == nil || !g.eligible(self)}
}

// excluded lists, per key, the node a take received leaves out of the key's election, and forgets takes that
// have expired.
func (a *agent) excluded(now time.Time) map[string]string {
	var out map[string]string
	for key, h := range a.handedIn {
		if !now.Before(h.Until) {
			delete(a.handedIn, key)
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[key] = h.From
	}
	return out
}

// queueHandoff adds keys to the message of kind for node to, sent by flushHandoffs.
func (a *agent) queueHandoff(kind handoffKind, to string, keys ...string) {
	if len(keys) == 0 {
		return
	}
	if a.outbox == nil {
		a.outbox = map[handoffKind]map[string][]string{}
	}
	if a.outbox[kind] == nil {
		a.outbox[kind] = map[string][]string{}
	}
	a.outbox[kind][to] = append(a.outbox[kind][to], keys...)
}

// flushHandoffs sends the queued messages, each from a goroutine of its own: the loop never waits on the network.
// It runs after apply, so that a take leaves only once the responders have stopped answering its keys.
func (a *agent) flushHandoffs() {
	for kind, byNode := range a.outbox {
		for to, keys := range byNode {
			for len(keys) > 0 {
				n := min(len(keys), handoffMaxKeys)
				m := handoffMsg{Kind: kind, From: a.cfg.NodeName, To: to, Keys: keys[:n]}
				keys = keys[n:]
				a.sends.Go(func() { a.send(m) })
			}
		}
	}
	a.outbox = nil
}

// send sends m and counts it.
func (a *agent) send(m handoffMsg) {
	result := "sent"
	if err := a.members.Send(m.To, encodeHandoff(m)); err != nil {
		result = "send_failed"
		a.log.Info("handoff message not sent; the receiver will find out from the membership or the wire", "message", m.Kind, "to", m.To, "keys", len(m.Keys), "reason", err.Error())
	} else {
		a.log.V(1).Info("handoff message sent", "message", m.Kind, "to", m.To, "keys", len(m.Keys))
	}
	a.metrics.Handoffs.WithLabelValues(string(m.Kind), result).Add(float64(len(m.Keys)))
}

// onMessage handles a message another member sent. It reports whether a decision is due (a take arrived).
func (a *agent) onMessage(b []byte) (decide bool) {
	m, err := decodeHandoff(b)
	switch {
	case err != nil:
		a.log.Info("dropping a member's message", "reason", err.Error())
		return false
	case m.To != a.cfg.NodeName:
		a.log.Info("dropping a handoff message addressed to another node", "message", m.Kind, "from", m.From, "to", m.To)
		return false
	}
	a.metrics.Handoffs.WithLabelValues(string(m.Kind), "received").Add(float64(len(m.Keys)))
	now := a.cfg.Clock.Now()
	switch m.Kind {
	case handoffOffer:
		var ok []string
		for _, key := range m.Keys {
			if a.canTake(key, m.From) {
				ok = append(ok, key)
			}
		}
		if refused := len(m.Keys) - len(ok); refused > 0 {
			a.metrics.Handoffs.WithLabelValues(string(m.Kind), "refused").Add(float64(refused))
			a.log.Info("refusing keys offered: this node would not win them, or cannot answer them now", "from", m.From, "refused", refused, "accepted", len(ok), "examples", examples(m.Keys, 3))
		}
		a.queueHandoff(handoffAccept, m.From, ok...)
		a.flushHandoffs()
	case handoffAccept:
		delete(a.silent, m.From)
		var gone []string
		for _, key := range m.Keys {
			c, ok := a.claims[key]
			if !ok {
				continue
			}
			if nc, out := c.accepted(m.From); out == outHandOver {
				a.setClaim(key, nc)
				gone = append(gone, key)
			}
		}
		if len(gone) > 0 {
			a.log.Info("handing addresses over", "to", m.From, "keys", len(gone), "examples", examples(gone, 3))
			a.apply()
			a.queueHandoff(handoffTake, m.From, gone...)
			a.flushHandoffs()
		}
	case handoffTake:
		for _, key := range m.Keys {
			a.handedIn[key] = handedIn{From: m.From, Until: now.Add(handoffTTL)}
		}
		return true
	}
	return false
}

// offersUnanswered counts the keys whose offers expired unanswered, by the node they were offered to, and logs a
// node the first time its offers go unanswered (again after it accepted one). A node that never answers may run
// a Herald without handoffs (an older release, during an upgrade): it ignores offers and never fails back, so
// the addresses stay here, answered, and are offered again every handoffRetry.
func (a *agent) offersUnanswered(byNode map[string][]string) {
	for to, keys := range byNode {
		a.metrics.Handoffs.WithLabelValues(string(handoffOffer), "unanswered").Add(float64(len(keys)))
		if a.silent[to] {
			continue
		}
		if a.silent == nil {
			a.silent = map[string]bool{}
		}
		a.silent[to] = true
		a.log.Info("keeping addresses offered back to a node that did not accept them within the wait; offering again "+
			"later. A node that never accepts may run a Herald release without handoffs (before preferred nodes and "+
			"handoffs), which ignores offers: the addresses then stay here until it is upgraded",
			"to", to, "keys", len(keys), "wait", handoffWait.String(), "retry", handoffRetry.String(), "examples", examples(keys, 3))
	}
}

// canTake says whether this node accepts key offered by from: it is not stalled, it would win the key with from
// left out of the election, it can answer on an interface, and it defers to nobody else.
func (a *agent) canTake(key, from string) bool {
	if a.plan == nil || !a.fresh() {
		return false
	}
	g := a.plan.Groups[key]
	if g == nil || g.eligible == nil || len(g.interfacesOf(svcRef{Addrs: g.Addrs})) == 0 {
		return false
	}
	w, ok := a.table.ElectRanked(key, g.weights, func(n string) bool { return n != from && g.eligible(n) })
	if pin := g.pin(); pin != "" && pin != from && g.eligible(pin) {
		w, ok = pin, true
	}
	if !ok || w != a.cfg.NodeName {
		return false
	}
	c := a.claims[key]
	return !(c.State == claimDeferred && (c.Foreign != nil || (c.Holder != "" && c.Holder != from)))
}

// leaveTakes are the takes a speaker shutting down sends: each key it answers goes to the next eligible live
// member in the key's order.
func (a *agent) leaveTakes() {
	if a.plan == nil {
		return
	}
	self := a.cfg.NodeName
	for key, c := range a.claims {
		g := a.plan.Groups[key]
		if c.State != claimHeld || g == nil || g.eligible == nil {
			continue
		}
		if to, ok := a.table.ElectRanked(key, g.weights, func(n string) bool { return n != self && a.live[n] && g.eligible(n) }); ok {
			a.queueHandoff(handoffTake, to, key)
		}
	}
}

// examples returns at most n of keys, for a log line that summarises many.
func examples(keys []string, n int) []string {
	return keys[:min(n, len(keys))]
}
