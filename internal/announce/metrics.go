package announce

import "github.com/prometheus/client_golang/prometheus"

// family is an address family, used to index metrics.
type family uint8

const (
	familyIPv4 family = iota
	familyIPv6
	numFamilies
)

func (f family) String() string {
	if f == familyIPv4 {
		return "ipv4"
	}
	return "ipv6"
}

// result is what a packet handler decided about one received frame. Its
// String form is the "result" label of herald_announce_requests_total.
type result uint8

const (
	resultNone        result = iota // no verdict yet; parsers return it for a well-formed frame, never counted
	resultAnswered                  // a reply was built
	resultNotOurs                   // well-formed request for an address that is not a VIP on this interface
	resultMalformed                 // truncated, inconsistent or invalid per RFC 826 / RFC 4861 §7.1.1
	resultWrongType                 // not ARP, not ICMPv6, or not a Neighbor Solicitation
	resultWrongOpcode               // ARP but not a request (opcode != 1)
	resultHopLimit                  // NS whose IPv6 hop limit is not 255 (RFC 4861 §7.1.1)
	resultBadChecksum               // NS whose ICMPv6 checksum does not verify
	resultOwnFrame                  // a frame we sent ourselves (Ethernet source is our MAC)
	resultOtherHost                 // Ethernet destination is neither us, broadcast nor multicast
	resultSpoofed                   // ARP request for a VIP whose sender hardware address is not its Ethernet source
	resultRateLimited               // would be answered, but its requester or the responder is over its rate limit
	resultStalled                   // would be answered, but Config.Fresh said this process may have stalled
	numResults
)

var resultNames = [numResults]string{
	resultNone:        "none",
	resultAnswered:    "answered",
	resultNotOurs:     "not_ours",
	resultMalformed:   "malformed",
	resultWrongType:   "wrong_type",
	resultWrongOpcode: "wrong_opcode",
	resultHopLimit:    "hop_limit",
	resultBadChecksum: "bad_checksum",
	resultOwnFrame:    "own_frame",
	resultOtherHost:   "other_host",
	resultSpoofed:     "spoofed",
	resultRateLimited: "rate_limited",
	resultStalled:     "stalled",
}

func (r result) String() string {
	if r < numResults {
		return resultNames[r]
	}
	return "unknown"
}

// op names a failing operation, the "op" label of herald_announce_errors_total.
type op uint8

const (
	opListen  op = iota // opening an interface's sockets
	opRead              // reading a frame (ends the interface's responders)
	opWrite             // sending a reply or an announcement
	opJoin              // joining a solicited-node multicast group
	opLeave             // leaving a solicited-node multicast group
	opInvalid           // an Assignment entry or VIP that Set rejected
	numOps
)

var opNames = [numOps]string{
	opListen:  "listen",
	opRead:    "read",
	opWrite:   "write",
	opJoin:    "join",
	opLeave:   "leave",
	opInvalid: "invalid",
}

func (o op) String() string { return opNames[o] }

// Metrics are the announcer's Prometheus counters. Every label combination
// is created up front, so the packet path only increments a counter it
// already holds (no map lookup, no allocation). A nil *Metrics records
// nothing.
type Metrics struct {
	requests   [numFamilies][numResults]prometheus.Counter
	gratuitous [numFamilies]prometheus.Counter
	suppressed [numFamilies]prometheus.Counter
	errors     [numOps]prometheus.Counter
}

// NewMetrics creates the counters and registers them with reg (if reg is
// not nil). It panics, like prometheus.MustRegister, if they are already
// registered there.
//
//   - herald_announce_requests_total{family="ipv4|ipv6",result}: received ARP
//     requests and Neighbor Solicitations by verdict: answered; dropped as
//     not_ours, malformed, wrong_type, wrong_opcode, hop_limit,
//     bad_checksum, own_frame, other_host or spoofed (see handleARP and
//     handleNS); or well-formed requests for a VIP left unanswered because
//     the requester or the responder was over its Config.RateLimit
//     (rate_limited) or Config.Fresh returned false (stalled).
//   - herald_announce_gratuitous_total{family}: gratuitous ARPs and
//     unsolicited Neighbor Advertisements sent.
//   - herald_announce_gratuitous_stalled_total{family}: gratuitous ARPs and
//     unsolicited Neighbor Advertisements not sent because Config.Fresh
//     returned false when they were due.
//   - herald_announce_errors_total{op="listen|read|write|join|leave|invalid"}.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_announce_requests_total",
		Help: "ARP requests and IPv6 Neighbor Solicitations received, by address family and verdict.",
	}, []string{"family", "result"})
	gratuitous := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_announce_gratuitous_total",
		Help: "Gratuitous ARPs and unsolicited Neighbor Advertisements sent, by address family.",
	}, []string{"family"})
	suppressed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_announce_gratuitous_stalled_total",
		Help: "Gratuitous ARPs and unsolicited Neighbor Advertisements dropped because this process may have stalled, by address family.",
	}, []string{"family"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_announce_errors_total",
		Help: "Failed announcer operations, by operation.",
	}, []string{"op"})
	if reg != nil {
		reg.MustRegister(requests, gratuitous, suppressed, errs)
	}
	m := &Metrics{}
	for f := range numFamilies {
		for r := resultAnswered; r < numResults; r++ {
			m.requests[f][r] = requests.WithLabelValues(f.String(), r.String())
		}
		m.gratuitous[f] = gratuitous.WithLabelValues(f.String())
		m.suppressed[f] = suppressed.WithLabelValues(f.String())
	}
	for o := range numOps {
		m.errors[o] = errs.WithLabelValues(o.String())
	}
	return m
}

func (m *Metrics) request(f family, r result) {
	if m == nil || r == resultNone || r >= numResults {
		return
	}
	m.requests[f][r].Inc()
}

func (m *Metrics) sentGratuitous(f family) {
	if m != nil {
		m.gratuitous[f].Inc()
	}
}

func (m *Metrics) stalledGratuitous(f family) {
	if m != nil {
		m.suppressed[f].Inc()
	}
}

func (m *Metrics) failed(o op) {
	if m != nil {
		m.errors[o].Inc()
	}
}
