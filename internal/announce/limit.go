package announce

import (
	"math"
	"math/rand/v2"
)

// Limits bound how often a responder answers, so that a flood of requests
// costs the node a read and a hash lookup per frame instead of a reply, and
// cannot be turned against other hosts as a reflector. Each responder (one
// per interface and address family) applies them on its own.
//
// A zero field means its default; a negative PerRequester or Burst turns
// the per-requester limit off, a negative PerResponder the overall one.
type Limits struct {
	// PerRequester is the steady number of replies per second to one
	// requester MAC about one target address; default 10.
	PerRequester float64
	// Burst is how many replies one requester may get at once about one
	// target after being quiet; default 10.
	Burst int
	// PerResponder caps all replies of one responder per second; default
	// 20000. Up to a tenth of a second's worth (at least 1) may go at once.
	PerResponder float64
}

// Defaults for Limits.
const (
	DefaultPerRequester = 10
	DefaultBurst        = 10
	DefaultPerResponder = 20000
)

// limiterSlots is the size of a limiter's bucket table: requesters whose
// keys hash to the same slot share a bucket. 4096 slots of 8 bytes.
const limiterSlots = 4096

// limiter is a pure token-bucket rate limiter owned by one responder
// goroutine: no lock, no allocation after newLimiter, no clock of its own
// (callers pass the time). Each bucket is a GCRA ("virtual scheduling")
// cell: the theoretical arrival time of the next conforming reply, in
// nanoseconds on the caller's monotonic time line, which starts at 0.
type limiter struct {
	seed uint64 // keys the slot hash, so a remote sender cannot aim at a chosen slot

	perReq     bool  // the per-requester limit is on
	reqEvery   int64 // nanoseconds between two replies to one requester
	reqTol     int64 // how far ahead of now a requester's cell may run: (Burst-1) * reqEvery
	global     bool  // the per-responder limit is on
	totalEvery int64
	totalTol   int64
	total      int64 // the per-responder cell

	slots [limiterSlots]int64
}

// newLimiter returns a limiter for lim (zero fields defaulted) whose slot
// hash is keyed by seed.
func newLimiter(lim Limits, seed uint64) *limiter {
	l := &limiter{seed: seed}
	rate, burst := lim.PerRequester, lim.Burst
	if rate == 0 {
		rate = DefaultPerRequester
	}
	if burst == 0 {
		burst = DefaultBurst
	}
	if rate > 0 && burst > 0 {
		l.perReq = true
		l.reqEvery = every(rate)
		l.reqTol = int64(burst-1) * l.reqEvery
	}
	total := lim.PerResponder
	if total == 0 {
		total = DefaultPerResponder
	}
	if total > 0 {
		l.global = true
		l.totalEvery = every(total)
		l.totalTol = int64(math.Max(1, math.Floor(total/10))-1) * l.totalEvery
	}
	return l
}

// newRandomLimiter is newLimiter with a random seed.
func newRandomLimiter(lim Limits) *limiter { return newLimiter(lim, rand.Uint64()) }

// every is the interval, in nanoseconds and at least 1, of rate per second.
func every(rate float64) int64 {
	return int64(math.Max(1, math.Round(1e9/rate)))
}

// slot returns the bucket index of a requester MAC and a target address
// (IPv4 in the low 32 bits of hi with lo zero, IPv6 as two halves).
func (l *limiter) slot(mac [6]byte, hi, lo uint64) int {
	m := uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 | uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])
	h := mix(l.seed ^ m)
	h = mix(h ^ hi)
	h = mix(h ^ lo)
	return int(h % limiterSlots)
}

// mix is the SplitMix64 finalizer: every input bit affects every output bit.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// conform reports whether a reply at now fits cell tat with interval every
// and tolerance tol, and the cell's value if the reply is sent.
func conform(tat, now, every, tol int64) (int64, bool) {
	if tat < now {
		tat = now
	}
	if tat-now > tol {
		return 0, false
	}
	return tat + every, true
}

// allow reports whether a reply to a request from mac about the target
// (hi, lo) may be sent at now (nanoseconds, never decreasing), and if so
// counts it. A refused request consumes nothing: a requester over its limit
// does not use up the responder's allowance, and one refused by the
// responder's cap keeps its own.
func (l *limiter) allow(mac [6]byte, hi, lo uint64, now int64) bool {
	var (
		i       int
		reqNext int64
	)
	if l.perReq {
		i = l.slot(mac, hi, lo)
		next, ok := conform(l.slots[i], now, l.reqEvery, l.reqTol)
		if !ok {
			return false
		}
		reqNext = next
	}
	if l.global {
		next, ok := conform(l.total, now, l.totalEvery, l.totalTol)
		if !ok {
			return false
		}
		l.total = next
	}
	if l.perReq {
		l.slots[i] = reqNext
	}
	return true
}
