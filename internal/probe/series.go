package probe

import (
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// Series records a Watch: one entry per request with the answers attributed to it. It tells outages (runs of
// consecutive requests nobody answered) and split brain (requests answered by more than one MAC). The zero value
// is an empty series. A Series may be read while Watch adds to it.
type Series struct {
	// Every is the request interval, used to close a run of unanswered requests that ends the series; when zero
	// it is taken from the last two requests. Set it before use.
	Every time.Duration

	mu   sync.Mutex // guards reqs
	reqs []request
}

// request is one Watch interval.
type request struct {
	seq  int
	sent time.Time
	macs []net.HardwareAddr // distinct, in order of first answer
	rtt  time.Duration      // the first answer's round trip
}

// Add records request seq, sent at sent, and its replies. It has Watch's callback's signature.
func (s *Series) Add(seq int, sent time.Time, replies []Reply) {
	r := request{seq: seq, sent: sent}
	for i, rep := range replies {
		if i == 0 || rep.RTT < r.rtt {
			r.rtt = rep.RTT
		}
		if !slices.ContainsFunc(r.macs, func(m net.HardwareAddr) bool { return macEqual(m, rep.MAC) }) {
			r.macs = append(r.macs, rep.MAC)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
}

// Len is the number of requests recorded.
func (s *Series) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// RTTs are the round-trip times of the answered requests sent from from until until (each request's first
// answer), in the order sent.
func (s *Series) RTTs(from, until time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, r := range s.reqs {
		if len(r.macs) > 0 && !r.sent.Before(from) && r.sent.Before(until) {
			out = append(out, r.rtt)
		}
	}
	return out
}

// Unanswered is the number of requests nobody answered.
func (s *Series) Unanswered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if len(r.macs) == 0 {
			n++
		}
	}
	return n
}

// LongestGap is the longest outage: over the runs of consecutive unanswered requests, the longest time from
// the first request of a run to the next request, which was answered (for a run ending the series: to its last
// request plus one interval). It is 0 when every request was answered.
func (s *Series) LongestGap() time.Duration {
	_, d := s.LongestGapAt()
	return d
}

// LongestGapAt is LongestGap and when that outage began (the first unanswered request's send time); zero
// values when every request was answered.
func (s *Series) LongestGapAt() (time.Time, time.Duration) {
	var longest Span
	for _, o := range s.Outages() {
		if o.Dur > longest.Dur {
			longest = o
		}
	}
	return longest.Start, longest.Dur
}

// Span is a stretch of a series: from the first request of a run to the request after its last.
type Span struct {
	Start time.Time
	Dur   time.Duration
}

// End is when the span ends.
func (sp Span) End() time.Time { return sp.Start.Add(sp.Dur) }

// Outages are the runs of consecutive requests nobody answered, in order, each as LongestGap measures it.
func (s *Series) Outages() []Span {
	return s.runs(func(r request) bool { return len(r.macs) == 0 })
}

// DuplicateSpans are the runs of consecutive requests answered by more than one MAC, in order, measured as
// Outages are.
func (s *Series) DuplicateSpans() []Span {
	return s.runs(func(r request) bool { return len(r.macs) > 1 })
}

// runs are the runs of consecutive requests for which in holds, each from its first request to the request
// after its last (for a run ending the series: its last request plus one interval; Every, or the last two
// requests' spacing; a single request of unknown interval gives 0).
func (s *Series) runs(in func(request) bool) []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Span
	start := -1 // index of the first request of the current run, -1 outside a run
	for i, r := range s.reqs {
		switch {
		case in(r) && start < 0:
			start = i
		case !in(r) && start >= 0:
			out = append(out, Span{Start: s.reqs[start].sent, Dur: r.sent.Sub(s.reqs[start].sent)})
			start = -1
		}
	}
	if start >= 0 {
		last := len(s.reqs) - 1
		every := s.Every
		if every == 0 && last > 0 {
			every = s.reqs[last].sent.Sub(s.reqs[last-1].sent)
		}
		out = append(out, Span{Start: s.reqs[start].sent, Dur: s.reqs[last].sent.Add(every).Sub(s.reqs[start].sent)})
	}
	return out
}

// Duplicates is the number of requests answered by more than one distinct MAC.
func (s *Series) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if len(r.macs) > 1 {
			n++
		}
	}
	return n
}

// MACs are the distinct MACs that answered, in order of first answer.
func (s *Series) MACs() []net.HardwareAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []net.HardwareAddr
	for _, r := range s.reqs {
		for _, m := range r.macs {
			if !slices.ContainsFunc(all, func(a net.HardwareAddr) bool { return macEqual(a, m) }) {
				all = append(all, m)
			}
		}
	}
	return all
}

// Last is the MAC set of the latest answered request: who answers now.
func (s *Series) Last() []net.HardwareAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.reqs) - 1; i >= 0; i-- {
		if len(s.reqs[i].macs) > 0 {
			return slices.Clone(s.reqs[i].macs)
		}
	}
	return nil
}

// Moves is the number of times the address moved: over the requests answered by exactly one MAC, the number
// of times that MAC differs from the previous such request's. Unanswered requests and requests answered by
// several MACs do not count as positions of their own, so an outage or a duplicate between two answers from
// the same MAC is no move, and A, A+B, B is one.
func (s *Series) Moves() int { return len(s.Changes()) }

// Change is one move: the first request answered by To alone after requests answered by From alone.
type Change struct {
	At       time.Time
	From, To net.HardwareAddr
}

// Changes are the moves Moves counts, in order.
func (s *Series) Changes() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur net.HardwareAddr
	var out []Change
	for _, r := range s.reqs {
		if len(r.macs) != 1 {
			continue
		}
		if cur != nil && !macEqual(cur, r.macs[0]) {
			out = append(out, Change{At: r.sent, From: cur, To: r.macs[0]})
		}
		cur = r.macs[0]
	}
	return out
}

// Entry is one recorded request: its number, when it was sent and the distinct MACs that answered it.
type Entry struct {
	Seq  int
	Sent time.Time
	MACs []net.HardwareAddr
}

// Entries are the requests sent from from until until, in order. Requests are recorded in the order sent (Watch
// sends one at a time), so the window is found by binary search.
func (s *Series) Entries(from, until time.Time) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.reqs), func(i int) bool { return !s.reqs[i].sent.Before(from) })
	var out []Entry
	for ; i < len(s.reqs) && s.reqs[i].sent.Before(until); i++ {
		r := s.reqs[i]
		out = append(out, Entry{Seq: r.seq, Sent: r.sent, MACs: slices.Clone(r.macs)})
	}
	return out
}

// LongestDuplicateRun is the longest run of consecutive requests each answered by more than one MAC; 0 when
// none was. A run of one is what a move on purpose can leave: the old node's reply to a request and the new
// node's, to the same request read late from its queue; two nodes answering at once give longer runs.
func (s *Series) LongestDuplicateRun() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	longest, run := 0, 0
	for _, r := range s.reqs {
		if len(r.macs) > 1 {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// DuplicateWindows are the durations of the runs of consecutive requests answered by more than one MAC
// (requests answered by one MAC or none end a run), each from its first request to the request after its last.
func (s *Series) DuplicateWindows() []time.Duration {
	var out []time.Duration
	for _, sp := range s.DuplicateSpans() {
		out = append(out, sp.Dur)
	}
	return out
}

// FirstAfter is the time of the first request sent at or after t that was answered by a MAC other than mac,
// and whether there is one.
func (s *Series) FirstAfter(t time.Time, mac net.HardwareAddr) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reqs {
		if r.sent.Before(t) {
			continue
		}
		for _, m := range r.macs {
			if !macEqual(m, mac) {
				return r.sent, true
			}
		}
	}
	return time.Time{}, false
}

// LastAnsweredBy is the time of the last request answered by mac, and whether there is one.
func (s *Series) LastAnsweredBy(mac net.HardwareAddr) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.reqs) - 1; i >= 0; i-- {
		if slices.ContainsFunc(s.reqs[i].macs, func(m net.HardwareAddr) bool { return macEqual(m, mac) }) {
			return s.reqs[i].sent, true
		}
	}
	return time.Time{}, false
}
