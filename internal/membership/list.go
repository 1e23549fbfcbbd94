package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
	"k8s.io/utils/clock"
)

// DefaultPort is the port speakers gossip on (UDP and TCP).
const DefaultPort = 7946

// KeySize is the only accepted gossip key length: an AES-256 key.
const KeySize = 32

// DefaultKeyGrace is how long SetKey keeps the previous key for decryption.
const DefaultKeyGrace = time.Minute

// closeLeaveTimeout bounds the Leave that Close performs.
const closeLeaveTimeout = time.Second

// updateTimeout bounds how long UpdateMACs waits for the update to be
// gossiped.
const updateTimeout = time.Second

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("membership: list closed")

// Config configures a List.
type Config struct {
	// NodeName is the member's name: the Kubernetes node name.
	NodeName string
	// BindAddr is the node address to bind to and to advertise. Required
	// with the real transport; with a custom Transport it is only the
	// advertised address (if valid).
	BindAddr netip.Addr
	// Port is the UDP and TCP port; speakers use DefaultPort. 0 asks the
	// kernel for a free port (tests); LocalMember reports it.
	Port int
	// Key is the gossip encryption key, exactly KeySize bytes, used as is.
	Key []byte
	// MACs are the MACs of the interfaces this speaker may announce from.
	MACs []net.HardwareAddr
	// Timings are the failure-detector settings; zero fields take
	// DefaultTimings values.
	Timings Timings
	// Logger receives this package's and memberlist's logs.
	Logger logr.Logger
	// Transport replaces memberlist's UDP/TCP transport when not nil
	// (tests use memberlist.MockNetwork).
	Transport memberlist.Transport
	// KeyGrace is how long SetKey keeps the previous key for decryption
	// after switching to the new one; 0 means DefaultKeyGrace.
	KeyGrace time.Duration
	// Clock drives the key grace timer; nil means the real clock.
	Clock clock.Clock
}

// Member is one speaker in the cluster.
type Member struct {
	Name string
	Addr netip.Addr
	Port int
	// MACs are the MACs the member published; nil if its metadata could
	// not be decoded.
	MACs []net.HardwareAddr
}

// List is this speaker's membership in the cluster of speakers.
type List struct {
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring
	log     logr.Logger
	clock   clock.Clock
	grace   time.Duration
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{} // closed when keyLoop returns
	keyPoke chan struct{} // capacity 1: wakes keyLoop after pending changed

	metaMu sync.Mutex // guards meta, the encoded metadata NodeMeta publishes
	meta   []byte

	name string // this member's name

	// viewMu guards view (members by name) and self (this member, kept
	// after it leaves), both copied in memberlist's event callbacks.
	viewMu sync.Mutex
	view   map[string]Member
	self   Member

	// stateMu guards left and closed, and serialises Leave, UpdateMACs and
	// Close so memberlist is never called after Shutdown.
	stateMu sync.Mutex
	left    bool
	closed  bool

	// keyMu serialises keyring changes and guards pending and pendingGen,
	// the grace period after which keys other than the primary are dropped
	// (negative: nothing pending) and a counter that invalidates timers
	// armed for an earlier request.
	keyMu      sync.Mutex
	pending    time.Duration
	pendingGen uint64
}

// New validates cfg, creates the memberlist and starts gossiping. It does
// not join anyone: call Join.
func New(cfg Config) (*List, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("membership: empty node name")
	}
	if err := checkKey(cfg.Key); err != nil {
		return nil, err
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("membership: port %d out of range", cfg.Port)
	}
	cfg.BindAddr = cfg.BindAddr.Unmap()
	if cfg.Transport == nil || cfg.BindAddr.IsValid() {
		switch {
		case !cfg.BindAddr.IsValid():
			return nil, errors.New("membership: bind address required")
		case cfg.BindAddr.IsUnspecified():
			return nil, fmt.Errorf("membership: bind address %s is unspecified; use the node address", cfg.BindAddr)
		case cfg.BindAddr.Zone() != "":
			return nil, fmt.Errorf("membership: bind address %s has a zone", cfg.BindAddr)
		}
	}
	timings := cfg.Timings.withDefaults()
	if err := timings.validate(); err != nil {
		return nil, err
	}
	meta, err := EncodeMeta(cfg.NodeName, cfg.MACs)
	if err != nil {
		return nil, err
	}
	keyring, err := memberlist.NewKeyring(nil, bytes.Clone(cfg.Key))
	if err != nil {
		return nil, fmt.Errorf("membership: keyring: %w", err)
	}
	l := &List{
		name:    cfg.NodeName,
		keyring: keyring,
		log:     cfg.Logger.WithName("membership"),
		clock:   cfg.Clock,
		grace:   cfg.KeyGrace,
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
		keyPoke: make(chan struct{}, 1),
		meta:    meta,
		view:    make(map[string]Member),
		pending: -1,
	}
	if l.clock == nil {
		l.clock = clock.RealClock{}
	}
	if l.grace <= 0 {
		l.grace = DefaultKeyGrace
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	if cfg.BindAddr.IsValid() {
		mc.BindAddr = cfg.BindAddr.String()
		mc.AdvertiseAddr = mc.BindAddr
	}
	mc.BindPort = cfg.Port
	mc.AdvertisePort = cfg.Port
	timings.apply(mc)
	mc.Keyring = keyring
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Delegate = delegate{l}
	mc.Events = events{l}
	mc.Logger = log.New(newLogWriter(l.log.WithName("memberlist"), l.clock), "", 0)
	mc.Transport = cfg.Transport

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start memberlist on %s port %d: %w", mc.BindAddr, cfg.Port, err)
	}
	l.ml = ml
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.keyLoop(ctx)
	self := l.LocalMember()
	l.log.Info("memberlist started", "node", self.Name, "addr", self.Addr, "port", self.Port)
	return l, nil
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("membership: gossip key is %d bytes, want exactly %d (AES-256, used as is)", len(key), KeySize)
	}
	return nil
}

// memberFromNode copies what Herald needs out of a memberlist node. It must
// only be called where memberlist holds its node lock (event callbacks) or
// on a node memberlist no longer changes.
func memberFromNode(n *memberlist.Node) (Member, error) {
	m := Member{Name: n.Name, Port: int(n.Port)}
	if a, ok := netip.AddrFromSlice(n.Addr); ok {
		m.Addr = a.Unmap()
	}
	node, macs, err := DecodeMeta(n.Meta)
	if err != nil {
		return m, err
	}
	if node != n.Name {
		return m, fmt.Errorf("membership: metadata names node %q, member is %q", node, n.Name)
	}
	m.MACs = macs
	return m, nil
}

// LocalMember returns this member as the cluster sees it, including the
// port actually bound when Config.Port was 0.
func (l *List) LocalMember() Member {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	m := l.self
	m.MACs = cloneMACs(m.MACs)
	return m
}

// Join contacts the given members ("host:port", or "host" for this member's
// port) and synchronises state with them. Addresses of this member are
// skipped. It returns how many were contacted, and an error only when none
// could be (an empty list, or one naming only this member, is not an error).
func (l *List) Join(addrs []string) (int, error) {
	self := l.LocalMember()
	selfAP := netip.AddrPortFrom(self.Addr, uint16(self.Port))
	var targets []string
	var errs []error
	for _, a := range addrs {
		t, isSelf, err := joinTarget(a, self.Port, selfAP)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !isSelf:
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		if err := errors.Join(errs...); err != nil {
			return 0, fmt.Errorf("membership: join: %w", err)
		}
		return 0, nil
	}
	n, err := l.ml.Join(targets)
	if n == 0 {
		return 0, fmt.Errorf("membership: join %s: %w", strings.Join(targets, ","), errors.Join(append(errs, err)...))
	}
	if len(errs) > 0 {
		l.log.Info("some join addresses were invalid", "error", errors.Join(errs...))
	}
	l.log.V(1).Info("joined", "contacted", n, "targets", targets)
	return n, nil
}

// joinTarget normalises a join address to "host:port", using defPort when
// the address has no port, and reports whether it names self.
func joinTarget(addr string, defPort int, self netip.AddrPort) (target string, isSelf bool, err error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", false, errors.New("empty join address")
	}
	host, portStr, err := net.SplitHostPort(addr)
	port := defPort
	if err != nil {
		// No port: a host name, an IPv4 address, or an IPv6 address with
		// or without brackets.
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !isIP(host)) {
			return "", false, fmt.Errorf("join address %q: %w", addr, err)
		}
	} else {
		p, perr := strconv.ParseUint(portStr, 10, 16)
		if perr != nil || p == 0 {
			return "", false, fmt.Errorf("join address %q: bad port %q", addr, portStr)
		}
		port = int(p)
	}
	if host == "" {
		return "", false, fmt.Errorf("join address %q: empty host", addr)
	}
	if ip, perr := netip.ParseAddr(host); perr == nil {
		ip = ip.Unmap()
		host = ip.String()
		if netip.AddrPortFrom(ip, uint16(port)) == self {
			return "", true, nil
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), false, nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// Members returns every member not declared dead or left, self included,
// sorted by name. memberlist's suspect members are included: a suspect may
// still refute, and SWIM's suspicion exists precisely so that one lost
// probe does not move work away from a healthy member. (memberlist has no
// race-free way to read a member's suspect state: Members returns pointers
// into state it keeps rewriting, hashicorp/memberlist#306. The set here is
// copied in memberlist's join/leave/update callbacks, under its lock.)
func (l *List) Members() []Member {
	l.viewMu.Lock()
	out := make([]Member, 0, len(l.view))
	for _, m := range l.view {
		m.MACs = cloneMACs(m.MACs)
		out = append(out, m)
	}
	l.viewMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Live returns the members the election runs over: every member not
// declared dead or left (alive or suspect), sorted by name. It is the same
// set as Members; a member leaves it when memberlist declares it dead (a
// crash, after the suspicion timeout) or when it leaves gracefully.
func (l *List) Live() []Member { return l.Members() }

// NumMembers returns len(Members()).
func (l *List) NumMembers() int {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	return len(l.view)
}

func cloneMACs(macs []net.HardwareAddr) []net.HardwareAddr {
	if macs == nil {
		return nil
	}
	out := make([]net.HardwareAddr, len(macs))
	for i, m := range macs {
		out[i] = slices.Clone(m)
	}
	return out
}

// Changed is signalled after every join, leave or metadata update. It has
// capacity 1 and is never blocked on: one pending signal stands for any
// number of changes, so readers re-read Members after each receive.
func (l *List) Changed() <-chan struct{} { return l.changed }

func (l *List) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// UpdateMACs publishes a new set of MACs and waits (up to a second) for the
// update to be gossiped.
func (l *List) UpdateMACs(macs []net.HardwareAddr) error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	meta, err := EncodeMeta(l.name, macs)
	if err != nil {
		return err
	}
	l.metaMu.Lock()
	l.meta = meta
	l.metaMu.Unlock()
	if err := l.ml.UpdateNode(updateTimeout); err != nil {
		return fmt.Errorf("membership: publish MACs: %w", err)
	}
	return nil
}

// Leave tells the cluster this member is leaving and waits up to timeout
// for the message to go out. The member keeps answering probes until
// Close. Calling it again is a no-op.
func (l *List) Leave(timeout time.Duration) error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.leaveLocked(timeout)
}

func (l *List) leaveLocked(timeout time.Duration) error {
	if l.left {
		return nil
	}
	l.left = true // memberlist marks itself left before waiting
	if err := l.ml.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	l.log.Info("left the cluster")
	return nil
}

// Close leaves the cluster (waiting at most a second) unless Leave was
// called, shuts memberlist down and stops the key timer. It is idempotent.
func (l *List) Close() error { return l.shutdown(true) }

// shutdown stops the list; leave=false simulates a crash (tests).
func (l *List) shutdown(leave bool) error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	if leave {
		errs = append(errs, l.leaveLocked(closeLeaveTimeout))
	}
	if err := l.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("membership: shutdown: %w", err))
	}
	l.cancel()
	<-l.done
	return errors.Join(errs...)
}

// delegate publishes this member's metadata; Herald sends no user messages.
type delegate struct{ l *List }

func (d delegate) NodeMeta(limit int) []byte {
	d.l.metaMu.Lock()
	defer d.l.metaMu.Unlock()
	if len(d.l.meta) > limit { // EncodeMeta keeps it within MetaMaxSize
		return nil
	}
	return bytes.Clone(d.l.meta)
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events keeps the membership view. memberlist calls it with its node lock
// held, so it copies the node, never calls back into memberlist and never
// blocks.
type events struct{ l *List }

func (e events) NotifyJoin(n *memberlist.Node) {
	m := e.store(n)
	e.l.log.Info("member joined", "member", m.Name, "addr", m.Addr, "macs", len(m.MACs))
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	m := e.store(n)
	e.l.log.V(1).Info("member updated", "member", m.Name, "addr", m.Addr, "macs", len(m.MACs))
}

func (e events) NotifyLeave(n *memberlist.Node) {
	e.l.viewMu.Lock()
	delete(e.l.view, n.Name)
	e.l.viewMu.Unlock()
	e.l.signal()
	e.l.log.Info("member left or failed", "member", n.Name)
}

func (e events) store(n *memberlist.Node) Member {
	m, err := memberFromNode(n)
	if err != nil {
		e.l.log.Error(err, "member metadata unusable; its MACs are unknown", "member", n.Name)
	}
	e.l.viewMu.Lock()
	e.l.view[m.Name] = m
	if m.Name == e.l.name {
		e.l.self = m
	}
	e.l.viewMu.Unlock()
	e.l.signal()
	return m
}
