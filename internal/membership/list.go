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
	"sync/atomic"
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

// updateTimeout bounds how long UpdateMACs, and the goroutine that
// publishes SetHealth's changes, wait for an update to be gossiped.
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
	// Impaired are the prefixes the member has withdrawn from (it cannot
	// answer there): it is not eligible for load-balancer addresses inside
	// them. nil when it publishes none, or version 1 metadata.
	Impaired []netip.Prefix
	// Dark are the load-balancer addresses the member, as a health
	// watcher, finds unanswered. nil when it publishes none, or version 1
	// metadata.
	Dark []netip.Addr
}

// clone returns m with its slices copied.
func (m Member) clone() Member {
	m.MACs = cloneMACs(m.MACs)
	m.Impaired = slices.Clone(m.Impaired)
	m.Dark = slices.Clone(m.Dark)
	return m
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

	// metaMu guards cur (this member's metadata as set by New, UpdateMACs
	// and SetHealth, before any trimming) and meta (cur encoded: what
	// NodeMeta publishes). Taken before viewMu when both are held.
	metaMu sync.Mutex
	cur    Meta
	meta   []byte

	// quit is closed by shutdown: publishLoop returns and SetHealth
	// refuses. pubPoke (capacity 1) wakes publishLoop after SetHealth or UpdateMACs
	// changed meta; pubDone is closed when publishLoop returns.
	quit    chan struct{}
	pubPoke chan struct{}
	pubDone chan struct{}

	name string // this member's name

	// viewMu guards view (members by name) and self (this member, kept
	// after it leaves), both copied in memberlist's event callbacks.
	viewMu sync.Mutex
	view   map[string]Member
	self   Member

	// stateMu guards closed, and serialises Leave, UpdateMACs and Close so
	// memberlist is never called after Shutdown (publishLoop, which does
	// not take stateMu, is stopped first).
	stateMu sync.Mutex
	closed  bool

	// updateMu serialises the calls that publish this member's state to
	// memberlist (UpdateNode and Leave) and guards left. UpdateNode reads
	// the metadata and then takes the next incarnation number, so two at
	// once could publish the older metadata last. Taken after stateMu.
	updateMu sync.Mutex
	left     bool

	// keyMu serialises keyring changes and guards pending and pendingGen,
	// the grace period after which keys other than the primary are dropped
	// (negative: nothing pending) and a counter that invalidates timers
	// armed for an earlier request.
	keyMu      sync.Mutex
	pending    time.Duration
	pendingGen uint64

	// msgs carries the messages other members sent (Send) to the receiver (Messages); a message that finds it
	// full is dropped and counted in dropped.
	msgs    chan []byte
	dropped atomic.Uint64

	// bookMu guards book, the speaker MACs this member knows (book.go); bookRefused counts peers' books
	// dropped as malformed.
	bookMu      sync.Mutex
	book        map[string]string
	bookRefused atomic.Uint64
}

// messageQueue is how many received messages wait for the receiver before more are dropped.
const messageQueue = 64

// MaxMessageSize bounds a message Send takes: memberlist carries it over its encrypted TCP stream in one piece.
const MaxMessageSize = 1 << 20

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
	cur := Meta{Node: cfg.NodeName, MACs: cloneMACs(cfg.MACs)}
	meta, _, err := EncodeMeta(cur)
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
		cur:     cur,
		meta:    meta,
		quit:    make(chan struct{}),
		pubPoke: make(chan struct{}, 1),
		pubDone: make(chan struct{}),
		view:    make(map[string]Member),
		pending: -1,
		msgs:    make(chan []byte, messageQueue),
		book:    make(map[string]string),
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
	go l.publishLoop()
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

// memberFromNode copies what Herald needs out of a memberlist node, taking
// the metadata from meta rather than n.Meta. It must only be called where
// memberlist holds its node lock (event callbacks) or on a node memberlist
// no longer changes.
func memberFromNode(n *memberlist.Node, meta []byte) (Member, error) {
	m := Member{Name: n.Name, Port: int(n.Port)}
	if a, ok := netip.AddrFromSlice(n.Addr); ok {
		m.Addr = a.Unmap()
	}
	md, err := DecodeMeta(meta)
	if err != nil {
		return m, err
	}
	if md.Node != n.Name {
		return m, fmt.Errorf("membership: metadata names node %q, member is %q", md.Node, n.Name)
	}
	m.setMeta(md)
	return m, nil
}

// setMeta copies the published fields of md into m.
func (m *Member) setMeta(md Meta) {
	m.MACs, m.Impaired, m.Dark = md.MACs, md.Impaired, md.Dark
}

// LocalMember returns this member as the cluster sees it, including the
// port actually bound when Config.Port was 0. Its MACs, Impaired and Dark
// are the ones last set, even while SetHealth's update is still being
// gossiped.
func (l *List) LocalMember() Member {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	return l.self.clone()
}

// setSelfLocked makes this member's own entry (self, and its place in the
// view) show meta, and signals Changed. Callers hold metaMu.
func (l *List) setSelfLocked() {
	md, err := DecodeMeta(l.meta)
	if err != nil { // EncodeMeta wrote it: cannot happen
		l.log.Error(err, "own metadata unreadable")
		return
	}
	l.viewMu.Lock()
	l.self.setMeta(md)
	if m, ok := l.view[l.name]; ok {
		m.setMeta(md)
		l.view[l.name] = m
	}
	l.viewMu.Unlock()
	l.signal()
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
		out = append(out, m.clone())
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

// UpdateMACs publishes a new set of MACs, keeping the health state SetHealth
// set. Like SetHealth it returns at once: the publishing goroutine gossips
// the update, so a caller (the speaker's event loop) never waits on the
// network. After Close it returns ErrClosed. If the health state no longer
// fits next to the new MACs, it is trimmed as EncodeMeta describes and
// logged.
func (l *List) UpdateMACs(macs []net.HardwareAddr) error {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	select {
	case <-l.quit:
		return ErrClosed
	default:
	}
	next := l.cur
	next.MACs = cloneMACs(macs)
	trimmed, err := l.publishLocked(next)
	if err != nil {
		return fmt.Errorf("membership: publish MACs: %w", err)
	}
	if trimmed != nil {
		l.log.Error(trimmed, "health state trimmed to fit next to the new MACs")
	}
	return nil
}

// publishLocked makes next this member's metadata and, when its encoding changed, wakes publishLoop to gossip
// it; it never waits for the gossip. It returns trimmedError's error when the health state did not fit.
// l.metaMu must be held.
func (l *List) publishLocked(next Meta) (trimmed, err error) {
	meta, nImpaired, nDark, err := encodeMeta(next)
	if err != nil {
		return nil, err
	}
	trimmed = trimmedError(next, nImpaired, nDark)
	l.cur = next
	if bytes.Equal(meta, l.meta) {
		return trimmed, nil
	}
	l.meta = meta
	l.setSelfLocked()
	select {
	case l.pubPoke <- struct{}{}:
	default: // an update is pending already; it will read the new meta
	}
	return trimmed, nil
}

// ErrMetaTrimmed is wrapped by the error SetHealth returns when the health
// state does not fit in memberlist.MetaMaxSize next to the MACs: it
// published what fits (see EncodeMeta) all the same.
var ErrMetaTrimmed = errors.New("membership: health state trimmed to fit memberlist.MetaMaxSize")

// trimmedError reports the entries of m that did not fit, if any.
func trimmedError(m Meta, nImpaired, nDark int) error {
	if nImpaired == len(m.Impaired) && nDark == len(m.Dark) {
		return nil
	}
	return fmt.Errorf("%w: publishing %d of %d impaired prefixes and %d of %d dark addresses next to %d MACs",
		ErrMetaTrimmed, nImpaired, len(m.Impaired), nDark, len(m.Dark), len(m.MACs))
}

// SetHealth publishes this member's health state: impaired, the prefixes
// it has withdrawn from because it cannot answer there, and dark, the
// load-balancer addresses it finds unanswered as a health watcher. It
// replaces the previous state; nil lists clear it.
//
// Both lists are sorted and de-duplicated first, so their order does not
// matter. Each may then hold at most MaxImpaired (MaxDark) entries;
// prefixes must be valid and masked (no host bits) and addresses valid,
// and neither may be IPv4-mapped IPv6 or carry a zone. Anything else is
// refused with an error and changes nothing.
//
// SetHealth never waits for the network: it stores the new metadata, which
// LocalMember shows at once, and returns; a goroutine of the List gossips
// it (memberlist's UpdateNode), folding changes made meanwhile into one
// update. A failed update is logged and published again with the next
// change (the state still spreads with push/pull anti-entropy). Nothing is
// sent when the state is unchanged.
//
// When the state does not fit next to the MACs in memberlist.MetaMaxSize,
// SetHealth publishes what fits (EncodeMeta drops Dark addresses first,
// then Impaired prefixes, from the end of the sorted lists) and returns an
// error wrapping ErrMetaTrimmed. After Close it returns ErrClosed.
func (l *List) SetHealth(impaired []netip.Prefix, dark []netip.Addr) error {
	impaired, dark, err := normalizeHealth(impaired, dark)
	if err != nil {
		return fmt.Errorf("membership: set health: %w", err)
	}
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	select {
	case <-l.quit:
		return ErrClosed
	default:
	}
	next := l.cur
	next.Impaired, next.Dark = impaired, dark
	trimmed, err := l.publishLocked(next)
	if err != nil {
		return fmt.Errorf("membership: set health: %w", err)
	}
	return trimmed
}

// normalizeHealth validates the lists and returns them sorted and
// de-duplicated, nil when empty.
func normalizeHealth(impaired []netip.Prefix, dark []netip.Addr) ([]netip.Prefix, []netip.Addr, error) {
	for i, p := range impaired {
		if err := checkPrefix(p); err != nil {
			return nil, nil, fmt.Errorf("impaired prefix %d: %w", i, err)
		}
	}
	for i, a := range dark {
		if err := checkAddr(a); err != nil {
			return nil, nil, fmt.Errorf("dark address %d: %w", i, err)
		}
	}
	impaired = slices.Compact(slices.SortedFunc(slices.Values(impaired), netip.Prefix.Compare))
	dark = slices.Compact(slices.SortedFunc(slices.Values(dark), netip.Addr.Compare))
	if len(impaired) > MaxImpaired {
		return nil, nil, fmt.Errorf("%d impaired prefixes, limit %d", len(impaired), MaxImpaired)
	}
	if len(dark) > MaxDark {
		return nil, nil, fmt.Errorf("%d dark addresses, limit %d", len(dark), MaxDark)
	}
	if len(impaired) == 0 {
		impaired = nil
	}
	if len(dark) == 0 {
		dark = nil
	}
	return impaired, dark, nil
}

// publishLoop gossips the metadata SetHealth and UpdateMACs store, one UpdateNode at a
// time; changes made while an update is in flight are folded into the
// next, which reads the newest metadata. It is owned by the List and stops
// when shutdown closes quit.
func (l *List) publishLoop() {
	defer close(l.pubDone)
	for {
		select {
		case <-l.quit:
			return
		case <-l.pubPoke:
		}
		select {
		case <-l.quit:
			return
		default:
		}
		if err := l.updateNode(); err != nil {
			err = fmt.Errorf("membership: publish metadata: %w", err)
			l.log.Error(err, "the update still spreads with later gossip and push/pull, and is published again with the next change")
			continue
		}
		l.log.V(1).Info("health state published")
	}
}

// updateNode has memberlist publish the current metadata, unless this
// member has left, and returns memberlist's error for the caller to wrap.
func (l *List) updateNode() error {
	l.updateMu.Lock()
	defer l.updateMu.Unlock()
	if l.left {
		return nil
	}
	return l.ml.UpdateNode(updateTimeout)
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
	l.updateMu.Lock()
	defer l.updateMu.Unlock()
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

// Close stops publishing health state (waiting for an update in flight, at
// most a second), leaves the cluster (waiting at most a second) unless
// Leave was called, shuts memberlist down and stops the key timer. It is
// idempotent.
func (l *List) Close() error { return l.shutdown(true) }

// shutdown stops the list; leave=false simulates a crash (tests).
func (l *List) shutdown(leave bool) error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.metaMu.Lock() // SetHealth checks quit under metaMu
	close(l.quit)
	l.metaMu.Unlock()
	<-l.pubDone
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

// Send sends msg to the live member named to over memberlist's reliable (TCP), encrypted stream; it returns
// once the message is written. It blocks on the network: call it off any loop that must not wait.
func (l *List) Send(to string, msg []byte) error {
	if len(msg) == 0 || len(msg) > MaxMessageSize {
		return fmt.Errorf("membership: message of %d bytes (want 1 to %d)", len(msg), MaxMessageSize)
	}
	l.stateMu.Lock()
	closed := l.closed
	l.stateMu.Unlock()
	if closed {
		return ErrClosed
	}
	for _, n := range l.ml.Members() {
		if n.Name == to {
			if err := l.ml.SendReliable(n, msg); err != nil {
				return fmt.Errorf("membership: send to %s: %w", to, err)
			}
			return nil
		}
	}
	return fmt.Errorf("membership: send to %s: not a live member", to)
}

// Messages delivers what other members sent with Send, in the order received (each Send is a stream of its own:
// two Sends may arrive in either order). Each slice is the receiver's.
func (l *List) Messages() <-chan []byte { return l.msgs }

// MessagesDropped counts the messages dropped because the receiver had not taken the earlier ones.
func (l *List) MessagesDropped() uint64 { return l.dropped.Load() }

// delegate publishes this member's metadata and queues the messages members send each other.
type delegate struct{ l *List }

func (d delegate) NodeMeta(limit int) []byte {
	d.l.metaMu.Lock()
	defer d.l.metaMu.Unlock()
	if len(d.l.meta) > limit { // EncodeMeta keeps it within MetaMaxSize
		return nil
	}
	return bytes.Clone(d.l.meta)
}

// NotifyMsg runs on memberlist's goroutine, which may reuse buf: it copies and never blocks.
func (d delegate) NotifyMsg(buf []byte) {
	if len(buf) == 0 {
		return
	}
	select {
	case d.l.msgs <- bytes.Clone(buf):
	default:
		d.l.dropped.Add(1)
	}
}

func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is this member's book (book.go), sent in every push/pull.
func (d delegate) LocalState(join bool) []byte {
	d.l.bookMu.Lock()
	defer d.l.bookMu.Unlock()
	return encodeBook(d.l.book)
}

// MergeRemoteState adds what a peer's book knows that this one lacks. A speaker of a version without books sends
// none; a malformed book is dropped and counted.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) == 0 {
		return
	}
	peer, err := decodeBook(buf)
	if err != nil {
		d.l.bookRefused.Add(1)
		d.l.log.V(1).Info("dropping a peer's speaker book", "reason", err.Error())
		return
	}
	if n := d.l.mergeBook(peer); n > 0 {
		d.l.log.V(1).Info("learned speaker MACs from a peer", "added", n)
		d.l.signal()
	}
}

// events keeps the membership view. memberlist calls it with its node lock
// held, so it copies the node, never calls back into memberlist and never
// blocks.
type events struct{ l *List }

func (e events) NotifyJoin(n *memberlist.Node) {
	m := e.store(n)
	e.l.log.Info("member joined", "member", m.Name, "addr", m.Addr, "macs", len(m.MACs), "impaired", m.Impaired, "dark", m.Dark)
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	m := e.store(n)
	e.l.log.V(1).Info("member updated", "member", m.Name, "addr", m.Addr, "macs", len(m.MACs), "impaired", m.Impaired, "dark", m.Dark)
}

func (e events) NotifyLeave(n *memberlist.Node) {
	e.l.viewMu.Lock()
	delete(e.l.view, n.Name)
	e.l.viewMu.Unlock()
	e.l.signal()
	e.l.log.Info("member left or failed", "member", n.Name)
}

func (e events) store(n *memberlist.Node) Member {
	meta := n.Meta
	if n.Name == e.l.name {
		// This member's own entry shows the metadata last set, not the
		// one memberlist is delivering: SetHealth changes it before an
		// update reaches memberlist, and an older update still in
		// flight must not bring back older state. Holding metaMu keeps
		// setSelfLocked from running in between.
		e.l.metaMu.Lock()
		defer e.l.metaMu.Unlock()
		meta = e.l.meta
	}
	m, err := memberFromNode(n, meta)
	if err != nil {
		e.l.log.Error(err, "member metadata unusable; its MACs and health state are unknown", "member", n.Name)
	}
	e.l.noteMACs(m)
	e.l.viewMu.Lock()
	e.l.view[m.Name] = m
	if m.Name == e.l.name {
		e.l.self = m
	}
	e.l.viewMu.Unlock()
	e.l.signal()
	return m
}
