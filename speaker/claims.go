package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/announce"
	"github.com/heraldlb/herald/internal/guard"
	l2 "github.com/heraldlb/herald/internal/wire"
)

// Event reasons of the guard, on Services.
const (
	EventIPConflict         = "IPConflict"         // Warning: a device that is not a speaker answers for an address
	EventDuplicateAnnouncer = "DuplicateAnnouncer" // Warning: two speakers answered for an address (split brain)
	EventConflictResolved   = "ConflictResolved"   // Normal: the conflict is over
	EventDeferring          = "Deferring"          // Normal: another speaker already answers; this node leaves it there
	EventYielded            = "Yielded"            // Normal: this node stopped answering after a split brain
)

// sighting is a frame claiming an address, seen on one of this node's interfaces.
type sighting = guard.Observation

// wire is the guard as the loop uses it: it watches the interfaces this node answers on for frames claiming
// any address Herald manages, and probes an address before this node announces it.
type wire interface {
	SetInterfaces(ifs []l2.Interface)
	SetVIPs(vips []netip.Addr)
	Sightings() <-chan sighting
	// Dropped is how many sightings were dropped because the loop lagged (the guard's channel was full).
	Dropped() uint64
	Probe(ctx context.Context, ifi l2.Interface, vip netip.Addr) ([]sighting, error)
}

// probeResult is what a probe of one key found.
type probeResult struct {
	Key     string
	Gen     uint64
	Found   []sighting
	Started time.Time
	Err     error
}

// startProbe probes every address of g on the interfaces it would be answered on, in the background; the
// result reaches the loop through a.probed.
func (a *agent) startProbe(ctx context.Context, key string, g *group, gen uint64) {
	type target struct {
		ifi  l2.Interface
		addr netip.Addr
	}
	var targets []target
	for _, addr := range g.Addrs {
		for _, c := range g.Choices.at(addr) {
			targets = append(targets, target{l2.Interface{Index: c.Link.Index, Name: c.Link.Name, MAC: c.Link.MAC}, addr})
		}
	}
	started := a.cfg.Clock.Now()
	a.probes.Go(func() {
		res := probeResult{Key: key, Gen: gen, Started: started}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, t := range targets {
			wg.Go(func() {
				found, err := a.wire.Probe(ctx, t.ifi, t.addr)
				mu.Lock()
				defer mu.Unlock()
				res.Found = append(res.Found, found...)
				if err != nil && res.Err == nil {
					res.Err = fmt.Errorf("probing %s on %s: %w", t.addr, t.ifi.Name, err)
				}
			})
		}
		wg.Wait()
		select {
		case a.probed <- res:
		case <-ctx.Done():
		}
	})
}

// classify says who sent a sighting: this node (its responder, or its kernel for an address it does not
// answer there), another speaker (by the MACs members publish, remembered after they leave), or a foreign device.
func (a *agent) classify(s sighting) responder {
	mac := s.MAC.String()
	r := responder{MAC: mac, Addr: s.VIP}
	if s.Outgoing || a.selfMACs[mac] {
		r.Class = classKernel
		if a.answers(s.VIP, s.Interface) {
			r.Class = classSelf
		}
		return r
	}
	if node, ok := a.peerMACs[mac]; ok && node != a.cfg.NodeName {
		r.Class, r.Node = classSpeaker, node
		return r
	}
	r.Class = classForeign
	return r
}

// setAssigned records what the responders answer, and per address the links they answer it on (answers is then
// a map lookup per sighting, not a scan).
func (a *agent) setAssigned(as announce.Assignment) {
	a.assigned = as
	a.answering = make(map[netip.Addr][]string, len(a.answering))
	for link, e := range as {
		for _, v := range e.VIPs {
			a.answering[v] = append(a.answering[v], link)
		}
	}
	for _, links := range a.answering {
		slices.Sort(links)
	}
}

// answers says whether this node answers (or stopped answering less than a second ago) for vip on the link.
func (a *agent) answers(vip netip.Addr, link string) bool {
	if slices.Contains(a.answering[vip], link) {
		return true
	}
	if t, ok := a.released[vip]; ok && a.cfg.Clock.Since(t) < time.Second {
		return true
	}
	return false
}

// rememberPeers records the MACs live members publish; a member's MACs are kept after it leaves, so that a
// speaker answering from across a partition is still recognised as one. It adds the MACs the membership's book
// knows of speakers this node never saw as members (it started while they were cut off), if they are Nodes of
// the cluster: without them, such a speaker's probes and replies would read as a foreign device's.
func (a *agent) rememberPeers(nodes map[string]*corev1.Node) {
	for mac, node := range a.members.KnownMACs() {
		if _, known := a.peerMACs[mac]; !known && nodes[node] != nil {
			a.peerMACs[mac] = node
		}
	}
	for _, m := range a.members.Members() {
		for _, mac := range m.MACs {
			a.peerMACs[mac.String()] = m.Name
		}
	}
	a.selfMACs = map[string]bool{}
	for _, l := range a.curLinks {
		if len(l.MAC) == 6 {
			a.selfMACs[l.MAC.String()] = true
		}
	}
}

// onProbed applies probe results; it returns whether any claim changed.
func (a *agent) onProbed(r probeResult) bool {
	if a.stall != nil && !a.stall.Fresh() {
		a.stallCheck.results = append(a.stallCheck.results, r) // judged once the stall is resolved
		return false
	}
	c, ok := a.claims[r.Key]
	if !ok || c.State != claimProbing || c.Gen != r.Gen {
		return false
	}
	now := a.cfg.Clock.Now()
	var found []responder
	for _, s := range r.Found {
		cls := a.classify(s)
		if isProbe(s.Kind) && cls.Class == classSpeaker && splitBrainWinner(r.Key, a.cfg.NodeName, cls.Node) == a.cfg.NodeName {
			// Another speaker probing for the address at the same time (RFC 5227's simultaneous probe): of the
			// two, the one first in the election order goes on, so that they do not both back off.
			continue
		}
		if cls.Class == classKernel {
			a.kernelSeen[s.VIP] = now
		}
		found = append(found, cls)
	}
	if r.Err != nil && !slices.ContainsFunc(found, func(f responder) bool { return f.Class == classSpeaker || f.Class == classForeign }) {
		// Nothing heard, and the probe could not be sent: nothing was checked, so nothing is answered.
		nc := c.probeFailed(r.Gen, r.Err, now)
		a.setClaim(r.Key, nc)
		if c.ProbeErr == "" {
			a.log.Info("cannot probe before answering; not answering, probing again shortly", "key", r.Key,
				"reason", r.Err.Error(), "retry", nc.Backoff.String())
		}
		a.metrics.ProbeFailures.Inc()
		return true
	}
	nc, out, rep := c.probed(r.Gen, found, a.holderOf(r.Key), now, a.policy)
	a.setClaim(r.Key, nc)
	switch {
	case nc.State == claimDeferred && nc.Holder != "" && !nc.HolderOK:
		// Said once per holder: across a partition the same speaker answers at every retry.
		lg := a.log
		if c.Holder == nc.Holder && !c.HolderOK {
			lg = a.log.V(1)
		}
		lg.Info("a speaker that is not a live member answers; probing again shortly", "key", r.Key, "holder", nc.Holder,
			"retry", nc.RetryAt.Sub(now).String())
	case nc.State == claimDeferred && nc.Holder != "" && rep == reportDeferred:
		a.probeLog.deferred = append(a.probeLog.deferred, probeLogEntry{key: r.Key, holder: nc.Holder, d: nc.Backoff})
	case nc.State == claimDeferred && nc.Holder != "":
		a.log.V(1).Info("the speaker deferred to still answers", "key", r.Key, "holder", nc.Holder, "retry", nc.Backoff.String())
	case nc.State == claimDeferred:
		a.log.Info("a device that is not a speaker answers; not announcing", "key", r.Key, "mac", nc.Foreign.MAC, "retry", nc.Backoff.String())
	case out == outAnnounce:
		a.probeLog.announced = append(a.probeLog.announced, probeLogEntry{key: r.Key, d: now.Sub(r.Started)})
	}
	if out == outAnnounce {
		a.metrics.ProbeDelay.Observe(now.Sub(r.Started).Seconds())
	}
	a.report(r.Key, c, nc, rep)
	return true
}

// probeLog gathers what a batch of probe results did, for one log line per outcome: a failover of thousands of
// addresses logs a count and a few examples, not a line per address.
type probeLog struct {
	announced, deferred []probeLogEntry
}

type probeLogEntry struct {
	key, holder string
	d           time.Duration // announced: the probe's time; deferred: the retry backoff
}

// probeLogExamples is how many keys a summary line names.
const probeLogExamples = 5

// flushProbeLog logs what the probe results handled since the last flush did, and empties the batch.
func (a *agent) flushProbeLog() {
	summary := func(es []probeLogEntry) (keys []string, lo, hi time.Duration, holders []string) {
		slices.SortFunc(es, func(x, y probeLogEntry) int { return strings.Compare(x.key, y.key) })
		for i, e := range es {
			if i < probeLogExamples {
				keys = append(keys, e.key)
			}
			if i == 0 || e.d < lo {
				lo = e.d
			}
			hi = max(hi, e.d)
			if e.holder != "" && !slices.Contains(holders, e.holder) && len(holders) < probeLogExamples {
				holders = append(holders, e.holder)
			}
		}
		return keys, lo, hi, holders
	}
	switch b := a.probeLog.announced; len(b) {
	case 0:
	case 1:
		a.log.Info("nobody else answers; announcing", "key", b[0].key, "probe", b[0].d.String())
	default:
		keys, lo, hi, _ := summary(b)
		a.log.Info("nobody else answers; announcing", "count", len(b), "examples", keys, "probeMin", lo.String(), "probeMax", hi.String())
	}
	switch b := a.probeLog.deferred; len(b) {
	case 0:
	case 1:
		a.log.Info("another speaker answers; deferring to it", "key", b[0].key, "holder", b[0].holder, "retry", b[0].d.String())
	default:
		keys, lo, hi, holders := summary(b)
		a.log.Info("another speaker answers; deferring to it", "count", len(b), "examples", keys, "holders", holders,
			"retryMin", lo.String(), "retryMax", hi.String())
	}
	a.probeLog.announced, a.probeLog.deferred = a.probeLog.announced[:0], a.probeLog.deferred[:0]
}

// onSighting applies a frame seen on the wire. It reports whether the claim was released (a decision is due)
// and whether it changed at all (the statuses and gauges may need an update). Most sightings change nothing: another speaker answering, as elected, for an
// address it announces (the health watcher's probes are answered many times a second), so they must cost no
// more than the lookup.
func (a *agent) onSighting(s sighting) (release, changed bool) {
	key, ok := a.addrKey[s.VIP]
	if !ok {
		return false, false
	}
	if a.stall != nil && !a.stall.Fresh() {
		// Frames queued while this process was stopped, or heard before the stall is resolved: they are the
		// evidence of what the others did meanwhile (stall.go), not claims to settle now.
		a.stallCheck.heard(key, a.classify(s), isProbe(s.Kind))
		return false, false
	}
	if isProbe(s.Kind) {
		// A probe asks whether the address is in use; the responders answer it. It claims nothing.
		return false, false
	}
	r := a.classify(s)
	now := a.cfg.Clock.Now()
	switch r.Class {
	case classSelf:
		return false, false
	case classKernel:
		if _, seen := a.kernelSeen[s.VIP]; !seen {
			a.log.Info("this node's kernel answers for a load-balancer address", "address", s.VIP, "interface", s.Interface)
		}
		a.kernelSeen[s.VIP] = now
		a.kernelDirty = true
		return false, false
	}
	c := a.claims[key]
	nc, out, rep := c.observed(key, a.cfg.NodeName, r, a.holderOf(key), now, a.policy)
	a.setClaim(key, nc)
	if out != outNone {
		a.log.Info("another device answers for an address this node answers for", "key", key, "address", s.VIP,
			"mac", r.MAC, "class", r.Class.String(), "node", r.Node, "kind", s.Kind.String(), "interface", s.Interface,
			"keeps", out == outReannounce)
	}
	if out == outReannounce {
		var addrs []netip.Addr
		if g := a.plan.Groups[key]; g != nil {
			addrs = g.Addrs
		}
		a.ann.Reannounce(addrs...)
	}
	a.report(key, c, nc, rep)
	return out == outRelease, nc != c || out != outNone || rep != reportNone
}

// fresh says whether this process has run without a stall, and is not settling after one that withdrew
// addresses (always, with stall detection off).
func (a *agent) fresh() bool {
	return a.stall == nil || a.stall.Fresh()
}

func isProbe(k guard.Kind) bool { return k == guard.KindARPProbe || k == guard.KindDAD }

// holderView says what the membership says now of node as the holder of g's key: a live member eligible for it,
// and since when it has been live without a break.
func (a *agent) holderView(g *group, node string) holderView {
	if node == "" || g == nil || g.eligible == nil || !g.eligible(node) {
		return holderView{}
	}
	since, ok := a.liveSince[node]
	if !ok {
		return holderView{}
	}
	return holderView{OK: true, Since: since}
}

// holderOf returns holderView for the group of key, for the claim functions.
func (a *agent) holderOf(key string) func(node string) holderView {
	g := a.plan.Groups[key]
	return func(node string) holderView { return a.holderView(g, node) }
}

// setClaim stores a claim and keeps the set of claims with something due.
func (a *agent) setClaim(key string, c claim) {
	if c == (claim{}) {
		delete(a.claims, key)
	} else {
		a.claims[key] = c
	}
	if !c.due(a.policy).IsZero() {
		a.attention[key] = true
	} else {
		delete(a.attention, key)
	}
}

// guardTick resolves conflicts no longer seen. It reports whether a deferred claim is due a decision, and whether
// a claim changed (the Announcements say so).
func (a *agent) guardTick() (decide, changed bool) {
	now := a.cfg.Clock.Now()
	if a.settlePending && a.fresh() {
		a.settlePending, decide = false, true
	}
	for key := range a.attention {
		c := a.claims[key]
		due := c.due(a.policy)
		if due.IsZero() {
			delete(a.attention, key)
			continue
		}
		if now.Before(due) {
			continue
		}
		if c.State == claimDeferred {
			decide = true
			continue
		}
		if c.State == claimHeld && ((c.HandTo != "" && !now.Before(c.HandUntil)) || (!c.NextOffer.IsZero() && !now.Before(c.NextOffer))) {
			decide = true // an offer to time out, or a fail-back to offer again (handoff.go)
		}
		nc, rep := c.tick(now, a.policy)
		a.setClaim(key, nc)
		a.report(key, c, nc, rep)
		changed = changed || rep != reportNone
	}
	return decide, changed
}

// report raises the Event a claim change deserves, and counts conflicts.
func (a *agent) report(key string, before, after claim, rep report) {
	g := a.plan.Groups[key]
	if g == nil || rep == reportNone {
		return
	}
	self := a.cfg.NodeName
	switch rep {
	case reportConflict:
		cf := after.Conflict
		a.metrics.Conflicts.WithLabelValues(string(cf.Kind)).Inc()
		switch cf.Kind {
		case heraldv1.ConflictForeign:
			what := fmt.Sprintf("%s stops answering for it and probes again in %s (conflict policy yield)", self, after.Backoff)
			if a.policy.Defend {
				what = self + " answers for it anyway (conflict policy defend)"
			}
			a.event(g, corev1.EventTypeWarning, EventIPConflict, fmt.Sprintf("%s is answered by %s, which is not a Herald speaker: %s", cf.Addr, cf.MAC, what))
		case heraldv1.ConflictSpeaker:
			a.event(g, corev1.EventTypeWarning, EventDuplicateAnnouncer, fmt.Sprintf("%s and %s both answered for %s (split brain): %s keeps it, first in its election order, and announced it again",
				self, cf.Node, cf.Addr, self))
		}
	case reportResolved:
		if before.Conflict != nil {
			a.event(g, corev1.EventTypeNormal, EventConflictResolved, fmt.Sprintf("%s is no longer answered by %s", before.Conflict.Addr, before.Conflict.MAC))
		}
	case reportDeferred:
		a.event(g, corev1.EventTypeNormal, EventDeferring, fmt.Sprintf("%s is elected for %s but %s answers for it already: it stays there while %s is healthy",
			self, joinAddrs(g.Addrs), after.Holder, after.Holder))
	case reportLostConflict:
		a.metrics.Conflicts.WithLabelValues(string(heraldv1.ConflictSpeaker)).Inc()
		a.event(g, corev1.EventTypeNormal, EventYielded, fmt.Sprintf("%s and %s both answered for %s (split brain): %s stopped, %s comes first in its election order",
			self, after.Holder, joinAddrs(g.Addrs), self, after.Holder))
	}
}

// conflictGauges sets the conflicting and deferred address gauges.
func (a *agent) conflictGauges() {
	counts := map[string]int{}
	deferred := map[string]int{}
	for _, c := range a.claims {
		if c.Conflict != nil {
			counts[string(c.Conflict.Kind)]++
		}
		if c.State == claimDeferred && c.ProbeErr == "" { // a failed probe defers to nobody
			to := "speaker"
			if c.Holder == "" {
				to = "foreign"
			}
			deferred[to]++
		}
	}
	for _, k := range []heraldv1.ConflictKind{heraldv1.ConflictForeign, heraldv1.ConflictSpeaker} {
		a.metrics.Conflicting.WithLabelValues(string(k)).Set(float64(counts[string(k)]))
	}
	for _, to := range []string{"speaker", "foreign"} {
		a.metrics.Deferred.WithLabelValues(to).Set(float64(deferred[to]))
	}
}

// kernelWire lists, for a group, why the wire says this node's kernel answers for its addresses (seen within
// the last minute).
func (a *agent) kernelWire(g *group) []string {
	var whys []string
	for _, addr := range g.Addrs {
		if t, ok := a.kernelSeen[addr]; ok {
			if a.cfg.Clock.Since(t) > time.Minute {
				delete(a.kernelSeen, addr)
				continue
			}
			whys = append(whys, fmt.Sprintf("this node's kernel was seen answering for %s on the wire", addr))
		}
	}
	return whys
}
