package announce

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"

	"github.com/heraldlb/herald/internal/wire"
)

// readBufSize holds any frame up to a 9000-byte jumbo MTU; a longer one is
// truncated and then fails parsing as malformed.
const readBufSize = 9216

// writeErrorLogEvery limits write-error logs to one per responder per period.
const writeErrorLogEvery = 10 * time.Second

// link is one open interface: its sockets and the two responder goroutines
// (ARP and NDP) reading them. The link owns the goroutines; stop ends and
// awaits them.
type link struct {
	ifi    wire.Interface
	mac    [6]byte
	conns  Conns
	opened time.Time

	// vips is what the responders answer. Stores happen under Announcer.mu;
	// the responders Load it once per frame, without a lock.
	vips atomic.Pointer[wire.VIPSet]

	// closing is set before the sockets are closed, so the read errors it
	// causes are not reported.
	closing atomic.Bool
	// dead is set by the first responder whose read fails for another reason.
	dead atomic.Bool
	// handling counts, per family, the frames its responder began and finished handling (odd: one is being
	// handled), so that Set can wait for a reply decided on the VIP set it replaced (quiesce).
	handling [2]atomic.Uint64

	wg       sync.WaitGroup
	stopOnce sync.Once

	// Owned by the Run goroutine; no lock.
	announced map[netip.Addr]bool // VIPs announced; true if the VIP holds a share of its solicited-node group
	groups    map[[6]byte]int     // solicited-node groups joined, by number of VIPs holding a share
}

// start launches the responders.
func (l *link) start(a *Announcer) {
	l.wg.Add(1)
	go l.serve(a, familyIPv4, l.conns.ARP)
	if l.conns.NDP != nil {
		l.wg.Add(1)
		go l.serve(a, familyIPv6, l.conns.NDP)
	}
}

// stop closes the sockets, which ends the responders, and waits for them.
// It is idempotent.
func (l *link) stop() {
	l.stopOnce.Do(func() {
		l.closing.Store(true)
		l.conns.ARP.Close()
		if l.conns.NDP != nil {
			l.conns.NDP.Close()
		}
		l.wg.Wait()
	})
}

// serve is a responder: it reads frames from conn until conn fails or is
// closed, and answers those handle* accepts and admit lets through. Per
// frame it takes no lock and allocates nothing: the read buffer, reply
// buffer, destination address and rate limiter are its own and reused, the
// VIP set is one atomic load, metrics are pre-resolved counters.
func (l *link) serve(a *Announcer, fam family, conn net.PacketConn) {
	defer l.wg.Done()
	handle := handleARP
	if fam == familyIPv6 {
		handle = handleNS
	}
	rbuf := make([]byte, readBufSize)
	wbuf := make([]byte, wire.NDLinkFrameLen)
	dst := &packet.Addr{HardwareAddr: make(net.HardwareAddr, 6)}
	lim := newRandomLimiter(a.cfg.RateLimit)
	if a.cfg.limiterSeed != 0 {
		lim = newLimiter(a.cfg.RateLimit, a.cfg.limiterSeed)
	}
	var lastLog time.Time
	for {
		n, _, err := conn.ReadFrom(rbuf)
		if err != nil {
			if l.closing.Load() {
				return
			}
			if l.dead.CompareAndSwap(false, true) {
				a.metrics.failed(opRead)
				a.log.Error(err, "responder stopped; interface will be reopened", "interface", l.ifi.Name,
					"index", l.ifi.Index, "family", fam.String())
				a.wake()
			}
			return
		}
		l.handling[fam].Add(1) // odd: a frame is being handled, on the VIP set loaded below
		m, r := handle(rbuf[:n], l.mac, l.vips.Load(), wbuf)
		if r == resultAnswered {
			r = l.admit(a, lim, fam, rbuf, wbuf)
		}
		a.metrics.request(fam, r)
		if r == resultAnswered {
			copy(dst.HardwareAddr, wbuf[:6])
			if _, err := conn.WriteTo(wbuf[:m], dst); err != nil {
				a.metrics.failed(opWrite)
				if now := a.cfg.Clock.Now(); lastLog.IsZero() || now.Sub(lastLog) >= writeErrorLogEvery {
					lastLog = now
					a.log.Error(err, "cannot send reply", "interface", l.ifi.Name, "family", fam.String())
				}
			}
		}
		l.handling[fam].Add(1) // even: done
	}
}

// quiesceWait bounds how long Set waits for a responder to finish the frame it is handling: long beside a
// frame's microseconds, for a responder the scheduler has not run for a while.
const quiesceWait = time.Second

// quiesce waits until neither responder is handling a frame it began before the call: any reply decided on an
// earlier VIP set has been written. It reports false if one is still at it after quiesceWait.
func (l *link) quiesce() bool {
	deadline := time.Now().Add(quiesceWait)
	for fam := range l.handling {
		s := l.handling[fam].Load()
		for s%2 == 1 && l.handling[fam].Load() == s {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	return true
}

// joinGroup joins vip's solicited-node group if the NDP conn supports it
// and reports whether vip now holds a share of the group. Several VIPs may
// share one group; it is joined once.
func (l *link) joinGroup(a *Announcer, vip netip.Addr) bool {
	mm, ok := l.conns.NDP.(MulticastMembership)
	if !ok {
		return false
	}
	g := wire.SolicitedNodeMAC(vip.As16())
	if l.groups == nil {
		l.groups = map[[6]byte]int{}
	}
	if l.groups[g] == 0 {
		if err := mm.JoinMulticast(net.HardwareAddr(g[:])); err != nil {
			a.metrics.failed(opJoin)
			a.log.Error(err, "cannot join solicited-node group; solicitations may be filtered by the NIC",
				"interface", l.ifi.Name, "vip", vip.String(), "group", net.HardwareAddr(g[:]).String())
			return false
		}
	}
	l.groups[g]++
	return true
}

// leaveGroup drops vip's share of its solicited-node group (vip must hold
// one) and leaves the group when no VIP holds a share.
func (l *link) leaveGroup(a *Announcer, vip netip.Addr) {
	mm, ok := l.conns.NDP.(MulticastMembership)
	if !ok {
		return
	}
	g := wire.SolicitedNodeMAC(vip.As16())
	if l.groups[g] == 0 {
		return
	}
	l.groups[g]--
	if l.groups[g] > 0 {
		return
	}
	delete(l.groups, g)
	if err := mm.LeaveMulticast(net.HardwareAddr(g[:])); err != nil && !errors.Is(err, net.ErrClosed) {
		a.metrics.failed(opLeave)
		a.log.Error(err, "cannot leave solicited-node group", "interface", l.ifi.Name, "vip", vip.String(),
			"group", net.HardwareAddr(g[:]).String())
	}
}

// packetAddr returns a fresh *packet.Addr for mac.
func packetAddr(mac [6]byte) *packet.Addr {
	return &packet.Addr{HardwareAddr: net.HardwareAddr(mac[:])}
}

// admit decides whether a reply the handler built (in reply, for the
// request in req) is sent: not while Config.Fresh says the process may have
// stalled, nor when lim refuses it. lim is keyed by the request's Ethernet
// source and the target the reply is about (the ARP reply's sender IP, the
// NA's target), and timed by Config.Clock since the link was opened, which
// for the real clock is the monotonic clock.
func (l *link) admit(a *Announcer, lim *limiter, fam family, req, reply []byte) result {
	if !a.fresh() {
		return resultStalled
	}
	src := [6]byte(req[6:12])
	var hi, lo uint64
	if fam == familyIPv4 {
		hi = uint64(binary.BigEndian.Uint32(reply[wire.ARPSenderIPOffset : wire.ARPSenderIPOffset+4]))
	} else {
		hi = binary.BigEndian.Uint64(reply[wire.ICMPOffset+8 : wire.ICMPOffset+16])
		lo = binary.BigEndian.Uint64(reply[wire.ICMPOffset+16 : wire.ICMPOffset+24])
	}
	if !lim.allow(src, hi, lo, int64(a.cfg.Clock.Since(l.opened))) {
		return resultRateLimited
	}
	return resultAnswered
}
