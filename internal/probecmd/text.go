package probecmd

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// writeHeader says what is about to be probed, on which interface and from which address, and why.
func writeHeader(w io.Writer, t *target, opts Options) {
	p := t.plan
	var b strings.Builder
	fmt.Fprintf(&b, "PROBE %s with %s on %s from %s: %d request%s %v apart, waiting %v for answers\n",
		p.Target, p.Protocol, p.Interface, p.Source, opts.Count, plural(opts.Count), opts.Interval, opts.Wait)
	fmt.Fprintf(&b, "  interface %s: %s\n", p.Interface, p.InterfaceReason)
	fmt.Fprintf(&b, "  source %s: %s\n", p.Source, p.SourceReason)
	for _, warn := range p.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", warn)
	}
	io.WriteString(w, b.String())
}

// writeRequest is one line per request: who answered and how fast, DUPLICATE when more than one MAC did.
func writeRequest(w io.Writer, addr netip.Addr, r Request, wait time.Duration) {
	if len(r.Answers) == 0 {
		fmt.Fprintf(w, "%s seq=%d: no answer within %v\n", addr, r.Seq, wait)
		return
	}
	parts := make([]string, 0, len(r.Answers))
	for _, a := range r.Answers {
		s := a.MAC + nodeSuffix(a.Node) + " " + ms(a.RTTSeconds)
		if a.Replies > 1 {
			s += fmt.Sprintf(" (%d replies)", a.Replies)
		}
		parts = append(parts, s)
	}
	line := fmt.Sprintf("%s seq=%d: %s", addr, r.Seq, strings.Join(parts, ", "))
	if len(r.Answers) > 1 {
		line += "  DUPLICATE"
	}
	fmt.Fprintln(w, line)
}

// writeSummary sums a target up, ending with its verdict.
func writeSummary(w io.Writer, rep *TargetReport, t Target) {
	s := rep.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s %s on %s ---\n", t, rep.Protocol, rep.Interface)
	fmt.Fprintf(&b, "%d request%s sent, %d answered, %d unanswered\n", s.Sent, plural(s.Sent), s.Answered, len(s.Unanswered))
	if len(s.Responders) == 0 {
		b.WriteString("responders: none\n")
	}
	for i, r := range s.Responders {
		label := "responders:"
		if i > 0 {
			label = "           "
		}
		fmt.Fprintf(&b, "%s %s%s answered %d of %d\n", label, r.MAC, nodeSuffix(r.Node), r.Requests, s.Sent)
	}
	if l := s.Latency; l != nil {
		fmt.Fprintf(&b, "latency: p50 %s, p90 %s, p99 %s, max %s\n", ms(l.P50Seconds), ms(l.P90Seconds), ms(l.P99Seconds), ms(l.MaxSeconds))
	}
	b.WriteString(verdictLine(s, t, rep.Interface) + "\n")
	io.WriteString(w, b.String())
}

// verdictLine is the last line of a summary: the verdict in capitals and what it means.
func verdictLine(s Summary, t Target, ifname string) string {
	macs := make([]string, 0, len(s.Responders))
	for _, r := range s.Responders {
		macs = append(macs, r.MAC+nodeSuffix(r.Node))
	}
	unanswered := ""
	if len(s.Unanswered) > 0 {
		unanswered = fmt.Sprintf("; request%s %s unanswered", plural(len(s.Unanswered)), seqList(s.Unanswered))
	}
	switch s.Verdict {
	case VerdictDuplicate:
		return fmt.Sprintf("DUPLICATE: more than one MAC answered request%s %s: %s; clients reach whichever they heard last%s",
			plural(len(s.DuplicateRequests)), seqList(s.DuplicateRequests), strings.Join(macs, ", "), unanswered)
	case VerdictChanged:
		var parts []string
		for _, r := range s.Responders {
			parts = append(parts, fmt.Sprintf("%s%s (requests %d-%d)", r.MAC, nodeSuffix(r.Node), r.FirstSeq, r.LastSeq))
		}
		return fmt.Sprintf("CHANGED: more than one MAC answered, one at a time (the address moved while probed): %s%s",
			strings.Join(parts, ", "), unanswered)
	case VerdictDark:
		return fmt.Sprintf("DARK: no request answered: nothing on %s answers %s for %s", ifname, protocolOf(t), t.Addr)
	case VerdictLossy:
		return fmt.Sprintf("LOSSY: %d of %d requests unanswered (%s); the others answered by %s",
			len(s.Unanswered), s.Sent, seqList(s.Unanswered), strings.Join(macs, ", "))
	case VerdictNoRequests:
		return "NO REQUESTS: interrupted before the first request's wait was over"
	default:
		return fmt.Sprintf("OK: every request answered by %s alone", strings.Join(macs, ", "))
	}
}

func protocolOf(t Target) string {
	if t.Addr.Is6() {
		return ProtocolNDP
	}
	return ProtocolARP
}

func nodeSuffix(node string) string {
	if node == "" {
		return ""
	}
	return " (node " + node + ")"
}

// ms formats seconds as milliseconds with microsecond precision: "0.412 ms".
func ms(seconds float64) string { return fmt.Sprintf("%.3f ms", seconds*1e3) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
