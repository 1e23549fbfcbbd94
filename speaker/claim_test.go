package speaker

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

var testPolicy = guardPolicy{RetryMin: time.Second, RetryMax: 8 * time.Second, ClearAfter: 5 * time.Second}

// past is when the holders of these tests became live members: before any probe starts.
var past = at(-time.Hour)

var liveHolder = holderView{OK: true, Since: past}

func always(string) holderView { return liveHolder }

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestClaimElect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       claim
		elected bool
		holder  holderView
		now     time.Time
		want    claim
		wantOut outcome
	}{
		{name: "idle and elected probes first", c: claim{}, elected: true, now: at(0),
			want: claim{State: claimProbing, Since: at(0), Gen: 1}, wantOut: outProbe},
		{name: "idle and not elected stays idle", c: claim{}, now: at(0), want: claim{}},
		{name: "probing waits for its result", c: claim{State: claimProbing, Since: at(0), Gen: 1}, elected: true, now: at(50 * time.Millisecond),
			want: claim{State: claimProbing, Since: at(0), Gen: 1}},
		{name: "probing and no longer elected drops the probe", c: claim{State: claimProbing, Gen: 1}, now: at(0),
			want: claim{State: claimIdle, Gen: 2}},
		{name: "held and elected keeps answering", c: claim{State: claimHeld, Since: at(0), Gen: 1}, elected: true, now: at(time.Hour),
			want: claim{State: claimHeld, Since: at(0), Gen: 1}},
		{name: "held and not elected releases", c: claim{State: claimHeld, Since: at(0), Gen: 1}, now: at(time.Hour),
			want: claim{}, wantOut: outRelease},
		{name: "deferred to a live holder waits for the retry",
			c:       claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(time.Second), Backoff: time.Second, Gen: 1},
			elected: true, holder: liveHolder, now: at(500 * time.Millisecond),
			want: claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(time.Second), Backoff: time.Second, Gen: 1}},
		{name: "deferred holder lost probes at once", c: claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(time.Hour), Gen: 1},
			elected: true, now: at(time.Second),
			want: claim{State: claimProbing, Since: at(time.Second), Holder: "b", Gen: 2, RetryAt: at(time.Hour)}, wantOut: outProbe},
		{name: "deferred holder left and came back between two decisions probes at once",
			c:       claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(time.Hour), Gen: 1},
			elected: true, holder: holderView{OK: true, Since: at(500 * time.Millisecond)}, now: at(time.Second),
			want:    claim{State: claimProbing, Since: at(time.Second), Holder: "b", HolderOK: true, HolderSince: at(500 * time.Millisecond), Gen: 2, RetryAt: at(time.Hour)},
			wantOut: outProbe},
		{name: "deferred holder not live before and live now probes at once",
			c:       claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Hour), Gen: 1},
			elected: true, holder: liveHolder, now: at(time.Second),
			want:    claim{State: claimProbing, Since: at(time.Second), Holder: "b", HolderOK: true, HolderSince: past, Gen: 2, RetryAt: at(time.Hour)},
			wantOut: outProbe},
		{name: "deferred holder never seen live waits for the retry", c: claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Hour), Gen: 1},
			elected: true, now: at(time.Second),
			want: claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Hour), Gen: 1}},
		{name: "deferred retry due probes", c: claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Second), Gen: 1},
			elected: true, now: at(time.Second),
			want: claim{State: claimProbing, Since: at(time.Second), Holder: "b", RetryAt: at(time.Second), Gen: 2}, wantOut: outProbe},
		{name: "probing when the holder leaves probes again at once",
			c:       claim{State: claimProbing, Since: at(0), Holder: "b", HolderOK: true, HolderSince: past, Gen: 3},
			elected: true, now: at(40 * time.Millisecond),
			want: claim{State: claimProbing, Since: at(40 * time.Millisecond), Holder: "b", Gen: 4}, wantOut: outProbe},
		{name: "probing with the holder unchanged waits for the result",
			c:       claim{State: claimProbing, Since: at(0), Holder: "b", HolderOK: true, HolderSince: past, Gen: 3},
			elected: true, holder: liveHolder, now: at(40 * time.Millisecond),
			want: claim{State: claimProbing, Since: at(0), Holder: "b", HolderOK: true, HolderSince: past, Gen: 3}},
		{name: "deferred to a holder and not elected keeps the holder", c: claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, Gen: 1},
			holder: liveHolder, now: at(0), want: claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, Gen: 1}},
		{name: "deferred to a holder that left and not elected keeps the view it acted on",
			c:   claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(time.Hour), Gen: 1},
			now: at(0), want: claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(time.Hour), Gen: 1}},
		{name: "deferred to a foreign device and not elected forgets it", c: claim{State: claimDeferred, Foreign: &responder{MAC: "x"}, Gen: 3},
			now: at(0), want: claim{Gen: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out := tc.c.elect(tc.elected, tc.holder, tc.now, testPolicy)
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("claim (-want +got):\n%s", diff)
			}
			if out != tc.wantOut {
				t.Errorf("outcome = %d, want %d", out, tc.wantOut)
			}
		})
	}
}

func TestClaimProbed(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.20")
	spk := responder{Class: classSpeaker, Node: "b", MAC: "02:00:00:00:00:0b", Addr: vip}
	spk2 := responder{Class: classSpeaker, Node: "a", MAC: "02:00:00:00:00:0a", Addr: vip}
	host := responder{Class: classForeign, MAC: "02:00:00:00:00:99", Addr: vip}
	kern := responder{Class: classKernel, MAC: "02:00:00:00:00:01", Addr: vip}
	probing := claim{State: claimProbing, Since: at(0), Gen: 4}
	for _, tc := range []struct {
		name    string
		c       claim
		gen     uint64
		found   []responder
		policy  guardPolicy
		holder  func(string) holderView // default always
		want    claim
		wantOut outcome
		wantRep report
	}{
		{name: "nobody answers: announce", c: probing, gen: 4, found: []responder{kern},
			want: claim{State: claimHeld, Since: at(time.Second), Gen: 4}, wantOut: outAnnounce},
		{name: "stale result ignored", c: probing, gen: 3, found: []responder{host}, want: probing},
		{name: "a speaker answers: defer to it", c: probing, gen: 4, found: []responder{host, spk, spk2},
			want:    claim{State: claimDeferred, Since: at(time.Second), Gen: 4, Holder: "a", HolderOK: true, HolderSince: past, RetryAt: at(2 * time.Second), Backoff: time.Second},
			wantRep: reportDeferred},
		{name: "the same speaker again: backoff doubles, no new report",
			c:   claim{State: claimProbing, Since: at(0), Gen: 5, Holder: "a", HolderOK: true, HolderSince: past, Backoff: time.Second},
			gen: 5, found: []responder{spk2},
			want: claim{State: claimDeferred, Since: at(time.Second), Gen: 5, Holder: "a", HolderOK: true, HolderSince: past, RetryAt: at(3 * time.Second), Backoff: 2 * time.Second}},
		{name: "a speaker that is not a live member answers: probe again shortly, no backoff",
			c:   claim{State: claimProbing, Since: at(0), Gen: 5, Holder: "a", Backoff: 8 * time.Second},
			gen: 5, found: []responder{spk2}, holder: func(string) holderView { return holderView{} },
			want: claim{State: claimDeferred, Since: at(time.Second), Gen: 5, Holder: "a", Rechecked: true, RetryAt: at(time.Second + recheckDelay), Backoff: 8 * time.Second}},
		{name: "the same non-member again after the recheck: back off, to partitionRetry at most",
			c:   claim{State: claimProbing, Since: at(0), Gen: 6, Holder: "a", Rechecked: true, Backoff: 500 * time.Millisecond},
			gen: 6, found: []responder{spk2}, holder: func(string) holderView { return holderView{} },
			want: claim{State: claimDeferred, Since: at(time.Second), Gen: 6, Holder: "a", Rechecked: true, RetryAt: at(2 * time.Second), Backoff: partitionRetry}},
		{name: "a holder across a partition, long deferred: probed every partitionRetry, not backed off to RetryMax",
			c:   claim{State: claimProbing, Since: at(0), Gen: 6, Holder: "a", Rechecked: true, Backoff: 8 * time.Second},
			gen: 6, found: []responder{spk2}, holder: func(string) holderView { return holderView{} },
			want: claim{State: claimDeferred, Since: at(time.Second), Gen: 6, Holder: "a", Rechecked: true, RetryAt: at(time.Second + partitionRetry), Backoff: partitionRetry}},
		{name: "a speaker that rejoined while the probe ran counts as no holder: probe again shortly",
			c:   claim{State: claimProbing, Since: at(0), Gen: 5, Holder: "a", HolderOK: true, HolderSince: past, Backoff: 8 * time.Second},
			gen: 5, found: []responder{spk2}, holder: func(string) holderView { return holderView{OK: true, Since: at(500 * time.Millisecond)} },
			want: claim{State: claimDeferred, Since: at(time.Second), Gen: 5, Holder: "a", Rechecked: true, RetryAt: at(time.Second + recheckDelay), Backoff: 8 * time.Second}},
		{name: "a foreign device: yield and report", c: probing, gen: 4, found: []responder{host},
			want: claim{State: claimDeferred, Gen: 4, Since: at(0), Foreign: &host, RetryAt: at(2 * time.Second), Backoff: time.Second,
				Conflict: &conflict{Kind: heraldv1.ConflictForeign, Addr: vip, MAC: host.MAC, Since: at(time.Second), Seen: at(time.Second)}},
			wantRep: reportConflict},
		{name: "the foreign device still there: backoff capped, conflict kept",
			c:   claim{State: claimProbing, Gen: 9, Backoff: 8 * time.Second, Conflict: &conflict{Kind: heraldv1.ConflictForeign, Addr: vip, MAC: host.MAC, Since: at(0), Seen: at(0)}},
			gen: 9, found: []responder{host},
			want: claim{State: claimDeferred, Gen: 9, Foreign: &host, RetryAt: at(9 * time.Second), Backoff: 8 * time.Second,
				Conflict: &conflict{Kind: heraldv1.ConflictForeign, Addr: vip, MAC: host.MAC, Since: at(0), Seen: at(time.Second)}}},
		{name: "the foreign device gone: announce, conflict resolved",
			c:   claim{State: claimProbing, Gen: 9, Backoff: 8 * time.Second, Conflict: &conflict{Kind: heraldv1.ConflictForeign, Addr: vip, MAC: host.MAC}},
			gen: 9, want: claim{State: claimHeld, Since: at(time.Second), Gen: 9}, wantOut: outAnnounce, wantRep: reportResolved},
		{name: "defend: announce over a foreign device", c: probing, gen: 4, found: []responder{host}, policy: guardPolicy{Defend: true},
			want: claim{State: claimHeld, Since: at(time.Second), Gen: 4, Foreign: &host,
				Conflict: &conflict{Kind: heraldv1.ConflictForeign, Addr: vip, MAC: host.MAC, Since: at(time.Second), Seen: at(time.Second)}},
			wantOut: outAnnounce, wantRep: reportConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy
			p.Defend = tc.policy.Defend
			holder := tc.holder
			if holder == nil {
				holder = always
			}
			got, out, rep := tc.c.probed(tc.gen, tc.found, holder, at(time.Second), p)
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("claim (-want +got):\n%s", diff)
			}
			if out != tc.wantOut || rep != tc.wantRep {
				t.Errorf("outcome, report = %d, %d; want %d, %d", out, rep, tc.wantOut, tc.wantRep)
			}
		})
	}
}

// TestSplitBrainRule: both sides of a split brain reach the same verdict alone, for every key, and it is the
// election order's.
func TestSplitBrainRule(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.20")
	for i := range 200 {
		key := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()
		first := election.Order(key, []string{"node-a", "node-b"})[0]
		held := claim{State: claimHeld, Since: at(0), Gen: 1}
		ca, outA, _ := held.observed(key, "node-a", responder{Class: classSpeaker, Node: "node-b", Addr: vip}, always, at(time.Second), testPolicy)
		cb, outB, _ := held.observed(key, "node-b", responder{Class: classSpeaker, Node: "node-a", Addr: vip}, always, at(time.Second), testPolicy)
		keeps := map[string]bool{"node-a": ca.State == claimHeld, "node-b": cb.State == claimHeld}
		if !keeps[first] || len(keeps) != 2 || keeps["node-a"] == keeps["node-b"] {
			t.Fatalf("key %s: first in order %s, keeps %v", key, first, keeps)
		}
		winOut, loseOut, loser := outA, outB, cb
		if first == "node-b" {
			winOut, loseOut, loser = outB, outA, ca
		}
		if winOut != outReannounce || loseOut != outRelease || loser.State != claimDeferred || loser.Holder != first {
			t.Fatalf("key %s: winner outcome %d, loser outcome %d, loser %+v", key, winOut, loseOut, loser)
		}
	}
}

func TestClaimObservedForeign(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.20")
	host := responder{Class: classForeign, MAC: "02:00:00:00:00:99", Addr: vip}
	held := claim{State: claimHeld, Since: at(0), Gen: 2}

	got, out, rep := held.observed("k", "a", host, always, at(time.Second), testPolicy)
	want := claim{State: claimDeferred, Since: at(time.Second), Gen: 2, Foreign: &host, RetryAt: at(2 * time.Second), Backoff: time.Second,
		Conflict: &conflict{Kind: heraldv1.ConflictForeign, Addr: vip, MAC: host.MAC, Since: at(time.Second), Seen: at(time.Second)}}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" || out != outRelease || rep != reportConflict {
		t.Errorf("yield: outcome %d report %d (-want +got):\n%s", out, rep, diff)
	}

	defend := testPolicy
	defend.Defend = true
	got, out, rep = held.observed("k", "a", host, always, at(time.Second), defend)
	if got.State != claimHeld || out != outReannounce || rep != reportConflict || got.Conflict == nil {
		t.Errorf("defend: claim %+v outcome %d report %d", got, out, rep)
	}
	// Seen again within ClearAfter: same conflict, no new report; unseen for ClearAfter: resolved.
	got2, _, rep := got.observed("k", "a", host, always, at(3*time.Second), defend)
	if rep != reportNone || !got2.Conflict.Seen.Equal(at(3*time.Second)) {
		t.Errorf("refresh: report %d, conflict %+v", rep, got2.Conflict)
	}
	if _, rep := got2.tick(at(7*time.Second), defend); rep != reportNone {
		t.Errorf("tick before ClearAfter resolved the conflict")
	}
	if c, rep := got2.tick(at(8*time.Second), defend); rep != reportResolved || c.Conflict != nil || c.State != claimHeld {
		t.Errorf("tick after ClearAfter: %+v report %d", c, rep)
	}
	// The node's own kernel or responder is not a conflict here.
	for _, r := range []responder{{Class: classSelf, Addr: vip}, {Class: classKernel, Addr: vip}} {
		if c, out, rep := held.observed("k", "a", r, always, at(time.Second), testPolicy); c.State != claimHeld || out != outNone || rep != reportNone {
			t.Errorf("%s: claim %+v outcome %d report %d", r.Class, c, out, rep)
		}
	}
}

// TestClaimDarkReported: a corroborated dark report cuts a deferred claim's backoff short, and the next decision
// probes; it changes nothing for a claim that is due anyway or not deferred.
func TestClaimDarkReported(t *testing.T) {
	deferred := claim{State: claimDeferred, Since: at(0), Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(16 * time.Second), Backoff: 16 * time.Second, Gen: 2}
	cut, ok := deferred.darkReported(at(time.Second))
	if !ok || !cut.RetryAt.Equal(at(time.Second)) {
		t.Fatalf("darkReported = %+v, %v; want the retry at 1s", cut, ok)
	}
	next, out := cut.elect(true, liveHolder, at(time.Second), testPolicy)
	if out != outProbe || next.State != claimProbing {
		t.Errorf("after the cut: %+v, outcome %d; want a probe", next, out)
	}
	if _, out := deferred.elect(true, liveHolder, at(time.Second), testPolicy); out != outNone {
		t.Errorf("without the cut the claim probed (outcome %d) before its backoff ended", out)
	}
	for _, c := range []claim{{State: claimHeld, Since: at(0)}, {State: claimProbing, Since: at(0)}, {}, {State: claimDeferred, RetryAt: at(0)}} {
		if got, ok := c.darkReported(at(time.Second)); ok || got != c {
			t.Errorf("darkReported(%+v) = %+v, %v; want it unchanged", c, got, ok)
		}
	}
}

// TestClaimProbeFailed: a probe that sent nothing answers nothing; it keeps what the claim deferred to, backs off
// from probeRetryMin doubling to probeRetryMax, and ignores stale generations.
func TestClaimProbeFailed(t *testing.T) {
	err := errString("send probe: no buffer space available")
	probing := claim{State: claimProbing, Since: at(0), Gen: 2, Holder: "b", HolderOK: true, HolderSince: past}
	got := probing.probeFailed(2, err, at(time.Second))
	want := claim{State: claimDeferred, Since: at(time.Second), Gen: 2, ProbeErr: string(err), Backoff: probeRetryMin,
		RetryAt: at(time.Second + probeRetryMin), Holder: "b", HolderOK: true, HolderSince: past}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("first failure (-want +got):\n%s", diff)
	}
	// Probing again and failing again doubles the wait, up to probeRetryMax.
	c := got
	for range 6 {
		c, _ = c.elect(true, liveHolder, c.RetryAt, testPolicy)
		c = c.probeFailed(c.Gen, err, c.Since)
	}
	if c.Backoff != probeRetryMax || c.State != claimDeferred {
		t.Errorf("after seven failures: %+v, want deferred with backoff %v", c, probeRetryMax)
	}
	// A stale generation changes nothing; a probe that then goes out clears the error.
	if again := c.probeFailed(c.Gen-1, err, at(time.Hour)); !cmp.Equal(again, c, addrCmp) {
		t.Errorf("a stale failure changed the claim: %+v", again)
	}
	c, _ = c.elect(true, liveHolder, c.RetryAt, testPolicy)
	if nc, out, _ := c.probed(c.Gen, nil, always, c.Since, testPolicy); nc.State != claimHeld || nc.ProbeErr != "" || out != outAnnounce {
		t.Errorf("a probe that went out and heard nobody: %+v, %v; want held", nc, out)
	}
}

// TestClaimLose: a held claim this node still wins loses its link: it stops answering and counts as the holder
// for guardPolicy.RetryMax, no longer.
func TestClaimLose(t *testing.T) {
	held := claim{State: claimHeld, Since: at(0), Gen: 4}
	c, out := held.lose(at(time.Minute))
	if out != outRelease || c.State != claimIdle || c.Gen != 4 || !c.Lost.Equal(at(time.Minute)) {
		t.Fatalf("lose: %+v, %v; want idle, released, Lost at +1m", c, out)
	}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{{at(time.Minute), true}, {at(time.Minute + testPolicy.RetryMax - 1), true}, {at(time.Minute + testPolicy.RetryMax), false}} {
		if got := c.holds(tc.now, testPolicy); got != tc.want {
			t.Errorf("holds at %v = %v, want %v", tc.now.Sub(at(time.Minute)), got, tc.want)
		}
	}
	if _, out := (claim{}).lose(at(0)); out != outNone {
		t.Errorf("an idle claim lost: outcome %v", out)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestClaimHolderLeftWhileNotElected: the holder this claim defers to leaves while another node is elected in its
// place; when that node goes too and this one is elected, the claim probes at once instead of waiting for its
// retry (soak seed 1207 at +21m55s: 2.5 s dark).
func TestClaimHolderLeftWhileNotElected(t *testing.T) {
	c := claim{State: claimDeferred, Holder: "b", HolderOK: true, HolderSince: past, RetryAt: at(30 * time.Second), Backoff: 30 * time.Second, Gen: 1}
	c, out := c.elect(false, holderView{}, at(0), testPolicy) // b left; c is elected
	if out != outNone || c.State != claimDeferred {
		t.Fatalf("not elected: %v, %+v", out, c)
	}
	c, out = c.elect(true, holderView{}, at(time.Second), testPolicy) // c left too
	if out != outProbe || c.State != claimProbing {
		t.Fatalf("elected with the holder gone since the claim deferred: %v, state %v; want a probe at once", out, c.State)
	}
}
