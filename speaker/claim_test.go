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

func always(string) bool { return true }

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestClaimElect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		c        claim
		elected  bool
		holderOK bool
		now      time.Time
		want     claim
		wantOut  outcome
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
		{name: "deferred to a live holder waits for the retry", c: claim{State: claimDeferred, Holder: "b", HolderOK: true, RetryAt: at(time.Second), Backoff: time.Second, Gen: 1},
			elected: true, holderOK: true, now: at(500 * time.Millisecond),
			want: claim{State: claimDeferred, Holder: "b", HolderOK: true, RetryAt: at(time.Second), Backoff: time.Second, Gen: 1}},
		{name: "deferred holder lost probes at once", c: claim{State: claimDeferred, Holder: "b", HolderOK: true, RetryAt: at(time.Hour), Gen: 1},
			elected: true, holderOK: false, now: at(time.Second),
			want: claim{State: claimProbing, Since: at(time.Second), Holder: "b", Gen: 2, RetryAt: at(time.Hour)}, wantOut: outProbe},
		{name: "deferred holder never seen live waits for the retry", c: claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Hour), Gen: 1},
			elected: true, now: at(time.Second),
			want: claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Hour), Gen: 1}},
		{name: "deferred retry due probes", c: claim{State: claimDeferred, Holder: "b", RetryAt: at(time.Second), Gen: 1},
			elected: true, now: at(time.Second),
			want: claim{State: claimProbing, Since: at(time.Second), Holder: "b", RetryAt: at(time.Second), Gen: 2}, wantOut: outProbe},
		{name: "deferred to a holder and not elected keeps the holder", c: claim{State: claimDeferred, Holder: "b", HolderOK: true, Gen: 1},
			holderOK: true, now: at(0), want: claim{State: claimDeferred, Holder: "b", HolderOK: true, Gen: 1}},
		{name: "deferred to a foreign device and not elected forgets it", c: claim{State: claimDeferred, Foreign: &responder{MAC: "x"}, Gen: 3},
			now: at(0), want: claim{Gen: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out := tc.c.elect(tc.elected, tc.holderOK, tc.now, testPolicy)
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
		want    claim
		wantOut outcome
		wantRep report
	}{
		{name: "nobody answers: announce", c: probing, gen: 4, found: []responder{kern},
			want: claim{State: claimHeld, Since: at(time.Second), Gen: 4}, wantOut: outAnnounce},
		{name: "stale result ignored", c: probing, gen: 3, found: []responder{host}, want: probing},
		{name: "a speaker answers: defer to it", c: probing, gen: 4, found: []responder{host, spk, spk2},
			want:    claim{State: claimDeferred, Since: at(time.Second), Gen: 4, Holder: "a", HolderOK: true, RetryAt: at(2 * time.Second), Backoff: time.Second},
			wantRep: reportDeferred},
		{name: "the same speaker again: backoff doubles, no new report",
			c:   claim{State: claimProbing, Gen: 5, Holder: "a", Backoff: time.Second},
			gen: 5, found: []responder{spk2},
			want: claim{State: claimDeferred, Since: at(time.Second), Gen: 5, Holder: "a", HolderOK: true, RetryAt: at(3 * time.Second), Backoff: 2 * time.Second},
			// the claim was probing, not deferred, so it reports again: a restart of the deferral
			wantRep: reportDeferred},
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
			got, out, rep := tc.c.probed(tc.gen, tc.found, always, at(time.Second), p)
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
