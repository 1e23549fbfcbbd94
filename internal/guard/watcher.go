package guard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/wire"
)

// Observation is one frame claiming a managed VIP.
type Observation struct {
	VIP netip.Addr
	// MAC is the claimant: the ARP sender hardware address, the NA target
	// or NS source link-layer option, else the Ethernet source.
	MAC       net.HardwareAddr
	Kind      Kind
	Interface string    // name of the interface it was seen on
	Outgoing  bool      // sent by this host (PACKET_OUTGOING): our own responder or our kernel
	At        time.Time // Config.Clock time when it was read
}

// Config configures a Watcher. The zero value is usable.
type Config struct {
	// Clock drives deduplication, probes, pacing and retries; default
	// clock.RealClock{}.
	Clock clock.WithTicker
	// Logger receives socket state changes and errors; nothing is logged
	// per frame.
	Logger logr.Logger
	// Metrics records counters; nil records nothing.
	Metrics *Metrics
	// Listen opens the sockets of an interface; default ListenInterface.
	Listen func(ifi wire.Interface) (Conns, error)
	// DedupInterval: the same (VIP, MAC, Kind, Outgoing) is delivered at
	// most once per DedupInterval; default 100ms.
	DedupInterval time.Duration
	// ProbeRate bounds the probe frames sent per second over all
	// interfaces, with bursts of up to a fiftieth of it; default 5000.
	ProbeRate int
	// RetryInterval is the least time between two openings of one
	// interface's sockets, after Listen failed or a read failed; default 5s.
	RetryInterval time.Duration
}

// Defaults for Config and the Observations buffer.
const (
	DefaultDedupInterval = 100 * time.Millisecond
	DefaultProbeRate     = 5000
	DefaultRetryInterval = 5 * time.Second
	ObservationBuffer    = 1024
)

// maxDedup bounds the deduplication table: past it (a flood of claims from
// random MACs) the table is emptied and duplicates get through for one
// interval instead of memory growing.
const maxDedup = 1 << 16

// ErrClosed is returned by Run, and by Probes running or started, after Close.
var ErrClosed = errors.New("guard: watcher closed")

// Watcher reads the ARP and Neighbor Discovery traffic of a set of
// interfaces, reports frames claiming managed VIPs, and runs probes. All
// methods are safe for concurrent use; Run does the socket work, and Probe
// needs Run to be running.
type Watcher struct {
	clock   clock.WithTicker
	log     logr.Logger
	metrics *Metrics
	listen  func(wire.Interface) (Conns, error)
	dedupIv time.Duration
	retryIv time.Duration
	pacer   pacer

	obs     chan Observation
	dropped atomic.Uint64 // Observations dropped because obs was full
	vips    atomic.Pointer[wire.VIPSet]
	kick    chan struct{} // wakes Run; capacity 1
	closed  chan struct{} // closed by Close
	once    sync.Once     // closes closed

	// mu guards the fields below. It is never held across a syscall, a
	// Listen or a wait, and the frame path never takes it.
	mu      sync.Mutex
	want    map[string]*want // interfaces to have open, by name
	links   map[string]*link // interfaces open, by name
	running bool
	cancel  context.CancelFunc // cancels Run's context
	done    chan struct{}      // closed when Run returns; nil before Run
	changed chan struct{}      // closed and replaced when links open or fail to

	// nprobes counts running probes; readers look at probes only when it is
	// not zero, so the frame path takes no lock while nothing is probed.
	nprobes atomic.Int32
	// probeMu guards probes and the responders of every probeRun in it.
	probeMu sync.Mutex
	probes  map[probeKey][]*probeRun

	// dedupMu guards dedup and lastSweep; only frames about managed VIPs
	// take it.
	dedupMu   sync.Mutex
	dedup     map[dedupKey]time.Time // last delivery of each claim
	lastSweep time.Time
}

// want is an interface that should be open: watched (SetInterfaces) or
// used by running Probes.
type want struct {
	ifi      wire.Interface
	watched  bool
	probes   int   // running Probes using it
	attempts int   // failed openings so far
	err      error // the last opening's error
}

func (wt *want) active() bool { return wt.watched || wt.probes > 0 }

// link is one open interface: its sockets and their readers.
type link struct {
	ifi      wire.Interface
	mac      [6]byte
	conns    Conns
	stopping atomic.Bool    // set before the conns are closed: read errors are expected
	broken   atomic.Bool    // a reader failed; Run reopens the link
	readers  sync.WaitGroup // the reader goroutines

	// mcMu guards mcast and serializes multicast joins and leaves.
	mcMu  sync.Mutex
	mcast map[[6]byte]int // solicited-node groups joined for probes, with their users
}

type dedupKey struct {
	vip      netip.Addr
	mac      [6]byte
	kind     Kind
	outgoing bool
}

// New returns a Watcher; call Run to start it.
func New(cfg Config) *Watcher {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Listen == nil {
		cfg.Listen = ListenInterface
	}
	if cfg.DedupInterval <= 0 {
		cfg.DedupInterval = DefaultDedupInterval
	}
	if cfg.ProbeRate <= 0 {
		cfg.ProbeRate = DefaultProbeRate
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	w := &Watcher{
		clock:   cfg.Clock,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		listen:  cfg.Listen,
		dedupIv: cfg.DedupInterval,
		retryIv: cfg.RetryInterval,
		pacer:   newPacer(cfg.Clock, cfg.ProbeRate),
		obs:     make(chan Observation, ObservationBuffer),
		kick:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		want:    make(map[string]*want),
		links:   make(map[string]*link),
		changed: make(chan struct{}),
		probes:  make(map[probeKey][]*probeRun),
		dedup:   make(map[dedupKey]time.Time),
	}
	w.vips.Store(&wire.VIPSet{})
	return w
}

// Observations delivers claims about managed VIPs. Readers never block on
// it: when the consumer lags and its buffer (ObservationBuffer) is full,
// frames are dropped and counted as "overflow". It is never closed.
func (w *Watcher) Observations() <-chan Observation { return w.obs }

// Dropped is how many Observations were dropped because the consumer lagged (the "overflow" frames). A consumer
// that judges from what it did not hear (nobody claimed an address) must know when it may have missed something.
func (w *Watcher) Dropped() uint64 { return w.dropped.Load() }

// SetVIPs replaces the set of VIPs Herald manages (cluster-wide, IPv4 and
// IPv6; IPv4-mapped addresses count as IPv4). Frames claiming other
// addresses are dropped and counted as "not_managed".
func (w *Watcher) SetVIPs(vips []netip.Addr) { w.vips.Store(wire.NewVIPSet(vips)) }

// SetInterfaces says which interfaces to watch, by name: sockets of
// interfaces left out are closed (unless a Probe still uses them), new ones
// opened, and an interface whose index or MAC changed is reopened. Opening
// is retried every RetryInterval until it works.
func (w *Watcher) SetInterfaces(ifs []wire.Interface) {
	w.mu.Lock()
	names := make(map[string]bool, len(ifs))
	for _, ifi := range ifs {
		names[ifi.Name] = true
		wt := w.want[ifi.Name]
		if wt == nil {
			wt = &want{}
			w.want[ifi.Name] = wt
		}
		wt.ifi = ifi.Clone()
		wt.watched = true
	}
	for name, wt := range w.want {
		if !names[name] {
			wt.watched = false
		}
	}
	w.mu.Unlock()
	w.wake()
}

func (w *Watcher) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes every Probe waiting for a link.
func (w *Watcher) broadcastLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// Run opens and closes the sockets of the wanted interfaces and runs one
// reader per socket until ctx ends (it returns ctx.Err()) or Close is
// called (it returns ErrClosed). Every socket is closed and every reader
// has returned when Run returns. Run may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	select {
	case <-w.closed:
		w.mu.Unlock()
		return ErrClosed
	default:
	}
	if w.running || w.done != nil {
		w.mu.Unlock()
		return errors.New("guard: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	w.running, w.cancel, w.done = true, cancel, make(chan struct{})
	done := w.done
	w.mu.Unlock()
	defer func() {
		cancel()
		w.closeAll()
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
		close(done)
	}()

	retry := make(map[string]time.Time) // interfaces not to open before a time
	for {
		next := w.reconcile(ctx, retry)
		var timer clock.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = w.clock.NewTimer(next.Sub(w.clock.Now()))
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			select {
			case <-w.closed:
				return ErrClosed
			default:
				return ctx.Err()
			}
		case <-w.kick:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// reconcile closes links no longer wanted, changed or broken, opens wanted
// ones not waiting for a retry, and returns the earliest pending retry (zero
// if none).
func (w *Watcher) reconcile(ctx context.Context, retry map[string]time.Time) time.Time {
	now := w.clock.Now()
	var closing []*link
	var opening []wire.Interface
	w.mu.Lock()
	for name, l := range w.links {
		wt := w.want[name]
		if wt != nil && wt.active() && wt.ifi.Equal(l.ifi) && !l.broken.Load() {
			continue
		}
		delete(w.links, name)
		closing = append(closing, l)
		if l.broken.Load() {
			retry[name] = now.Add(w.retryIv)
		}
	}
	for name, wt := range w.want {
		if !wt.active() {
			delete(w.want, name)
			continue
		}
		if _, ok := w.links[name]; ok {
			continue
		}
		if t, ok := retry[name]; ok && now.Before(t) {
			continue
		}
		opening = append(opening, wt.ifi.Clone())
	}
	for name := range retry {
		if _, ok := w.want[name]; !ok {
			delete(retry, name)
		}
	}
	w.mu.Unlock()

	for _, l := range closing {
		l.close()
		w.log.V(1).Info("stopped watching interface", "interface", l.ifi.Name, "broken", l.broken.Load())
	}
	for _, ifi := range opening {
		if ctx.Err() != nil {
			break
		}
		w.open(ctx, ifi, retry, now)
	}

	var next time.Time
	w.mu.Lock()
	for name, t := range retry {
		if _, open := w.links[name]; open || !now.Before(t) {
			delete(retry, name)
			continue
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	w.mu.Unlock()
	return next
}

// open opens ifi's sockets and starts their readers, or records the failure.
func (w *Watcher) open(ctx context.Context, ifi wire.Interface, retry map[string]time.Time, now time.Time) {
	conns, err := w.listen(ifi)
	if err != nil {
		err = fmt.Errorf("watch interface %s: %w", ifi.Name, err)
		w.metrics.failed(opListen)
		w.log.Error(err, "cannot open sockets, will retry", "interface", ifi.Name, "retryIn", w.retryIv)
		retry[ifi.Name] = now.Add(w.retryIv)
		w.mu.Lock()
		if wt := w.want[ifi.Name]; wt != nil {
			wt.attempts++
			wt.err = err
		}
		w.broadcastLocked()
		w.mu.Unlock()
		return
	}
	l := &link{ifi: ifi, conns: conns, mcast: make(map[[6]byte]int)}
	copy(l.mac[:], ifi.MAC)
	w.mu.Lock()
	wt := w.want[ifi.Name]
	if wt == nil || !wt.active() || !wt.ifi.Equal(ifi) { // changed while opening
		w.mu.Unlock()
		l.close()
		w.wake()
		return
	}
	w.links[ifi.Name] = l
	wt.err = nil
	for _, c := range []struct {
		conn net.PacketConn
		f    family
	}{{conns.ARP, familyIPv4}, {conns.NDP, familyIPv6}} {
		if c.conn != nil {
			l.readers.Add(1)
			go w.read(l, c.conn, c.f)
		}
	}
	w.broadcastLocked()
	w.mu.Unlock()
	w.log.V(1).Info("watching interface", "interface", ifi.Name, "index", ifi.Index)
}

// closeAll closes every link; Run calls it on its way out.
func (w *Watcher) closeAll() {
	w.mu.Lock()
	links := w.links
	w.links = make(map[string]*link)
	w.broadcastLocked()
	w.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// close closes the link's sockets and waits for its readers.
func (l *link) close() {
	l.stopping.Store(true)
	for _, c := range []net.PacketConn{l.conns.ARP, l.conns.NDP} {
		if c != nil {
			c.Close()
		}
	}
	l.readers.Wait()
}

// Close stops Run and every Probe and waits for Run to return. It is
// idempotent and returns nil.
func (w *Watcher) Close() error {
	w.once.Do(func() { close(w.closed) })
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
	}
	done := w.done
	w.mu.Unlock()
	if done != nil {
		<-done
	}
	return nil
}

// frameBufLen holds the largest frame a standard or jumbo MTU carries.
const frameBufLen = 9216 + wire.EthHeaderLen

// read is one socket's reader: it runs until the conn is closed or fails.
func (w *Watcher) read(l *link, conn net.PacketConn, f family) {
	defer l.readers.Done()
	buf := make([]byte, frameBufLen)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if l.stopping.Load() {
				return
			}
			w.metrics.failed(opRead)
			w.log.Error(err, "reading frames failed, reopening", "interface", l.ifi.Name, "family", f.String())
			l.broken.Store(true)
			w.wake()
			return
		}
		outgoing := false
		if a, ok := addr.(*Addr); ok {
			outgoing = a.Outgoing
		}
		w.metrics.frame(f, w.handle(l, f, buf[:n], outgoing))
	}
}

// handle decides what to do with one frame read on l and does it: feeds
// running probes, delivers an Observation. It allocates only to deliver.
func (w *Watcher) handle(l *link, f family, frame []byte, outgoing bool) result {
	var c claim
	var r result
	if f == familyIPv4 {
		c, r = parseARP(frame)
	} else {
		c, r = parseNDP(frame)
	}
	if r != resultNone {
		return r
	}
	if outgoing && c.kind.isProbe() && c.mac == l.mac {
		return resultOwnProbe
	}
	probed := w.nprobes.Load() > 0 && w.feedProbes(l, c, outgoing)
	if !w.vips.Load().Has(c.vip) {
		if probed {
			return resultProbed
		}
		return resultNotManaged
	}
	return w.deliver(l, c, outgoing)
}

// deliver sends an Observation of c unless it is a duplicate or the
// consumer lags.
func (w *Watcher) deliver(l *link, c claim, outgoing bool) result {
	now := w.clock.Now()
	key := dedupKey{vip: c.vip, mac: c.mac, kind: c.kind, outgoing: outgoing}
	w.dedupMu.Lock()
	defer w.dedupMu.Unlock()
	if last, ok := w.dedup[key]; ok && now.Sub(last) < w.dedupIv {
		return resultDeduplicated
	}
	o := Observation{VIP: c.vip, MAC: slices.Clone(c.mac[:]), Kind: c.kind, Interface: l.ifi.Name, Outgoing: outgoing, At: now}
	select {
	case w.obs <- o:
	default:
		w.dropped.Add(1)
		return resultOverflow
	}
	w.sweepLocked(now)
	w.dedup[key] = now
	w.metrics.observed(c.kind, outgoing)
	return resultObserved
}

// sweepLocked forgets deliveries older than the dedup interval, at most
// once per interval, and empties the table when it is full.
func (w *Watcher) sweepLocked(now time.Time) {
	if len(w.dedup) >= maxDedup {
		clear(w.dedup)
		w.lastSweep = now
		return
	}
	if now.Sub(w.lastSweep) < w.dedupIv {
		return
	}
	w.lastSweep = now
	for k, t := range w.dedup {
		if now.Sub(t) >= w.dedupIv {
			delete(w.dedup, k)
		}
	}
}
