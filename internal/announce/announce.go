package announce

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/wire"
)

// Entry is what to answer on one interface.
type Entry struct {
	// Interface is the link: its Name is the Assignment key, its MAC what replies come from.
	Interface wire.Interface
	VIPs      []netip.Addr
}

// Assignment says which VIPs to answer on which interface. Keys are
// interface names; an entry whose Interface.Name is set and differs from its
// key is rejected. A VIP may appear on several interfaces.
type Assignment map[string]Entry

// Conns are the two link-layer sockets of one interface. Both carry whole
// Ethernet frames: ReadFrom returns a frame starting with its Ethernet
// header, WriteTo sends a complete frame, and addresses are *packet.Addr
// (github.com/mdlayher/packet) holding the destination MAC, which is also
// the frame's first six bytes. The real ones are AF_PACKET SOCK_RAW sockets
// (see ListenInterface); tests inject in-memory fakes.
//
// If NDP also implements MulticastMembership, the announcer joins the
// solicited-node group of every IPv6 VIP through it. A nil NDP disables
// IPv6 on the interface.
type Conns struct {
	ARP net.PacketConn // ARP frames (EtherType 0x0806)
	NDP net.PacketConn // IPv6 frames carrying Neighbor Solicitations (EtherType 0x86DD)
}

// MulticastMembership is implemented by an NDP conn whose NIC must be told
// to accept a link-layer multicast group, e.g. 33:33:ff:xx:xx:xx for a
// solicited-node address (see wire.MulticastMembership).
type MulticastMembership = wire.MulticastMembership

// Config configures an Announcer. The zero value is usable.
type Config struct {
	// GratuitousRepeats is how many gratuitous ARPs / unsolicited NAs follow
	// the first one; 0 means the default, 2; negative means none.
	GratuitousRepeats int
	// GratuitousInterval is the time between those repeats; default 500ms.
	GratuitousInterval time.Duration
	// Refresh re-announces every VIP this often after its repeats; 0 = off.
	Refresh time.Duration
	// RetryInterval is the least time between two openings of one
	// interface's sockets, after Listen failed or a responder stopped on a
	// read error; default 5s.
	RetryInterval time.Duration
	// Clock drives announcements and retries; default clock.RealClock{}.
	Clock clock.WithTicker
	// Logger receives state changes and errors; nothing is logged per packet
	// except write errors, at most one per responder every 10 seconds.
	Logger logr.Logger
	// Metrics records counters; nil records nothing.
	Metrics *Metrics
	// Listen opens the sockets of an interface; default ListenInterface.
	Listen func(ifi wire.Interface) (Conns, error)
	// Fresh, if not nil, says whether this process has been running
	// continuously (see package stall). While it returns false nothing is
	// sent: requests that would be answered are counted as stalled, and
	// gratuitous ARPs / unsolicited NAs that come due are dropped, not
	// delayed (their schedule moves on as if they had been sent), because a
	// node that was stopped may have lost its VIPs to another node and must
	// not announce them until its owner has caught up. It is called once
	// for every request that would be answered and every announcement, from
	// several goroutines at once, so it must be safe for concurrent use,
	// cheap (an atomic load or two) and must not block.
	Fresh func() bool
	// RateLimit bounds the replies of each responder; the zero value means
	// the defaults (see Limits).
	RateLimit Limits

	// limiterSeed, if not 0, keys every responder's limiter instead of a
	// random seed; tests set it so their requesters get distinct buckets.
	limiterSeed uint64
}

// Defaults for Config.
const (
	DefaultGratuitousRepeats  = 2
	DefaultGratuitousInterval = 500 * time.Millisecond
	DefaultRetryInterval      = 5 * time.Second
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("announce: announcer closed")

// Announcer answers ARP and Neighbor Solicitations for the VIPs of the
// latest Assignment and announces newly added ones. Set, Announced and Close
// are safe from any goroutine; Run does the socket work.
type Announcer struct {
	cfg     Config
	log     logr.Logger
	metrics *Metrics
	cadence cadence

	// kick wakes Run after Set or when a responder stops; capacity 1.
	kick chan struct{}
	// rekick wakes Run after Reannounce; capacity 1.
	rekick chan struct{}

	// mu guards desired, links, running, closed, cancel and done, and serializes stores to every link's vips
	// pointer. It is never held across a syscall or a wait, and the packet
	// path never takes it.
	mu      sync.Mutex
	desired map[string]*entry
	links   map[string]*link
	running bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returns

	// Also guarded by mu: VIPs Reannounce accepted and Run has not handled
	// yet, and when Reannounce last accepted each VIP (entries older than
	// reannounceEvery are pruned).
	reannounce     map[netip.Addr]struct{}
	lastReannounce map[netip.Addr]time.Time

	// Owned by the Run goroutine; no lock.
	sched   schedule
	retries map[string]retry          // interfaces not to open again before a time
	gbuf    [wire.NDLinkFrameLen]byte // gratuitous frames are built here
	gdst    [6]byte
}

// entry is a validated Assignment entry.
type entry struct {
	ifi  wire.Interface
	mac  [6]byte
	vips *wire.VIPSet
}

// emptyVIPs answers nothing; it is stored in a link before it is closed.
var emptyVIPs = &wire.VIPSet{}

// retry is an interface that may not be opened before at.
type retry struct {
	ifi    wire.Interface
	at     time.Time
	failed bool // the last attempt failed (quiets repeated logs)
}

func (e *entry) sameLink(ifi wire.Interface) bool { return e.ifi.Equal(ifi) }

// New returns an Announcer with cfg's zero fields set to their defaults.
// It answers nothing until Run is called and Set gives it VIPs.
func New(cfg Config) *Announcer {
	switch {
	case cfg.GratuitousRepeats == 0:
		cfg.GratuitousRepeats = DefaultGratuitousRepeats
	case cfg.GratuitousRepeats < 0:
		cfg.GratuitousRepeats = 0
	}
	if cfg.GratuitousInterval <= 0 {
		cfg.GratuitousInterval = DefaultGratuitousInterval
	}
	if cfg.Refresh < 0 {
		cfg.Refresh = 0
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Listen == nil {
		cfg.Listen = ListenInterface
	}
	return &Announcer{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		cadence: cadence{repeats: cfg.GratuitousRepeats, interval: cfg.GratuitousInterval, refresh: cfg.Refresh},
		kick:    make(chan struct{}, 1),
		rekick:  make(chan struct{}, 1),
		desired: map[string]*entry{},

		reannounce:     map[netip.Addr]struct{}{},
		lastReannounce: map[netip.Addr]time.Time{},
		links:          map[string]*link{},
		retries:        map[string]retry{},
	}
}

// Set replaces the desired state with as. It does not block on Run and
// does not retain as. Before it returns, every interface that is already
// answering answers exactly its new VIPs: a removed VIP (or every VIP of a
// removed interface) is not answered for any frame read after Set returns,
// nor is a reply to an earlier frame still being sent (Set waits, up to
// quiesceWait, for a responder in the middle of one), and its pending
// announcements are cancelled. Run then opens the sockets of
// new interfaces, closes those of removed ones, joins and leaves multicast
// groups and announces the new VIPs.
//
// Invalid entries (Index <= 0, a MAC that is not 6 bytes, a Name differing
// from the key) and VIPs (unspecified, loopback, multicast) are skipped and
// logged.
func (a *Announcer) Set(as Assignment) {
	desired := make(map[string]*entry, len(as))
	for name, e := range as {
		if d, ok := a.validate(name, e); ok {
			desired[name] = d
		}
	}
	a.mu.Lock()
	a.desired = desired
	links := make([]*link, 0, len(a.links))
	for name, l := range a.links {
		if d, ok := desired[name]; ok && d.sameLink(l.ifi) {
			l.vips.Store(d.vips)
		} else {
			l.vips.Store(emptyVIPs)
		}
		links = append(links, l)
	}
	a.mu.Unlock()
	// A responder that loaded the old set just before the store may still be writing a reply from it: wait for
	// it, so that when Set returns nothing answers a removed VIP any more (a handoff's taker answers next).
	for _, l := range links {
		if !l.quiesce() {
			a.log.Info("a responder was still handling a frame after Set; a reply for a removed address may follow", "interface", l.ifi.Name, "waited", quiesceWait)
		}
	}
	a.wake()
}

func (a *Announcer) validate(name string, e Entry) (*entry, bool) {
	ifi := e.Interface
	if ifi.Name == "" {
		ifi.Name = name
	}
	if ifi.Name != name || ifi.Index <= 0 || len(ifi.MAC) != 6 || name == "" {
		a.metrics.failed(opInvalid)
		a.log.Error(errors.New("invalid interface"), "skipping assignment entry",
			"interface", name, "index", ifi.Index, "mac", ifi.MAC.String(), "name", ifi.Name)
		return nil, false
	}
	ifi = ifi.Clone()
	vips := make([]netip.Addr, 0, len(e.VIPs))
	for _, v := range e.VIPs {
		n, ok := wire.NormalizeVIP(v)
		if !ok {
			a.metrics.failed(opInvalid)
			a.log.Error(errors.New("address cannot be announced"), "skipping VIP", "interface", name, "vip", v.String())
			continue
		}
		vips = append(vips, n)
	}
	d := &entry{ifi: ifi, vips: wire.NewVIPSet(vips)}
	copy(d.mac[:], ifi.MAC)
	return d, true
}

func (a *Announcer) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Announced returns, for every VIP being answered right now, the names of
// the interfaces answering it, sorted. Interfaces whose sockets are not
// open (not yet, or after an error) are left out.
func (a *Announcer) Announced() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, l := range a.links {
		if l.dead.Load() {
			continue
		}
		for _, v := range l.vips.Load().All() {
			out[v] = append(out[v], name)
		}
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

// Run opens and closes interfaces and sends announcements until ctx is done
// or Close is called, then closes every socket, waits for every responder
// goroutine and returns nil. It returns ErrClosed after Close and an error
// if called twice.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	if a.running {
		a.mu.Unlock()
		return errors.New("announce: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	a.running, a.cancel, a.done = true, cancel, make(chan struct{})
	done := a.done
	a.mu.Unlock()
	defer close(done)
	defer cancel()
	defer a.closeAll()

	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	dirty := true
	for ctx.Err() == nil {
		// Due announcements first, so a kick that lands together with a
		// timer never reorders them; they re-check the live VIP set, so a
		// VIP removed by Set but not yet reconciled is not announced.
		a.sendDue()
		now := a.cfg.Clock.Now()
		if dirty || a.retryDue(now) {
			a.reconcile(now)
			dirty = false
		}
		a.sendReannouncements()
		var timerC <-chan time.Time
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if at, ok := a.nextWake(); ok {
			d := at.Sub(a.cfg.Clock.Now())
			if d <= 0 {
				// Came due while working (a timer of d <= 0 may not fire
				// on every clock): handle it now.
				continue
			}
			timer = a.cfg.Clock.NewTimer(d)
			timerC = timer.C()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.kick:
			dirty = true
		case <-a.rekick:
		case <-timerC:
		}
	}
	return nil
}

// Close stops Run (if running), which closes every socket, and waits for it.
// It is idempotent and always returns nil.
func (a *Announcer) Close() error {
	a.mu.Lock()
	a.closed = true
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// nextWake is the earliest pending announcement or retry.
func (a *Announcer) nextWake() (time.Time, bool) {
	at, ok := a.sched.nextDue()
	for _, r := range a.retries {
		if !ok || r.at.Before(at) {
			at, ok = r.at, true
		}
	}
	return at, ok
}

func (a *Announcer) retryDue(now time.Time) bool {
	for _, r := range a.retries {
		if !r.at.After(now) {
			return true
		}
	}
	return false
}

// sendDue sends every announcement due by now.
func (a *Announcer) sendDue() {
	now := a.cfg.Clock.Now()
	for {
		key, ok := a.sched.popDue(now, a.cadence)
		if !ok {
			return
		}
		a.mu.Lock()
		l := a.links[key.link]
		a.mu.Unlock()
		if l == nil {
			a.sched.remove(key)
			continue
		}
		a.announce(l, key.vip)
	}
}

// reconcile makes the open interfaces and their announced VIPs match the
// desired state.
func (a *Announcer) reconcile(now time.Time) {
	a.mu.Lock()
	desired := a.desired
	var stale []*link
	for name, l := range a.links {
		d, ok := desired[name]
		if !ok || !d.sameLink(l.ifi) || l.dead.Load() {
			l.vips.Store(emptyVIPs)
			delete(a.links, name)
			stale = append(stale, l)
		}
	}
	var open []*entry
	for name, d := range desired {
		if _, ok := a.links[name]; !ok {
			open = append(open, d)
		}
	}
	a.mu.Unlock()

	for _, l := range stale {
		a.closeLink(l)
		if l.dead.Load() {
			// Reopen at once unless it was opened less than RetryInterval ago.
			a.retries[l.ifi.Name] = retry{ifi: l.ifi, at: l.opened.Add(a.cfg.RetryInterval)}
		}
	}
	for name, r := range a.retries {
		if d, ok := desired[name]; !ok || !d.sameLink(r.ifi) {
			delete(a.retries, name) // the interface changed or went: no reason to wait
		}
	}
	slices.SortFunc(open, func(x, y *entry) int { return cmpString(x.ifi.Name, y.ifi.Name) })
	for _, d := range open {
		if r, ok := a.retries[d.ifi.Name]; ok && r.at.After(now) {
			continue
		}
		a.openLink(d, now)
	}

	a.mu.Lock()
	links := make([]*link, 0, len(a.links))
	for _, l := range a.links {
		links = append(links, l)
	}
	a.mu.Unlock()
	slices.SortFunc(links, func(x, y *link) int { return cmpString(x.ifi.Name, y.ifi.Name) })
	for _, l := range links {
		a.syncVIPs(l, desired[l.ifi.Name])
	}
}

func cmpString(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// openLink opens d's sockets and starts its responders.
func (a *Announcer) openLink(d *entry, now time.Time) {
	name := d.ifi.Name
	conns, err := a.cfg.Listen(d.ifi)
	if err == nil && conns.ARP == nil {
		err = errors.New("Listen returned no ARP conn")
		if conns.NDP != nil {
			conns.NDP.Close()
		}
	}
	if err != nil {
		a.metrics.failed(opListen)
		prev := a.retries[name]
		if !prev.failed {
			a.log.Error(err, "cannot open interface; retrying", "interface", name, "index", d.ifi.Index,
				"retryInterval", a.cfg.RetryInterval.String())
		} else {
			a.log.V(1).Info("cannot open interface; retrying", "interface", name, "error", err.Error())
		}
		a.retries[name] = retry{ifi: d.ifi, at: now.Add(a.cfg.RetryInterval), failed: true}
		return
	}
	if r, ok := a.retries[name]; ok && r.failed {
		a.log.Info("interface open again", "interface", name, "index", d.ifi.Index)
	}
	delete(a.retries, name)
	l := &link{ifi: d.ifi, mac: d.mac, conns: conns, opened: now, announced: map[netip.Addr]bool{}}
	a.mu.Lock()
	if cur, ok := a.desired[name]; ok && cur.sameLink(l.ifi) {
		l.vips.Store(cur.vips)
	} else {
		l.vips.Store(emptyVIPs) // changed meanwhile; the pending kick reconciles again
	}
	a.links[name] = l
	a.mu.Unlock()
	l.start(a)
	a.log.V(1).Info("answering on interface", "interface", name, "index", d.ifi.Index, "mac", d.ifi.MAC.String())
}

// closeLink stops l's responders and closes its sockets. l must already be
// out of a.links with an empty VIP set.
func (a *Announcer) closeLink(l *link) {
	a.sched.removeLink(l.ifi.Name)
	l.stop()
	a.log.V(1).Info("stopped answering on interface", "interface", l.ifi.Name, "index", l.ifi.Index)
}

// closeAll closes every link; Run calls it on the way out.
func (a *Announcer) closeAll() {
	a.mu.Lock()
	links := make([]*link, 0, len(a.links))
	for name, l := range a.links {
		l.vips.Store(emptyVIPs)
		delete(a.links, name)
		links = append(links, l)
	}
	a.mu.Unlock()
	for _, l := range links {
		a.closeLink(l)
	}
}

// syncVIPs joins groups and starts announcements for VIPs new on l, and
// leaves groups and cancels announcements for VIPs gone from it.
func (a *Announcer) syncVIPs(l *link, d *entry) {
	want := emptyVIPs
	if d != nil && d.sameLink(l.ifi) {
		want = d.vips
	}
	for v, joined := range l.announced {
		if !want.Has(v) {
			delete(l.announced, v)
			a.sched.remove(announceKey{l.ifi.Name, v})
			if joined {
				l.leaveGroup(a, v)
			}
		}
	}
	now := a.cfg.Clock.Now()
	for _, v := range want.All() {
		if _, ok := l.announced[v]; ok {
			continue
		}
		if v.Is6() && l.conns.NDP == nil {
			continue
		}
		l.announced[v] = v.Is6() && l.joinGroup(a, v)
		a.announce(l, v)
		a.sched.start(announceKey{l.ifi.Name, v}, now, a.cadence)
	}
}

// announce sends one gratuitous ARP or unsolicited NA for vip on l, if l
// still answers for vip and Config.Fresh allows it.
func (a *Announcer) announce(l *link, vip netip.Addr) {
	if !l.vips.Load().Has(vip) {
		return
	}
	var (
		conn net.PacketConn
		n    int
		fam  family
	)
	if vip.Is4() {
		conn, fam = l.conns.ARP, familyIPv4
	} else {
		conn, fam = l.conns.NDP, familyIPv6
	}
	if conn == nil {
		return
	}
	if !a.fresh() {
		a.metrics.stalledGratuitous(fam)
		return
	}
	if vip.Is4() {
		n = wire.PutARPAnnouncement(a.gbuf[:], l.mac, vip.As4())
	} else {
		n = wire.PutUnsolicitedNA(a.gbuf[:], l.mac, vip.As16())
	}
	copy(a.gdst[:], a.gbuf[:6])
	if _, err := conn.WriteTo(a.gbuf[:n], packetAddr(a.gdst)); err != nil {
		a.metrics.failed(opWrite)
		a.log.Error(err, "cannot send announcement", "interface", l.ifi.Name, "vip", vip.String(), "family", fam.String())
		return
	}
	a.metrics.sentGratuitous(fam)
}

// fresh calls Config.Fresh, if set.
func (a *Announcer) fresh() bool { return a.cfg.Fresh == nil || a.cfg.Fresh() }

// reannounceEvery is the least time between two re-announcements of a VIP.
const reannounceEvery = time.Second

// Reannounce sends, at once, a gratuitous ARP or unsolicited NA for each of
// vips on every interface answering it, and restarts its repeat schedule
// (Config.GratuitousRepeats more, GratuitousInterval apart), so that hosts
// which learnt another MAC for a VIP switch back quickly; the winner of a
// duplicate-responder conflict calls it. VIPs not being answered are
// ignored, and so is a VIP re-announced less than a second ago (by the
// Config.Clock), so a conflict storm cannot turn into an announcement
// storm. It is safe from any goroutine and does not block on Run, which
// sends the frames; announcements still obey Config.Fresh.
func (a *Announcer) Reannounce(vips ...netip.Addr) {
	now := a.cfg.Clock.Now()
	accepted := false
	a.mu.Lock()
	for v, at := range a.lastReannounce {
		if now.Sub(at) >= reannounceEvery {
			delete(a.lastReannounce, v)
		}
	}
	for _, v := range vips {
		v, ok := wire.NormalizeVIP(v)
		if !ok {
			continue
		}
		if _, recent := a.lastReannounce[v]; recent || !a.answeringLocked(v) {
			continue
		}
		a.lastReannounce[v] = now
		a.reannounce[v] = struct{}{}
		accepted = true
	}
	a.mu.Unlock()
	if accepted {
		select {
		case a.rekick <- struct{}{}:
		default:
		}
	}
}

// answeringLocked reports whether an open interface answers v. a.mu must
// be held.
func (a *Announcer) answeringLocked(v netip.Addr) bool {
	for _, l := range a.links {
		if !l.dead.Load() && l.vips.Load().Has(v) {
			return true
		}
	}
	return false
}

// sendReannouncements handles what Reannounce accepted: for each VIP, in
// address order, on each interface that has announced it, in name order,
// one announcement now and a fresh repeat schedule.
func (a *Announcer) sendReannouncements() {
	a.mu.Lock()
	if len(a.reannounce) == 0 {
		a.mu.Unlock()
		return
	}
	vips := make([]netip.Addr, 0, len(a.reannounce))
	for v := range a.reannounce {
		vips = append(vips, v)
	}
	clear(a.reannounce)
	links := make([]*link, 0, len(a.links))
	for _, l := range a.links {
		links = append(links, l)
	}
	a.mu.Unlock()
	slices.SortFunc(vips, netip.Addr.Compare)
	slices.SortFunc(links, func(x, y *link) int { return cmpString(x.ifi.Name, y.ifi.Name) })
	now := a.cfg.Clock.Now()
	for _, v := range vips {
		for _, l := range links {
			if _, ok := l.announced[v]; !ok {
				continue // not synced yet; its first announcement is still to come
			}
			a.announce(l, v)
			a.sched.start(announceKey{l.ifi.Name, v}, now, a.cadence)
		}
	}
}
