package speaker

import (
	"context"
	"github.com/heraldlb/herald/internal/iface"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/internal/membership"
)

func TestDecodeHandoff(t *testing.T) {
	good := handoffMsg{Kind: handoffTake, From: "a", To: "b", Keys: []string{"198.51.100.1", "2001:db8::1"}}
	got, err := decodeHandoff(encodeHandoff(good))
	if err != nil || got.Kind != good.Kind || got.From != "a" || got.To != "b" || !slices.Equal(got.Keys, good.Keys) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	many := make([]string, handoffMaxKeys+1)
	for i := range many {
		many[i] = "198.51.100.1"
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a handoff message"},
		{"other magic", []byte(`X{"kind":"take"}`), "not a handoff message"},
		{"not JSON", []byte("H{"), "handoff message:"},
		{"unknown kind", encodeHandoff(handoffMsg{Kind: "steal", From: "a", To: "b", Keys: []string{"198.51.100.1"}}), `unknown kind "steal"`},
		{"no sender", encodeHandoff(handoffMsg{Kind: handoffTake, To: "b", Keys: []string{"198.51.100.1"}}), "want two different nodes"},
		{"to itself", encodeHandoff(handoffMsg{Kind: handoffTake, From: "b", To: "b", Keys: []string{"198.51.100.1"}}), "want two different nodes"},
		{"no keys", encodeHandoff(handoffMsg{Kind: handoffTake, From: "a", To: "b"}), "with 0 keys"},
		{"too many keys", encodeHandoff(handoffMsg{Kind: handoffTake, From: "a", To: "b", Keys: many}), "with 50001 keys"},
		{"bad key", encodeHandoff(handoffMsg{Kind: handoffOffer, From: "a", To: "b", Keys: []string{"198.51.100.1", "ns/svc"}}), `key "ns/svc" is not an address`},
	} {
		if _, err := decodeHandoff(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// TestClaimHand: the holder's side of a handoff, as a table of steps on one claim.
func TestClaimHand(t *testing.T) {
	p := guardPolicy{}.withDefaults()
	held := claim{State: claimHeld, Since: t0, Gen: 3}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		hand    handTarget
		at      time.Duration
		want    outcome
		handTo  string
		answers bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"nowhere to go: released at once", []step{{handTarget{}, 0, outRelease, "", false}}},
		{"fail-back: offered, kept while the offer is out, kept after it times out, offered again later", []step{
			{handTarget{To: "p"}, 0, outOffer, "p", true},
			{handTarget{To: "p"}, 500 * time.Millisecond, outNone, "p", true},
			{handTarget{To: "p"}, handoffWait, outNone, "", true},
			{handTarget{To: "p"}, handoffWait + handoffRetry/2, outNone, "", true},
			{handTarget{To: "p"}, handoffWait + handoffRetry, outOffer, "p", true},
		}},
		{"must go: offered, then handed over anyway when it times out", []step{
			{handTarget{To: "p", Must: true}, 0, outOffer, "p", true},
			{handTarget{To: "p", Must: true}, handoffWait, outHandOver, "", false},
		}},
		{"a fail-back that becomes a must while offered is handed over at the timeout", []step{
			{handTarget{To: "p"}, 0, outOffer, "p", true},
			{handTarget{To: "p", Must: true}, 100 * time.Millisecond, outNone, "p", true},
			{handTarget{To: "p", Must: true}, handoffWait, outHandOver, "", false},
		}},
		{"the election moves on to another node: offered to it", []step{
			{handTarget{To: "p"}, 0, outOffer, "p", true},
			{handTarget{To: "q"}, 100 * time.Millisecond, outOffer, "q", true},
		}},
		{"a must is not held back by a fail-back's retry", []step{
			{handTarget{To: "p"}, 0, outOffer, "p", true},
			{handTarget{To: "p"}, handoffWait, outNone, "", true},
			{handTarget{To: "p", Must: true}, 2 * handoffWait, outOffer, "p", true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := held
			for i, s := range tc.steps {
				var out outcome
				c, out = c.hand(s.hand, at(s.at), p)
				if out != s.want || c.HandTo != s.handTo || (c.State == claimHeld) != s.answers {
					t.Fatalf("step %d: outcome %v, offered to %q, state %v; want %v, %q, answering %v", i, out, c.HandTo, c.State, s.want, s.handTo, s.answers)
				}
			}
		})
	}
	// An acceptance from the node offered hands over; from anyone else, or with no offer out, it changes nothing.
	offered, _ := held.hand(handTarget{To: "p"}, t0, p)
	if c, out := offered.accepted("p"); out != outHandOver || c.State != claimIdle {
		t.Errorf("accepted by p: %v, %v", c.State, out)
	}
	if _, out := offered.accepted("q"); out != outNone {
		t.Errorf("accepted by q, not offered: %v", out)
	}
	if _, out := held.accepted("p"); out != outNone {
		t.Errorf("accepted with no offer out: %v", out)
	}
}

// TestClaimTaken: the taker's side: a take answers at once unless the claim defers to somebody else.
func TestClaimTaken(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    claim
		want outcome
	}{
		{"idle", claim{Gen: 2}, outAnnounce},
		{"probing", claim{State: claimProbing, Gen: 2}, outAnnounce},
		{"deferring to the sender", claim{State: claimDeferred, Holder: "h", Gen: 2}, outAnnounce},
		{"deferring to another speaker", claim{State: claimDeferred, Holder: "x", Gen: 2}, outNone},
		{"deferring to a foreign device", claim{State: claimDeferred, Foreign: &responder{Class: classForeign}, Gen: 2}, outNone},
		{"held already", claim{State: claimHeld, Gen: 2}, outNone},
	} {
		c, out := tc.c.taken("h", t0)
		if out != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, out, tc.want)
		}
		if out == outAnnounce && (c.State != claimHeld || c.Gen != 3) {
			t.Errorf("%s: state %v gen %d, want held with a new generation (a probe in flight is stale)", tc.name, c.State, c.Gen)
		}
	}
}

// nextSent waits for the loop's next message to a member.
func (h *loopHarness) nextSent(what string) handoffMsg {
	h.t.Helper()
	select {
	case s := <-h.members.sent:
		m, err := decodeHandoff(s.Msg)
		if err != nil || m.To != s.To {
			h.t.Fatalf("%s: sent %q to %s: %v", what, s.Msg, s.To, err)
		}
		return m
	case <-time.After(10 * time.Second):
		h.t.Fatalf("%s: nothing sent within 10 s", what)
		return handoffMsg{}
	}
}

func (h *loopHarness) noneSent(what string) {
	h.t.Helper()
	time.Sleep(20 * time.Millisecond)
	select {
	case s := <-h.members.sent:
		h.t.Fatalf("%s: sent %q to %s", what, s.Msg, s.To)
	default:
	}
}

func (h *loopHarness) deliver(m handoffMsg) { h.members.inbox <- encodeHandoff(m) }

// TestLoopTakerAcceptsAndAnswersAtOnce: the node the election prefers defers to a holder; the holder offers the
// address (a fail-back); the node accepts, and on the take answers at once, with no probe.
func TestLoopTakerAcceptsAndAnswersAtOnce(t *testing.T) {
	h, self, holder := deferring(t, nodeNames(3), time.Minute)
	h.deliver(handoffMsg{Kind: handoffOffer, From: holder, To: self, Keys: []string{vip1.String()}})
	if m := h.nextSent("the acceptance"); m.Kind != handoffAccept || m.To != holder || !slices.Equal(m.Keys, []string{vip1.String()}) {
		t.Fatalf("sent %+v, want an accept of %s to %s", m, vip1, holder)
	}
	if h.ann.answers(vip1) {
		t.Fatal("answers on the acceptance alone: the holder still answers until its take")
	}
	h.wire.answer(vip1) // the holder stops answering, then sends the take
	h.deliver(handoffMsg{Kind: handoffTake, From: holder, To: self, Keys: []string{vip1.String()}})
	h.waitFor(self+" answers on the take", func() bool { return h.ann.answers(vip1) })
	if n := len(h.wire.probes); n > 0 {
		t.Errorf("%d probes after the take: a handed-over address needs none", n)
	}
	if got := testutil.ToFloat64(h.a.metrics.Handoffs.WithLabelValues("take", "used")); got != 1 {
		t.Errorf("takes used = %v, want 1", got)
	}
	// Answering, this node no longer leaves the old holder out: shut down now, it hands the address back to it,
	// the next node in the order, not to the one after.
	h.inLoop(func() { h.a.leaveTakes(); h.a.flushHandoffs() })
	if m := h.nextSent("the take on shutdown"); m.Kind != handoffTake || m.To != holder {
		t.Errorf("sent %+v on shutdown, want a take to %s, next in %s's order", m, holder, vip1)
	}
}

// TestLoopTakerRefuses: an offer to a node that would not win the key with the holder left out is refused, and a
// take it was never offered does not make it answer.
func TestLoopTakerRefuses(t *testing.T) {
	nodes := nodeNames(3)
	ord := order(vip1, nodes)
	h := newLoop(t, ord[2], nodes, nodes, []netip.Addr{vip1}, nil).start()
	h.deliver(handoffMsg{Kind: handoffOffer, From: ord[0], To: ord[2], Keys: []string{vip1.String()}})
	h.waitFor("the refusal counted", func() bool {
		return testutil.ToFloat64(h.a.metrics.Handoffs.WithLabelValues("offer", "refused")) == 1
	})
	h.noneSent("an offer " + ord[1] + " should get")
	h.deliver(handoffMsg{Kind: handoffTake, From: ord[0], To: ord[2], Keys: []string{vip1.String()}})
	h.waitFor("the take received", func() bool {
		return testutil.ToFloat64(h.a.metrics.Handoffs.WithLabelValues("take", "received")) == 1
	})
	h.decide()
	if h.ann.answers(vip1) {
		t.Errorf("%s answers %s, which %s should take", ord[2], vip1, ord[1])
	}
	// Addressed to another node: dropped.
	h.deliver(handoffMsg{Kind: handoffOffer, From: ord[0], To: ord[1], Keys: []string{vip1.String()}})
	h.noneSent("a message addressed to " + ord[1])
}

// holding starts the loop of the node second in vip1's order, alone among the members, lets it take vip1, then
// adds the first node (the election's choice) as a member.
func holding(t *testing.T, failback time.Duration) (h *loopHarness, self, preferred string) {
	t.Helper()
	nodes := nodeNames(3)
	ord := order(vip1, nodes)
	self, preferred = ord[1], ord[0]
	h = newLoop(t, self, nodes, []string{self}, []netip.Addr{vip1}, func(c *Config) { c.FailbackAfter = failback }).start()
	h.nextProbe("the first probe")
	h.waitFor(self+" answers", func() bool { return h.ann.answers(vip1) })
	h.members.add(membershipMember(preferred))
	h.decide()
	return h, self, preferred
}

// TestLoopFailbackHandsOver: a holder keeps the address while the preferred node is young, offers it once fail-
// back is due and keeps answering until the acceptance, then stops answering before it sends the take.
func TestLoopFailbackHandsOver(t *testing.T) {
	h, self, preferred := holding(t, 30*time.Second)
	h.step(20 * time.Second)
	h.noneSent("an offer before fail-back is due")
	if !h.ann.answers(vip1) {
		t.Fatal("the holder let go before fail-back was due")
	}
	h.step(10 * time.Second)
	if m := h.nextSent("the offer"); m.Kind != handoffOffer || m.To != preferred || m.From != self {
		t.Fatalf("sent %+v, want an offer to %s", m, preferred)
	}
	if !h.ann.answers(vip1) {
		t.Fatal("the holder stopped answering before the offer was accepted")
	}
	h.deliver(handoffMsg{Kind: handoffAccept, From: preferred, To: self, Keys: []string{vip1.String()}})
	m := h.nextSent("the take")
	if m.Kind != handoffTake || m.To != preferred {
		t.Fatalf("sent %+v, want a take to %s", m, preferred)
	}
	if h.ann.answers(vip1) {
		t.Error("the take left while the holder still answered: two answerers")
	}
	h.decide()
	if h.ann.answers(vip1) || h.claim(vip1).State != claimIdle {
		t.Errorf("after the handover the holder answers %v, claim %v", h.ann.answers(vip1), h.claim(vip1).State)
	}
}

// TestLoopFailbackOfferUnanswered: an offer nobody accepts leaves the address where it is, answered, and is made
// again after handoffRetry.
func TestLoopFailbackOfferUnanswered(t *testing.T) {
	h, _, preferred := holding(t, 30*time.Second)
	h.step(30 * time.Second)
	h.nextSent("the offer")
	h.step(handoffWait + time.Second)
	h.noneSent("a take for an offer nobody accepted")
	if !h.ann.answers(vip1) {
		t.Fatal("the holder stopped answering when its fail-back offer went unanswered")
	}
	if got := testutil.ToFloat64(h.a.metrics.Handoffs.WithLabelValues("offer", "unanswered")); got != 1 {
		t.Errorf("offer keys unanswered = %v, want 1", got)
	}
	h.step(handoffRetry)
	if m := h.nextSent("the second offer"); m.Kind != handoffOffer || m.To != preferred {
		t.Fatalf("sent %+v, want a second offer to %s", m, preferred)
	}
}

// TestLoopDrainedHolderMustGo: a holder whose node is excluded from load balancers offers its address to the next
// node, answers until then, and when nobody accepts stops answering and sends the take anyway.
func TestLoopDrainedHolderMustGo(t *testing.T) {
	h, self, preferred := holding(t, 0)
	var n corev1.Node
	ctx := context.Background()
	if err := h.k8s.Get(ctx, nameOf(self), &n); err != nil {
		t.Fatal(err)
	}
	n.Labels[ExcludeLabel] = ""
	if err := h.k8s.Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
	h.decide()
	if m := h.nextSent("the offer"); m.Kind != handoffOffer || m.To != preferred {
		t.Fatalf("sent %+v, want an offer to %s", m, preferred)
	}
	if !h.ann.answers(vip1) {
		t.Fatal("the drained holder stopped answering before anyone took its address")
	}
	h.step(handoffWait)
	if m := h.nextSent("the take anyway"); m.Kind != handoffTake || m.To != preferred {
		t.Fatalf("sent %+v, want a take to %s", m, preferred)
	}
	if h.ann.answers(vip1) {
		t.Error("a drained node still answers after its offer timed out")
	}
}

// TestLoopLeaveTakes: a speaker shutting down sends each address it answers to the next node in its order.
func TestLoopLeaveTakes(t *testing.T) {
	nodes := nodeNames(3)
	ord := order(vip1, nodes)
	h := newLoop(t, ord[0], nodes, nodes, []netip.Addr{vip1}, nil).start()
	h.nextProbe("the first probe")
	h.waitFor(ord[0]+" answers", func() bool { return h.ann.answers(vip1) })
	h.inLoop(func() { h.a.leaveTakes(); h.a.flushHandoffs() })
	if m := h.nextSent("the take"); m.Kind != handoffTake || m.To != ord[1] || !slices.Equal(m.Keys, []string{vip1.String()}) {
		t.Fatalf("sent %+v, want a take of %s to %s", m, vip1, ord[1])
	}
}

func nameOf(node string) types.NamespacedName { return types.NamespacedName{Name: node} }

func membershipMember(node string) membership.Member { return membership.Member{Name: node} }

// TestLoopLinkFlapKeepsHeldKeys: a holder the election does not prefer (fail-back off) loses its link for a
// moment, too short for anyone to notice (the soak's seed 1207: a 433 ms link flap). It stops answering while
// the link is down, since it cannot; when the link comes back it probes and answers the address again, as the
// preferred node still defers to it and would otherwise leave the address dark until its backoff ran out.
func TestLoopLinkFlapKeepsHeldKeys(t *testing.T) {
	h, self, _ := holding(t, 0)
	if !h.ann.answers(vip1) {
		t.Fatal("the holder let go of the address with fail-back off")
	}
	down := labLink(self)
	down.Up = false
	h.inLoop(func() { h.a.setLinks([]iface.Link{down}) })
	h.decide()
	if h.ann.answers(vip1) {
		t.Fatal("answering with the link down")
	}
	h.step(400 * time.Millisecond)
	h.inLoop(func() { h.a.setLinks([]iface.Link{labLink(self)}) })
	h.decide()
	h.nextProbe("a probe once the link is back")
	h.waitFor(self+" answers again", func() bool { return h.ann.answers(vip1) })
}
