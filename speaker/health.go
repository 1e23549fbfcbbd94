package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/probe"
	l2 "github.com/heraldlb/herald/internal/wire"
)

// Event reasons of health probing.
const (
	EventAddressDark         = "AddressDark"
	EventDuplicateResponders = "DuplicateResponders"
	EventWrongResponder      = "WrongResponder"
	EventForeignResponder    = "ForeignResponder"
	EventAddressHealthy      = "AddressHealthy"
	EventDarkReported        = "DarkReported"
	EventWithdrawn           = "Withdrawn"
	EventWatcherDisagrees    = "WatcherDisagrees"
)

// maxPublished bounds the dark addresses and impaired prefixes a speaker publishes in its member metadata.
const maxPublished = 8

// health is the agent's health-probing state, owned by the event loop. As a watcher (the next node in an
// address's election order after the announcer) a speaker probes the address every HealthInterval, judges who
// answered, and reports the verdict in metrics, Events and the Announcement. It publishes the addresses it
// finds dark in its member metadata; the announcer, seeing one of its addresses there, re-checks its interface
// and re-announces, and withdraws from the address's prefix for ImpairedHold (publishing that too, so every
// speaker elects another node) if the interface is down or the address stays dark. Where the address has a
// corroborator (a third eligible node), the announcer withdraws only once the corroborator, probing on the
// watcher's report, finds the address dark too: a watcher whose own link fails must not move healthy addresses.
type health struct {
	monitor *probe.Monitor // nil when health probing is off

	watch map[netip.Addr]*watchState // addresses this node watches
	// corroborating are the addresses a watcher reports dark for which this node is the corroborator.
	corroborating map[netip.Addr]*corroboration

	impaired    map[netip.Prefix]time.Time      // prefixes this node withdrew from -> until when
	darkReports map[netip.Addr]darkReport       // dark reports about addresses this node answers for
	published   struct{ dark, impaired string } // what the metadata says now
	healthDirty bool                            // impaired changed: decide again
	ageAt       time.Time                       // when herald_health_oldest_probe_age_seconds was last set
}

type watchState struct {
	key        string
	service    string // the first Service holding the address, for the metric's label
	verdict    probe.Verdict
	since      time.Time
	last       time.Time // the last round's
	added      time.Time // when this node began to watch it
	responders []probe.Responder
	errLogged  string
}

// corroboration is this node's check of a watcher's dark report.
type corroboration struct {
	key       string
	watcher   string
	judged    bool // a round has ended
	dark      bool // the last round went unanswered
	errLogged string
}

type darkReport struct {
	reporters   []string // the members that publish the address as dark, sorted
	confirmed   bool     // by the corroborator too, or there is none
	link        string
	reannounced time.Time
	withdrawn   bool
}

func newHealth() health {
	return health{watch: map[netip.Addr]*watchState{}, corroborating: map[netip.Addr]*corroboration{},
		impaired: map[netip.Prefix]time.Time{}, darkReports: map[netip.Addr]darkReport{}}
}

// setHealthTargets tells the monitor what this node watches, after a decision.
func (a *agent) setHealthTargets() {
	if a.monitor == nil || a.plan == nil {
		return
	}
	var ts []probe.Target
	keep := map[netip.Addr]bool{}
	for key, g := range a.plan.Groups {
		watching := g.Watcher == a.cfg.NodeName
		if !watching && g.Corroborator != a.cfg.NodeName {
			continue
		}
		for _, e := range g.ProbeFrom {
			addr, l := e.Addr, e.V
			if c := a.corroborating[addr]; !watching && (c == nil || c.key != key) {
				continue // corroborators probe only what a watcher reports dark
			}
			src := a.probeSource(addr, l)
			if !src.IsValid() || len(l.MAC) != 6 {
				continue
			}
			ts = append(ts, probe.Target{Addr: addr, Link: l2.Interface{Index: l.Index, Name: l.Name, MAC: l.MAC},
				Source: src})
			if !watching {
				continue
			}
			keep[addr] = true
			st := a.watch[addr]
			if st == nil {
				st = &watchState{added: a.cfg.Clock.Now()}
				a.watch[addr] = st
			}
			if svc := serviceOf(g, addr); st.key != key || st.service != svc {
				if st.verdict != "" {
					a.metrics.HealthVerdict.DeleteLabelValues(addr.String(), st.service, string(st.verdict))
					a.metrics.HealthVerdict.WithLabelValues(addr.String(), svc, string(st.verdict)).Set(1)
				}
				st.key, st.service = key, svc
			}
		}
	}
	for addr, st := range a.watch {
		if !keep[addr] {
			a.metrics.HealthVerdict.DeleteLabelValues(addr.String(), st.service, string(st.verdict))
			a.metrics.HealthResponders.DeleteLabelValues(addr.String())
			delete(a.watch, addr)
		}
	}
	a.monitor.SetTargets(ts)
	a.healthGauges()
	a.publishHealth()
}

func serviceOf(g *group, addr netip.Addr) string {
	for _, s := range g.Services {
		if slices.Contains(s.Addrs, addr) {
			return s.Name.String()
		}
	}
	return ""
}

// probeSource is the sender address for requests from l: for IPv4 the link's address in addr's subnet, else
// any of its IPv4 addresses, else 0.0.0.0 (an ARP probe); for IPv6 its link-local address, else any. Managed
// load-balancer addresses are never used.
func (a *agent) probeSource(addr netip.Addr, l iface.Link) netip.Addr {
	usable := func(p netip.Prefix) bool {
		_, managed := a.addrKey[p.Addr()]
		return !managed && p.Addr().Is4() == addr.Is4()
	}
	for _, p := range l.Prefixes {
		if usable(p) && (p.Contains(addr) || p.Addr().IsLinkLocalUnicast()) {
			return p.Addr()
		}
	}
	for _, p := range l.Prefixes {
		if usable(p) {
			return p.Addr()
		}
	}
	if addr.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.Addr{}
}

// nodeOfMAC names the speaker a MAC belongs to, "" for none.
func (a *agent) nodeOfMAC(mac net.HardwareAddr) string {
	if a.selfMACs[mac.String()] {
		return a.cfg.NodeName
	}
	return a.peerMACs[mac.String()]
}

// announcer is the node the Announcement of addr's Service names, "" when there is none.
func (a *agent) announcer(g *group, addr netip.Addr) string {
	for _, s := range g.Services {
		if !slices.Contains(s.Addrs, addr) {
			continue
		}
		var an heraldv1.Announcement
		if err := a.client.Get(context.TODO(), s.Name, &an, client.UnsafeDisableDeepCopy); err == nil {
			return an.Status.Node
		}
	}
	return ""
}

// onRound judges a probe round. A bad verdict different from the current one is confirmed by a second round
// before it is reported, so that one lost reply raises no alarm.
func (a *agent) onRound(r probe.Round) {
	addr := r.Target.Addr
	st := a.watch[addr]
	if c := a.corroborating[addr]; st == nil && c != nil {
		a.onCorroboration(r, c)
		return
	}
	if st == nil || a.plan == nil {
		return
	}
	g := a.plan.Groups[st.key]
	if g == nil {
		return
	}
	a.metrics.HealthRequests.Add(float64(r.Attempts))
	if r.Err != nil {
		if msg := r.Err.Error(); msg != st.errLogged {
			st.errLogged = msg
			a.log.Error(r.Err, "health probe failed", "address", addr)
		}
		return
	}
	st.errLogged = ""
	if !a.fresh() {
		return // the round overlapped a stall of this process: its silence means nothing
	}
	v, rs := probe.Judge(r.Replies, "", a.nodeOfMAC)
	if v == probe.Healthy {
		// One speaker answered: the one the Announcement names, or the one this node elects (the Announcement
		// lags a takeover by a write).
		if n := rs[0].Node; n != g.Winner && n != a.announcer(g, addr) {
			v = probe.WrongResponder
		}
	}
	fam := "ipv4"
	if addr.Is6() {
		fam = "ipv6"
	}
	a.metrics.HealthProbes.WithLabelValues(fam, string(v)).Inc()
	if len(rs) > 0 {
		a.metrics.HealthLatency.WithLabelValues(fam).Observe(rs[0].Latency.Seconds())
	}
	if v != probe.Healthy && v != st.verdict && !r.Confirm {
		a.monitor.Confirm(addr)
		return
	}
	now := a.cfg.Clock.Now()
	prev := st.verdict
	st.last, st.responders = r.Sent, rs
	if v != prev {
		st.since, st.verdict = now, v
		if prev != "" {
			a.metrics.HealthVerdict.DeleteLabelValues(addr.String(), st.service, string(prev))
		}
		a.metrics.HealthVerdict.WithLabelValues(addr.String(), st.service, string(v)).Set(1)
		a.healthTransition(g, addr, prev, st)
		a.healthGauges()
		a.publishHealth()
	}
	a.metrics.HealthResponders.WithLabelValues(addr.String()).Set(float64(len(rs)))
	a.putHealthStatus(g)
}

func respondersText(rs []probe.Responder) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		who := "not a speaker"
		if r.Node != "" {
			who = "node " + r.Node
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", r.MAC, who))
	}
	return strings.Join(parts, ", ")
}

// healthTransition logs a verdict change and raises its Event.
func (a *agent) healthTransition(g *group, addr netip.Addr, prev probe.Verdict, st *watchState) {
	self := a.cfg.NodeName
	var reason, note string
	switch st.verdict {
	case probe.Healthy:
		if prev == "" {
			return
		}
		reason, note = EventAddressHealthy, fmt.Sprintf("%s is answered by %s again (was %s), probed from %s", addr, respondersText(st.responders), prev, self)
	case probe.Dark:
		reason, note = EventAddressDark, fmt.Sprintf("nobody answers for %s: %s's requests went unanswered (announcer %s)", addr, self, winnerText(g))
	case probe.Duplicate:
		reason, note = EventDuplicateResponders, fmt.Sprintf("%s is answered by %d devices: %s; clients reach whichever they heard last", addr, len(st.responders), respondersText(st.responders))
	case probe.WrongResponder:
		reason, note = EventWrongResponder, fmt.Sprintf("%s is answered by %s, not by the node its Announcement names (%s)", addr, respondersText(st.responders), winnerText(g))
	case probe.ForeignResponder:
		reason, note = EventForeignResponder, fmt.Sprintf("%s is answered only by %s, a device that is not a Herald speaker", addr, respondersText(st.responders))
	}
	typ := corev1.EventTypeWarning
	if st.verdict == probe.Healthy {
		typ = corev1.EventTypeNormal
	}
	a.log.Info("health verdict changed", "address", addr, "verdict", string(st.verdict), "was", string(prev),
		"responders", respondersText(st.responders))
	a.event(g, typ, reason, note)
}

func (a *agent) healthGauges() {
	counts := map[probe.Verdict]int{}
	for _, st := range a.watch {
		if st.verdict != "" {
			counts[st.verdict]++
		}
	}
	for _, v := range probe.Verdicts {
		a.metrics.HealthAddresses.WithLabelValues(string(v)).Set(float64(counts[v]))
	}
}

// probeAge sets herald_health_oldest_probe_age_seconds: the age of the oldest last probe among the addresses
// this node watches (an address not yet probed counts from when it began to be watched).
func (a *agent) probeAge(now time.Time) {
	var oldest time.Time
	for _, st := range a.watch {
		last := st.last
		if last.IsZero() {
			last = st.added
		}
		if oldest.IsZero() || last.Before(oldest) {
			oldest = last
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = now.Sub(oldest).Seconds()
	}
	a.metrics.HealthProbeAge.Set(age)
}

// putHealthStatus hands the health of g's Services to the health writer.
func (a *agent) putHealthStatus(g *group) {
	if a.status == nil {
		return
	}
	for _, s := range g.Services {
		h := heraldv1.AnnouncementHealth{Watcher: a.cfg.NodeName}
		var worst *watchState
		for _, addr := range s.Addrs {
			st := a.watch[addr]
			if st == nil || st.verdict == "" {
				continue
			}
			ah := heraldv1.AddressHealth{Address: addr.String(), Verdict: heraldv1.HealthVerdict(st.verdict)}
			for i, r := range st.responders {
				if i == 8 {
					break
				}
				ah.Responders = append(ah.Responders, heraldv1.HealthResponder{MAC: r.MAC.String(), Node: r.Node,
					Latency: &metav1.Duration{Duration: r.Latency.Round(10 * time.Microsecond)}})
			}
			h.Addresses = append(h.Addresses, ah)
			if worst == nil || st.verdict.Severity() > worst.verdict.Severity() {
				worst = st
			}
			if h.LastProbe == nil || st.last.After(h.LastProbe.Time) {
				h.LastProbe = &metav1.Time{Time: st.last}
			}
		}
		if worst == nil {
			continue
		}
		h.Verdict = heraldv1.HealthVerdict(worst.verdict)
		h.Since = &metav1.Time{Time: worst.since}
		a.status.putHealth(types.NamespacedName(s.Name), s.UID, h)
	}
}

// publishHealth puts the dark addresses this node watches and the prefixes it withdrew from in its member
// metadata, when they changed.
func (a *agent) publishHealth() {
	if a.members == nil {
		return
	}
	var dark []netip.Addr
	for addr, st := range a.watch {
		if st.verdict == probe.Dark {
			dark = append(dark, addr)
		}
	}
	for addr, c := range a.corroborating {
		if c.dark {
			dark = append(dark, addr)
		}
	}
	slices.SortFunc(dark, func(x, y netip.Addr) int { return x.Compare(y) })
	if len(dark) > maxPublished {
		dark = dark[:maxPublished]
	}
	var imp []netip.Prefix
	for p := range a.impaired {
		imp = append(imp, p)
	}
	slices.SortFunc(imp, func(x, y netip.Prefix) int { return strings.Compare(x.String(), y.String()) })
	if len(imp) > maxPublished {
		imp = imp[:maxPublished]
	}
	ds, is := fmt.Sprint(dark), fmt.Sprint(imp)
	if ds == a.published.dark && is == a.published.impaired {
		return
	}
	if err := a.members.SetHealth(imp, dark); errors.Is(err, membership.ErrMetaTrimmed) {
		// Published, with fewer entries (many MACs leave less room): the first ones still start the re-checks.
		a.log.Info("member metadata too small for every dark address and withdrawn prefix; published the first ones",
			"dark", len(dark), "withdrawn", len(imp))
	} else if err != nil {
		a.log.Error(err, "publishing dark addresses and withdrawn prefixes")
		return
	}
	a.published.dark, a.published.impaired = ds, is
}

// impairedInputs are the prefixes each live member withdrew from, this node's from its own state.
func (a *agent) impairedInputs() map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, m := range a.members.Members() {
		if m.Name != a.cfg.NodeName && len(m.Impaired) > 0 {
			out[m.Name] = m.Impaired
		}
	}
	for p := range a.impaired {
		out[a.cfg.NodeName] = append(out[a.cfg.NodeName], p)
	}
	return out
}

// darkGrace is how long a re-announced address may stay reported dark before this node withdraws: the
// watcher's next scheduled round and its confirmation, with room for the metadata to travel.
func (a *agent) darkGrace() time.Duration {
	return 2*a.cfg.HealthInterval + 2*time.Duration(max(a.cfg.HealthAttempts, 1))*max(a.cfg.HealthWait, probe.DefaultMonitorWait) + time.Second
}

// checkDarkReports acts on watchers' reports that addresses this node answers for are dark: with the
// interface down it withdraws at once; otherwise it re-announces, and withdraws if the report stands after
// darkGrace and the address's corroborator (if it has one) reports it dark too (checked by healthTick). It also
// starts and ends this node's own corroborations of reports about other nodes' addresses.
func (a *agent) checkDarkReports() {
	if a.members == nil || a.plan == nil {
		return
	}
	a.checkCorroborations()
	now := a.cfg.Clock.Now()
	reported := map[netip.Addr][]string{}
	for _, m := range a.members.Members() {
		if m.Name == a.cfg.NodeName {
			continue
		}
		for _, d := range m.Dark {
			reported[d] = append(reported[d], m.Name)
		}
	}
	for addr, rep := range a.darkReports {
		by, ok := reported[addr]
		if !ok {
			delete(a.darkReports, addr)
			continue
		}
		rep.reporters, rep.confirmed = a.darkConfirmed(addr, by)
		a.darkReports[addr] = rep
	}
	for addr, by := range reported {
		if _, ok := a.darkReports[addr]; ok {
			continue
		}
		link := ""
		if links := a.answering[addr]; len(links) > 0 {
			link = links[0]
		}
		if link == "" {
			a.claimDark(addr, by) // not answered here
			continue
		}
		reporters, confirmed := a.darkConfirmed(addr, by)
		g := a.plan.Groups[a.addrKey[addr]]
		l, ok := a.link(link)
		if !ok || !l.Up {
			a.metrics.DarkReports.WithLabelValues("withdrew").Inc()
			a.darkReports[addr] = darkReport{reporters: reporters, confirmed: confirmed, link: link, reannounced: now, withdrawn: true}
			a.impair(g, addr, l, fmt.Sprintf("%s reports %s dark and %s is down", strings.Join(reporters, " and "), addr, link))
			continue
		}
		a.ann.Reannounce(addr)
		a.metrics.DarkReports.WithLabelValues("reannounced").Inc()
		a.darkReports[addr] = darkReport{reporters: reporters, confirmed: confirmed, link: link, reannounced: now}
		a.log.Info("a watcher reports an address this node answers for dark; re-announcing", "address", addr,
			"reporters", reporters, "interface", link)
		if g != nil {
			cond := ""
			if g.Corroborator != "" {
				cond = fmt.Sprintf(" and %s, probing too, finds it dark", g.Corroborator)
			}
			a.event(g, corev1.EventTypeWarning, EventDarkReported, fmt.Sprintf(
				"%s finds %s dark; %s's %s is up, so it re-announced and withdraws if the address stays dark for %s%s",
				strings.Join(reporters, " and "), addr, a.cfg.NodeName, link, a.darkGrace().Round(time.Second), cond))
		}
	}
}

// claimDark closes the loop on a dark address this node does not answer for: when the report is corroborated
// (nobody answers) and the election picks this node for the address, the node probes it at once, whatever its
// backoff says, since whatever it defers to does not answer. The probe then claims the address or finds who
// answers, as any probe does.
func (a *agent) claimDark(addr netip.Addr, by []string) {
	key, ok := a.addrKey[addr]
	g := a.plan.Groups[key]
	if !ok || g == nil || g.Elected != a.cfg.NodeName {
		return
	}
	reporters, confirmed := a.darkConfirmed(addr, by)
	if !confirmed {
		return
	}
	c := a.claims[key]
	nc, cut := c.darkReported(a.cfg.Clock.Now())
	if !cut {
		return
	}
	a.setClaim(key, nc)
	a.metrics.DarkReports.WithLabelValues("probed").Inc()
	to := c.Holder
	if to == "" && c.Foreign != nil {
		to = c.Foreign.MAC
	}
	a.log.Info("a corroborated dark report for an address this node is elected for; probing it now instead of waiting for the backoff",
		"address", addr, "reporters", reporters, "deferredTo", to, "backoffLeft", c.RetryAt.Sub(nc.RetryAt).Round(time.Millisecond).String())
}

// darkConfirmed sorts the members reporting addr dark and says whether the report is enough to withdraw: the
// address's corroborator is among them, or it has none.
func (a *agent) darkConfirmed(addr netip.Addr, by []string) ([]string, bool) {
	by = slices.Clone(by)
	slices.Sort(by)
	g := a.plan.Groups[a.addrKey[addr]]
	return by, g == nil || g.Corroborator == "" || slices.Contains(by, g.Corroborator)
}

// checkCorroborations starts probing the addresses whose watcher reports them dark where this node is the
// corroborator, and stops when the report ends.
func (a *agent) checkCorroborations() {
	if a.monitor == nil {
		return
	}
	want := map[netip.Addr]string{}
	for _, m := range a.members.Members() {
		if m.Name == a.cfg.NodeName {
			continue
		}
		for _, d := range m.Dark {
			key := a.addrKey[d]
			g := a.plan.Groups[key]
			if g == nil || g.Watcher != m.Name || g.Corroborator != a.cfg.NodeName {
				continue
			}
			if _, ok := g.ProbeFrom.lookup(d); ok {
				want[d] = key
			}
		}
	}
	changed := false
	var started []netip.Addr
	for addr, c := range a.corroborating {
		if key, ok := want[addr]; !ok || key != c.key {
			delete(a.corroborating, addr)
			changed = true
		}
	}
	for addr, key := range want {
		if _, ok := a.corroborating[addr]; !ok {
			a.corroborating[addr] = &corroboration{key: key, watcher: a.plan.Groups[key].Watcher}
			started = append(started, addr)
			changed = true
		}
	}
	if !changed {
		return
	}
	a.setHealthTargets() // publishes too, when a dark corroboration ended
	for _, addr := range started {
		a.log.Info("a watcher reports an address dark; probing it to corroborate", "address", addr,
			"watcher", a.corroborating[addr].watcher)
		a.monitor.Confirm(addr)
	}
}

// onCorroboration judges a round probing an address a watcher reports dark, and publishes the address dark
// too when nobody answered. When somebody answered, the watcher's own link may be at fault: it says so in an
// Event and does not publish, so the announcer keeps the address.
func (a *agent) onCorroboration(r probe.Round, c *corroboration) {
	a.metrics.HealthRequests.Add(float64(r.Attempts))
	if r.Err != nil {
		if msg := r.Err.Error(); msg != c.errLogged {
			c.errLogged = msg
			a.log.Error(r.Err, "corroborating probe failed", "address", r.Target.Addr)
		}
		return
	}
	c.errLogged = ""
	if !a.fresh() {
		return
	}
	dark := len(r.Replies) == 0
	if c.judged && dark == c.dark {
		return
	}
	c.judged, c.dark = true, dark
	addr := r.Target.Addr
	g := a.plan.Groups[c.key]
	if dark {
		a.metrics.Corroborations.WithLabelValues("dark").Inc()
		a.log.Info("corroborated a dark report: nobody answers", "address", addr, "watcher", c.watcher)
	} else {
		a.metrics.Corroborations.WithLabelValues("answered").Inc()
		_, rs := probe.Judge(r.Replies, "", a.nodeOfMAC)
		a.log.Info("a watcher reports an address dark, but it is answered here", "address", addr, "watcher", c.watcher,
			"responders", respondersText(rs))
		if g != nil {
			a.event(g, corev1.EventTypeWarning, EventWatcherDisagrees, fmt.Sprintf(
				"%s finds %s dark, but %s's requests are answered by %s: %s's own link may be at fault, so the announcer keeps the address",
				c.watcher, addr, a.cfg.NodeName, respondersText(rs), c.watcher))
		}
	}
	a.publishHealth()
}

func (a *agent) link(name string) (iface.Link, bool) {
	for _, l := range a.curLinks {
		if l.Name == name {
			return l, true
		}
	}
	return iface.Link{Name: name}, false
}

// impair withdraws this node from addr's prefix on l for ImpairedHold.
func (a *agent) impair(g *group, addr netip.Addr, l iface.Link, why string) {
	pf := netip.PrefixFrom(addr, addr.BitLen())
	for _, p := range l.Prefixes {
		if p.Contains(addr) && p.Bits() > 0 {
			pf = p.Masked()
			break
		}
	}
	if _, ok := a.impaired[pf]; !ok && len(a.impaired) >= maxPublished {
		a.log.Info("too many withdrawn prefixes; not withdrawing another", "prefix", pf, "why", why)
		return
	}
	a.impaired[pf] = a.cfg.Clock.Now().Add(a.cfg.ImpairedHold)
	a.metrics.Impaired.Set(float64(len(a.impaired)))
	a.healthDirty = true
	a.log.Info("withdrawing from a prefix so that another node answers there", "prefix", pf, "hold", a.cfg.ImpairedHold.String(), "why", why)
	if g != nil {
		a.event(g, corev1.EventTypeWarning, EventWithdrawn, fmt.Sprintf("%s; %s withdraws from %s for %s so that another node answers",
			why, a.cfg.NodeName, pf, a.cfg.ImpairedHold))
	}
	a.publishHealth()
}

// healthTick withdraws from addresses still reported dark after darkGrace, ends withdrawals whose hold is over,
// and reports whether a decision is due.
func (a *agent) healthTick() (decide bool) {
	now := a.cfg.Clock.Now()
	if now.Sub(a.ageAt) >= time.Second {
		a.ageAt = now
		a.probeAge(now)
	}
	for addr, rep := range a.darkReports {
		if rep.withdrawn || !rep.confirmed || now.Sub(rep.reannounced) < a.darkGrace() {
			continue
		}
		rep.withdrawn = true
		a.darkReports[addr] = rep
		a.metrics.DarkReports.WithLabelValues("withdrew").Inc()
		l, _ := a.link(rep.link)
		var g *group
		if a.plan != nil {
			g = a.plan.Groups[a.addrKey[addr]]
		}
		a.impair(g, addr, l, fmt.Sprintf("%s is still reported dark by %s %s after %s re-announced it on %s", addr, strings.Join(rep.reporters, " and "),
			now.Sub(rep.reannounced).Round(time.Second), a.cfg.NodeName, rep.link))
	}
	for p, until := range a.impaired {
		if !now.Before(until) {
			delete(a.impaired, p)
			a.metrics.Impaired.Set(float64(len(a.impaired)))
			a.log.Info("withdrawal over; eligible again", "prefix", p)
			a.healthDirty = true
			a.publishHealth()
		}
	}
	decide, a.healthDirty = a.healthDirty, false
	return decide
}
