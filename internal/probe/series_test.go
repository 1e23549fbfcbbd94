package probe

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSeries(t *testing.T) {
	const ms = time.Millisecond
	n, o := nodeMAC, otherMAC
	// Each string is one request, 10 ms apart: "." no answer, "n" node, "o" other, "no" both.
	tests := []struct {
		name           string
		every          time.Duration
		requests       []string
		wantGap        time.Duration
		wantDuplicates int
		wantMACs       []net.HardwareAddr
		wantLast       []net.HardwareAddr
	}{
		{name: "empty"},
		{name: "all answered", requests: []string{"n", "n", "n"}, wantMACs: []net.HardwareAddr{n},
			wantLast: []net.HardwareAddr{n}},
		{name: "one miss", requests: []string{"n", ".", "n"}, wantGap: 10 * ms, wantMACs: []net.HardwareAddr{n},
			wantLast: []net.HardwareAddr{n}},
		{name: "longest of two runs", requests: []string{"n", ".", "n", ".", ".", ".", "o"}, wantGap: 30 * ms,
			wantMACs: []net.HardwareAddr{n, o}, wantLast: []net.HardwareAddr{o}},
		{name: "leading run", requests: []string{".", ".", "n"}, wantGap: 20 * ms, wantMACs: []net.HardwareAddr{n},
			wantLast: []net.HardwareAddr{n}},
		{name: "trailing run, interval from the series", requests: []string{"n", ".", "."}, wantGap: 20 * ms,
			wantMACs: []net.HardwareAddr{n}, wantLast: []net.HardwareAddr{n}},
		{name: "trailing run, interval given", every: 10 * ms, requests: []string{"."}, wantGap: 10 * ms},
		{name: "single unanswered request, interval unknown", requests: []string{"."}},
		{name: "overlap", requests: []string{"n", "no", "on", "o"}, wantDuplicates: 2,
			wantMACs: []net.HardwareAddr{n, o}, wantLast: []net.HardwareAddr{o}},
		{name: "same MAC twice is no duplicate", requests: []string{"nn"}, wantMACs: []net.HardwareAddr{n},
			wantLast: []net.HardwareAddr{n}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Series{Every: tt.every}
			for i, r := range tt.requests {
				sent := t0.Add(time.Duration(i) * 10 * ms)
				var replies []Reply
				for _, c := range r {
					switch c {
					case 'n':
						replies = append(replies, Reply{MAC: n, At: sent.Add(ms), RTT: ms, Seq: i + 1})
					case 'o':
						replies = append(replies, Reply{MAC: o, At: sent.Add(ms), RTT: ms, Seq: i + 1})
					}
				}
				s.Add(i+1, sent, replies)
			}
			if diff := cmp.Diff(tt.wantGap, s.LongestGap()); diff != "" {
				t.Errorf("LongestGap (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDuplicates, s.Duplicates()); diff != "" {
				t.Errorf("Duplicates (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMACs, s.MACs()); diff != "" {
				t.Errorf("MACs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLast, s.Last()); diff != "" {
				t.Errorf("Last (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(len(tt.requests), s.Len()); diff != "" {
				t.Errorf("Len (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeriesMovesAndDuplicateWindows(t *testing.T) {
	a := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	b := net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	t0 := time.Unix(1000, 0)
	var s Series
	s.Every = 10 * time.Millisecond
	answers := [][]net.HardwareAddr{{a}, {a}, nil, nil, {a}, {a, b}, {a, b}, {b}, {b}, {a, b}, {b}, nil, {a}}
	for i, macs := range answers {
		var rs []Reply
		for _, m := range macs {
			rs = append(rs, Reply{MAC: m})
		}
		s.Add(i+1, t0.Add(time.Duration(i)*10*time.Millisecond), rs)
	}
	if got := s.Moves(); got != 2 { // a -> b (through the duplicates), b -> a (after the gap)
		t.Errorf("Moves = %d, want 2", got)
	}
	want := []time.Duration{20 * time.Millisecond, 10 * time.Millisecond}
	if got := s.DuplicateWindows(); !slices.Equal(got, want) {
		t.Errorf("DuplicateWindows = %v, want %v", got, want)
	}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * 10 * time.Millisecond) }
	wantChanges := []Change{{At: ms(7), From: a, To: b}, {At: ms(12), From: b, To: a}}
	if diff := cmp.Diff(wantChanges, s.Changes()); diff != "" {
		t.Errorf("Changes (-want +got):\n%s", diff)
	}
	wantOut := []Span{{Start: ms(2), Dur: 20 * time.Millisecond}, {Start: ms(11), Dur: 10 * time.Millisecond}}
	if diff := cmp.Diff(wantOut, s.Outages()); diff != "" {
		t.Errorf("Outages (-want +got):\n%s", diff)
	}
	wantDup := []Span{{Start: ms(5), Dur: 20 * time.Millisecond}, {Start: ms(9), Dur: 10 * time.Millisecond}}
	if diff := cmp.Diff(wantDup, s.DuplicateSpans()); diff != "" {
		t.Errorf("DuplicateSpans (-want +got):\n%s", diff)
	}
	if got := s.Entries(ms(5), ms(7)); len(got) != 2 || got[0].Seq != 6 || len(got[1].MACs) != 2 {
		t.Errorf("Entries(5, 7) = %+v, want requests 6 and 7, answered by a and b", got)
	}
	if got := s.LongestDuplicateRun(); got != 2 {
		t.Errorf("LongestDuplicateRun = %d, want 2", got)
	}
	if got, ok := s.LastAnsweredBy(b); !ok || !got.Equal(t0.Add(100*time.Millisecond)) {
		t.Errorf("LastAnsweredBy(b) = %v, %v; want %v", got, ok, t0.Add(100*time.Millisecond))
	}
	if got, ok := s.FirstAfter(t0.Add(15*time.Millisecond), a); !ok || !got.Equal(t0.Add(50*time.Millisecond)) {
		t.Errorf("FirstAfter = %v, %v; want %v", got, ok, t0.Add(50*time.Millisecond))
	}
}

// TestSeriesRTTs: each answered request counts once, with its fastest answer, and only inside the window.
func TestSeriesRTTs(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Unix(1000, 0)
	var s Series
	s.Add(1, t0, []Reply{{MAC: nodeMAC, RTT: 3 * ms}})
	s.Add(2, t0.Add(10*ms), nil)
	s.Add(3, t0.Add(20*ms), []Reply{{MAC: nodeMAC, RTT: 9 * ms}, {MAC: otherMAC, RTT: 2 * ms}})
	s.Add(4, t0.Add(30*ms), []Reply{{MAC: nodeMAC, RTT: 5 * ms}})
	if got, want := s.RTTs(t0, t0.Add(30*ms)), []time.Duration{3 * ms, 2 * ms}; !slices.Equal(got, want) {
		t.Errorf("RTTs = %v, want %v", got, want)
	}
	if got := s.RTTs(t0.Add(31*ms), t0.Add(time.Second)); len(got) != 0 {
		t.Errorf("RTTs after the last request = %v, want none", got)
	}
}
