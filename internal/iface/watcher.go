package iface

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

const (
	// DefaultDebounce is how long a Watcher lets a burst of changes gather
	// before delivering a snapshot, unless a new link appears.
	DefaultDebounce = 5 * time.Millisecond
	// minBackoff and maxBackoff bound the wait before subscribing again.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// errorLogInterval is the least time between two logged netlink errors.
	errorLogInterval = 10 * time.Second
	// subscriptionBuffer is the capacity of the notification channels.
	subscriptionBuffer = 256
	// receiveBuffer is the socket receive buffer asked for, to make overruns
	// (ENOBUFS) rare during bursts.
	receiveBuffer = 1 << 20
)

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	// Namespace is the network namespace watched; 0 means the current one.
	Namespace netns.NsHandle
	Logger    logr.Logger
	// Clock times debouncing and re-subscription; nil means the real clock.
	Clock clock.Clock
	// Metrics are updated when set.
	Metrics *Metrics
	// Debounce is how long changes gather before a snapshot; 0 means
	// DefaultDebounce.
	Debounce time.Duration
}

// Watcher keeps the inventory current from netlink link and address subscriptions (not polling): after every
// change it delivers a fresh, sorted snapshot. Debounce bursts a little (a few ms) but never delay a new link.
type Watcher struct {
	src      source
	ns       netns.NsHandle
	log      logr.Logger
	clock    clock.Clock
	metrics  *Metrics
	debounce time.Duration
	errs     *errorLog
}

// NewWatcher returns a Watcher of opts.Namespace. It does nothing until Run.
func NewWatcher(opts WatcherOptions) *Watcher {
	return newWatcher(opts, netlinkSource{ns: opts.Namespace})
}

// newWatcher returns a Watcher reading from src.
func newWatcher(opts WatcherOptions, src source) *Watcher {
	w := &Watcher{
		src:      src,
		ns:       opts.Namespace,
		log:      opts.Logger,
		clock:    opts.Clock,
		metrics:  opts.Metrics,
		debounce: opts.Debounce,
	}
	if w.clock == nil {
		w.clock = clock.RealClock{}
	}
	if w.debounce <= 0 {
		w.debounce = DefaultDebounce
	}
	w.errs = &errorLog{log: w.log, clock: w.clock, metrics: w.metrics, ns: nsName(w.ns)}
	return w
}

// Run lists the links once and calls out with the snapshot, then calls it again after every change that alters
// the snapshot. out is called from Run's goroutine only, never concurrently, and owns the slice it is given.
// When the subscription fails (for instance the socket overran and lost notifications) or listing fails, Run
// waits a little, subscribes again and lists again, forever. It returns ctx.Err() once ctx is done, after its
// subscriptions have stopped.
func (w *Watcher) Run(ctx context.Context, out func([]Link)) error {
	if out == nil {
		return errors.New("iface: Watcher.Run needs an out function")
	}
	var st runState
	backoff := minBackoff
	for {
		start := w.clock.Now()
		err := w.session(ctx, out, &st)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if w.clock.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		w.log.Error(err, "interface watch interrupted; subscribing and listing again", "namespace", nsName(w.ns), "backoff", backoff)
		if w.metrics != nil {
			w.metrics.Resubscriptions.Inc()
		}
		t := w.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runState is what Run carries across sessions.
type runState struct {
	// last is a private copy of the snapshot last delivered.
	last      []Link
	delivered bool
}

var errSubscriptionEnded = errors.New("subscription ended")

// session subscribes, lists, delivers, and follows notifications until the
// subscription ends or ctx is done. It returns with the subscription stopped.
func (w *Watcher) session(ctx context.Context, out func([]Link), st *runState) error {
	sub, err := w.src.subscribe(w.errs.report)
	if err != nil {
		return err
	}
	defer sub.stop()
	links, addrs, err := w.src.dump()
	if err != nil {
		return err
	}
	inv := build(links, addrs)
	w.deliver(inv, out, st)

	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	flushNow := func() {
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		w.deliver(inv, out, st)
	}
	later := func() {
		if timer == nil {
			timer = w.clock.NewTimer(w.debounce)
		}
	}
	for {
		var fire <-chan time.Time
		if timer != nil {
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-sub.links:
			if !ok {
				return fmt.Errorf("link notifications in %s: %w", nsName(w.ns), errSubscriptionEnded)
			}
			w.count("link")
			if applyLink(inv, u) {
				flushNow()
			} else {
				later()
			}
		case u, ok := <-sub.addrs:
			if !ok {
				return fmt.Errorf("address notifications in %s: %w", nsName(w.ns), errSubscriptionEnded)
			}
			w.count("addr")
			inv.setAddr(u.LinkIndex, &u.LinkAddress, u.Scope, u.NewAddr)
			later()
		case <-fire:
			timer = nil
			w.deliver(inv, out, st)
		}
	}
}

func (w *Watcher) count(kind string) {
	if w.metrics != nil {
		w.metrics.Events.WithLabelValues(kind).Inc()
	}
}

// applyLink applies a link notification and reports whether it announced a
// link not known before. Notifications of the AF_BRIDGE family describe a
// bridge port's bridging state (an RTM_DELLINK of that family only means
// the port left its bridge) and are ignored; the AF_UNSPEC ones that come
// with them carry the link itself.
func applyLink(inv *inventory, u netlink.LinkUpdate) bool {
	if u.IfInfomsg.Family == unix.AF_BRIDGE || u.Link == nil {
		return false
	}
	idx := u.Link.Attrs().Index
	if u.Header.Type == unix.RTM_DELLINK {
		inv.deleteLink(idx)
		return false
	}
	_, known := inv.links[idx]
	inv.setLink(u.Link)
	return !known
}

// deliver calls out with a fresh snapshot unless it equals the last one
// delivered.
func (w *Watcher) deliver(inv *inventory, out func([]Link), st *runState) {
	snap := inv.snapshot()
	if st.delivered && slices.EqualFunc(snap, st.last, func(a, b Link) bool { return a.equal(&b) }) {
		return
	}
	st.last, st.delivered = inv.snapshot(), true
	if w.metrics != nil {
		w.metrics.Snapshots.Inc()
	}
	out(snap)
}

// errorLog reports errors from the netlink receive goroutines, logging at
// most one per errorLogInterval with the number suppressed since.
type errorLog struct {
	log     logr.Logger
	clock   clock.PassiveClock
	metrics *Metrics
	ns      string

	mu         sync.Mutex // guards last and suppressed
	last       time.Time
	suppressed int
}

func (e *errorLog) report(err error) {
	if e.metrics != nil {
		e.metrics.Errors.Inc()
	}
	e.mu.Lock()
	now := e.clock.Now()
	if !e.last.IsZero() && now.Sub(e.last) < errorLogInterval {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	e.log.Error(err, "netlink subscription error", "namespace", e.ns, "suppressed", suppressed)
}

// source is where a Watcher's events come from: rtnetlink in production,
// channels in tests.
type source interface {
	// subscribe starts link and address notifications, reporting
	// subscription errors to onErr. Each channel closes when its
	// subscription ends.
	subscribe(onErr func(error)) (*subscription, error)
	// dump lists all links and all addresses.
	dump() ([]netlink.Link, []netlink.Addr, error)
}

// subscription is a running pair of notification streams.
type subscription struct {
	links <-chan netlink.LinkUpdate
	addrs <-chan netlink.AddrUpdate
	// stop ends both streams and returns once both channels are closed;
	// it may be called more than once.
	stop func()
}

// netlinkSource reads rtnetlink in namespace ns.
type netlinkSource struct {
	ns netns.NsHandle
}

func (s netlinkSource) subscribe(onErr func(error)) (*subscription, error) {
	var nsp *netns.NsHandle
	if !isCurrent(s.ns) {
		ns := s.ns
		nsp = &ns
	}
	var stopping atomic.Bool
	cb := func(err error) {
		if !stopping.Load() {
			onErr(err)
		}
	}
	done := make(chan struct{})
	lch := make(chan netlink.LinkUpdate, subscriptionBuffer)
	ach := make(chan netlink.AddrUpdate, subscriptionBuffer)
	if err := netlink.LinkSubscribeWithOptions(lch, done, netlink.LinkSubscribeOptions{
		Namespace: nsp, ErrorCallback: cb, ReceiveBufferSize: receiveBuffer,
	}); err != nil {
		stopping.Store(true)
		close(done)
		return nil, fmt.Errorf("subscribe to links in %s: %w", nsName(s.ns), err)
	}
	if err := netlink.AddrSubscribeWithOptions(ach, done, netlink.AddrSubscribeOptions{
		Namespace: nsp, ErrorCallback: cb, ReceiveBufferSize: receiveBuffer,
	}); err != nil {
		stopping.Store(true)
		close(done)
		for range lch {
		}
		return nil, fmt.Errorf("subscribe to addresses in %s: %w", nsName(s.ns), err)
	}
	var once sync.Once
	return &subscription{
		links: lch,
		addrs: ach,
		stop: func() {
			once.Do(func() {
				stopping.Store(true)
				close(done)
				// netlink's receive goroutines close the channels once their
				// sockets are closed; drain so neither blocks on a send.
				for range lch {
				}
				for range ach {
				}
			})
		},
	}, nil
}

func (s netlinkSource) dump() ([]netlink.Link, []netlink.Addr, error) {
	h, err := newHandle(s.ns)
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	links, addrs, err := dump(h)
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces in %s: %w", nsName(s.ns), err)
	}
	return links, addrs, nil
}
