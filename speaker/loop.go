package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crrecorder "sigs.k8s.io/controller-runtime/pkg/recorder"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/service"
	l2 "github.com/heraldlb/herald/internal/wire"
)

type recorder = crrecorder.EventRecorder

// statusResync is how often the loop hands the status writer its wants without a change: a safety net. Changes
// reach the writer as they happen (a decision, a claim that changed, an Announcement another speaker
// overwrote, through the informer), so at 10,000 Services the writer does not walk them all every few seconds.
const statusResync = time.Minute

// Event reasons on Services.
const (
	EventAnnouncing        = "Announcing"
	EventStoppedAnnouncing = "StoppedAnnouncing"
)

// loop is the agent's event loop: every input change (informers, memberlist, netlink, the rejoin timer) leads
// to one decision over the whole state, whose result goes to the responders, the status writer and Events.
// Membership and interface changes are acted on at once (they decide failover); informer changes, which come in
// storms (10,000 Services created), are batched: at most one decision per BatchInterval for them.
func (a *agent) loop(ctx context.Context) {
	rejoin := a.cfg.Clock.NewTicker(a.cfg.RejoinInterval)
	defer rejoin.Stop()
	tick := a.cfg.Clock.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastResync time.Time
	var stalls <-chan time.Duration
	if a.stall != nil {
		stalls = a.stall.Stalls()
	}
	var rounds <-chan probe.Round
	if a.monitor != nil {
		rounds = a.monitor.Rounds()
	}
	a.triggered = a.cfg.Clock.Now()
	a.reconcile(ctx)
	last := a.cfg.Clock.Now()
	var batch <-chan time.Time // set while informer changes wait for the batch window
	var first time.Time        // when the first of them arrived
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
			now := a.cfg.Clock.Now()
			if batch == nil {
				first = now
			}
			if wait := last.Add(a.cfg.BatchInterval).Sub(now); wait > 0 {
				if batch == nil {
					batch = a.cfg.Clock.After(wait)
				}
				continue
			}
		case <-batch:
		case <-a.members.Changed():
		case m := <-a.members.Messages():
			decide := a.onMessage(m)
			for more := true; more; {
				select {
				case m := <-a.members.Messages():
					decide = a.onMessage(m) || decide
				default:
					more = false
				}
			}
			if !decide {
				continue
			}
		case ls := <-a.links:
			a.setLinks(ls)
		case <-rejoin.C():
			a.rejoin(ctx)
			continue
		case r := <-a.joined:
			a.onJoined(r)
			continue
		case fn := <-a.inspect:
			fn()
			continue
		case d := <-stalls:
			a.onStall(d)
		case <-a.stallCheck.listen:
			a.takeSightings() // the frames already read are evidence: never resolve ahead of them
			a.resolveStall()
		case r := <-a.probed:
			changed := a.onProbed(r)
			for more := true; more; {
				select {
				case r := <-a.probed:
					changed = a.onProbed(r) || changed
				default:
					more = false
				}
			}
			a.flushProbeLog()
			if changed {
				a.apply()
			}
			continue
		case s := <-a.wire.Sightings():
			a.takeSightings(s)
			continue
		case r := <-rounds:
			a.onRound(r)
			for more := true; more; {
				select {
				case r := <-rounds:
					a.onRound(r)
				default:
					more = false
				}
			}
			continue
		case now := <-tick.C():
			decide, claimsChanged := a.guardTick()
			if !a.failbackAt.IsZero() && !now.Before(a.failbackAt) {
				decide = true // a member has been live long enough for its fail-back
			}
			if a.healthTick() {
				decide = true
			}
			if !decide {
				if a.kernelDirty {
					a.reportKernel()
				}
				if a.plan != nil {
					a.conflictGauges()
					if claimsChanged || now.Sub(lastResync) >= statusResync {
						// Also repairs Announcements another speaker overwrote after this one wrote them.
						lastResync = now
						a.status.update(a.wants(a.in, a.plan))
					}
				}
				continue
			}
		}
		a.triggered = a.cfg.Clock.Now()
		if batch != nil && first.Before(a.triggered) {
			a.triggered = first
		}
		batch = nil
		a.checkKey(ctx)
		a.reconcile(ctx)
		if a.decideAgain {
			// Takes were used: decide once more without leaving their senders out, so that what the plan says
			// (the next node for a later handoff, the watcher) no longer hides them.
			a.decideAgain = false
			a.reconcile(ctx)
		}
		last = a.cfg.Clock.Now()
	}
}

// gather reads the decision's inputs from the informer cache without copying.
// takeSightings handles the sightings given and every one waiting, and then what they changed. With no stall
// pending, it notes how many the guard has dropped so far (dropMark): a stall resolution trusts the wire only if
// none was dropped since.
func (a *agent) takeSightings(first ...sighting) {
	release, changed := false, false
	for _, s := range first {
		r, c := a.onSighting(s)
		release, changed = release || r, changed || c
	}
	for more := true; more; {
		select {
		case s := <-a.wire.Sightings():
			r, c := a.onSighting(s)
			release, changed = release || r, changed || c
		default:
			more = false
		}
	}
	// Dropped is read before Fresh: a stall that began before the read makes Fresh false (its clock test fails
	// until the detector ticks and suspends), so a mark never includes drops of a stall's backlog.
	if d := a.wire.Dropped(); a.stallCheck.stalled == 0 && (a.stall == nil || a.stall.Fresh()) {
		a.dropMark = d
	}
	if release {
		a.apply()
	} else if changed && a.plan != nil {
		a.conflictGauges()
		a.status.update(a.wants(a.in, a.plan))
	}
}

// cacheStores are the informers' stores of the kinds a decision lists in full; nil fields (tests) list through
// the client.
type cacheStores struct {
	services, endpointSlices toolscache.Store
}

// cachedList lists every object of a kind from the informer cache. From its store when there is one: pointers
// to the cached objects themselves, never modified. A client List copies each object's struct, megabytes for
// every decision at 10,000 Services. Without a store it lists through c into list.
func cachedList[T any, L client.ObjectList](ctx context.Context, c client.Reader, store toolscache.Store, list L,
	items func(L) []T) ([]*T, error) {
	if store != nil {
		objs := store.List()
		out := make([]*T, 0, len(objs))
		for _, o := range objs {
			if t, ok := o.(*T); ok {
				out = append(out, t)
			}
		}
		return out, nil
	}
	if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	its := items(list)
	out := make([]*T, len(its))
	for i := range its {
		out[i] = &its[i]
	}
	return out, nil
}

func (a *agent) gather(ctx context.Context) (*inputs, error) {
	in := &inputs{Self: a.cfg.NodeName, Class: a.cfg.LoadBalancerClass, Links: a.curLinks, ArpIgnore: readArpIgnore(a.curLinks),
		ProxyARP: readConf(a.curLinks, "proxy_arp"),
		Nodes:    map[string]*corev1.Node{}, Endpoints: map[types.NamespacedName][]*discoveryv1.EndpointSlice{}}
	nocopy := client.UnsafeDisableDeepCopy
	var nodes corev1.NodeList
	if err := a.client.List(ctx, &nodes, nocopy); err != nil {
		return nil, fmt.Errorf("listing Nodes: %w", err)
	}
	for i := range nodes.Items {
		in.Nodes[nodes.Items[i].Name] = &nodes.Items[i]
	}
	var pools heraldv1.IPAddressPoolList
	if err := a.client.List(ctx, &pools, nocopy); err != nil {
		return nil, fmt.Errorf("listing IPAddressPools: %w", err)
	}
	for i := range pools.Items {
		in.Pools = append(in.Pools, &pools.Items[i])
	}
	var advs heraldv1.L2AdvertisementList
	if err := a.client.List(ctx, &advs, nocopy); err != nil {
		return nil, fmt.Errorf("listing L2Advertisements: %w", err)
	}
	for i := range advs.Items {
		in.Advs = append(in.Advs, &advs.Items[i])
	}
	svcs, err := cachedList[corev1.Service](ctx, a.client, a.stores.services, &corev1.ServiceList{},
		func(l *corev1.ServiceList) []corev1.Service { return l.Items })
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	local := map[types.NamespacedName]bool{}
	proxy := false
	for _, v := range in.ProxyARP {
		proxy = proxy || v != 0
	}
	if proxy {
		in.RouteDev = map[netip.Addr]string{}
	}
	in.Services = svcs
	for _, s := range svcs {
		if proxy && service.Served(s, in.Class) {
			for _, addr := range service.Addresses(s) {
				if dev := routeDev(addr, a.curLinks); addr.Is4() && dev != "" {
					in.RouteDev[addr] = dev
				}
			}
		}
		if s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			local[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = true
		}
	}
	if len(local) > 0 {
		eps, err := cachedList[discoveryv1.EndpointSlice](ctx, a.client, a.stores.endpointSlices, &discoveryv1.EndpointSliceList{},
			func(l *discoveryv1.EndpointSliceList) []discoveryv1.EndpointSlice { return l.Items })
		if err != nil {
			return nil, fmt.Errorf("listing EndpointSlices: %w", err)
		}
		for _, e := range eps {
			name := types.NamespacedName{Namespace: e.Namespace, Name: e.Labels[discoveryv1.LabelServiceName]}
			if local[name] {
				in.Endpoints[name] = append(in.Endpoints[name], e)
			}
		}
	}
	now := a.cfg.Clock.Now()
	live := map[string]bool{}
	for _, m := range a.members.Members() {
		in.Live = append(in.Live, m.Name)
		live[m.Name] = true
		if _, ok := a.liveSince[m.Name]; !ok {
			a.liveSince[m.Name] = now
		}
	}
	for n := range a.liveSince {
		if !live[n] {
			delete(a.liveSince, n)
		}
	}
	a.live = live
	return in, nil
}

// reconcile makes one decision and acts on it.
func (a *agent) reconcile(ctx context.Context) {
	start := a.cfg.Clock.Now()
	in, err := a.gather(ctx)
	if err != nil {
		// The cache does not fail while it holds data; keep answering from the last decision.
		a.log.Error(err, "gathering inputs; keeping the current announcements")
		return
	}
	a.rememberPeers(in.Nodes)
	in.Holders = map[string]string{}
	for key, c := range a.claims {
		switch {
		case c.holds(start, a.policy):
			in.Holders[key] = in.Self
		case c.State == claimDeferred && c.Holder != "":
			in.Holders[key] = c.Holder
		}
	}
	in.Now, in.FailbackAfter, in.LiveSince = start, a.cfg.FailbackAfter, a.liveSince
	in.Excluded = a.excluded(start)
	if a.members != nil {
		in.Impaired = a.impairedInputs()
	}
	pl := decide(in, a.table)
	// The plan has what later steps read of the Services; the inputs keep no list of them past the decision.
	in.Services, in.Endpoints = nil, nil
	a.plan, a.in = pl, in
	now := a.cfg.Clock.Now()
	a.metrics.Decide.Observe(now.Sub(start).Seconds())
	a.metrics.Members.Set(float64(len(in.Live)))

	// Claims: being elected starts a probe (or, for a key handed over, answers at once); losing the election
	// releases, or hands over (handoff.go).
	var takenFrom, unanswered map[string][]string
	for key, g := range pl.Groups {
		c := a.claims[key]
		// The election's own choice, deferring to a holder, stays "elected" for the claim: it probes now and then
		// (backoff up to the retry maximum) to check that the holder still answers, since a holder that stopped
		// for a reason nobody else sees (it yielded to a foreign device) would otherwise leave the key dark.
		elected := (g.Winner == in.Self || (g.Elected == in.Self && c.State == claimDeferred && c.Holder != "")) &&
			len(g.interfacesOf(svcRef{Addrs: g.Addrs})) > 0
		if elected && !a.fresh() && c.State != claimHeld {
			a.settlePending = true // decided again once the stall is resolved
			continue
		}
		if elected && c.State == claimHeld {
			c.HandTo, c.HandUntil, c.HandMust, c.NextOffer = "", time.Time{}, false, time.Time{} // elected again: keep it
		}
		nc, out := c, outNone
		if h, ok := a.handedIn[key]; ok && elected {
			// The holder stopped answering and said so: answer at once, without a probe.
			if nc, out = c.taken(h.From, now); out == outAnnounce {
				// Answering now, this node keeps the key as its holder: the sender need not be left out of the
				// election any more, and leaving it out longer would hide it as the next node for this key's
				// next move (a SIGTERM of this node seconds later would hand the key to the wrong node).
				delete(a.handedIn, key)
				a.decideAgain = true
				a.metrics.Handoffs.WithLabelValues(string(handoffTake), "used").Inc()
				if takenFrom == nil {
					takenFrom = map[string][]string{}
				}
				takenFrom[h.From] = append(takenFrom[h.From], key)
			}
		}
		switch {
		case out != outNone:
		case !elected && c.State == claimHeld && g.Winner == in.Self:
			// Still this node's, but it has no interface to answer on (its link is down): it stops answering and
			// keeps counting as the holder for a while (claim.Lost).
			nc, out = c.lose(now)
		case !elected && c.State == claimHeld:
			nc, out = c.hand(a.handTarget(g), now, a.policy)
			if out == outNone && c.HandTo != "" && nc.HandTo == "" { // the offer expired: kept, offered again later
				if unanswered == nil {
					unanswered = map[string][]string{}
				}
				unanswered[c.HandTo] = append(unanswered[c.HandTo], key)
			}
		default:
			nc, out = c.elect(elected, a.holderView(g, c.Holder), now, a.policy)
		}
		a.setClaim(key, nc)
		switch out {
		case outProbe:
			a.startProbe(ctx, key, g, nc.Gen)
		case outOffer:
			a.queueHandoff(handoffOffer, nc.HandTo, key)
		case outHandOver:
			a.queueHandoff(handoffTake, c.HandTo, key)
		}
	}
	for key := range a.claims {
		if _, ok := pl.Groups[key]; !ok {
			a.setClaim(key, claim{})
		}
	}
	for key := range a.winners {
		if _, ok := pl.Groups[key]; !ok {
			a.table.Forget(key)
		}
	}
	for key, g := range pl.Groups {
		if prev, ok := a.winners[key]; ok && prev != g.Winner {
			a.metrics.ElectionChanges.Inc()
		}
	}
	a.winners = make(map[string]string, len(pl.Groups))
	for key, g := range pl.Groups {
		a.winners[key] = g.Winner
	}
	a.reportKernel()
	a.reportSelectorConflicts()
	a.apply()
	for from, keys := range takenFrom {
		a.log.Info("answering at once, without a probe: handed over", "from", from, "keys", len(keys), "examples", examples(keys, 3))
	}
	a.offersUnanswered(unanswered)
	a.flushHandoffs()
	a.checkDarkReports()
	a.failbackAt = nextFailback(in)
}

// reportKernel raises KernelAnswers for the groups this node's kernel answers for, from its configuration
// (an address on a local link without strict ARP) or from the wire.
func (a *agent) reportKernel() {
	a.kernelDirty = false
	kernel := map[string]string{}
	answering := 0
	for key, g := range a.plan.Groups {
		var whys []string
		for _, addr := range g.Addrs {
			if why, ok := g.Kernel[addr]; ok {
				whys = append(whys, why)
			}
		}
		whys = append(whys, a.kernelWire(g)...)
		if len(whys) == 0 {
			continue
		}
		answering += len(whys)
		msg := fmt.Sprintf("the kernel of %s answers ARP too: %s; %s", a.in.Self, strings.Join(whys, "; "), kernelFix)
		kernel[key] = msg
		if a.kernelWarned[key] != msg {
			a.log.Info("the node's kernel answers ARP for a load-balancer address too", "addresses", joinAddrs(g.Addrs), "why", strings.Join(whys, "; "))
			a.event(g, corev1.EventTypeWarning, EventKernelAnswers, msg)
		}
	}
	a.kernelWarned = kernel
	a.metrics.KernelAnswering.Set(float64(answering))
}

// apply hands the responders what the held claims say, tells the guard what to watch, raises Announcing and
// StoppedAnnouncing, and hands the status writer its wants.
func (a *agent) apply() {
	pl, in := a.plan, a.in
	if pl == nil {
		return
	}
	now := a.cfg.Clock.Now()
	held := func(key string) bool { return a.claims[key].State == claimHeld }
	assigned := pl.assignmentFor(held)
	for _, e := range a.assigned {
		for _, v := range e.VIPs {
			a.released[v] = now
		}
	}
	a.ann.Set(assigned)
	a.setAssigned(assigned)
	for _, e := range assigned {
		for _, v := range e.VIPs {
			delete(a.released, v)
		}
	}
	for v, t := range a.released {
		if now.Sub(t) > time.Second {
			delete(a.released, v)
		}
	}
	ifs := make([]l2.Interface, 0, len(assigned))
	for _, e := range assigned {
		ifs = append(ifs, e.Interface)
	}
	a.wire.SetInterfaces(ifs)
	a.addrKey = make(map[netip.Addr]string, len(a.addrKey))
	all := make([]netip.Addr, 0, len(a.addrKey))
	for key, g := range pl.Groups {
		for _, addr := range g.Addrs {
			a.addrKey[addr] = key
			all = append(all, addr)
		}
	}
	a.wire.SetVIPs(all)

	mine := map[string]bool{}
	announced := 0
	changed := false
	for key, g := range pl.Groups {
		if !held(key) {
			if a.mine[key] {
				changed = true
				a.event(g, corev1.EventTypeNormal, EventStoppedAnnouncing, fmt.Sprintf("%s stopped announcing %s: now %s", in.Self, joinAddrs(g.Addrs), winnerText(g)))
			}
			continue
		}
		mine[key] = true
		announced += len(g.Addrs)
		if !a.mine[key] {
			changed = true
			a.event(g, corev1.EventTypeNormal, EventAnnouncing, fmt.Sprintf("%s announces %s on %s", in.Self, joinAddrs(g.Addrs), interfacesText(g)))
		}
	}
	for key := range a.mine {
		if _, ok := pl.Groups[key]; !ok {
			changed = true
		}
	}
	if changed {
		a.metrics.AnnounceLatency.Observe(now.Sub(a.triggered).Seconds())
	}
	a.metrics.Announced.Set(float64(announced))
	a.mine = mine
	a.conflictGauges()
	a.status.update(a.wants(in, pl))
	a.setHealthTargets()
}
func winnerText(g *group) string {
	if g.Winner == "" {
		return "no node is eligible (" + g.Why + ")"
	}
	return "announced by " + g.Winner
}

func interfacesText(g *group) string {
	var names []string
	for _, a := range g.Addrs {
		for _, c := range g.Choices.at(a) {
			if !slices.Contains(names, c.Link.Name) {
				names = append(names, c.Link.Name)
			}
		}
	}
	if len(names) == 0 {
		// Say why, from the interface choice's refusals: the named interfaces the node lacks or cannot use, or
		// no connected subnet when the advertisements name none.
		var whys []string
		for _, a := range g.Addrs {
			for _, r := range g.Refusals.at(a) {
				why := string(r.Reason)
				if r.Name != "" {
					why = r.Name + ": " + why
				}
				if !slices.Contains(whys, why) {
					whys = append(whys, why)
				}
			}
		}
		if len(whys) == 0 || (len(whys) == 1 && whys[0] == string(iface.ReasonNoSubnet)) {
			return "no interface (no connected subnet holds the address and the L2Advertisement names none)"
		}
		return "no interface (" + strings.Join(whys, "; ") + ")"
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// event records an Event on every Service of a group.
func (a *agent) event(g *group, typ, reason, note string) {
	for _, s := range g.Services {
		ref := &corev1.Service{}
		ref.Namespace, ref.Name, ref.UID = s.Name.Namespace, s.Name.Name, s.UID
		a.rec.Eventf(ref, nil, typ, reason, "Announce", "%s", note)
	}
}

// wants turns a decision into the Announcement statuses this node is responsible for: those of the groups it
// announces, of the groups nobody may announce when it is the first live member in their order, and deletions
// of Announcements whose Service is gone.
func (a *agent) wants(in *inputs, pl *plan) statusWants {
	w := statusWants{Set: map[types.NamespacedName]announcementState{}}
	for key, g := range pl.Groups {
		c := a.claims[key]
		switch {
		case g.Winner == in.Self:
			if c.State == claimProbing || (c.State == claimDeferred && c.Holder != "") {
				continue // probing for a moment, or another speaker answers and writes
			}
		case g.Winner == "":
			if first, ok := election.Winner(key, in.Live); !ok || first != in.Self {
				continue
			}
		default:
			continue
		}
		for _, s := range g.Services {
			st := announcementState{UID: s.UID, Node: g.Winner, Addresses: addrStrings(s.Addrs), Interfaces: g.interfacesOf(s)}
			switch {
			case g.Winner == "":
				st.Reason, st.Message = g.Why, "no node may announce "+joinAddrs(s.Addrs)+": "+g.whyText()
			case len(st.Interfaces) == 0:
				st.Reason, st.Message = ReasonNoInterface, in.Self+" is elected but "+interfacesText(g)
			case c.State == claimDeferred && c.ProbeErr != "":
				st.Interfaces = nil
				st.Reason = ReasonProbeFailed
				st.Message = fmt.Sprintf("%s is elected but could not send its probe before answering (%s): it does not answer and probes again shortly",
					in.Self, c.ProbeErr)
			case c.State == claimDeferred && c.Foreign != nil:
				st.Interfaces = nil
				st.Reason = EventIPConflict
				st.Message = fmt.Sprintf("%s is answered by %s, which is not a Herald speaker: %s does not announce it (conflict policy yield) and probes again with backoff",
					c.Foreign.Addr, c.Foreign.MAC, in.Self)
			default:
				st.Announced, st.Reason, st.Message = true, "Announcing", in.Self+" answers ARP/NDP for "+joinAddrs(s.Addrs)+" on "+strings.Join(st.Interfaces, ",")
				if g.Conflict != "" {
					st.Message += "; but " + g.Conflict
				}
				if g.PinIgnored != "" {
					st.Message += "; pinned to " + g.PinIgnored + " (" + AnnotationNode + "), which may not announce it now"
				}
			}
			if cf := c.Conflict; cf != nil {
				st.Conflict = &heraldv1.AnnouncementConflict{Kind: cf.Kind, Address: cf.Addr.String(), MAC: cf.MAC, Node: cf.Node,
					Since: &metav1.Time{Time: cf.Since}}
			}
			w.Set[s.Name] = st
		}
	}
	inGroups := map[types.NamespacedName]bool{}
	for _, g := range pl.Groups {
		for _, s := range g.Services {
			inGroups[s.Name] = true
		}
	}
	var anns heraldv1.AnnouncementList
	if err := a.client.List(context.Background(), &anns, client.UnsafeDisableDeepCopy); err == nil {
		for _, an := range anns.Items {
			name := types.NamespacedName{Namespace: an.Namespace, Name: an.Name}
			if inGroups[name] {
				continue
			}
			if first, ok := election.Winner("announcement/"+name.String(), in.Live); ok && first == in.Self {
				w.Delete = append(w.Delete, name)
			}
		}
	}
	return w
}

// whyText says why no node may announce the group, with its selector conflict if it has one.
func (g *group) whyText() string {
	switch {
	case g.Why == ReasonSelectorConflict:
		return g.Conflict
	case g.Conflict != "":
		return whyText(g.Why) + "; " + g.Conflict
	}
	return whyText(g.Why)
}

func whyText(why string) string {
	switch why {
	case "NoPool":
		return "no IPAddressPool holds it"
	case "NotAdvertised":
		return "no L2Advertisement announces its pool"
	case ReasonNotSelected:
		return "no L2Advertisement of its pool selects the Service (their serviceSelectors match other Services)"
	default:
		return "no live speaker's node is selected, ready and (for externalTrafficPolicy Local) running an endpoint"
	}
}

// reportSelectorConflicts raises a Warning SelectorConflict Event on the Services of each group whose
// advertisements allow different nodes, once per message, from one node: the announcer, or when nobody
// announces, the node that writes the group's Announcements (wants).
func (a *agent) reportSelectorConflicts() {
	warned := map[string]string{}
	for key, g := range a.plan.Groups {
		if g.Conflict == "" {
			continue
		}
		if g.Winner != a.in.Self {
			if first, ok := election.Winner(key, a.in.Live); g.Winner != "" || !ok || first != a.in.Self {
				continue
			}
		}
		warned[key] = g.Conflict
		if a.conflictWarned[key] != g.Conflict {
			a.log.Info("Services sharing an address are selected by L2Advertisements that allow different nodes", "address", key, "conflict", g.Conflict)
			a.event(g, corev1.EventTypeWarning, ReasonSelectorConflict, g.Conflict)
		}
	}
	a.conflictWarned = warned
}
