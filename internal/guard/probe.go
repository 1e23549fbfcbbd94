package guard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/wire"
)

// ProbeConfig says how to probe. Zero fields take the defaults: Count 3,
// Interval 30ms, Wait 40ms after the last probe (about 100ms in all).
type ProbeConfig struct {
	Count    int           // probe frames to send
	Interval time.Duration // between two probe frames
	Wait     time.Duration // listening after the last one
}

// Defaults for ProbeConfig.
const (
	DefaultProbeCount    = 3
	DefaultProbeInterval = 30 * time.Millisecond
	DefaultProbeWait     = 40 * time.Millisecond
)

func (pc ProbeConfig) withDefaults() ProbeConfig {
	if pc.Count <= 0 {
		pc.Count = DefaultProbeCount
	}
	if pc.Interval <= 0 {
		pc.Interval = DefaultProbeInterval
	}
	if pc.Wait <= 0 {
		pc.Wait = DefaultProbeWait
	}
	return pc
}

// Responder is a MAC that claimed the probed VIP during a probe.
type Responder struct {
	MAC      net.HardwareAddr
	Kind     Kind      // the first claim seen from MAC
	Outgoing bool      // sent by this host (e.g. our kernel owns the address)
	At       time.Time // Config.Clock time the first claim from MAC was read
}

// maxResponders bounds what one probe keeps (a flood of claims from random
// MACs cannot grow it); more than a handful already means "claimed".
const maxResponders = 64

// probeKey is what a running probe listens for.
type probeKey struct {
	ifIndex int
	vip     netip.Addr
}

// probeRun is one running Probe; Watcher.probeMu guards responders.
type probeRun struct {
	responders []Responder
}

// add records a claim from a MAC not yet seen; the caller holds probeMu.
func (p *probeRun) addLocked(c claim, outgoing bool, at time.Time) {
	if len(p.responders) >= maxResponders {
		return
	}
	for _, r := range p.responders {
		if [6]byte(r.MAC) == c.mac {
			return
		}
	}
	p.responders = append(p.responders, Responder{MAC: slices.Clone(c.mac[:]), Kind: c.kind, Outgoing: outgoing, At: at})
}

// feedProbes gives c to the probes running for its VIP on l and reports
// whether there were any.
func (w *Watcher) feedProbes(l *link, c claim, outgoing bool) bool {
	w.probeMu.Lock()
	defer w.probeMu.Unlock()
	runs := w.probes[probeKey{ifIndex: l.ifi.Index, vip: c.vip}]
	if len(runs) == 0 {
		return false
	}
	at := w.clock.Now()
	for _, p := range runs {
		p.addLocked(c, outgoing, at)
	}
	return true
}

func (w *Watcher) register(k probeKey, p *probeRun) {
	w.probeMu.Lock()
	w.probes[k] = append(w.probes[k], p)
	w.probeMu.Unlock()
	w.nprobes.Add(1)
}

// unregister removes p and returns a copy of its responders.
func (w *Watcher) unregister(k probeKey, p *probeRun) []Responder {
	w.nprobes.Add(-1)
	w.probeMu.Lock()
	defer w.probeMu.Unlock()
	runs := slices.DeleteFunc(w.probes[k], func(q *probeRun) bool { return q == p })
	if len(runs) == 0 {
		delete(w.probes, k)
	} else {
		w.probes[k] = runs
	}
	return slices.Clone(p.responders)
}

// Probe checks whether anyone else claims vip on ifi before this host
// announces it. For IPv4 it sends RFC 5227 ARP probes (broadcast request
// from ifi.MAC, sender IP 0.0.0.0, target hardware address zero, target IP
// vip); for IPv6, RFC 4862 Duplicate Address Detection Neighbor
// Solicitations (source ::, to the solicited-node address of vip and its
// 33:33:ff MAC, hop limit 255, no source link-layer option), joining that
// group on ifi for the probe's duration so that another host's DAD for vip
// is seen too. It sends pc.Count frames pc.Interval apart (paced with all
// other probes by Config.ProbeRate) and returns every distinct MAC that
// claimed vip on ifi, in any way an Observation reports, from just before
// the first frame until pc.Wait after the last. Our own probes (outgoing
// frames from ifi.MAC) are not responders; this host's kernel answering is
// (Outgoing set).
//
// Probe uses the watched sockets of ifi, opening them (through Run) if ifi
// is not watched; it waits for Run to have them open, and fails if opening
// fails. If ifi's name is watched with another index, it fails. vip need
// not be in SetVIPs. Any number of Probes may run at once. When ctx ends or
// the Watcher is closed, Probe returns what it saw so far with ctx.Err() or
// ErrClosed. A failed send is tried again, up to 2*pc.Count sends in all;
// if none went out, Probe returns what was seen and the last send's error.
func (w *Watcher) Probe(ctx context.Context, ifi wire.Interface, vip netip.Addr, pc ProbeConfig) ([]Responder, error) {
	pc = pc.withDefaults()
	vip, ok := wire.NormalizeVIP(vip)
	if !ok {
		return nil, fmt.Errorf("probe on %s: %v cannot be probed", ifi.Name, vip)
	}
	if len(ifi.MAC) != 6 || ifi.Index <= 0 || ifi.Name == "" {
		return nil, fmt.Errorf("probe for %s: interface %q (index %d, MAC %v) is not a usable Ethernet interface",
			vip, ifi.Name, ifi.Index, ifi.MAC)
	}
	ifi = ifi.Clone()
	l, release, err := w.acquire(ctx, ifi)
	if err != nil {
		return nil, fmt.Errorf("probe for %s on %s: %w", vip, ifi.Name, err)
	}
	defer release()

	f, conn := familyIPv4, l.conns.ARP
	var frame []byte
	var dst net.HardwareAddr
	if vip.Is4() {
		frame = make([]byte, wire.ARPFrameLen)
		wire.PutARPProbe(frame, l.mac, vip.As4())
	} else {
		f, conn = familyIPv6, l.conns.NDP
		frame = make([]byte, wire.NDFrameLen)
		wire.PutDAD(frame, l.mac, vip.As16())
	}
	dst = net.HardwareAddr(frame[0:6]) // broadcast, or the solicited-node group of vip
	if conn == nil {
		return nil, fmt.Errorf("probe for %s on %s: no %s socket", vip, ifi.Name, f)
	}
	if f == familyIPv6 {
		if err := w.join(l, [6]byte(dst)); err != nil {
			return nil, fmt.Errorf("probe for %s on %s: %w", vip, ifi.Name, err)
		}
		defer w.leave(l, [6]byte(dst))
	}

	key := probeKey{ifIndex: l.ifi.Index, vip: vip}
	p := &probeRun{}
	w.register(key, p)
	start := w.clock.Now()
	// A send that fails (ENOBUFS from a full queue, or from a drop on the way out) is tried again in the next
	// slot, up to twice pc.Count attempts in all, so that pc.Count probes go out if the link lets them; a probe
	// with no frame sent heard nothing and fails.
	sent := 0
	var sendErr error
	for i := 0; sent < pc.Count && i < 2*pc.Count; i++ {
		if i > 0 {
			if err := w.sleep(ctx, pc.Interval); err != nil {
				return w.unregister(key, p), err
			}
		}
		if d := w.pacer.reserve(); d > 0 {
			if err := w.sleep(ctx, d); err != nil {
				return w.unregister(key, p), err
			}
		}
		if _, err := conn.WriteTo(frame, &Addr{HardwareAddr: dst}); err != nil {
			w.metrics.failed(opWrite)
			sendErr = err
			continue
		}
		sent++
	}
	if sent == 0 {
		return w.unregister(key, p), fmt.Errorf("send probe for %s on %s: %w", vip, ifi.Name, sendErr)
	}
	if err := w.sleep(ctx, pc.Wait); err != nil {
		return w.unregister(key, p), err
	}
	res := w.unregister(key, p)
	w.metrics.probed(f, len(res) > 0, w.clock.Since(start))
	return res, nil
}

// sleep waits d on the clock, or returns ctx.Err() or ErrClosed.
func (w *Watcher) sleep(ctx context.Context, d time.Duration) error {
	t := w.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.closed:
		return ErrClosed
	}
}

// acquire marks ifi as used by a probe, waits until Run has its sockets
// open and returns the link and a function that ends the use.
func (w *Watcher) acquire(ctx context.Context, ifi wire.Interface) (*link, func(), error) {
	w.mu.Lock()
	select {
	case <-w.closed:
		w.mu.Unlock()
		return nil, nil, ErrClosed
	default:
	}
	wt := w.want[ifi.Name]
	if wt == nil {
		wt = &want{ifi: ifi}
		w.want[ifi.Name] = wt
	}
	wt.probes++
	attempts := wt.attempts
	w.mu.Unlock()
	w.wake()
	var once sync.Once
	release := func() {
		once.Do(func() {
			w.mu.Lock()
			wt.probes--
			w.mu.Unlock()
			w.wake()
		})
	}
	for {
		w.mu.Lock()
		if wt.ifi.Index != ifi.Index {
			w.mu.Unlock()
			release()
			return nil, nil, fmt.Errorf("interface is watched with index %d, not %d", wt.ifi.Index, ifi.Index)
		}
		if l := w.links[ifi.Name]; l != nil && l.ifi.Index == ifi.Index && !l.broken.Load() {
			w.mu.Unlock()
			return l, release, nil
		}
		if wt.attempts != attempts && wt.err != nil {
			err := wt.err
			w.mu.Unlock()
			release()
			return nil, nil, err
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			release()
			return nil, nil, ctx.Err()
		case <-w.closed:
			release()
			return nil, nil, ErrClosed
		}
	}
}

// join adds one user of the multicast group mac on l's NDP socket, joining
// it for the first.
func (w *Watcher) join(l *link, mac [6]byte) error {
	mm, ok := l.conns.NDP.(MulticastMembership)
	if !ok {
		return nil
	}
	l.mcMu.Lock()
	defer l.mcMu.Unlock()
	if l.mcast[mac] == 0 {
		if err := mm.JoinMulticast(mac[:]); err != nil {
			w.metrics.failed(opJoin)
			return err
		}
	}
	l.mcast[mac]++
	return nil
}

// leave drops one user of mac, leaving the group with the last.
func (w *Watcher) leave(l *link, mac [6]byte) {
	mm, ok := l.conns.NDP.(MulticastMembership)
	if !ok {
		return
	}
	l.mcMu.Lock()
	defer l.mcMu.Unlock()
	if l.mcast[mac]--; l.mcast[mac] > 0 {
		return
	}
	delete(l.mcast, mac)
	if l.stopping.Load() {
		return // the socket is closed and its memberships with it
	}
	if err := mm.LeaveMulticast(mac[:]); err != nil {
		w.metrics.failed(opLeave)
		w.log.Error(err, "leaving solicited-node group failed", "interface", l.ifi.Name)
	}
}

// pacer spaces probe frames to a rate, allowing short bursts: reserve
// hands out send times 1/rate apart, never earlier than burst before now.
type pacer struct {
	clock    clock.PassiveClock
	interval time.Duration
	burst    time.Duration

	mu   sync.Mutex // guards next
	next time.Time  // the next free send time
}

func newPacer(c clock.PassiveClock, rate int) pacer {
	iv := time.Second / time.Duration(rate)
	return pacer{clock: c, interval: iv, burst: iv * time.Duration(max(1, rate/50))}
}

// reserve takes the next send slot and returns how long to wait for it.
func (p *pacer) reserve() time.Duration {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if floor := now.Add(-p.burst); p.next.Before(floor) {
		p.next = floor
	}
	t := p.next
	p.next = p.next.Add(p.interval)
	return t.Sub(now) // <= 0: send now
}
