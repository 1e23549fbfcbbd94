package speaker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crrecorder "sigs.k8s.io/controller-runtime/pkg/recorder"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
)

type recorder = crrecorder.EventRecorder

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
		case ls := <-a.links:
			a.setLinks(ls)
		case <-rejoin.C():
			if a.missingMembers(ctx) {
				a.join(ctx)
			}
			continue
		}
		a.triggered = a.cfg.Clock.Now()
		if batch != nil && first.Before(a.triggered) {
			a.triggered = first
		}
		batch = nil
		a.checkKey(ctx)
		a.reconcile(ctx)
		last = a.cfg.Clock.Now()
	}
}

// checkKey switches memberlist to a new gossip key when the Secret changes. Every speaker watches the same
// Secret and switches within moments of the others; the old key keeps decrypting for a grace period meanwhile.
func (a *agent) checkKey(ctx context.Context) {
	key, err := a.readKey(ctx)
	if err != nil {
		a.log.V(1).Info("gossip key unusable; keeping the current one", "reason", err.Error())
		return
	}
	if bytes.Equal(key, a.key) {
		return
	}
	if err := a.members.SetKey(key); err != nil {
		a.log.Error(err, "switching to the new gossip key; keeping the current one")
		return
	}
	a.key = key
	a.log.Info("switched to the new gossip key from the Secret")
}

func (a *agent) setLinks(ls []iface.Link) {
	old := candidateMACs(a.curLinks)
	a.curLinks = ls
	now := candidateMACs(ls)
	if !slices.EqualFunc(old, now, func(x, y net.HardwareAddr) bool { return x.String() == y.String() }) {
		if err := a.members.UpdateMACs(now); err != nil {
			a.log.Error(err, "publishing interface MACs")
		}
	}
}

// missingMembers reports whether a Node with an InternalIP is not a live member.
func (a *agent) missingMembers(ctx context.Context) bool {
	var nodes corev1.NodeList
	if err := a.client.List(ctx, &nodes); err != nil {
		return false
	}
	live := map[string]bool{}
	for _, m := range a.members.Members() {
		live[m.Name] = true
	}
	for _, n := range nodes.Items {
		if !live[n.Name] {
			for _, ad := range n.Status.Addresses {
				if ad.Type == corev1.NodeInternalIP {
					return true
				}
			}
		}
	}
	return false
}

// gather reads the decision's inputs from the informer cache without copying.
func (a *agent) gather(ctx context.Context) (*inputs, error) {
	in := &inputs{Self: a.cfg.NodeName, Class: a.cfg.LoadBalancerClass, Links: a.curLinks, ArpIgnore: readArpIgnore(a.curLinks),
		Nodes: map[string]*corev1.Node{}, Endpoints: map[types.NamespacedName][]*discoveryv1.EndpointSlice{}}
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
	var svcs corev1.ServiceList
	if err := a.client.List(ctx, &svcs, nocopy); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	local := map[types.NamespacedName]bool{}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		in.Services = append(in.Services, s)
		if s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			local[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = true
		}
	}
	if len(local) > 0 {
		var eps discoveryv1.EndpointSliceList
		if err := a.client.List(ctx, &eps, nocopy); err != nil {
			return nil, fmt.Errorf("listing EndpointSlices: %w", err)
		}
		for i := range eps.Items {
			e := &eps.Items[i]
			name := types.NamespacedName{Namespace: e.Namespace, Name: e.Labels[discoveryv1.LabelServiceName]}
			if local[name] {
				in.Endpoints[name] = append(in.Endpoints[name], e)
			}
		}
	}
	for _, m := range a.members.Members() {
		in.Live = append(in.Live, m.Name)
	}
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
	pl := decide(in, a.table)
	a.ann.Set(pl.Assignment)
	now := a.cfg.Clock.Now()
	a.metrics.Decide.Observe(now.Sub(start).Seconds())
	a.metrics.Members.Set(float64(len(in.Live)))

	kernel := map[string]string{}
	answering := 0
	for key, g := range pl.Groups {
		if len(g.Kernel) == 0 {
			continue
		}
		var whys []string
		for _, a := range g.Addrs {
			if why, ok := g.Kernel[a]; ok {
				whys = append(whys, why)
				answering++
			}
		}
		msg := fmt.Sprintf("the kernel of %s answers ARP too: %s; %s", in.Self, strings.Join(whys, "; "), kernelFix)
		kernel[key] = msg
		if a.kernelWarned[key] != msg {
			a.log.Info("the node's kernel answers ARP for a load-balancer address too", "addresses", joinAddrs(g.Addrs), "why", strings.Join(whys, "; "))
			a.event(g, corev1.EventTypeWarning, EventKernelAnswers, msg)
		}
	}
	a.kernelWarned = kernel
	a.metrics.KernelAnswering.Set(float64(answering))

	mine := map[string]bool{}
	announced := 0
	changed := false
	for key, g := range pl.Groups {
		if prev, ok := a.winners[key]; ok && prev != g.Winner {
			a.metrics.ElectionChanges.Inc()
		}
		if g.Winner != in.Self {
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
	for key := range a.winners {
		if _, ok := pl.Groups[key]; !ok {
			a.table.Forget(key)
		}
	}
	a.winners = make(map[string]string, len(pl.Groups))
	for key, g := range pl.Groups {
		a.winners[key] = g.Winner
	}
	a.status.update(a.wants(in, pl))
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
		for _, c := range g.Choices[a] {
			if !slices.Contains(names, c.Link.Name) {
				names = append(names, c.Link.Name)
			}
		}
	}
	if len(names) == 0 {
		return "no interface (no connected subnet holds the address and the L2Advertisement names none)"
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
		switch {
		case g.Winner == in.Self:
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
				st.Reason, st.Message = g.Why, "no node may announce "+joinAddrs(s.Addrs)+": "+whyText(g.Why)
			case len(st.Interfaces) == 0:
				st.Reason, st.Message = "NoInterface", in.Self+" is elected but "+interfacesText(g)
			default:
				st.Announced, st.Reason, st.Message = true, "Announcing", in.Self+" answers ARP/NDP for "+joinAddrs(s.Addrs)+" on "+strings.Join(st.Interfaces, ",")
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

func whyText(why string) string {
	switch why {
	case "NoPool":
		return "no IPAddressPool holds it"
	case "NotAdvertised":
		return "no L2Advertisement announces its pool"
	default:
		return "no live speaker's node is selected, ready and (for externalTrafficPolicy Local) running an endpoint"
	}
}
