package iface

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	testingclock "k8s.io/utils/clock/testing"
)

// waitTimeout bounds every wait for the watcher in tests.
const waitTimeout = 5 * time.Second

// fakeSource is a source fed by the test: dump returns the links and
// addresses it holds, and each subscription gets unbuffered channels, so a
// send returns only once the watcher has taken the update.
type fakeSource struct {
	mu      sync.Mutex // guards links, addrs and dumpErr
	links   []netlink.Link
	addrs   []netlink.Addr
	dumpErr error

	// subs receives every subscription made.
	subs chan *fakeSub
}

type fakeSub struct {
	links   chan netlink.LinkUpdate
	addrs   chan netlink.AddrUpdate
	onErr   func(error)
	stopped chan struct{}
}

func newFakeSource(links ...netlink.Link) *fakeSource {
	return &fakeSource{links: links, subs: make(chan *fakeSub, 10)}
}

func (f *fakeSource) subscribe(onErr func(error)) (*subscription, error) {
	s := &fakeSub{links: make(chan netlink.LinkUpdate), addrs: make(chan netlink.AddrUpdate), onErr: onErr, stopped: make(chan struct{})}
	f.subs <- s
	var once sync.Once
	return &subscription{links: s.links, addrs: s.addrs, stop: func() { once.Do(func() { close(s.stopped) }) }}, nil
}

func (f *fakeSource) dump() ([]netlink.Link, []netlink.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dumpErr != nil {
		return nil, nil, f.dumpErr
	}
	return slices.Clone(f.links), slices.Clone(f.addrs), nil
}

func (f *fakeSource) set(links []netlink.Link, addrs []netlink.Addr, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links, f.addrs, f.dumpErr = links, addrs, err
}

// harness runs a Watcher on a fake source and a fake clock.
type harness struct {
	t     *testing.T
	src   *fakeSource
	clock *testingclock.FakeClock
	snaps chan []Link
	done  chan error
	reg   *prometheus.Registry
	m     *Metrics
}

func startFake(t *testing.T, logger logr.Logger, links ...netlink.Link) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		src:   newFakeSource(links...),
		clock: testingclock.NewFakeClock(time.Unix(1_700_000_000, 0)),
		snaps: make(chan []Link, 100),
		done:  make(chan error, 1),
		reg:   prometheus.NewRegistry(),
	}
	h.m = NewMetrics(h.reg)
	w := newWatcher(WatcherOptions{Logger: logger, Clock: h.clock, Metrics: h.m}, h.src)
	ctx, cancel := context.WithCancel(context.Background())
	var calls sync.Mutex
	go func() {
		h.done <- w.Run(ctx, func(ls []Link) {
			if !calls.TryLock() {
				t.Errorf("out called concurrently")
				return
			}
			defer calls.Unlock()
			h.snaps <- ls
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) sub() *fakeSub {
	h.t.Helper()
	select {
	case s := <-h.src.subs:
		return s
	case <-time.After(waitTimeout):
		h.t.Fatalf("no subscription within %v", waitTimeout)
		return nil
	}
}

func (h *harness) snapshot() []Link {
	h.t.Helper()
	select {
	case s := <-h.snaps:
		return s
	case <-time.After(waitTimeout):
		h.t.Fatalf("no snapshot within %v", waitTimeout)
		return nil
	}
}

func (h *harness) noSnapshot() {
	h.t.Helper()
	select {
	case s := <-h.snaps:
		h.t.Fatalf("unexpected snapshot %v", names(s))
	default:
	}
}

// waitTimers waits until the watcher has n timers running.
func (h *harness) waitTimers(n int) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for h.clock.Waiters() != n {
		if time.Now().After(deadline) {
			h.t.Fatalf("watcher has %d timers, want %d", h.clock.Waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func names(ls []Link) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

func find(ls []Link, name string) (Link, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

func linkUpdate(typ uint16, l netlink.Link) netlink.LinkUpdate {
	var u netlink.LinkUpdate
	u.Header.Type = typ
	u.Link = l
	return u
}

func addrUpdate(index int, cidr string, add bool) netlink.AddrUpdate {
	return netlink.AddrUpdate{LinkIndex: index, LinkAddress: *ipnet(cidr), Scope: unix.RT_SCOPE_UNIVERSE, NewAddr: add}
}

func loLink() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, OperState: netlink.OperUnknown}}
}

func TestWatcherDebouncesAddressBursts(t *testing.T) {
	h := startFake(t, logr.Discard(), loLink(), veth(2, "a0", "02:00:00:00:00:02", 0))
	s := h.sub()
	if diff := cmp.Diff([]string{"a0", "lo"}, names(h.snapshot())); diff != "" {
		t.Fatalf("first snapshot (-want +got):\n%s", diff)
	}
	s.addrs <- addrUpdate(2, "198.51.100.2/24", true)
	s.addrs <- addrUpdate(2, "2001:db8:1::2/64", true)
	s.addrs <- addrUpdate(2, "203.0.113.2/24", true)
	s.addrs <- addrUpdate(2, "203.0.113.2/24", false)
	h.waitTimers(1)
	h.noSnapshot()
	h.clock.Step(DefaultDebounce)
	got, _ := find(h.snapshot(), "a0")
	if diff := cmp.Diff(prefixes("198.51.100.2/24", "2001:db8:1::2/64"), got.Prefixes, cmpLinks); diff != "" {
		t.Errorf("prefixes after burst (-want +got):\n%s", diff)
	}
	h.waitTimers(0)
	h.noSnapshot()
	if got := testutil.ToFloat64(h.m.Events.WithLabelValues("addr")); got != 4 {
		t.Errorf("addr events = %v, want 4", got)
	}
	if got := testutil.ToFloat64(h.m.Snapshots); got != 2 {
		t.Errorf("snapshots = %v, want 2", got)
	}
}

func TestWatcherDeliversNewLinkAtOnce(t *testing.T) {
	h := startFake(t, logr.Discard(), loLink(), veth(2, "a0", "02:00:00:00:00:02", 0))
	s := h.sub()
	h.snapshot()
	// A pending debounced change goes out with the new link.
	s.addrs <- addrUpdate(2, "198.51.100.2/24", true)
	s.links <- linkUpdate(unix.RTM_NEWLINK, veth(3, "b0", "02:00:00:00:00:03", 0))
	snap := h.snapshot()
	if diff := cmp.Diff([]string{"a0", "b0", "lo"}, names(snap)); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	a0, _ := find(snap, "a0")
	if diff := cmp.Diff(prefixes("198.51.100.2/24"), a0.Prefixes, cmpLinks); diff != "" {
		t.Errorf("a0 prefixes (-want +got):\n%s", diff)
	}
	h.waitTimers(0) // the debounce timer was stopped
}

func TestWatcherSkipsUnchangedSnapshots(t *testing.T) {
	h := startFake(t, logr.Discard(), loLink(), veth(2, "a0", "02:00:00:00:00:02", 0))
	s := h.sub()
	h.snapshot()
	// The same link again (rtnetlink repeats links for many reasons), and an
	// address of host scope, which is not listed.
	s.links <- linkUpdate(unix.RTM_NEWLINK, veth(2, "a0", "02:00:00:00:00:02", 0))
	s.addrs <- netlink.AddrUpdate{LinkIndex: 1, LinkAddress: *ipnet("127.0.0.1/8"), Scope: unix.RT_SCOPE_HOST, NewAddr: true}
	h.waitTimers(1)
	h.clock.Step(DefaultDebounce)
	h.waitTimers(0)
	// The next snapshot is the one with the deletion: nothing came in between.
	s.links <- linkUpdate(unix.RTM_DELLINK, veth(2, "a0", "02:00:00:00:00:02", 0))
	h.waitTimers(1)
	h.clock.Step(DefaultDebounce)
	if diff := cmp.Diff([]string{"lo"}, names(h.snapshot())); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

func TestWatcherResubscribesAndRelists(t *testing.T) {
	var logs logBuffer
	h := startFake(t, logs.logger(), loLink())
	s1 := h.sub()
	h.snapshot()

	// The subscription ends (netlink closes the channel on a receive error)
	// and the first listing after it fails too.
	h.src.set(nil, nil, errors.New("dump interrupted for the test"))
	close(s1.links)
	<-s1.stopped
	h.waitTimers(1)
	h.clock.Step(minBackoff)
	s2 := h.sub()
	<-s2.stopped
	h.src.set([]netlink.Link{loLink(), veth(5, "late0", "02:00:00:00:00:05", 0)},
		[]netlink.Addr{{IPNet: ipnet("198.51.100.5/24"), LinkIndex: 5}}, nil)
	h.waitTimers(1)
	// The wait doubled: after minBackoff the timer is still pending.
	h.clock.Step(minBackoff)
	if n, subs := h.clock.Waiters(), len(h.src.subs); n != 1 || subs != 0 {
		t.Fatalf("after %v of the second wait: %d timers, %d new subscriptions; want the timer still pending", minBackoff, n, subs)
	}
	h.clock.Step(minBackoff)
	s3 := h.sub()
	snap := h.snapshot()
	late, ok := find(snap, "late0")
	if !ok {
		t.Fatalf("late0 missing from %v", names(snap))
	}
	if diff := cmp.Diff(prefixes("198.51.100.5/24"), late.Prefixes, cmpLinks); diff != "" {
		t.Errorf("late0 prefixes (-want +got):\n%s", diff)
	}
	// The new subscription is live.
	s3.links <- linkUpdate(unix.RTM_NEWLINK, veth(6, "newer0", "02:00:00:00:00:06", 0))
	if diff := cmp.Diff([]string{"late0", "lo", "newer0"}, names(h.snapshot())); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(h.m.Resubscriptions); got != 2 {
		t.Errorf("resubscriptions = %v, want 2", got)
	}
	if got := logs.count("interface watch interrupted"); got != 2 {
		t.Errorf("logged %d interruptions, want 2:\n%s", got, logs.String())
	}
}

func TestWatcherStopsWithContext(t *testing.T) {
	src := newFakeSource(loLink())
	w := newWatcher(WatcherOptions{Clock: testingclock.NewFakeClock(time.Unix(0, 0))}, src)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	snaps := make(chan []Link, 10)
	go func() { done <- w.Run(ctx, func(ls []Link) { snaps <- ls }) }()
	s := <-src.subs
	<-snaps
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
	select {
	case <-s.stopped:
	default:
		t.Error("Run returned with its subscription running")
	}
	if err := w.Run(context.Background(), nil); err == nil {
		t.Error("Run with a nil out did not fail")
	}
}

func TestWatcherRateLimitsNetlinkErrors(t *testing.T) {
	var logs logBuffer
	h := startFake(t, logs.logger(), loLink())
	s := h.sub()
	h.snapshot()
	for range 5 {
		s.onErr(errors.New("error message: no buffer space available"))
	}
	if got := logs.count("netlink subscription error"); got != 1 {
		t.Errorf("logged %d errors, want 1", got)
	}
	h.clock.Step(errorLogInterval)
	s.onErr(errors.New("error message: no buffer space available"))
	if got := logs.count(`"suppressed"=4`); got != 1 {
		t.Errorf("want one log reporting 4 suppressed errors:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(h.m.Errors); got != 6 {
		t.Errorf("errors = %v, want 6", got)
	}
}

// logBuffer collects log lines from a funcr logger.
type logBuffer struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lines = append(b.lines, args)
	}, funcr.Options{})
}

func (b *logBuffer) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
