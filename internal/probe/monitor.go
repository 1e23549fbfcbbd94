package probe

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/wire"
)

// Monitor defaults.
const (
	DefaultMonitorInterval = 5 * time.Second
	DefaultMonitorWait     = 250 * time.Millisecond
	DefaultMonitorAttempts = 3
	DefaultMaxInFlight     = 4096
	// monitorSlots is how many slots an interval is cut into: each target is probed in the slot its address
	// hashes to, so that probes spread evenly over the interval whatever the number of targets.
	monitorSlots = 100
)

// Target is an address to watch and where to ask from.
type Target struct {
	Addr netip.Addr
	// Link is the interface the requests leave from.
	Link wire.Interface
	// Source is the requests' sender address: an IPv4 address (0.0.0.0 makes ARP probes) for an IPv4 Addr, an
	// IPv6 unicast address (link-local will do) for an IPv6 one.
	Source netip.Addr
}

// Round is the outcome of probing one target once: up to Attempts requests, WaitPerAttempt apart, stopping at
// the first that is answered.
type Round struct {
	Target Target
	// Sent is when the round's first request went out.
	Sent time.Time
	// Replies are every answer read, over all attempts.
	Replies []Reply
	// Attempts is the number of requests sent.
	Attempts int
	// Confirm says the round was asked for by Confirm rather than the schedule.
	Confirm bool
	// Err is why the round could not probe (a socket that would not open, a failed send).
	Err error
}

// MonitorConfig configures a Monitor. Zero fields take the defaults.
type MonitorConfig struct {
	Interval    time.Duration // how often each target is probed
	Wait        time.Duration // how long an attempt listens for answers
	Attempts    int           // requests per round while none is answered
	MaxInFlight int           // rounds running at once; a target due while at the limit waits for its next slot
	Clock       clock.WithTicker
	Logger      logr.Logger
	// Open opens a Prober; default New with this Monitor's clock.
	Open func(ifi wire.Interface, src netip.Addr) (*Prober, error)
}

// MonitorStats are a Monitor's counts since it started.
type MonitorStats struct {
	Rounds, Requests, Skipped, Dropped uint64
}

// Monitor probes a set of targets, each once an interval, spreading the rounds evenly over the interval (by a
// hash of the address, so a target keeps its phase when others come and go), and delivers each round's outcome
// on Rounds. It opens one Prober per interface and source address and closes those no target uses any more.
type Monitor struct {
	cfg     MonitorConfig
	set     chan []Target // capacity 1, the latest wins
	confirm chan netip.Addr
	rounds  chan Round
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // rounds in flight

	mu    sync.Mutex // guards stats
	stats MonitorStats

	// owned by run
	slots    [monitorSlots][]Target
	byAddr   map[netip.Addr]Target
	probers  map[proberKey]*Prober
	inFlight int
	finished chan struct{}
}

type proberKey struct {
	index int
	src   netip.Addr
}

// NewMonitor returns a Monitor; Run starts it.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultMonitorInterval
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultMonitorWait
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultMonitorAttempts
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger.GetSink() == nil {
		cfg.Logger = logr.Discard()
	}
	if cfg.Open == nil {
		clk := cfg.Clock
		cfg.Open = func(ifi wire.Interface, src netip.Addr) (*Prober, error) { return New(ifi, src, WithClock(clk)) }
	}
	return &Monitor{cfg: cfg, set: make(chan []Target, 1), confirm: make(chan netip.Addr, 256),
		rounds: make(chan Round, 1024), done: make(chan struct{}), stopped: make(chan struct{}),
		byAddr: map[netip.Addr]Target{}, probers: map[proberKey]*Prober{}, finished: make(chan struct{}, 1024)}
}

// SetTargets replaces the watched targets; it never blocks.
func (m *Monitor) SetTargets(ts []Target) {
	for {
		select {
		case m.set <- ts:
			return
		default:
		}
		select {
		case <-m.set:
		default:
		}
	}
}

// Confirm asks for a round of addr's target at the next slot, out of schedule (to confirm a bad verdict).
// It never blocks; a request that does not fit is dropped (the schedule probes addr again anyway).
func (m *Monitor) Confirm(addr netip.Addr) {
	select {
	case m.confirm <- addr:
	default:
	}
}

// Rounds delivers the rounds' outcomes. A round whose outcome finds the channel full is dropped and counted.
func (m *Monitor) Rounds() <-chan Round { return m.rounds }

// Stats returns the counts so far.
func (m *Monitor) Stats() MonitorStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close stops the Monitor, waits for the rounds in flight and closes its Probers. It is idempotent; Run need
// not have been called.
func (m *Monitor) Close() {
	m.once.Do(func() { close(m.done) })
}

// Run probes until ctx ends or Close; it returns once the rounds in flight are done and the Probers closed.
func (m *Monitor) Run(ctx context.Context) {
	defer close(m.stopped)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slotLen := m.cfg.Interval / monitorSlots
	tick := m.cfg.Clock.NewTicker(slotLen)
	defer func() {
		tick.Stop()
		cancel()
		m.wg.Wait()
		for k, p := range m.probers {
			_ = p.Close()
			delete(m.probers, k)
		}
	}()
	start := m.cfg.Clock.Now()
	var next int // the next slot to run
	var urgent []netip.Addr
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.done:
			return
		case ts := <-m.set:
			m.apply(ts)
			continue
		case a := <-m.confirm:
			urgent = append(urgent, a)
			continue
		case <-m.finished:
			m.inFlight--
			continue
		case now := <-tick.C():
			// Run every slot whose time has come (a late tick catches up).
			due := int(now.Sub(start) / slotLen)
			for ; next <= due; next++ {
				for _, t := range m.slots[next%monitorSlots] {
					m.start(ctx, t, false)
				}
			}
			for _, a := range urgent {
				if t, ok := m.byAddr[a]; ok {
					m.start(ctx, t, true)
				}
			}
			urgent = urgent[:0]
		}
	}
}

// slotOf is the slot addr is probed in.
func slotOf(addr netip.Addr) int {
	h := fnv.New32a()
	b := addr.As16()
	h.Write(b[:])
	return int(h.Sum32() % monitorSlots)
}

func (m *Monitor) apply(ts []Target) {
	for i := range m.slots {
		m.slots[i] = m.slots[i][:0]
	}
	clear(m.byAddr)
	used := map[proberKey]bool{}
	for _, t := range ts {
		if (t.Link.Index == 0 && t.Link.Name == "") || !t.Addr.IsValid() {
			continue
		}
		t.Addr = t.Addr.Unmap()
		m.byAddr[t.Addr] = t
		s := slotOf(t.Addr)
		m.slots[s] = append(m.slots[s], t)
		used[proberKey{t.Link.Index, t.Source}] = true
	}
	for k, p := range m.probers {
		if !used[k] {
			_ = p.Close() // rounds still using it end with net.ErrClosed
			delete(m.probers, k)
		}
	}
}

func (m *Monitor) prober(t Target) (*Prober, error) {
	k := proberKey{t.Link.Index, t.Source}
	if p, ok := m.probers[k]; ok {
		return p, nil
	}
	p, err := m.cfg.Open(t.Link, t.Source)
	if err != nil {
		return nil, fmt.Errorf("probing from %s on %s: %w", t.Source, t.Link.Name, err)
	}
	m.probers[k] = p
	return p, nil
}

// start begins a round for t unless MaxInFlight rounds run already.
func (m *Monitor) start(ctx context.Context, t Target, confirm bool) {
	if m.inFlight >= m.cfg.MaxInFlight {
		m.count(func(s *MonitorStats) { s.Skipped++ })
		return
	}
	p, err := m.prober(t)
	if err != nil {
		m.deliver(Round{Target: t, Sent: m.cfg.Clock.Now(), Confirm: confirm, Err: err})
		return
	}
	m.inFlight++
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r := Round{Target: t, Sent: m.cfg.Clock.Now(), Confirm: confirm}
		for r.Attempts < m.cfg.Attempts {
			r.Attempts++
			replies, err := p.Once(ctx, t.Addr, m.cfg.Wait)
			for i := range replies {
				// RTTs from the round's first request: a late answer to an earlier attempt is no faster.
				replies[i].RTT = replies[i].At.Sub(r.Sent)
				replies[i].Seq = r.Attempts
			}
			r.Replies = append(r.Replies, replies...)
			if err != nil {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
					r.Err = err
				}
				break
			}
			if len(r.Replies) > 0 {
				break
			}
		}
		m.count(func(s *MonitorStats) { s.Rounds++; s.Requests += uint64(r.Attempts) })
		if ctx.Err() == nil {
			m.deliver(r)
		}
		select {
		case m.finished <- struct{}{}:
		case <-ctx.Done():
		}
	}()
}

func (m *Monitor) deliver(r Round) {
	select {
	case m.rounds <- r:
	default:
		m.count(func(s *MonitorStats) { s.Dropped++ })
	}
}

func (m *Monitor) count(f func(*MonitorStats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}
