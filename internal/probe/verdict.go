package probe

import (
	"net"
	"time"
)

// Verdict is what one probe round found for an address. The names are the Announcement API's.
type Verdict string

const (
	// Healthy: exactly one MAC answered, and it belongs to the expected node.
	Healthy Verdict = "Healthy"
	// Dark: nobody answered.
	Dark Verdict = "Dark"
	// Duplicate: more than one MAC answered.
	Duplicate Verdict = "Duplicate"
	// WrongResponder: one MAC answered, a speaker's, but not the expected node's.
	WrongResponder Verdict = "WrongResponder"
	// ForeignResponder: one MAC answered that belongs to no speaker.
	ForeignResponder Verdict = "ForeignResponder"
)

// Verdicts lists every verdict, healthy first.
var Verdicts = []Verdict{Healthy, Dark, Duplicate, WrongResponder, ForeignResponder}

// Severity orders verdicts for summarising several addresses: the higher, the worse.
func (v Verdict) Severity() int {
	switch v {
	case Healthy:
		return 0
	case WrongResponder:
		return 1
	case ForeignResponder:
		return 2
	case Duplicate:
		return 3
	case Dark:
		return 4
	}
	return -1
}

// Responder is one distinct MAC that answered a probe round.
type Responder struct {
	MAC net.HardwareAddr
	// Node is the speaker the MAC belongs to; "" for a device that is not a speaker.
	Node string
	// Latency is the round-trip time of its first answer.
	Latency time.Duration
	// Answers is how many answers it sent.
	Answers int
}

// Judge is the verdict on one probe round's replies for an address that expected (a node name; "" when no
// node is known to announce it) should answer alone. nodeOf names the speaker a MAC belongs to, "" for none.
// The responders come back in the order of their first answers.
func Judge(replies []Reply, expected string, nodeOf func(net.HardwareAddr) string) (Verdict, []Responder) {
	var rs []Responder
	for _, r := range replies {
		i := 0
		for i < len(rs) && string(rs[i].MAC) != string(r.MAC) {
			i++
		}
		if i == len(rs) {
			rs = append(rs, Responder{MAC: r.MAC, Node: nodeOf(r.MAC), Latency: r.RTT})
		}
		rs[i].Answers++
	}
	switch {
	case len(rs) == 0:
		return Dark, nil
	case len(rs) > 1:
		return Duplicate, rs
	case rs[0].Node == "":
		return ForeignResponder, rs
	case expected != "" && rs[0].Node != expected:
		return WrongResponder, rs
	}
	return Healthy, rs
}
