// Package stall detects that this process was not running — a CPU stall, a SIGSTOP, a paused VM — so that a
// node that wakes up does not answer for addresses another node took over while it was gone.
package stall

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// Defaults for Config.
const (
	DefaultInterval  = 50 * time.Millisecond
	DefaultThreshold = 250 * time.Millisecond
)

// Config configures a Detector. The zero value is usable.
type Config struct {
	// Clock drives the ticker and is read by Fresh; default clock.RealClock{}.
	// Durations are measured with Since from a time taken in New, so a real
	// clock measures them on the monotonic clock and wall-clock steps (NTP,
	// date -s) are neither stalls nor hide one.
	Clock clock.WithTicker
	// Interval is how often Run ticks; default 50ms.
	Interval time.Duration
	// Threshold is the longest gap between two ticks that is not a stall;
	// default 250ms. Values not above Interval are raised to 5*Interval.
	Threshold time.Duration
	// Metrics records stalls; nil records nothing.
	Metrics *Metrics
}

// Detector notices gaps in its own execution. Run ticks every Interval; a
// tick that arrives more than Threshold after the previous one is a stall:
// the Detector becomes suspended, reports the gap on Stalls, and Fresh stays
// false until the owner, having withdrawn whatever it announced, calls
// Resume. Fresh also turns false by itself as soon as the last tick is older
// than Threshold, so code that runs after a resume but before Run's first
// tick already sees false.
//
// What the clock cannot see is not detected: on Linux Go's monotonic clock
// is CLOCK_MONOTONIC, which advances across SIGSTOP, CPU starvation and
// most hypervisor pauses (kvmclock), but not across a suspend to RAM of the
// machine itself.
//
// Fresh, Resume and Stalls are safe from any goroutine and take no lock.
type Detector struct {
	clk       clock.WithTicker
	interval  time.Duration
	threshold time.Duration
	metrics   *Metrics
	origin    time.Time // taken in New; every instant is stored as clk.Since(origin)

	// last is the instant (nanoseconds since origin) of the latest tick.
	last atomic.Int64
	// suspended is set on a stall, before last moves, and cleared by Resume.
	suspended atomic.Bool
	// stalls carries the length of the latest stall not yet received.
	stalls chan time.Duration

	// longest is the longest stall seen; owned by the Run goroutine.
	longest time.Duration
}

// New returns a Detector whose last tick is now: Fresh is true until
// Threshold has passed without Run ticking, or a stall is detected.
func New(cfg Config) *Detector {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Threshold <= cfg.Interval {
		cfg.Threshold = 5 * cfg.Interval
	}
	return &Detector{
		clk:       cfg.Clock,
		interval:  cfg.Interval,
		threshold: cfg.Threshold,
		metrics:   cfg.Metrics,
		origin:    cfg.Clock.Now(),
		stalls:    make(chan time.Duration, 1),
	}
}

// now is the time since origin.
func (d *Detector) now() int64 { return int64(d.clk.Since(d.origin)) }

// Run ticks every Interval until ctx is done. Its start counts as a tick,
// so time between New and Run is not a stall (Fresh was already false
// meanwhile if it exceeded Threshold). Run must not be called twice at once.
func (d *Detector) Run(ctx context.Context) {
	d.last.Store(d.now())
	t := d.clk.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			d.tick(d.now())
		}
	}
}

// tick records a tick at now (nanoseconds since origin). The tick's own
// timestamp is not used: after a stall the runtime delivers it late, and
// the clock read here is what tells how late.
func (d *Detector) tick(now int64) {
	gap := time.Duration(now - d.last.Load())
	if gap > d.threshold {
		// Suspend before last moves: a Fresh that sees the new last also
		// sees the suspension.
		d.suspended.Store(true)
		d.last.Store(now)
		if gap > d.longest {
			d.longest = gap
		}
		d.metrics.stalled(gap, d.longest)
		select {
		case <-d.stalls: // latest wins
		default:
		}
		select {
		case d.stalls <- gap:
		default:
		}
		return
	}
	d.last.Store(now)
}

// Fresh reports whether this process has been running continuously: no
// stall since the last Resume, and a tick within Threshold. It costs a clock
// read and two atomic loads.
func (d *Detector) Fresh() bool {
	if d.suspended.Load() {
		return false
	}
	return time.Duration(d.now()-d.last.Load()) <= d.threshold
}

// Stalls delivers the length of every stall. It has capacity 1 and the
// latest stall replaces one not yet received.
func (d *Detector) Stalls() <-chan time.Duration { return d.stalls }

// Resume ends the suspension after a stall: the owner has withdrawn
// everything it announced. Fresh may then return true again (once Run has
// ticked within Threshold).
func (d *Detector) Resume() { d.suspended.Store(false) }

// Metrics are the detector's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	stalls  prometheus.Counter
	longest prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
// It panics, like prometheus.MustRegister, if they are already registered.
//
//   - herald_stall_stalls_total: stalls detected.
//   - herald_stall_longest_seconds: the longest stall seen by this process.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_stall_stalls_total",
			Help: "Times this process was found not to have run for longer than the stall threshold.",
		}),
		longest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_stall_longest_seconds",
			Help: "Longest stall detected since the process started, in seconds.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.stalls, m.longest)
	}
	return m
}

func (m *Metrics) stalled(_, longest time.Duration) {
	if m == nil {
		return
	}
	m.stalls.Inc()
	m.longest.Set(longest.Seconds())
}
