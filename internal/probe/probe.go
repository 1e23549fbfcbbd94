// Package probe asks the network who answers for an address, like arping (ARP, RFC 826) and ndisc6 (NDP,
// RFC 4861): it sends requests as raw Ethernet frames and collects every reply with the MAC that sent it. Frames
// are built and parsed with package wire, from a wire.Interface; this package decides what counts as a reply.
package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/wire"
)

// Reply is one answer: an ARP reply or a Neighbor Advertisement for the target.
type Reply struct {
	// MAC is the link-layer address the answer gives for the target (ARP sender hardware address, NA target
	// link-layer address option, or the NA's Ethernet source when it has no such option).
	MAC net.HardwareAddr
	// At is when the answer was read.
	At time.Time
	// RTT is At minus the time the request it is attributed to was sent.
	RTT time.Duration
	// Seq is the number of that request: 1 for Once, the Watch sequence number otherwise.
	Seq int
}

// Option configures a Prober.
type Option func(*Prober)

// WithClock sets the clock for reply times and Watch's ticker; default the real clock.
func WithClock(c clock.WithTicker) Option { return func(p *Prober) { p.clock = c } }

// WithLogger sets the logger; default discards. Only socket failures are logged, never single frames.
func WithLogger(l logr.Logger) Option { return func(p *Prober) { p.log = l } }

// Prober sends ARP requests (IPv4 source) or Neighbor Solicitations (IPv6 source) from one interface and one
// source address, and reads the answers on the same socket.
type Prober struct {
	ifi   wire.Interface
	mac   [6]byte // ifi.MAC
	src   netip.Addr
	conn  net.PacketConn
	clock clock.WithTicker
	log   logr.Logger

	mu     sync.Mutex // guards subs, nextID and readErr
	subs   map[int]*subscription
	nextID int
	// readErr is why the reader stopped, nil while it runs.
	readErr error

	done      chan struct{} // closed by Close
	readDone  chan struct{} // closed when the reader goroutine returns
	closeOnce sync.Once
	closeErr  error
}

// subscription collects the replies for one target on behalf of a running Once or Watch.
type subscription struct {
	target  netip.Addr
	seq     int       // the latest request's number
	sent    time.Time // when it was sent
	replies []Reply
}

// New opens an AF_PACKET socket on ifi that sends requests from src: ARP requests when src is IPv4 (0.0.0.0
// makes them ARP probes, RFC 5227), Neighbor Solicitations when it is IPv6.
func New(ifi wire.Interface, src netip.Addr, opts ...Option) (*Prober, error) {
	filter, err := replyFilter()
	if err != nil {
		return nil, fmt.Errorf("assembling the reply filter: %w", err)
	}
	conn, err := packet.Listen(ifi.Net(), packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket on %s: %w", ifi.Name, err)
	}
	p, err := newProber(ifi, src, conn, opts)
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	return p, nil
}

// NewWithConn is New on a given transport that reads and writes whole Ethernet frames; WriteTo gets a
// *packet.Addr holding the destination MAC. The Prober owns conn and closes it. It panics when ifi or src is not
// usable (see New), as that is a programming error in a test.
func NewWithConn(ifi wire.Interface, src netip.Addr, conn net.PacketConn, opts ...Option) *Prober {
	p, err := newProber(ifi, src, conn, opts)
	if err != nil {
		panic(err)
	}
	return p
}

func newProber(ifi wire.Interface, src netip.Addr, conn net.PacketConn, opts []Option) (*Prober, error) {
	if len(ifi.MAC) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", ifi.Name)
	}
	if !src.IsValid() || src.Zone() != "" || (src.Is6() && (src.Is4In6() || src.IsUnspecified() || src.IsMulticast())) {
		return nil, fmt.Errorf("source address %v on %s: want IPv4, or an IPv6 unicast address without zone", src, ifi.Name)
	}
	p := &Prober{
		ifi:      ifi.Clone(),
		mac:      [6]byte(ifi.MAC),
		src:      src,
		conn:     conn,
		clock:    clock.RealClock{},
		log:      logr.Discard(),
		subs:     map[int]*subscription{},
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	go p.read()
	return p, nil
}

// Close closes the socket and waits for the reader. It is idempotent.
func (p *Prober) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		p.closeErr = p.conn.Close()
		<-p.readDone
		if p.closeErr != nil {
			p.closeErr = fmt.Errorf("closing the prober on %s: %w", p.ifi.Name, p.closeErr)
		}
	})
	return p.closeErr
}

// Once sends one request for target and returns every answer read until wait has passed, duplicates included.
// When ctx ends first it returns the answers so far and ctx's error.
func (p *Prober) Once(ctx context.Context, target netip.Addr, wait time.Duration) ([]Reply, error) {
	frame, dst, err := p.request(target)
	if err != nil {
		return nil, err
	}
	timer := p.clock.NewTimer(wait)
	defer timer.Stop()
	id, sub := p.subscribe(target)
	if err := p.send(sub, 1, frame, dst); err != nil {
		p.unsubscribe(id)
		return nil, err
	}
	select {
	case <-timer.C():
	case <-ctx.Done():
		err = ctx.Err()
	case <-p.done:
		err = net.ErrClosed
	case <-p.readDone:
	}
	replies, readErr := p.unsubscribe(id)
	if err == nil {
		err = readErr
	}
	return replies, err
}

// Watch sends a request for target every `every`, starting at once, and after each interval calls fn with the
// request's number (from 1), when it was sent and the answers read since, which are attributed to the latest
// request. It returns when ctx is done or the Prober closed; the interval in progress then is not reported.
// fn runs on Watch's goroutine: the next request waits for it.
func (p *Prober) Watch(ctx context.Context, target netip.Addr, every time.Duration, fn func(seq int, sent time.Time, replies []Reply)) error {
	frame, dst, err := p.request(target)
	if err != nil {
		return err
	}
	ticker := p.clock.NewTicker(every)
	defer ticker.Stop()
	id, sub := p.subscribe(target)
	defer p.unsubscribe(id)
	var lastErr string // send errors are logged when they change, not once per request
	sendLogged := func(seq int) {
		err := p.send(sub, seq, frame, dst)
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() != lastErr:
			lastErr = err.Error()
			p.log.Error(err, "sending a request failed", "interface", p.ifi.Name, "target", target, "seq", seq)
		}
	}
	sendLogged(1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.done:
			return net.ErrClosed
		case <-ticker.C():
		}
		p.mu.Lock()
		seq, sent, replies := sub.seq, sub.sent, sub.replies
		sub.replies = nil
		p.mu.Unlock()
		fn(seq, sent, replies)
		sendLogged(seq + 1)
	}
}

// request builds the frame that asks who has target, and its Ethernet destination.
func (p *Prober) request(target netip.Addr) ([]byte, net.HardwareAddr, error) {
	target = target.Unmap()
	if target.Is4() != p.src.Is4() || target.Zone() != "" {
		return nil, nil, fmt.Errorf("target %v and source %v on %s are not of one family", target, p.src, p.ifi.Name)
	}
	var b []byte
	if target.Is4() {
		// Target hardware address zero (RFC 5227 §2.1.1); 0.0.0.0 as the source makes it an ARP probe.
		b = make([]byte, wire.ARPFrameLen)
		wire.PutARP(b, wire.BroadcastMAC, p.mac, &wire.ARP{Op: wire.ARPRequest, SenderMAC: p.mac, SenderIP: p.src.As4(),
			TargetIP: target.As4()})
	} else {
		group := wire.SolicitedNode(target.As16())
		b = make([]byte, wire.NDLinkFrameLen)
		wire.PutND(b, &wire.ND{Eth: wire.Ethernet{Dst: wire.MulticastMAC(group), Src: p.mac}, Src: p.src.As16(), Dst: group,
			Type: wire.ICMPTypeNS, Target: target.As16(), LinkAddr: p.mac, HasLinkAddr: true})
	}
	return b, net.HardwareAddr(b[0:6:6]), nil
}

// send stamps sub with request seq and sends it.
func (p *Prober) send(sub *subscription, seq int, frame []byte, dst net.HardwareAddr) error {
	p.mu.Lock()
	sub.seq, sub.sent = seq, p.clock.Now()
	p.mu.Unlock()
	if _, err := p.conn.WriteTo(frame, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("sending a request for %v on %s: %w", sub.target, p.ifi.Name, err)
	}
	return nil
}

func (p *Prober) subscribe(target netip.Addr) (int, *subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	s := &subscription{target: target.Unmap()}
	p.subs[p.nextID] = s
	return p.nextID, s
}

// unsubscribe ends a subscription and returns the replies it has not handed out, and why the reader stopped if
// it did.
func (p *Prober) unsubscribe(id int) ([]Reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.subs[id]
	delete(p.subs, id)
	return s.replies, p.readErr
}

// read is the reader goroutine, owned by the Prober: it hands each answer to the subscriptions for its target
// until the socket fails or closes.
func (p *Prober) read() {
	defer close(p.readDone)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-p.done:
				err = net.ErrClosed
			default:
				p.log.Error(err, "reading from the packet socket failed", "interface", p.ifi.Name)
			}
			p.mu.Lock()
			p.readErr = fmt.Errorf("reading on %s: %w", p.ifi.Name, err)
			p.mu.Unlock()
			return
		}
		target, mac, ok := p.answer(buf[:n])
		if !ok {
			continue
		}
		now := p.clock.Now()
		p.mu.Lock()
		for _, s := range p.subs {
			if s.target == target && s.seq > 0 {
				s.replies = append(s.replies, Reply{MAC: mac, At: now, RTT: now.Sub(s.sent), Seq: s.seq})
			}
		}
		p.mu.Unlock()
	}
}

// answer decides whether frame answers a request of this Prober: an ARP reply to its source address, or a
// Neighbor Advertisement sent to its source address (RFC 4861 §7.1's checks of hop limit, code, checksum and
// option lengths, wire.ParseND), not sent by its own interface. It returns the address answered for and the MAC
// given for it: the ARP sender hardware address, or the NA's (first) target link-layer option, else its
// Ethernet source.
func (p *Prober) answer(frame []byte) (netip.Addr, net.HardwareAddr, bool) {
	if p.src.Is4() {
		eth, a, f := wire.ParseARP(frame)
		if f != wire.OK || a.Op != wire.ARPReply || a.TargetIP != p.src.As4() || eth.Src == p.mac {
			return netip.Addr{}, nil, false
		}
		return netip.AddrFrom4(a.SenderIP), net.HardwareAddr(bytes.Clone(a.SenderMAC[:])), true
	}
	n, f := wire.ParseND(frame, wire.AcceptNS|wire.AcceptNA, 0)
	if f != wire.OK || n.Type != wire.ICMPTypeNA || n.Dst != p.src.As16() || n.Eth.Src == p.mac {
		return netip.Addr{}, nil, false
	}
	mac := n.Eth.Src
	if n.HasLinkAddr {
		mac = n.LinkAddr
	}
	return netip.AddrFrom16(n.Target), net.HardwareAddr(bytes.Clone(mac[:])), true
}

func macEqual(a, b net.HardwareAddr) bool { return string(a) == string(b) }
