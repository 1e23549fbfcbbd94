// Package speaker is Herald's node agent: it joins the speakers' memberlist cluster, elects one node per
// load-balancer address, and answers ARP and NDP for the addresses this node wins. One event loop owns its state.
package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/announce"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/guard"
	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/internal/stall"
)

// Config configures a speaker.
type Config struct {
	// NodeName is this node's name: the memberlist member name and the Node object consulted for labels.
	NodeName string
	// BindAddr is the address memberlist binds to; the zero value means the Node's first InternalIP.
	BindAddr netip.Addr
	// Port is the memberlist port, on every node.
	Port int
	// LoadBalancerClass is the class Herald serves besides Services naming none.
	LoadBalancerClass string
	// Secret holds the 32-byte gossip key in its "key" field.
	Secret types.NamespacedName
	// Timings are memberlist's failure-detection timings.
	Timings membership.Timings
	// GratuitousRepeats, GratuitousInterval and Refresh schedule gratuitous ARP / unsolicited NA.
	GratuitousRepeats  int
	GratuitousInterval time.Duration
	Refresh            time.Duration
	// LeaveTimeout bounds the graceful leave on shutdown.
	LeaveTimeout time.Duration
	// BatchInterval is the least time between two decisions caused by informer events (Services, Nodes,
	// EndpointSlices, pools, advertisements); membership and interface changes are never delayed.
	BatchInterval time.Duration
	// RejoinInterval is how often a speaker that misses a Node among the members tries to join it again.
	RejoinInterval time.Duration

	// ConflictPolicy says what to do about a device that is not a speaker answering for an address:
	// ConflictYield (the default) stops answering and probes again with backoff; ConflictDefend answers anyway.
	ConflictPolicy string
	// ConflictRetryMin and ConflictRetryMax bound the backoff between probes of an address another device
	// answers for; ConflictClearAfter is how long a conflict must go unseen to be resolved.
	ConflictRetryMin, ConflictRetryMax, ConflictClearAfter time.Duration
	// ProbeCount probes (ARP probes, DAD solicitations) ProbeInterval apart, then ProbeWait, precede the first
	// announcement of an address by this node.
	ProbeCount               int
	ProbeInterval, ProbeWait time.Duration
	// ProbeRate bounds probe frames per second (a node taking over thousands of addresses paces its probes).
	ProbeRate int
	// ReplyRate limits, per responder, the replies to one requester for one address (per second, with a burst of
	// as many) and, per interface and family, all replies; they bound the CPU an ARP/NDP request flood costs.
	ReplyRatePerRequester float64
	ReplyRatePerInterface float64
	// FailbackAfter lets the node the election prefers take an address back from the node that holds it once it
	// has been a live member this long, by a handoff (handoff.go) that costs the address no reply. Zero means
	// DefaultFailbackAfter; negative never moves an address that works.
	FailbackAfter time.Duration
	// StallThreshold: a gap this long in the speaker's own ticks means the process did not run (a CPU stall, a
	// SIGSTOP); it then stops answering and probes again before answering. Zero means the default (250ms);
	// negative disables the check.
	StallThreshold time.Duration

	// HealthInterval is how often the watching speaker probes each address it watches (the next node in the
	// address's election order after the announcer); zero means the default (5s), negative disables health
	// probing. HealthWait is how long a request waits for answers and HealthAttempts how many requests a round
	// sends while none is answered.
	HealthInterval time.Duration
	HealthWait     time.Duration
	HealthAttempts int
	// HealthStatusRefresh, when positive, is how often an unchanged health verdict is written to the
	// Announcements again, to refresh its lastProbe; zero (the default) writes a verdict only when it changes.
	HealthStatusRefresh time.Duration
	// ImpairedHold is how long a speaker stays withdrawn from a prefix it could not answer on (a watcher found
	// an address dark after this node re-announced it, or its interface was down).
	ImpairedHold time.Duration

	RESTConfig  *rest.Config
	MetricsAddr string // "0" disables
	ProbeAddr   string // "0" disables
	// PprofAddr serves net/http/pprof (/debug/pprof/) for profiling a live speaker; "" or "0" disables it.
	PprofAddr  string
	Registerer prometheus.Registerer
	Logger     logr.Logger
	Clock      clock.WithTicker
}

// Conflict policies.
const (
	ConflictYield  = "yield"
	ConflictDefend = "defend"
)

// Defaults: the flags (internal/cli) and Config.defaults both use these, so each lives here once.
const (
	DefaultPort               = 7946
	DefaultGratuitousRepeats  = 2
	DefaultGratuitousInterval = 500 * time.Millisecond
	DefaultLeaveTimeout       = 2 * time.Second
	DefaultConflictRetryMin   = time.Second
	DefaultConflictRetryMax   = 30 * time.Second
	DefaultConflictClearAfter = 5 * time.Second
	// DefaultFailbackAfter: long enough that a node that flaps (a crash loop, a link that comes and goes) never
	// gets an address back in between, short beside a rolling restart's aftermath, whose imbalance it repairs.
	DefaultFailbackAfter  = 30 * time.Second
	DefaultStallThreshold = stall.DefaultThreshold
	DefaultProbeCount     = guard.DefaultProbeCount
	DefaultProbeInterval  = guard.DefaultProbeInterval
	DefaultProbeWait      = guard.DefaultProbeWait
	// DefaultProbeRate paces a takeover's probes: 20,000 frames/s lets a node taking over 10,000 addresses
	// probe them all within about a second (the guard's own default, for other users, is lower).
	DefaultProbeRate      = 20000
	DefaultHealthInterval = 5 * time.Second
	DefaultImpairedHold   = time.Minute
	// DefaultReplyRatePerRequester allows a monitor asking every 10 ms twice over; a flood from one MAC gets
	// no more.
	DefaultReplyRatePerRequester = 200
	DefaultReplyRatePerInterface = 20000
	DefaultBatchInterval         = 50 * time.Millisecond
	DefaultRejoinInterval        = 5 * time.Second
)

// Defaulted returns c with each zero field given its default, as Run does.
func (c Config) Defaulted() Config {
	c.defaults()
	return c
}

func (c *Config) defaults() {
	if c.ConflictPolicy == "" {
		c.ConflictPolicy = ConflictYield
	}
	if c.StallThreshold == 0 {
		c.StallThreshold = DefaultStallThreshold
	}
	if c.ProbeCount == 0 {
		c.ProbeCount = DefaultProbeCount
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeWait == 0 {
		c.ProbeWait = DefaultProbeWait
	}
	if c.ReplyRatePerRequester == 0 {
		c.ReplyRatePerRequester = DefaultReplyRatePerRequester
	}
	if c.ProbeRate == 0 {
		c.ProbeRate = DefaultProbeRate
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.ImpairedHold == 0 {
		c.ImpairedHold = DefaultImpairedHold
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.FailbackAfter == 0 {
		c.FailbackAfter = DefaultFailbackAfter
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = "0"
	}
	if c.ProbeAddr == "" {
		c.ProbeAddr = "0"
	}
}

// Scheme returns the scheme the speaker reads with.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := heraldv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// memberList is the membership as the loop uses it (membership.List; a fake in tests).
type memberList interface {
	Members() []membership.Member
	Changed() <-chan struct{}
	Join(addrs []string) (int, error)
	UpdateMACs(macs []net.HardwareAddr) error
	SetKey(key []byte) error
	SetHealth(impaired []netip.Prefix, dark []netip.Addr) error
	// Send and Messages carry handoff messages between members (handoff.go).
	Send(to string, msg []byte) error
	Messages() <-chan []byte
	// KnownMACs is every speaker MAC the member knows of, live or not, with the speaker's name (the book members
	// exchange in push/pull).
	KnownMACs() map[string]string
}

// answerer is the ARP/NDP responder as the loop uses it (announce.Announcer; a fake in tests).
type answerer interface {
	Set(announce.Assignment)
	Reannounce(addrs ...netip.Addr)
}

// agent is a running speaker. Fields below "loop state" belong to the event loop alone.
type agent struct {
	cfg     Config
	log     logr.Logger
	client  client.Client // cached reads, direct writes
	rec     recorder
	members memberList
	ann     answerer
	metrics *Metrics
	status  *statusWriter

	kick    chan struct{}     // informer events; capacity 1
	inspect chan func()       // functions to run on the loop, which reads its state safely there
	links   chan []iface.Link // netlink snapshots; capacity 1, latest wins

	wire   wire             // the guard: watches the wire and probes
	stall  stallDetector    // nil when stall detection is off
	probed chan probeResult // probe results
	probes sync.WaitGroup   // probe goroutines
	sends  sync.WaitGroup   // handoff message goroutines

	// loop state
	key      []byte // the gossip key in use
	table    *election.Table
	curLinks []iface.Link
	winners  map[string]string // group key -> winner at the last decision
	mine     map[string]bool   // group keys this node announced at the last decision
	// kernelWarned holds, per group key, the KernelAnswers message last raised, so each is raised once.
	kernelWarned map[string]string
	// conflictWarned holds, per group key, the SelectorConflict message last raised, so each is raised once.
	conflictWarned map[string]string
	kernelSeen     map[netip.Addr]time.Time // addresses this node's kernel was seen answering for on the wire
	kernelDirty    bool

	plan      *plan   // the last decision
	in        *inputs // its inputs
	claims    map[string]claim
	attention map[string]bool // claim keys with something due (a retry, a conflict to clear)
	policy    guardPolicy
	assigned  announce.Assignment      // what the responders answer
	answering map[netip.Addr][]string  // the links each address is answered on, from assigned (sorted)
	released  map[netip.Addr]time.Time // addresses they stopped answering less than a second ago
	addrKey   map[netip.Addr]string    // every managed address -> its group key
	peerMACs  map[string]string        // MACs speakers published -> their node, remembered after they leave
	selfMACs  map[string]bool          // this node's link MACs
	live      map[string]bool          // live members at the last decision
	stores    cacheStores              // the informer stores gather lists from (none in tests)
	dropMark  uint64                   // the guard's dropped sightings at the last quiet batch (takeSightings)
	liveSince map[string]time.Time     // when each live member was first seen live in a row
	// settleUntil: after a stall that withdrew addresses, no probe starts before then.
	settleUntil   time.Time
	settlePending bool       // a decision skipped probes while settling
	stallCheck    stallCheck // what the loop heard on the wire while this process had stalled (stall.go)
	probeLog      probeLog
	// handoffs (handoff.go): takes received, by key; messages waiting for the next flush; when a fail-back is due.
	handedIn map[string]handedIn
	outbox   map[handoffKind]map[string][]string
	// silent are the nodes an offer of this node went unanswered to since their last acceptance: logged once.
	silent     map[string]bool
	failbackAt time.Time
	// decideAgain: the last decision used takes, and left their senders out; decide again at once without.
	decideAgain bool

	health              // health probing: watcher and announcer sides
	triggered time.Time // when the first unprocessed trigger arrived

	// membership wiring (membership.go)
	peers      map[string]*peer // Nodes that are not live members, or were not at the last look
	joinPolicy joinPolicy
	joined     chan joinResult // joins report here
	joins      sync.WaitGroup  // join goroutines
}

// newAgent returns an agent with its loop state empty; Run (or a test) gives it its parts.
func newAgent(cfg Config, log logr.Logger, c client.Client, rec recorder, m *Metrics) *agent {
	return &agent{
		cfg:     cfg,
		log:     log,
		client:  c,
		rec:     rec,
		metrics: m,
		kick:    make(chan struct{}, 1),
		inspect: make(chan func()),
		links:   make(chan []iface.Link, 1),
		table:   election.NewTable(),
		winners: map[string]string{},
		mine:    map[string]bool{},

		kernelSeen: map[netip.Addr]time.Time{},
		claims:     map[string]claim{},
		attention:  map[string]bool{},
		policy: guardPolicy{Defend: cfg.ConflictPolicy == ConflictDefend, RetryMin: cfg.ConflictRetryMin,
			RetryMax: cfg.ConflictRetryMax, ClearAfter: cfg.ConflictClearAfter}.withDefaults(),
		assigned:  announce.Assignment{},
		released:  map[netip.Addr]time.Time{},
		addrKey:   map[netip.Addr]string{},
		peerMACs:  map[string]string{},
		selfMACs:  map[string]bool{},
		live:      map[string]bool{},
		liveSince: map[string]time.Time{},
		handedIn:  map[string]handedIn{},
		probed:    make(chan probeResult, 256),
		health:    newHealth(),

		peers:      map[string]*peer{},
		joinPolicy: joinPolicy{Base: cfg.RejoinInterval, Max: 6 * cfg.RejoinInterval},
		joined:     make(chan joinResult, 64),
	}
}

// Run runs a speaker until ctx ends, then hands its addresses over and leaves the cluster. A speaker that starts
// before its node's network is ready (the API server unreachable, the bind address not configured yet, no
// interfaces) waits and retries with backoff rather than exiting: under a kubelet an exit costs a
// CrashLoopBackOff of 10 s and more.
func Run(ctx context.Context, cfg Config) error {
	err := run(ctx, cfg)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // stopped while it waited for the network to start
	}
	return err
}

func run(ctx context.Context, cfg Config) error {
	var p parts
	defer p.stops.run()
	if err := p.build(ctx, cfg); err != nil {
		return err
	}
	p.a.loop(ctx)
	p.a.leave(p.members)
	return nil
}

// parts are the speaker's agent and what its shutdown needs by name, and the steps that stop the rest.
type parts struct {
	a       *agent
	members *membership.List
	stops   shutdown
}

// shutdown is what stops the parts build started, in the reverse order of their starts: the one way the speaker
// stops, whether build failed half-way or the loop ended. Each step waits for the goroutines of its part.
type shutdown []func()

func (s *shutdown) add(f func()) { *s = append(*s, f) }

func (s *shutdown) run() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i]()
	}
	*s = nil
}

// build makes and starts every part of the speaker around its event loop: the manager (informers, metrics,
// health), the status writer, memberlist (joined), the stall detector, the announcer, the guard, the interface
// watcher and the health monitor, adding how each stops to p.stops. Then p.a is ready for its loop.
func (p *parts) build(ctx context.Context, cfg Config) error {
	stops := &p.stops
	cfg.defaults()
	if cfg.NodeName == "" {
		return errors.New("speaker: the node name is required")
	}
	if cfg.ConflictPolicy != ConflictYield && cfg.ConflictPolicy != ConflictDefend {
		return fmt.Errorf("speaker: conflict policy %q: want %q or %q", cfg.ConflictPolicy, ConflictYield, ConflictDefend)
	}
	if cfg.Secret.Name == "" || cfg.Secret.Namespace == "" {
		return errors.New("speaker: the gossip key Secret's namespace and name are required")
	}
	log := cfg.Logger.WithValues("node", cfg.NodeName)
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	// Creating the manager maps the Secret's kind, which asks the API server: retry while it is unreachable.
	var mgr ctrl.Manager
	if err := retry(ctx, cfg.Clock, log, "connecting to the API server", func() error {
		var err error
		mgr, err = ctrl.NewManager(cfg.RESTConfig, ctrl.Options{
			Scheme:                 scheme,
			Logger:                 log,
			Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
			HealthProbeBindAddress: cfg.ProbeAddr,
			PprofBindAddress:       cfg.PprofAddr,
			Cache: cache.Options{DefaultTransform: trimForCache, ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {
					Namespaces: map[string]cache.Config{cfg.Secret.Namespace: {}},
					Field:      fields.OneTermEqualSelector("metadata.name", cfg.Secret.Name),
				},
			}},
		})
		return err
	}); err != nil {
		return fmt.Errorf("speaker: creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready once the caches have synced and this speaker has joined the others (or found none to join).
	var ready atomic.Bool
	if err := mgr.AddReadyzCheck("joined", func(*http.Request) error {
		if !ready.Load() {
			return errors.New("caches not synced or memberlist not joined yet")
		}
		return nil
	}); err != nil {
		return err
	}
	a := newAgent(cfg, log, mgr.GetClient(), mgr.GetEventRecorder("herald-speaker"), NewMetrics(cfg.Registerer))
	p.a = a
	a.status = newStatusWriter(a.client, mgr.GetAPIReader(), cfg.NodeName, log.WithName("status"), cfg.Clock, a.metrics)
	a.status.healthRefresh = cfg.HealthStatusRefresh
	// herald explain asks each speaker why it answers an address or not, on the metrics port.
	if err := mgr.AddMetricsServerExtraHandler(ExplainPath, a.explainHandler()); err != nil {
		return err
	}
	// Announcements are read from the cache (to delete stale ones) but decide nothing: their changes, many of
	// them this speaker's own writes, do not wake the loop. An informer needs the API server's discovery, which
	// fails while the node's network is not up yet: retry.
	informers := []client.Object{&heraldv1.Announcement{}, &corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&heraldv1.IPAddressPool{}, &heraldv1.L2Advertisement{}, &corev1.Secret{}}
	for i, obj := range informers {
		var inf cache.Informer
		if err := retry(ctx, cfg.Clock, log, fmt.Sprintf("setting up the informer for %T", obj), func() error {
			var err error
			inf, err = mgr.GetCache().GetInformer(ctx, obj)
			return err
		}); err != nil {
			return fmt.Errorf("speaker: informer for %T: %w", obj, err)
		}
		if si, ok := inf.(toolscache.SharedIndexInformer); ok {
			switch obj.(type) {
			case *corev1.Service:
				a.stores.services = si.GetStore()
			case *discoveryv1.EndpointSlice:
				a.stores.endpointSlices = si.GetStore()
			}
		}
		if i == 0 {
			// An Announcement whose status changed (another speaker overwrote it, or this one's write landed)
			// is compared with what this speaker wrote, by the status writer.
			if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				UpdateFunc: func(old, cur any) {
					o, ok1 := old.(*heraldv1.Announcement)
					n, ok2 := cur.(*heraldv1.Announcement)
					if ok1 && ok2 && !equalStatus(&o.Status, &n.Status) {
						a.status.changed(types.NamespacedName{Namespace: n.Namespace, Name: n.Name})
					}
				},
			}); err != nil {
				return fmt.Errorf("speaker: event handler for %T: %w", obj, err)
			}
			continue
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { a.poke() },
			UpdateFunc: func(any, any) { a.poke() },
			DeleteFunc: func(any) { a.poke() },
		}); err != nil {
			return fmt.Errorf("speaker: event handler for %T: %w", obj, err)
		}
	}

	// The manager (informers, metrics, health) outlives ctx by the graceful leave, so it runs on its own context.
	mgrCtx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup // every goroutine build starts but joins and handoff sends
	stops.add(wg.Wait)
	stops.add(stopMgr)
	mgrErr := make(chan error, 1)
	wg.Go(func() { mgrErr <- mgr.Start(mgrCtx) })

	if !mgr.GetCache().WaitForCacheSync(ctx) {
		select {
		case err := <-mgrErr:
			return fmt.Errorf("speaker: the manager stopped: %w", err)
		default:
			return ctx.Err()
		}
	}
	log.Info("caches synced")

	key, err := a.waitKey(ctx)
	if err != nil {
		return err
	}
	a.key = key
	var links []iface.Link
	if err := retry(ctx, cfg.Clock, log, "listing interfaces", func() error {
		var err error
		links, err = iface.List(0)
		return err
	}); err != nil {
		return fmt.Errorf("speaker: listing interfaces: %w", err)
	}
	a.curLinks = links
	bind := cfg.BindAddr
	if !bind.IsValid() {
		if err := retry(ctx, cfg.Clock, log, "reading this Node's InternalIP", func() error {
			var err error
			bind, err = a.nodeAddress(ctx)
			return err
		}); err != nil {
			return err
		}
	}
	var members *membership.List
	if err := retry(ctx, cfg.Clock, log, "starting memberlist", func() error {
		var err error
		members, err = membership.New(membership.Config{
			NodeName: cfg.NodeName,
			BindAddr: bind,
			Port:     cfg.Port,
			Key:      key,
			MACs:     candidateMACs(links),
			Timings:  cfg.Timings,
			Logger:   log.WithName("memberlist"),
		})
		if err != nil {
			return fmt.Errorf("on %s: %w", net.JoinHostPort(bind.String(), strconv.Itoa(cfg.Port)), err)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("speaker: starting memberlist: %w", err)
	}
	a.members, p.members = members, members
	// Handoff messages still being sent when the speaker stops end within memberlist's TCPTimeout.
	stops.add(a.sends.Wait)
	stops.add(func() { _ = members.Close() })
	// Join before deciding anything: a speaker alone would elect itself for every address and answer beside
	// the real announcers until gossip caught up. Joins still running when the speaker stops end within
	// memberlist's TCPTimeout.
	joinCtx, stopJoins := context.WithCancel(context.WithoutCancel(ctx))
	stops.add(a.joins.Wait)
	stops.add(stopJoins)
	a.joinAll(joinCtx)
	ready.Store(true)

	if cfg.StallThreshold > 0 {
		det := stall.New(stall.Config{Clock: cfg.Clock, Threshold: cfg.StallThreshold, Metrics: stall.NewMetrics(cfg.Registerer)})
		a.stall = det
		wg.Go(func() { det.Run(mgrCtx) })
	}
	var fresh func() bool
	if a.stall != nil {
		fresh = a.stall.Fresh
	}
	ann := announce.New(announce.Config{
		Fresh: fresh,
		RateLimit: announce.Limits{PerRequester: cfg.ReplyRatePerRequester, Burst: int(cfg.ReplyRatePerRequester),
			PerResponder: cfg.ReplyRatePerInterface},
		GratuitousRepeats:  cfg.GratuitousRepeats,
		GratuitousInterval: cfg.GratuitousInterval,
		Refresh:            cfg.Refresh,
		Clock:              cfg.Clock,
		Logger:             log.WithName("announce"),
		Metrics:            announce.NewMetrics(cfg.Registerer),
	})
	a.ann = ann
	annCtx, stopAnn := context.WithCancel(context.WithoutCancel(ctx))
	stops.add(stopAnn)
	wg.Go(func() {
		if err := ann.Run(annCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error(err, "announcer stopped")
		}
	})
	stops.add(func() { _ = ann.Close() })

	gw := guard.New(guard.Config{Clock: cfg.Clock, Logger: log.WithName("guard"), Metrics: guard.NewMetrics(cfg.Registerer),
		ProbeRate: cfg.ProbeRate})
	a.wire = &guardWire{w: gw, pc: guard.ProbeConfig{Count: cfg.ProbeCount, Interval: cfg.ProbeInterval, Wait: cfg.ProbeWait}}
	wg.Go(func() {
		if err := gw.Run(annCtx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, guard.ErrClosed) {
			log.Error(err, "guard stopped")
		}
	})
	stops.add(func() { _ = gw.Close() })

	watcher := iface.NewWatcher(iface.WatcherOptions{Logger: log.WithName("iface"), Clock: cfg.Clock, Metrics: iface.NewMetrics(cfg.Registerer)})
	wg.Go(func() {
		if err := watcher.Run(ctx, func(ls []iface.Link) {
			select {
			case <-a.links:
			default:
			}
			a.links <- ls
		}); err != nil && !errors.Is(err, context.Canceled) {
			log.Error(err, "interface watcher stopped")
		}
	})

	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	stops.add(stopStatus)
	wg.Go(func() { a.status.run(statusCtx) })

	if cfg.HealthInterval > 0 {
		a.monitor = probe.NewMonitor(probe.MonitorConfig{Interval: cfg.HealthInterval, Wait: cfg.HealthWait,
			Attempts: cfg.HealthAttempts, Clock: cfg.Clock, Logger: log.WithName("health")})
		wg.Go(func() { a.monitor.Run(ctx) })
		stops.add(a.monitor.Close)
	}

	return nil
}

// leave ends the speaker's part in the cluster after its loop: it stops answering first, then sends each key's
// next node a take (handoff.go), which answers at once, and leaves memberlist, which tells the others, who take
// over as soon as the leave reaches them.
func (a *agent) leave(members *membership.List) {
	a.leaveTakes()
	a.ann.Set(announce.Assignment{})
	a.metrics.Announced.Set(0)
	a.flushHandoffs()
	if !waitTimeout(&a.sends, a.cfg.LeaveTimeout/2) {
		a.log.Info("handoff messages still unsent; leaving anyway", "waited", a.cfg.LeaveTimeout/2)
	}
	a.log.Info("leaving the cluster", "timeout", a.cfg.LeaveTimeout)
	if err := members.Leave(a.cfg.LeaveTimeout); err != nil {
		a.log.Error(err, "leaving memberlist")
	}
}

// waitTimeout waits for wg, at most d; it reports whether wg was done.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// poke tells the loop that its inputs changed; it never blocks (informer callbacks must not).
func (a *agent) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// waitKey reads the gossip key from the Secret, waiting for the controller to create it.
func (a *agent) waitKey(ctx context.Context) ([]byte, error) {
	t := a.cfg.Clock.NewTicker(time.Second)
	defer t.Stop()
	warned := false
	for {
		key, err := a.readKey(ctx)
		if err == nil {
			return key, nil
		}
		if !warned {
			a.log.Info("waiting for the gossip key", "reason", err.Error())
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("speaker: no gossip key: %w", err)
		case <-t.C():
		}
	}
}

func (a *agent) readKey(ctx context.Context) ([]byte, error) {
	var s corev1.Secret
	if err := a.client.Get(ctx, a.cfg.Secret, &s); err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", a.cfg.Secret, err)
	}
	key := s.Data["key"]
	if len(key) != 32 {
		return nil, fmt.Errorf("secret %s: field \"key\" holds %d bytes; the gossip key must be exactly 32 bytes (AES-256)", a.cfg.Secret, len(key))
	}
	return key, nil
}

// nodeAddress returns the first InternalIP of this node's Node object.
func (a *agent) nodeAddress(ctx context.Context) (netip.Addr, error) {
	var n corev1.Node
	if err := a.client.Get(ctx, types.NamespacedName{Name: a.cfg.NodeName}, &n); err != nil {
		return netip.Addr{}, fmt.Errorf("speaker: no --bind-address and Node %s unreadable: %w", a.cfg.NodeName, err)
	}
	for _, ad := range n.Status.Addresses {
		if ad.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(ad.Address); err == nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("speaker: no --bind-address and Node %s has no InternalIP", a.cfg.NodeName)
}

// candidateMACs are the MACs of the interfaces this node may announce on, published for the guard.
func candidateMACs(links []iface.Link) []net.HardwareAddr {
	var out []net.HardwareAddr
	for _, l := range links {
		if l.Up && len(l.MAC) == 6 && !l.Loopback && !l.NoARP && !l.PointToPoint && l.MasterIndex == 0 {
			if !slices.ContainsFunc(out, func(m net.HardwareAddr) bool { return m.String() == l.MAC.String() }) {
				out = append(out, l.MAC)
			}
		}
		if len(out) == 32 {
			break
		}
	}
	return out
}

// RBAC: exactly what the speaker uses (BENCHMARKS.md, "Least privilege", measured from the API server's audit
// log). Reads go through the manager's cache (list and watch; list is what client-go falls back to when the API
// server does not stream lists), except Announcements, which the status writers get from the API server before
// they create, update the status of, or delete one. Events go through the events.k8s.io API (create, and patch
// when an event repeats).
// +kubebuilder:rbac:groups="",resources=services;nodes,verbs=list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=ipaddresspools;l2advertisements,verbs=list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=announcements,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=herald.dev,resources=announcements/status,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=list;watch
