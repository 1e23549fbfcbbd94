package e2e

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/speaker"
)

// judge checks the invariants over the whole run, logs the figures and reports each violation with what
// replays and explains it.
func (s *soak) judge() {
	t, c := s.t, s.c
	for _, r := range s.runs {
		t.Logf("soak: fault %v ran +%v..+%v %s%s", r.f, r.start.Sub(s.start).Round(time.Millisecond),
			r.end.Sub(s.start).Round(time.Millisecond), r.note, errNote(r.err))
	}
	rogueMAC := c.lab.Others[0].MAC.String()
	var dupTotal, dupRogue time.Duration
	dupWindows, singles, requests := 0, 0, 0
	outages := map[string][]time.Duration{}
	moves, rogueMoves, recreateMoves := 0, 0, 0
	var unexplained []string
	for i, sv := range s.svcs {
		se := s.w.series[sv.addr]
		requests += se.Len()
		claims := s.rogue[sv.addr]
		// Two MACs: allowed while the rogue host claims the address (and a second after it lets go).
		for _, d := range se.DuplicateSpans() {
			dupTotal += d.Dur
			dupWindows++
			if overlapsAny(claims, d.Start, d.End(), time.Second) {
				dupRogue += d.Dur
				continue
			}
			if d.Dur > soakDupBound {
				s.violations = append(s.violations, violation{at: d.Start, until: d.End(), addr: sv.addr,
					what: fmt.Sprintf("%s (%s) answered by two MACs for %v (bound %v)", sv.addr, sv.name, d.Dur, soakDupBound)})
			}
		}
		// Outages: counted from the end of the latest excuse that overlaps them.
		var excuses []span
		for _, cl := range claims {
			excuses = append(excuses, span{cl.from, cl.to.Add(speaker.DefaultConflictRetryMax)})
		}
		excuses = append(excuses, s.absent[i]...)
		excuses = append(excuses, s.noneEligible(sv)...)
		for _, o := range se.Outages() {
			if o.Dur < 2*s.every[sv.addr] {
				singles++
			} else {
				for _, k := range s.kindsAt(o.Start) {
					outages[k] = append(outages[k], o.Dur)
				}
			}
			from := o.Start
			for _, e := range excuses {
				if e.overlaps(o.Start, o.End()) && e.to.After(from) {
					from = e.to
				}
			}
			if eff := o.End().Sub(from); eff > soakOutageBound {
				s.violations = append(s.violations, violation{at: o.Start, until: o.End(), addr: sv.addr,
					what: fmt.Sprintf("%s (%s, %s) dark for %v, %v of it after the last excuse (bound %v)", sv.addr, sv.name,
						policyOf(sv), o.Dur.Round(time.Millisecond), eff.Round(time.Millisecond), soakOutageBound)})
			}
		}
		for _, ch := range se.Changes() {
			from, to := ch.From.String(), ch.To.String()
			switch {
			case from == rogueMAC || to == rogueMAC:
				rogueMoves++
			case overlapsAny(s.absent[i], ch.At, ch.At, 2*time.Second):
				recreateMoves++
			default:
				moves++
				if !s.explained(c.nodeOfMAC(from), ch.At) {
					unexplained = append(unexplained, fmt.Sprintf("%s %s->%s at +%v", sv.addr, c.nodeOfMAC(from), c.nodeOfMAC(to),
						ch.At.Sub(s.start).Round(time.Millisecond)))
				}
			}
		}
	}

	// Figures.
	perKind := map[faultKind]int{}
	failed := 0
	for _, r := range s.runs {
		perKind[r.f.Kind]++
		if r.err != nil {
			failed++
		}
	}
	var kinds []string
	for k := range numFaultKinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, perKind[k]))
	}
	t.Logf("soak: seed=%d duration=%v faults=%d (%s) failed_to_inject=%d", s.seed, s.d, len(s.runs), strings.Join(kinds, " "), failed)
	for _, k := range slices.Sorted(maps.Keys(outages)) {
		o := outages[k]
		t.Logf("soak: outages during %s: n=%d p50=%v p99=%v max=%v", k, len(o), percentile(o, .5).Round(time.Millisecond),
			percentile(o, .99).Round(time.Millisecond), slices.Max(o).Round(time.Millisecond))
	}
	t.Logf("soak: requests=%d single_missed_requests=%d two_macs_total=%v (%d windows; %v of it while the rogue host claimed the address)",
		requests, singles, dupTotal.Round(time.Millisecond), dupWindows, dupRogue.Round(time.Millisecond))
	t.Logf("soak: moves=%d needed=%d (addresses held by a node when it was killed, cut off or stopped for 1 s or more) unexplained=%d; to or from the rogue host=%d, around a recreation=%d; allocation_samples=%d",
		moves, s.needed(), len(unexplained), rogueMoves, recreateMoves, s.allocs)
	for _, u := range unexplained {
		t.Logf("soak: move with no fault on the node it left in the 15 s before: %s", u)
	}
	s.checkResources()
	s.checkPanics()

	// Once the faults stop: every speaker a member again, and the wire as the Announcements say.
	for _, n := range c.lab.Nodes {
		if p := c.speaker[n.Name]; p.Exited() {
			s.violations = append(s.violations, violation{at: time.Now(), what: fmt.Sprintf("the speaker of %s exited: %s", n.Name, p.LogTail())})
		}
	}
	t.Logf("soak: violations=%d", len(s.violations))
	sort.Slice(s.violations, func(i, j int) bool { return s.violations[i].at.Before(s.violations[j].at) })
	for i, v := range s.violations {
		if i < 20 {
			t.Error(s.explain(v))
		} else {
			t.Errorf("and %d violations more", len(s.violations)-i)
			break
		}
	}
	c.waitMembers(soakNodes)
	c.finalIn(t, soakNS, s.vips)
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return " ERROR: " + err.Error()
}

func policyOf(sv soakService) string {
	if sv.local == nil {
		return "Cluster"
	}
	return fmt.Sprintf("Local on %v", sv.local)
}

// overlapsAny tells whether [from, to] overlaps one of spans, each widened by slack at its end.
func overlapsAny(spans []span, from, to time.Time, slack time.Duration) bool {
	for _, sp := range spans {
		if !sp.from.After(to) && !from.After(sp.to.Add(slack)) {
			return true
		}
	}
	return false
}

// kindsAt names the kinds of the faults under way at t (or ended less than 2 s before); "none" when none was.
func (s *soak) kindsAt(t time.Time) []string {
	var out []string
	for _, r := range s.runs {
		if k := r.f.Kind.String(); !t.Before(r.start) && !t.After(r.end.Add(2*time.Second)) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		out = []string{"none"}
	}
	return out
}

// explained tells whether a move away from node at t follows a fault on it: kill, stop, link cut, loss or a
// partition it was on either side of, under way in the 15 s before.
func (s *soak) explained(node string, t time.Time) bool {
	for _, r := range s.runs {
		if r.start.After(t) || r.end.Add(15*time.Second).Before(t) {
			continue
		}
		switch r.f.Kind {
		case fPartition:
			return true
		case fKill, fStop, fFlap, fLoss:
			if r.f.Nodes[0] == node {
				return true
			}
		}
	}
	return false
}

// needed counts the moves the faults made necessary: the addresses a node answered for when it was killed, its
// link cut, or it was stopped for a second or more (longer than failure detection).
func (s *soak) needed() int {
	n := 0
	for _, r := range s.runs {
		if r.f.Kind != fKill && r.f.Kind != fFlap && (r.f.Kind != fStop || r.f.Hold < time.Second) {
			continue
		}
		mac := s.c.hosts[r.f.Nodes[0]].MAC.String()
		for _, sv := range s.svcs {
			es := s.w.series[sv.addr].Entries(r.start.Add(-2*time.Second), r.start)
			for i := len(es) - 1; i >= 0; i-- {
				if len(es[i].MACs) == 1 {
					if es[i].MACs[0].String() == mac {
						n++
					}
					break
				}
			}
		}
	}
	return n
}

// noneEligible are the stretches when every node that may answer for the Service was out of service.
func (s *soak) noneEligible(sv soakService) []span {
	nodes := sv.local
	if nodes == nil {
		for _, h := range s.c.lab.Nodes {
			nodes = append(nodes, h.Name)
		}
	}
	cur := mergeSpans(s.down[nodes[0]])
	for _, n := range nodes[1:] {
		cur = intersectSpans(cur, mergeSpans(s.down[n]))
	}
	return cur
}

func mergeSpans(in []span) []span {
	sp := slices.Clone(in)
	sort.Slice(sp, func(i, j int) bool { return sp[i].from.Before(sp[j].from) })
	var out []span
	for _, x := range sp {
		if n := len(out); n > 0 && !x.from.After(out[n-1].to) {
			if x.to.After(out[n-1].to) {
				out[n-1].to = x.to
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// intersectSpans intersects two sorted, merged lists of spans.
func intersectSpans(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		from, to := a[i].from, a[i].to
		if b[j].from.After(from) {
			from = b[j].from
		}
		if b[j].to.Before(to) {
			to = b[j].to
		}
		if from.Before(to) {
			out = append(out, span{from, to})
		}
		if a[i].to.Before(b[j].to) {
			i++
		} else {
			j++
		}
	}
	return out
}

// checkResources compares, for each speaker process sampled over half the run or more, its first third of samples
// with its last: goroutines may not grow by more than half plus 20, RSS by more than half plus 32 MiB (the Go
// heap's ordinary breathing between two garbage collections is well inside that).
func (s *soak) checkResources() {
	byPid := map[int][]resSample{}
	for _, x := range s.samples {
		byPid[x.pid] = append(byPid[x.pid], x)
	}
	for _, p := range slices.Sorted(maps.Keys(byPid)) {
		xs := byPid[p]
		if len(xs) < 9 || xs[len(xs)-1].at.Sub(xs[0].at) < s.d/2 {
			continue
		}
		third := len(xs) / 3
		med := func(part []resSample, f func(resSample) float64) float64 {
			v := make([]float64, len(part))
			for i, x := range part {
				v[i] = f(x)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		rss := func(x resSample) float64 { return x.rss }
		gor := func(x resSample) float64 { return x.goroutines }
		r0, r1 := med(xs[:third], rss), med(xs[len(xs)-third:], rss)
		g0, g1 := med(xs[:third], gor), med(xs[len(xs)-third:], gor)
		s.t.Logf("soak: speaker node=%s pid=%d samples=%d over %v rss_kib %.0f -> %.0f goroutines %.0f -> %.0f", xs[0].node, p,
			len(xs), xs[len(xs)-1].at.Sub(xs[0].at).Round(time.Second), r0, r1, g0, g1)
		if g1 > g0*1.5+20 || r1 > r0*1.5+32*1024 {
			s.violations = append(s.violations, violation{at: xs[len(xs)-1].at, what: fmt.Sprintf(
				"the speaker of %s (pid %d) grew: RSS %.0f KiB -> %.0f KiB, goroutines %.0f -> %.0f (medians of the first and last third of %d samples)",
				xs[0].node, p, r0, r1, g0, g1, len(xs))})
		}
	}
}

// panicLine matches what a Go program that panicked or died of a fatal runtime error writes.
var panicLine = regexp.MustCompile(`(?m)^(panic: |fatal error: |goroutine \d+ \[running\]).*$`)

// checkPanics scans the log of every speaker and controller the run started.
func (s *soak) checkPanics() {
	procs := append(slices.Clone(s.speakers), s.ctrls...)
	for _, p := range procs {
		b, err := os.ReadFile(p.Log())
		if err != nil {
			s.violations = append(s.violations, violation{at: time.Now(), what: fmt.Sprintf("reading %s: %v", p.Log(), err)})
			continue
		}
		if m := panicLine.FindAllString(string(b), 5); len(m) > 0 {
			s.violations = append(s.violations, violation{at: time.Now(), what: fmt.Sprintf("%s: %s", p.Log(), strings.Join(m, " | "))})
		}
	}
}

// explain is a violation with the seed, the faults around it and the address's probes around it.
func (s *soak) explain(v violation) string {
	var b strings.Builder
	rel := func(t time.Time) string { return "+" + t.Sub(s.start).Round(time.Millisecond).String() }
	fmt.Fprintf(&b, "soak violation at %s: %s\n  replay: make soak SEED=%d DURATION=%v\n  faults from 15 s before to 5 s after:\n",
		rel(v.at), v.what, s.seed, s.d)
	until := v.until
	if until.IsZero() {
		until = v.at
	}
	for _, r := range s.runs {
		if r.start.Before(until.Add(5*time.Second)) && r.end.After(v.at.Add(-15*time.Second)) {
			fmt.Fprintf(&b, "    %v ran %s..%s %s%s\n", r.f, rel(r.start), rel(r.end), r.note, errNote(r.err))
		}
	}
	if se := s.w.series[v.addr]; v.addr.IsValid() && se != nil {
		fmt.Fprintf(&b, "  probes of %s every %v, from 1 s before to 1 s after (runs of the same answer):\n", v.addr, s.every[v.addr])
		b.WriteString(s.describe(se.Entries(v.at.Add(-time.Second), until.Add(time.Second)), rel))
	}
	return b.String()
}

// describe writes probes as runs of the same answer: "+12.34s x15 node2".
func (s *soak) describe(es []probe.Entry, rel func(time.Time) string) string {
	who := func(e probe.Entry) string {
		if len(e.MACs) == 0 {
			return "-"
		}
		var n []string
		for _, m := range e.MACs {
			if m.String() == s.c.lab.Others[0].MAC.String() {
				n = append(n, "rogue")
			} else {
				n = append(n, s.c.nodeOfMAC(m.String()))
			}
		}
		return strings.Join(n, "+")
	}
	return answerRuns(es, who, rel)
}

// answerRuns writes probes as runs of the same answer, who names the answer: "    +12.34s x15 node2".
func answerRuns(es []probe.Entry, who func(probe.Entry) string, rel func(time.Time) string) string {
	var b strings.Builder
	for i := 0; i < len(es); {
		j := i
		for j < len(es) && who(es[j]) == who(es[i]) {
			j++
		}
		fmt.Fprintf(&b, "    %s x%d %s\n", rel(es[i].Sent), j-i, who(es[i]))
		i = j
	}
	return b.String()
}
