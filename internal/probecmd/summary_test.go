package probecmd

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	macA = "02:00:00:00:00:0a"
	macB = "02:00:00:00:00:0b"
)

// reqs builds requests from answer lists: "" is an unanswered request; "a" and "b" are macA and macB
// answering in 1 ms, "ab" both.
func reqs(specs ...string) []Request {
	var out []Request
	for i, s := range specs {
		r := Request{Seq: i + 1, Answers: []Answer{}}
		for j, c := range s {
			mac := map[rune]string{'a': macA, 'b': macB}[c]
			r.Answers = append(r.Answers, Answer{MAC: mac, RTTSeconds: float64(j+1) / 1000, Replies: 1})
		}
		out = append(out, r)
	}
	return out
}

func TestSummarize(t *testing.T) {
	type brief struct {
		Sent, Answered      int
		Unanswered, DupReqs []int
		MACs                []string
		Verdict             string
		ExitCode            int
	}
	tests := []struct {
		name string
		in   []Request
		want brief
	}{
		{"ok", reqs("a", "a", "a"), brief{3, 3, []int{}, []int{}, []string{macA}, VerdictOK, ExitOK}},
		{"dark", reqs("", "", ""), brief{3, 0, []int{1, 2, 3}, []int{}, []string{}, VerdictDark, ExitUnanswered}},
		{"lossy", reqs("a", "", "a", ""), brief{4, 2, []int{2, 4}, []int{}, []string{macA}, VerdictLossy, ExitUnanswered}},
		{"duplicate", reqs("ab", "a", "ab"), brief{3, 3, []int{}, []int{1, 3}, []string{macA, macB}, VerdictDuplicate, ExitDuplicate}},
		{"duplicate beats unanswered", reqs("", "ba"), brief{2, 1, []int{1}, []int{2}, []string{macB, macA}, VerdictDuplicate, ExitDuplicate}},
		{"changed", reqs("a", "a", "b"), brief{3, 3, []int{}, []int{}, []string{macA, macB}, VerdictChanged, ExitDuplicate}},
		{"changed with a gap", reqs("a", "", "b"), brief{3, 2, []int{2}, []int{}, []string{macA, macB}, VerdictChanged, ExitDuplicate}},
		{"interrupted before any", nil, brief{0, 0, []int{}, []int{}, []string{}, VerdictNoRequests, ExitUnanswered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.in)
			macs := []string{}
			for _, r := range s.Responders {
				macs = append(macs, r.MAC)
			}
			got := brief{s.Sent, s.Answered, s.Unanswered, s.DuplicateRequests, macs, s.Verdict, s.ExitCode}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if s.Duplicate != (tt.want.Verdict == VerdictDuplicate) {
				t.Errorf("Duplicate %v with verdict %s", s.Duplicate, s.Verdict)
			}
			if (s.Latency == nil) != (tt.want.Answered == 0) {
				t.Errorf("latency %+v with %d answered", s.Latency, tt.want.Answered)
			}
		})
	}
}

func TestSummarizeResponders(t *testing.T) {
	in := reqs("a", "ab", "b", "b")
	in[1].Answers[1].Node = "n2"
	got := Summarize(in).Responders
	want := []Responder{{MAC: macA, Requests: 2, FirstSeq: 1, LastSeq: 2}, {MAC: macB, Node: "n2", Requests: 3, FirstSeq: 2, LastSeq: 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responders (-want +got):\n%s", diff)
	}
}

func TestLatency(t *testing.T) {
	// 100 requests answered in 1..100 ms, shuffled: nearest rank gives p50 50 ms, p90 90, p99 99, max 100.
	var in []Request
	for i := range 100 {
		ms := float64((i*37)%100+1) / 1000
		in = append(in, Request{Seq: i + 1, Answers: []Answer{{MAC: macA, RTTSeconds: ms, Replies: 1}}})
	}
	got := Summarize(in).Latency
	want := &Latency{P50Seconds: 0.050, P90Seconds: 0.090, P99Seconds: 0.099, MaxSeconds: 0.100}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("latency (-want +got):\n%s", diff)
	}
	one := Summarize(reqs("a")).Latency
	if one.P50Seconds != 0.001 || one.P99Seconds != 0.001 || one.MaxSeconds != 0.001 {
		t.Errorf("one sample: %+v, want every percentile 1 ms", one)
	}
	// Every MAC's answer to a duplicate request counts: 1 ms and 2 ms.
	if got := Summarize(reqs("ab")).Latency; got.P50Seconds != 0.001 || got.MaxSeconds != 0.002 {
		t.Errorf("duplicate request: %+v, want p50 1 ms and max 2 ms", got)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		in   []int
		want int
	}{
		{nil, ExitOK},
		{[]int{ExitOK, ExitOK}, ExitOK},
		{[]int{ExitOK, ExitUnanswered}, ExitUnanswered},
		{[]int{ExitUnanswered, ExitDuplicate}, ExitDuplicate},
		{[]int{ExitDuplicate, ExitUnanswered}, ExitDuplicate},
		{[]int{ExitDuplicate, ExitError}, ExitError},
		{[]int{ExitError, ExitOK}, ExitError},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.in...); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestSeqList(t *testing.T) {
	for in, want := range map[string][]int{"": nil, "1": {1}, "1-3": {1, 2, 3}, "2, 5-7, 9": {2, 5, 6, 7, 9}, "1-2, 4": {1, 2, 4}} {
		if got := seqList(want); got != in {
			t.Errorf("seqList(%v) = %q, want %q", want, got, in)
		}
	}
}
