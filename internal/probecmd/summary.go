package probecmd

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exit codes of herald probe.
const (
	ExitOK         = 0 // every request answered, by one and the same MAC
	ExitUnanswered = 1 // some request unanswered (dark or lossy), no duplicate
	ExitError      = 2 // bad usage, no permission (CAP_NET_RAW), a socket error
	ExitDuplicate  = 3 // more than one MAC answered: a request answered twice, or the MAC changed
)

// Verdicts of a target, worst first (for the exit code: Duplicate and Changed 3, Dark, Lossy and NoRequests 1).
const (
	// VerdictDuplicate: some request was answered by more than one MAC.
	VerdictDuplicate = "Duplicate"
	// VerdictChanged: every request had at most one answering MAC, but not always the same one (the address
	// moved while it was probed: a failover, or two devices taking turns).
	VerdictChanged = "Changed"
	// VerdictDark: no request was answered.
	VerdictDark = "Dark"
	// VerdictLossy: some requests were answered, some not.
	VerdictLossy = "Lossy"
	// VerdictNoRequests: interrupted before a request's wait was over.
	VerdictNoRequests = "NoRequests"
	// VerdictOK: every request answered, by one and the same MAC.
	VerdictOK = "OK"
)

// Request is one request and the answers read within the wait, one per distinct MAC in order of first answer.
type Request struct {
	Seq     int       `json:"seq"`
	Sent    time.Time `json:"sent"`
	Answers []Answer  `json:"answers"`
}

// Answer is one MAC's answers to a request.
type Answer struct {
	MAC  string `json:"mac"`
	Node string `json:"node,omitempty"`
	// RTTSeconds is the time from the request to this MAC's first answer.
	RTTSeconds float64 `json:"rttSeconds"`
	// Replies is how many answers the MAC sent to the request (more than 1 is unusual but harmless).
	Replies int `json:"replies"`
}

// Responder is one MAC over the whole run.
type Responder struct {
	MAC  string `json:"mac"`
	Node string `json:"node,omitempty"`
	// Requests is how many requests the MAC answered, FirstSeq and LastSeq the first and last of them.
	Requests int `json:"requests"`
	FirstSeq int `json:"firstSeq"`
	LastSeq  int `json:"lastSeq"`
}

// Latency are nearest-rank percentiles of the answers' RTTs (each MAC's first answer to each request).
type Latency struct {
	P50Seconds float64 `json:"p50Seconds"`
	P90Seconds float64 `json:"p90Seconds"`
	P99Seconds float64 `json:"p99Seconds"`
	MaxSeconds float64 `json:"maxSeconds"`
}

// Summary is the outcome of probing one target.
type Summary struct {
	Sent     int `json:"sent"`
	Answered int `json:"answered"`
	// Unanswered are the numbers of the requests nobody answered; DuplicateRequests those answered by more than
	// one MAC. Never null.
	Unanswered        []int `json:"unanswered"`
	DuplicateRequests []int `json:"duplicateRequests"`
	// Responders are the distinct MACs in order of first answer. Never null.
	Responders []Responder `json:"responders"`
	// Latency is nil when nothing answered.
	Latency *Latency `json:"latency,omitempty"`
	// Duplicate is true when more than one MAC answered some request (DUPLICATE in the text output).
	Duplicate bool   `json:"duplicate"`
	Verdict   string `json:"verdict"`
	ExitCode  int    `json:"exitCode"`
}

// Summarize judges the requests of one target.
func Summarize(reqs []Request) Summary {
	s := Summary{Sent: len(reqs), Unanswered: []int{}, DuplicateRequests: []int{}, Responders: []Responder{}}
	var rtts []float64
	for _, r := range reqs {
		if len(r.Answers) == 0 {
			s.Unanswered = append(s.Unanswered, r.Seq)
			continue
		}
		s.Answered++
		if len(r.Answers) > 1 {
			s.DuplicateRequests = append(s.DuplicateRequests, r.Seq)
		}
		for _, a := range r.Answers {
			rtts = append(rtts, a.RTTSeconds)
			i := slices.IndexFunc(s.Responders, func(x Responder) bool { return x.MAC == a.MAC })
			if i < 0 {
				s.Responders = append(s.Responders, Responder{MAC: a.MAC, Node: a.Node, FirstSeq: r.Seq})
				i = len(s.Responders) - 1
			}
			s.Responders[i].Requests++
			s.Responders[i].LastSeq = r.Seq
			if s.Responders[i].Node == "" {
				s.Responders[i].Node = a.Node
			}
		}
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		s.Latency = &Latency{P50Seconds: percentile(rtts, 50), P90Seconds: percentile(rtts, 90),
			P99Seconds: percentile(rtts, 99), MaxSeconds: rtts[len(rtts)-1]}
	}
	s.Duplicate = len(s.DuplicateRequests) > 0
	switch {
	case s.Duplicate:
		s.Verdict, s.ExitCode = VerdictDuplicate, ExitDuplicate
	case len(s.Responders) > 1:
		s.Verdict, s.ExitCode = VerdictChanged, ExitDuplicate
	case s.Sent == 0:
		s.Verdict, s.ExitCode = VerdictNoRequests, ExitUnanswered
	case s.Answered == 0:
		s.Verdict, s.ExitCode = VerdictDark, ExitUnanswered
	case len(s.Unanswered) > 0:
		s.Verdict, s.ExitCode = VerdictLossy, ExitUnanswered
	default:
		s.Verdict, s.ExitCode = VerdictOK, ExitOK
	}
	return s
}

// percentile is the nearest-rank p-th percentile of sorted values (not empty).
func percentile(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// ExitCode combines the targets' exit codes: an error (2) first, then a duplicate (3), then unanswered (1).
func ExitCode(codes ...int) int {
	out := ExitOK
	rank := map[int]int{ExitOK: 0, ExitUnanswered: 1, ExitDuplicate: 2, ExitError: 3}
	for _, c := range codes {
		if rank[c] > rank[out] {
			out = c
		}
	}
	return out
}

// seqList is "2, 5-7, 9".
func seqList(seqs []int) string {
	var parts []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, strconv.Itoa(seqs[i]))
		default:
			parts = append(parts, strconv.Itoa(seqs[i])+"-"+strconv.Itoa(seqs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
