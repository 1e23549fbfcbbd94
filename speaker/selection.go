package speaker

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/heraldlb/herald/internal/election"
)

// ReasonSelectorConflict: Services sharing an address are selected (serviceSelectors) by L2Advertisements that
// allow different nodes. It is the Announcement's reason when no node is allowed for all of them, and the
// Warning Event raised on each of the Services either way.
const ReasonSelectorConflict = "SelectorConflict"

// ReasonNotSelected: the pool of a Service's address has advertisements, but the serviceSelectors of none of
// them match the Service (nor those of the Services sharing its address).
const ReasonNotSelected = "NotSelected"

// advSet is a set of one pool's advertisements, those applying to a Service, and the nodes they select.
type advSet struct {
	names string          // the advertisements' names, sorted, comma-separated
	live  map[string]bool // live members whose Node one of them selects and that may announce (nodeUsable)
	all   map[string]bool // every Node one of them selects, live or not; only when the pool has serviceSelectors
	// weights are the preferences they give the live nodes (each advertisement's score of a node it selects,
	// summed); nil when none of them has preferredNodeSelectors.
	weights election.Ranked
}

// selected is what the advertisements applying to a group's Services allow.
type selected struct {
	nodes    []map[string]bool // per distinct advertisement set, its live nodes: an eligible node is in each
	allowed  []string          // the interfaces allowed on this node; nil for the connected-subnet rule
	why      string            // ReasonNotSelected or ReasonSelectorConflict when no node may announce the group
	conflict string            // the conflict's description, "" when there is none
	weights  election.Ranked   // the preferences of the advertisements applying to any of the Services
}

// selection works out, for group g of pool p, which of p's advertisements apply to each of its Services.
//
// The rule for Services sharing an address (one group, one announcing node): the address is announced only
// from a node that every one of them may be announced from, that is, a node some advertisement applying to each
// Service selects. Services whose advertisements select different Nodes are a conflict, reported whether or
// not such a node exists; a Service no advertisement applies to allows no node, so its group is announced by
// nobody (ReasonNotSelected when that holds for each of its Services). The interfaces a winner answers on are
// those the advertisements applying to any of the group's Services allow on it.
func (d *decision) selection(g *group, p *poolInfo) selected {
	self := d.in.Nodes[d.in.Self]
	if !p.bySvc {
		s := d.advSetOf(p, p.advs)
		return selected{nodes: []map[string]bool{s.live}, allowed: p.allowed, weights: s.weights}
	}
	per := make([]*advSet, len(g.Services)) // nil for a Service no advertisement applies to
	var sets []*advSet
	var union []*advInfo
	unselected := 0
	for i, s := range g.Services {
		var advs []*advInfo
		for _, a := range p.advs {
			if a.selectsService(s.Labels) {
				advs = append(advs, a)
			}
		}
		if len(advs) == 0 {
			unselected++
			continue
		}
		per[i] = d.advSetOf(p, advs)
		if !slices.Contains(sets, per[i]) {
			sets = append(sets, per[i])
		}
		for _, a := range advs {
			if !slices.Contains(union, a) {
				union = append(union, a)
			}
		}
	}
	if unselected == len(g.Services) {
		return selected{why: ReasonNotSelected}
	}
	out := selected{allowed: allowedOn(union, self), weights: d.advSetOf(p, union).weights}
	for _, s := range sets {
		out.nodes = append(out.nodes, s.live)
	}
	agree := unselected == 0
	for _, s := range sets[1:] {
		agree = agree && maps.Equal(s.all, sets[0].all)
	}
	if agree {
		return out
	}
	both := map[string]bool{}
	if unselected == 0 {
		for n := range sets[0].all {
			both[n] = true
			for _, s := range sets[1:] {
				both[n] = both[n] && s.all[n]
			}
			if !both[n] {
				delete(both, n)
			}
		}
	}
	out.conflict = conflictText(g, per, both)
	if len(both) == 0 {
		out.why = ReasonSelectorConflict
	}
	return out
}

// advSetOf returns the advSet of these advertisements of p, computing it once per decision.
func (d *decision) advSetOf(p *poolInfo, advs []*advInfo) *advSet {
	names := make([]string, len(advs))
	for i, a := range advs {
		names[i] = a.name
	}
	key := p.pool.Name
	if len(advs) != len(p.advs) {
		key += "\x00" + strings.Join(names, "\x00")
	}
	if s := d.advSets[key]; s != nil {
		return s
	}
	sort.Strings(names)
	s := &advSet{names: strings.Join(names, ","), live: map[string]bool{}}
	for name := range d.live {
		if n := d.in.Nodes[name]; n != nil && nodeUsable(n) && slices.ContainsFunc(advs, func(a *advInfo) bool { return a.selectsNode(n) }) {
			s.live[name] = true
		}
	}
	var weights election.Weights
	for name := range s.live {
		var w int64
		for _, a := range advs {
			w += a.score(d.in.Nodes[name])
		}
		if w != 0 {
			if weights == nil {
				weights = election.Weights{}
			}
			weights[name] = w
		}
	}
	s.weights = weights.Ranked()
	if p.bySvc {
		s.all = map[string]bool{}
		for name, n := range d.in.Nodes {
			if slices.ContainsFunc(advs, func(a *advInfo) bool { return a.selectsNode(n) }) {
				s.all[name] = true
			}
		}
	}
	d.advSets[key] = s
	return s
}

// conflictText describes a selector conflict: which advertisements apply to each Service and the nodes all of
// them allow (both), naming at most a few.
func conflictText(g *group, per []*advSet, both map[string]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the Services sharing %s are selected by L2Advertisements that allow different nodes (", g.Key)
	for i, s := range g.Services {
		if i > 0 {
			b.WriteString("; ")
		}
		switch {
		case per[i] == nil:
			fmt.Fprintf(&b, "%s: none", s.Name)
		default:
			fmt.Fprintf(&b, "%s: %s on %s", s.Name, per[i].names, nodeList(per[i].all))
		}
	}
	b.WriteString("): ")
	if len(both) == 0 {
		b.WriteString("no node is allowed for all of them, so no node announces it; make their advertisements select a common node or give the Services different addresses")
	} else {
		fmt.Fprintf(&b, "it is announced only from a node allowed for all of them (%s)", nodeList(both))
	}
	return b.String()
}

// nodeList names the nodes of a set, sorted, at most 5 and how many more.
func nodeList(set map[string]bool) string {
	if len(set) == 0 {
		return "no node"
	}
	names := slices.Sorted(maps.Keys(set))
	if len(names) > 5 {
		return strings.Join(names[:5], ",") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ",")
}
