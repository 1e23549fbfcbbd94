package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/election"
)

// Explanation is why this node answers an address or not, from its last decision and its claim on the address:
// what `herald explain` prints for each node. Summary is one sentence; Details are the facts behind it.
type Explanation struct {
	Node      string   `json:"node"`
	Address   string   `json:"address"`
	Answering bool     `json:"answering"`
	Summary   string   `json:"summary"`
	Details   []string `json:"details,omitempty"`
}

// ExplainPath is where the speaker's metrics server serves explanations: GET ExplainPath?address=IP returns an
// Explanation as JSON.
const ExplainPath = "/debug/explain"

// explainWait bounds how long a request waits for the event loop, which may be busy with a large decision.
const explainWait = 5 * time.Second

// explainHandler serves ExplainPath, asking the loop (which alone reads its state) for the explanation.
func (a *agent) explainHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, err := netip.ParseAddr(r.URL.Query().Get("address"))
		if err != nil {
			http.Error(w, fmt.Sprintf("want ?address=IP: %v", err), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), explainWait)
		defer cancel()
		res := make(chan Explanation, 1)
		select {
		case a.inspect <- func() { res <- a.explain(addr) }:
		case <-ctx.Done():
			http.Error(w, "the speaker's event loop did not take the request within "+explainWait.String(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(<-res)
	})
}

// explain says why this node answers addr or not. It runs on the loop.
func (a *agent) explain(addr netip.Addr) Explanation {
	self := a.cfg.NodeName
	addr = addr.Unmap()
	ex := Explanation{Node: self, Address: addr.String()}
	pl, in := a.plan, a.in
	if pl == nil || in == nil {
		ex.Summary = "no decision yet: the speaker is starting (caches syncing, joining the others)"
		return ex
	}
	var g *group
	for _, cand := range pl.Groups {
		if slices.Contains(cand.Addrs, addr) {
			g = cand
			break
		}
	}
	if g == nil {
		ex.Summary = "does not answer " + addr.String() + ": no LoadBalancer Service of this speaker's class has it as an " +
			"address (status.loadBalancer.ingress), in this speaker's cache"
		return ex
	}
	c := a.claims[g.Key]
	var svcs []string
	for _, s := range g.Services {
		svcs = append(svcs, s.Name.String())
	}
	pool := g.Pool
	if pool == "" {
		pool = "none"
	}
	d := func(format string, args ...any) { ex.Details = append(ex.Details, fmt.Sprintf(format, args...)) }
	d("Services: %s; pool: %s; election key: %s", strings.Join(svcs, ", "), pool, g.Key)
	var order []string
	for _, n := range election.Order(g.Key, in.Live) {
		mark := ""
		if g.eligible == nil || !g.eligible(n) {
			mark = " (not eligible)"
		}
		order = append(order, n+mark)
	}
	weighted := ""
	if len(g.weights.Weights()) > 0 {
		weighted = "; preferredNodeSelectors weigh it"
	}
	d("live members in the key's election order: %s%s", strings.Join(order, ", "), weighted)
	if g.Winner != "" {
		d("last decision: announcer %s, the election's choice %s, watcher %s, corroborator %s", g.Winner, g.Elected,
			orNone(g.Watcher), orNone(g.Corroborator))
	}
	d("this node's claim: %s", claimText(c, a.cfg.Clock.Now()))
	if why, ok := g.Kernel[addr]; ok {
		d("this node's kernel answers ARP for it too: %s", why)
	}
	if a.stall != nil && !a.stall.Fresh() {
		d("the speaker is settling a stall: it answers nothing new until the wire is checked")
	}
	ex.Answering = len(a.answering[addr]) > 0
	switch {
	case ex.Answering:
		ex.Summary = fmt.Sprintf("answers %s on %s", addr, strings.Join(a.answering[addr], ","))
		if g.Winner != self {
			ex.Summary += ", handing it over to " + orNone(g.Winner)
		}
	case g.Winner == "":
		ex.Summary = "does not answer " + addr.String() + ": no node may announce it: " + g.whyText()
	case g.Winner != self:
		ex.Summary = fmt.Sprintf("does not answer %s: %s announces it", addr, g.Winner)
		if g.Winner != g.Elected {
			ex.Summary += " (it holds the address; the election would pick " + g.Elected + ")"
		}
		if why := a.ineligibleWhy(g, addr); why != "" {
			ex.Summary += "; this node may not: " + why
		}
	case len(g.interfacesOf(svcRef{Addrs: g.Addrs})) == 0:
		ex.Summary = "does not answer " + addr.String() + ": elected, but " + interfacesText(g)
	case c.State == claimProbing:
		ex.Summary = "does not answer " + addr.String() + " yet: elected, probing the wire first (RFC 5227 / DAD)"
	case c.State == claimDeferred && c.ProbeErr != "":
		ex.Summary = fmt.Sprintf("does not answer %s: elected, but its probe before answering could not be sent (%s); it probes again shortly",
			addr, c.ProbeErr)
	case c.State == claimDeferred && c.Foreign != nil:
		ex.Summary = fmt.Sprintf("does not answer %s: %s, which is not a Herald speaker, answers it (IP conflict; policy yield)",
			addr, c.Foreign.MAC)
	case c.State == claimDeferred && c.Holder != "":
		ex.Summary = fmt.Sprintf("does not answer %s: elected, but speaker %s already answers it, so this node defers", addr, c.Holder)
	default:
		ex.Summary = "does not answer " + addr.String() + ": elected; the next decision starts its probe"
	}
	return ex
}

// ineligibleWhy says why this node may not announce g, or "" when it may.
func (a *agent) ineligibleWhy(g *group, addr netip.Addr) string {
	self, in := a.cfg.NodeName, a.in
	if g.eligible != nil && g.eligible(self) {
		return ""
	}
	n := in.Nodes[self]
	switch {
	case n == nil:
		return "there is no Node named " + self
	case !nodeUsable(n):
		return "the Node is excluded from load balancers (label " + ExcludeLabel + ", e.g. drained) or its network is unavailable"
	case in.Excluded[g.Key] == self:
		return "it handed the address over moments ago and stays out of its election for a few seconds"
	}
	for _, pf := range in.Impaired[self] {
		if pf.Contains(addr) {
			return "it withdrew from " + pf.String() + " (the watchers found it could not answer there)"
		}
	}
	return "the L2Advertisements of the pool do not select this Node (nodeSelectors, serviceSelectors) or, for " +
		"externalTrafficPolicy Local, no ready endpoint of the Service runs here"
}

func claimText(c claim, now time.Time) string {
	s := c.State.String()
	switch c.State {
	case claimHeld:
		s += fmt.Sprintf(" since %s ago", now.Sub(c.Since).Round(time.Millisecond))
		if c.HandTo != "" {
			s += ", offered to " + c.HandTo
		}
	case claimDeferred:
		switch {
		case c.ProbeErr != "":
			s += " (its probe could not be sent: " + c.ProbeErr + ")"
		case c.Foreign != nil:
			s += " to device " + c.Foreign.MAC
		case c.Holder != "":
			s += " to speaker " + c.Holder
			if !c.HolderOK {
				s += " (not a live, eligible member)"
			}
		}
		if !c.RetryAt.IsZero() {
			s += fmt.Sprintf(", probes again in %s", c.RetryAt.Sub(now).Round(time.Millisecond))
		}
	case claimIdle:
		if !c.Lost.IsZero() {
			s += fmt.Sprintf(" (stopped answering %s ago: its link went down, or a stall's resolution withdrew it; it still counts as the holder and probes again when it can answer)", now.Sub(c.Lost).Round(time.Millisecond))
		}
	}
	if c.Conflict != nil {
		s += fmt.Sprintf("; conflict with %s (%s) since %s ago", c.Conflict.MAC, c.Conflict.Kind, now.Sub(c.Conflict.Since).Round(time.Second))
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
