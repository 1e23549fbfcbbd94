package controllers

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
)

// Configuration churn, a property test on the real API server (TestConfigChurn). The environment variables:
//
//	HERALD_CHURN_SEED      the seed (default: the clock's); every run prints it
//	HERALD_CHURN_SEQ       replay this sequence of the seed only (its index, as printed)
//	HERALD_CHURN_KEEP      with HERALD_CHURN_SEQ, replay only these steps (comma list, as a shrink prints it)
//	HERALD_CHURN_DURATION  run sequences until this much time has passed (a soak); default churnSequences of them
//	HERALD_CHURN_STEPS     steps per sequence (default churnSteps)
const (
	churnSequences = 5
	churnSteps     = 30
	// churnShrinkBudget bounds the time spent shrinking a failing sequence; the best sequence so far is printed.
	churnShrinkBudget = 5 * time.Minute
)

// The address universe: small blocks that overlap one another, so that pools collide, shrink onto held
// addresses and run out. .0 and .255 are there for avoidBuggyIPs.
var (
	churnV4Blocks = []string{"198.51.100.0/30", "198.51.100.4/30", "198.51.100.0/29", "198.51.100.2-198.51.100.9",
		"198.51.100.12", "198.51.100.252/30", "198.51.100.8/29"}
	churnV6Blocks = []string{"2001:db8:1::/126", "2001:db8:1::4/126", "2001:db8:1::/125", "2001:db8:1::2-2001:db8:1::9",
		"2001:db8:1::c",
		"2001:db8:1::9-2001:db8:1::2"} // reversed: CEL lets it through (too costly), the controller ignores it
	// churnInvalid are entries CEL must refuse.
	churnInvalid = []string{"198.51.100.5/24", "198.51.100.20-198.51.100.10", "198.51.100.300", "198.51.100.1-2001:db8:1::1",
		"2001:db8:1::1/64", "pool"}
	churnWantV4 = []string{"198.51.100.0", "198.51.100.1", "198.51.100.3", "198.51.100.5", "198.51.100.9", "198.51.100.12",
		"198.51.100.255", "203.0.113.7"} // the last in no pool
	churnWantV6 = []string{"2001:db8:1::", "2001:db8:1::1", "2001:db8:1::3", "2001:db8:1::9", "2001:db8:ff::1"}
	churnPools  = []string{"p0", "p1", "p2", "p3"}
	churnAdvs   = []string{"a0", "a1"}
	churnSvcs   = []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
)

// churnOp is the kind of a step.
type churnOp string

const (
	opApplyPool   churnOp = "apply-pool" // create, or update when it exists
	opInvalidPool churnOp = "invalid-pool"
	opDeletePool  churnOp = "delete-pool"
	opApplyAdv    churnOp = "apply-adv"
	opDeleteAdv   churnOp = "delete-adv"
	opCreateSvc   churnOp = "create-svc" // replaces a Service of that name
	opDeleteSvc   churnOp = "delete-svc"
	opRestart     churnOp = "restart-controller"
)

// churnPool is a pool's spec in the test's terms: NS is the index of the namespace it serves (-1 for any).
type churnPool struct {
	Addresses  []string
	AutoAssign bool
	AvoidBuggy bool
	NS         int
	Priority   int32
}

// churnSvc is a Service's spec in the test's terms.
type churnSvc struct {
	NS        int
	Families  string // v4, v6, prefer46, prefer64, require46, require64
	Requested []string
	Key       string // allow-shared-ip
	Port      int32
	Local     bool
	App       string // the pod selector's app label
	Pool      string // ip-pool annotation
}

// churnStep is one step of a sequence.
type churnStep struct {
	Op   churnOp
	Name string
	Pool *churnPool
	Adv  []string // the advertisement's pools; empty: every pool
	Svc  *churnSvc
}

func (s churnStep) String() string {
	switch s.Op {
	case opApplyPool, opInvalidPool:
		p := s.Pool
		out := fmt.Sprintf("%s %s %v autoAssign=%t", s.Op, s.Name, p.Addresses, p.AutoAssign)
		if p.AvoidBuggy {
			out += " avoidBuggyIPs"
		}
		if p.NS >= 0 {
			out += fmt.Sprintf(" namespaces=[ns%d]", p.NS)
		}
		if p.Priority > 0 {
			out += fmt.Sprintf(" priority=%d", p.Priority)
		}
		return out
	case opApplyAdv:
		return fmt.Sprintf("%s %s pools=%v", s.Op, s.Name, s.Adv)
	case opCreateSvc:
		v := s.Svc
		out := fmt.Sprintf("%s ns%d/%s %s port=%d app=%s", s.Op, v.NS, s.Name, v.Families, v.Port, v.App)
		if len(v.Requested) > 0 {
			out += " load-balancer-ips=" + strings.Join(v.Requested, ",")
		}
		if v.Key != "" {
			out += " allow-shared-ip=" + v.Key
		}
		if v.Local {
			out += " externalTrafficPolicy=Local"
		}
		if v.Pool != "" {
			out += " ip-pool=" + v.Pool
		}
		return out
	case opDeleteSvc:
		return fmt.Sprintf("%s %s", s.Op, s.Name)
	case opRestart:
		return string(s.Op)
	}
	return fmt.Sprintf("%s %s", s.Op, s.Name)
}

// generateChurn draws a sequence of n steps. It keeps its own model of what exists so that deletes mostly hit
// something; it never looks at the cluster, so a seed always gives the same sequence.
func generateChurn(rng *rand.Rand, n int) []churnStep {
	pools := map[string]*churnPool{}
	advs := map[string]bool{}
	svcs := map[string]bool{} // "ns/name"
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	// Some sequences use few pools and Services, so that a deleted pool often leaves a Service nowhere to go.
	poolNames := churnPools[:1+rng.IntN(len(churnPools))]
	svcNames := churnSvcs[:2+rng.IntN(len(churnSvcs)-1)]
	randomAddrs := func() []string {
		var out []string
		for range 1 + rng.IntN(3) {
			if rng.IntN(3) == 0 {
				out = append(out, pick(churnV6Blocks))
			} else {
				out = append(out, pick(churnV4Blocks))
			}
		}
		return out
	}
	randomPool := func() *churnPool {
		p := &churnPool{Addresses: randomAddrs(), AutoAssign: rng.IntN(5) != 0, AvoidBuggy: rng.IntN(4) == 0, NS: -1}
		if rng.IntN(4) == 0 {
			p.NS = rng.IntN(2)
		}
		if rng.IntN(4) == 0 {
			p.Priority = int32(1 + rng.IntN(3))
		}
		return p
	}
	// mutate changes an existing pool the ways operators do: shrink it, reorder it, flip a setting, or replace it.
	mutate := func(old *churnPool) *churnPool {
		p := *old
		p.Addresses = slices.Clone(old.Addresses)
		switch rng.IntN(5) {
		case 0: // shrink
			if len(p.Addresses) > 1 {
				i := rng.IntN(len(p.Addresses))
				p.Addresses = slices.Delete(p.Addresses, i, i+1)
			} else {
				p.Addresses = []string{pick(churnV4Blocks)}
			}
		case 1: // reorder
			rng.Shuffle(len(p.Addresses), func(i, j int) { p.Addresses[i], p.Addresses[j] = p.Addresses[j], p.Addresses[i] })
			if len(p.Addresses) == 1 {
				p.Addresses = append(p.Addresses, pick(churnV6Blocks))
			}
		case 2: // grow
			p.Addresses = append(p.Addresses, randomAddrs()[0])
		case 3:
			p.AutoAssign, p.AvoidBuggy = !p.AutoAssign, rng.IntN(3) == 0
		default:
			return randomPool()
		}
		return &p
	}
	randomSvc := func(ns int) *churnSvc {
		v := &churnSvc{NS: ns, Families: pick([]string{"v4", "v4", "v6", "prefer46", "prefer64", "require46", "require64"}),
			Port: []int32{80, 443}[rng.IntN(2)], App: pick([]string{"web", "db"}), Local: rng.IntN(4) == 0}
		if rng.IntN(3) == 0 {
			v.Key = pick([]string{"k1", "k2"})
		}
		if rng.IntN(6) == 0 {
			v.Pool = pick(poolNames)
		}
		if rng.IntN(3) == 0 {
			switch v.Families {
			case "v4":
				v.Requested = []string{pick(churnWantV4)}
			case "v6":
				v.Requested = []string{pick(churnWantV6)}
			default:
				v.Requested = []string{pick(churnWantV4), pick(churnWantV6)}
				if rng.IntN(4) == 0 {
					v.Requested = v.Requested[:1] // RequireDualStack refuses it
				}
			}
		}
		return v
	}
	var steps []churnStep
	for len(steps) < n {
		switch w := rng.IntN(100); {
		case w < 28:
			name := pick(poolNames)
			p := randomPool()
			if old := pools[name]; old != nil {
				p = mutate(old)
			}
			pools[name] = p
			steps = append(steps, churnStep{Op: opApplyPool, Name: name, Pool: p})
		case w < 33:
			p := randomPool()
			if rng.IntN(4) == 0 {
				p.Addresses = nil
			} else {
				p.Addresses = append(p.Addresses, pick(churnInvalid))
				rng.Shuffle(len(p.Addresses), func(i, j int) { p.Addresses[i], p.Addresses[j] = p.Addresses[j], p.Addresses[i] })
			}
			steps = append(steps, churnStep{Op: opInvalidPool, Name: pick(poolNames), Pool: p})
		case w < 40:
			name := pick(poolNames)
			delete(pools, name)
			steps = append(steps, churnStep{Op: opDeletePool, Name: name})
		case w < 45:
			name := pick(churnAdvs)
			var ps []string
			for _, p := range poolNames {
				if rng.IntN(3) == 0 {
					ps = append(ps, p)
				}
			}
			advs[name] = true
			steps = append(steps, churnStep{Op: opApplyAdv, Name: name, Adv: ps})
		case w < 48:
			name := pick(churnAdvs)
			delete(advs, name)
			steps = append(steps, churnStep{Op: opDeleteAdv, Name: name})
		case w < 80:
			ns, name := rng.IntN(2), pick(svcNames)
			key := fmt.Sprintf("ns%d/%s", ns, name)
			if svcs[key] {
				delete(svcs, key)
				steps = append(steps, churnStep{Op: opDeleteSvc, Name: key})
				continue
			}
			svcs[key] = true
			steps = append(steps, churnStep{Op: opCreateSvc, Name: name, Svc: randomSvc(ns)})
		case w < 93:
			if len(svcs) == 0 {
				continue
			}
			keys := slices.Sorted(maps.Keys(svcs))
			key := keys[rng.IntN(len(keys))]
			delete(svcs, key)
			steps = append(steps, churnStep{Op: opDeleteSvc, Name: key})
		default:
			steps = append(steps, churnStep{Op: opRestart})
		}
	}
	return steps
}

// TestConfigChurn is a property test of the controller on the real API server: random, seeded sequences of pool,
// advertisement and Service changes and controller restarts, with the allocation invariants (churnCheck) checked
// after each step once the controller has settled. A failing sequence is shrunk and printed with the
// environment that replays it.
func TestConfigChurn(t *testing.T) {
	needControlPlane(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HERALD_CHURN_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("HERALD_CHURN_SEED=%q: %v", s, err)
		}
	}
	steps := envInt(t, "HERALD_CHURN_STEPS", churnSteps)
	var soak time.Duration
	if s := os.Getenv("HERALD_CHURN_DURATION"); s != "" {
		var err error
		if soak, err = time.ParseDuration(s); err != nil {
			t.Fatalf("HERALD_CHURN_DURATION=%q: %v", s, err)
		}
	}
	t.Logf("churn: seed %d (replay with HERALD_CHURN_SEED=%d)", seed, seed)
	h := &churnHarness{t: t}
	defer h.close()
	start := time.Now()
	sequences, total := 0, 0
	for i := 0; ; i++ {
		if only := os.Getenv("HERALD_CHURN_SEQ"); only != "" && only != strconv.Itoa(i) {
			if n, _ := strconv.Atoi(only); i > n {
				break
			}
			continue
		}
		if soak > 0 && time.Since(start) > soak || soak == 0 && os.Getenv("HERALD_CHURN_SEQ") == "" && i >= churnSequences {
			break
		}
		seq := generateChurn(rand.New(rand.NewPCG(seed, uint64(i))), steps)
		keep := allIndices(len(seq))
		if s := os.Getenv("HERALD_CHURN_KEEP"); s != "" {
			keep = parseIndices(t, s)
		}
		res := h.run(seq, keep)
		sequences++
		total += res.steps
		if res.violation == "" {
			continue
		}
		t.Errorf("churn: seed %d sequence %d failed at step %d (%s):\n%s", seed, i, keep[res.at], seq[keep[res.at]], res.violation)
		shrunk, why := h.shrink(seq, keep[:res.at+1])
		var b strings.Builder
		for _, k := range shrunk {
			fmt.Fprintf(&b, "  %3d  %s\n", k, seq[k])
		}
		t.Fatalf("churn: shrunk to %d steps (replay: HERALD_CHURN_SEED=%d HERALD_CHURN_SEQ=%d HERALD_CHURN_KEEP=%s go test -run TestConfigChurn ./controllers/):\n%s\nwhich fails with:\n%s",
			len(shrunk), seed, i, joinIndices(shrunk), b.String(), why)
	}
	d := time.Since(start)
	t.Logf("churn: seed=%d sequences=%d steps=%d restarts=%d rejected_pools=%d failed_allocations_seen=%d duration=%v (%.0f ms/step)",
		seed, sequences, total, h.restarts, h.rejected, h.failures, d.Round(time.Second), float64(d.Milliseconds())/float64(max(total, 1)))
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func allIndices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func parseIndices(t *testing.T, s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("HERALD_CHURN_KEEP=%q: %v", s, err)
		}
		out = append(out, n)
	}
	return out
}

func joinIndices(idx []int) string {
	s := make([]string, len(idx))
	for i, n := range idx {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// churnHarness runs sequences against the package's control plane, each from a clean slate with a controller
// of its own.
type churnHarness struct {
	t    *testing.T
	mgr  ctrl.Manager
	stop func()
	nss  [2]string // this run's namespaces, for ns0 and ns1

	restarts, rejected, failures int
}

// churnResult is how a run ended: violation is empty when every step kept the invariants.
type churnResult struct {
	steps     int
	at        int // index into keep of the failing step
	violation string
}

func (h *churnHarness) startController() {
	h.mgr, h.stop = startManager(h.t, ctrl.Options{})
}

// close stops the controller and removes what the last run created.
func (h *churnHarness) close() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
	ctx := context.Background()
	for _, ns := range h.nss {
		if ns == "" {
			continue
		}
		// envtest runs no namespace controller: delete the Services so no later test's controller sees them.
		_ = k8s.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace(ns))
		_ = k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	h.nss = [2]string{}
	_ = k8s.DeleteAllOf(ctx, &heraldv1.IPAddressPool{})
	_ = k8s.DeleteAllOf(ctx, &heraldv1.L2Advertisement{})
}

// run executes the steps keep of seq from a clean slate and checks the invariants after each.
func (h *churnHarness) run(seq []churnStep, keep []int) churnResult {
	h.close()
	ctx := context.Background()
	for i := range h.nss {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "churn-"}}
		if err := k8s.Create(ctx, ns); err != nil {
			h.t.Fatalf("creating a namespace: %v", err)
		}
		h.nss[i] = ns.Name
	}
	_, errorsBefore, _ := controllerWork()
	h.startController()
	if err := h.settle(time.Now(), errorsBefore); err != nil {
		return churnResult{violation: "before the first step: " + err.Error()}
	}
	prev, err := h.observe()
	if err != nil {
		h.t.Fatal(err)
	}
	for i, k := range keep {
		began := time.Now()
		_, errorsBefore, _ := controllerWork()
		if v := h.apply(seq[k]); v != "" {
			return churnResult{steps: i + 1, at: i, violation: v}
		}
		if err := h.settle(began, errorsBefore); err != nil {
			return churnResult{steps: i + 1, at: i, violation: err.Error()}
		}
		cur, err := h.observe()
		if err != nil {
			h.t.Fatal(err)
		}
		if v := h.check(prev, cur); len(v) > 0 {
			return churnResult{steps: i + 1, at: i, violation: strings.Join(v, "\n") + "\n" + cur.describe(h)}
		}
		prev = cur
	}
	return churnResult{steps: len(keep)}
}

// shrink removes steps from a failing selection while it still fails (delta debugging: chunks of halving size),
// within churnShrinkBudget, and returns the smallest selection found and its failure.
func (h *churnHarness) shrink(seq []churnStep, keep []int) ([]int, string) {
	deadline := time.Now().Add(churnShrinkBudget)
	res := h.run(seq, keep)
	if res.violation == "" {
		return keep, "(the failure did not recur when replayed: flaky, or it depends on timing)"
	}
	why := res.violation
	keep = keep[:res.at+1]
	for chunk := max(len(keep)/2, 1); chunk >= 1; chunk /= 2 {
		for i := 0; i < len(keep) && time.Now().Before(deadline); {
			cand := slices.Concat(keep[:i], keep[min(i+chunk, len(keep)):])
			if len(cand) == 0 {
				i += chunk
				continue
			}
			if r := h.run(seq, cand); r.violation != "" {
				keep, why = cand[:r.at+1], r.violation
				h.t.Logf("churn: shrinking: %d steps still fail", len(keep))
				continue
			}
			i += chunk
		}
	}
	if time.Now().After(deadline) {
		why += fmt.Sprintf("\n(shrinking stopped after %v; the sequence may shrink further)", churnShrinkBudget)
	}
	return keep, why
}

// apply performs one step; a non-empty result is a violation (the API server accepted an invalid pool).
func (h *churnHarness) apply(s churnStep) string {
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			h.t.Fatalf("churn step %s: %v", s, err)
		}
	}
	switch s.Op {
	case opApplyPool:
		must(h.applyPool(ctx, s.Name, h.poolSpec(s.Pool)))
	case opInvalidPool:
		err := h.applyPool(ctx, s.Name, h.poolSpec(s.Pool))
		if err == nil {
			return fmt.Sprintf("the API server accepted invalid pool %s %v", s.Name, s.Pool.Addresses)
		}
		if !apierrors.IsInvalid(err) {
			must(err)
		}
		h.rejected++
	case opDeletePool:
		must(client.IgnoreNotFound(k8s.Delete(ctx, &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: s.Name}})))
	case opApplyAdv:
		adv := &heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: s.Name}}
		must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(adv), adv)
			adv.Spec.IPAddressPools = s.Adv
			if apierrors.IsNotFound(err) {
				return k8s.Create(ctx, adv)
			} else if err != nil {
				return err
			}
			return k8s.Update(ctx, adv)
		}))
	case opDeleteAdv:
		must(client.IgnoreNotFound(k8s.Delete(ctx, &heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: s.Name}})))
	case opCreateSvc:
		svc := h.service(s.Name, s.Svc)
		must(client.IgnoreNotFound(k8s.Delete(ctx, svc.DeepCopy())))
		must(k8s.Create(ctx, svc))
	case opDeleteSvc:
		nsIdx, name, _ := strings.Cut(s.Name, "/")
		i, _ := strconv.Atoi(strings.TrimPrefix(nsIdx, "ns"))
		must(client.IgnoreNotFound(k8s.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: h.nss[i], Name: name}})))
	case opRestart:
		h.stop()
		h.startController()
		h.restarts++
	}
	return ""
}

func (h *churnHarness) applyPool(ctx context.Context, name string, spec heraldv1.IPAddressPoolSpec) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &heraldv1.IPAddressPool{}
		err := k8s.Get(ctx, client.ObjectKey{Name: name}, p)
		if apierrors.IsNotFound(err) {
			return k8s.Create(ctx, &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec})
		} else if err != nil {
			return err
		}
		p.Spec = spec
		return k8s.Update(ctx, p)
	})
}

func (h *churnHarness) poolSpec(p *churnPool) heraldv1.IPAddressPoolSpec {
	spec := heraldv1.IPAddressPoolSpec{Addresses: addresses(p.Addresses...), AutoAssign: ptr.To(p.AutoAssign), AvoidBuggyIPs: p.AvoidBuggy}
	if spec.Addresses == nil {
		spec.Addresses = []heraldv1.AddressRange{}
	}
	if p.NS >= 0 || p.Priority > 0 {
		spec.ServiceAllocation = &heraldv1.ServiceAllocation{Priority: p.Priority}
		if p.NS >= 0 {
			spec.ServiceAllocation.Namespaces = []string{h.nss[p.NS]}
		}
	}
	return spec
}

func (h *churnHarness) service(name string, v *churnSvc) *corev1.Service {
	return lbService(h.nss[v.NS], name, v.Port, func(s *corev1.Service) {
		s.Spec.Selector = map[string]string{"app": v.App}
		switch v.Families {
		case "v6":
			dualStack(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol)(s)
		case "prefer46":
			dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol)(s)
		case "prefer64":
			dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol)(s)
		case "require46":
			dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol)(s)
		case "require64":
			dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol)(s)
		}
		if len(v.Requested) > 0 {
			annotate(s, AnnotationLoadBalancerIPs, strings.Join(v.Requested, ","))
		}
		if v.Key != "" {
			annotate(s, AnnotationAllowSharedIP, v.Key)
		}
		if v.Local {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		if v.Pool != "" {
			annotate(s, AnnotationIPPool, v.Pool)
		}
	})
}

// Settling. The controller has settled when its cache holds exactly what the API server holds (so every write,
// its own status patches included, has reached it), none of its reconcilers is running, and neither the API
// objects nor the number of reconciles has changed for churnQuiet. The quiet window covers what the first two
// conditions cannot see: an event that reached the cache but not yet its handler (microseconds), and a failed
// reconcile waiting out its backoff (5 ms doubling: 5 retries fit in 155 ms); after a reconcile error in the step,
// churnQuietAfterError (8 retries) applies.
const (
	churnQuiet           = 250 * time.Millisecond
	churnQuietAfterError = 1500 * time.Millisecond
	churnSettleTimeout   = 30 * time.Second
)

// churnControllers are the reconcilers whose work settling waits for.
var churnControllers = map[string]bool{"service": true, "ipaddresspool": true, "l2advertisement": true}

type settleSample struct {
	api, cache  string // fingerprints: every watched object's kind, key and resourceVersion
	reconciles  float64
	errors      float64
	active      float64
	at          time.Time
	cacheFailed error
}

func (h *churnHarness) sample() (settleSample, error) {
	s := settleSample{at: time.Now()}
	var err error
	if s.api, err = fingerprint(context.Background(), k8s); err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.cache, s.cacheFailed = fingerprint(ctx, h.mgr.GetCache())
	s.reconciles, s.errors, s.active = controllerWork()
	return s, nil
}

// controllerWork sums, over churnControllers, the reconciles done, those that failed and those running now.
func controllerWork() (reconciles, errors, active float64) {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0, 0, -1 // never settled
	}
	for _, f := range families {
		var into *float64
		switch f.GetName() {
		case "controller_runtime_reconcile_total":
			into = &reconciles
		case "controller_runtime_reconcile_errors_total":
			into = &errors
		case "controller_runtime_active_workers":
			into = &active
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			if churnControllers[labelValue(m, "controller")] {
				*into += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return reconciles, errors, active
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// fingerprint lists the kinds the controller watches.
func fingerprint(ctx context.Context, r client.Reader) (string, error) {
	var parts []string
	for _, list := range []client.ObjectList{&corev1.ServiceList{}, &heraldv1.IPAddressPoolList{}, &heraldv1.L2AdvertisementList{}, &corev1.NamespaceList{}} {
		if err := r.List(ctx, list); err != nil {
			return "", err
		}
		if err := meta.EachListItem(list, func(o runtime.Object) error {
			obj := o.(client.Object)
			parts = append(parts, fmt.Sprintf("%T %s/%s@%s", obj, obj.GetNamespace(), obj.GetName(), obj.GetResourceVersion()))
			return nil
		}); err != nil {
			return "", err
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n"), nil
}

// settle waits until the controller has settled after a step that began at began, when the reconcilers had
// failed startErrors times.
func (h *churnHarness) settle(began time.Time, startErrors float64) error {
	var stable *settleSample // the first sample of the current quiet run
	var last settleSample
	for deadline := began.Add(churnSettleTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := h.sample()
		if err != nil {
			return err
		}
		last = s
		if s.cacheFailed != nil || s.api != s.cache || s.active != 0 {
			stable = nil
			continue
		}
		if stable == nil || stable.api != s.api || stable.reconciles != s.reconciles {
			stable = &s
			continue
		}
		quiet := churnQuiet
		if s.errors > startErrors {
			quiet = churnQuietAfterError
		}
		if s.at.Sub(stable.at) >= quiet {
			return nil
		}
	}
	return fmt.Errorf("the controller did not settle within %v: cache caught up %t (%v), active reconciles %v",
		churnSettleTimeout, last.api == last.cache, last.cacheFailed, last.active)
}

// churnState is what the invariants are checked on: the cluster as the API server has it.
type churnState struct {
	pools []heraldv1.IPAddressPool // by creation time, then name: the owner of an address is the first listing it
	advs  []heraldv1.L2Advertisement
	svcs  []corev1.Service
}

func (h *churnHarness) observe() (*churnState, error) {
	ctx := context.Background()
	st := &churnState{}
	var pools heraldv1.IPAddressPoolList
	if err := k8s.List(ctx, &pools); err != nil {
		return nil, err
	}
	st.pools = pools.Items
	slices.SortStableFunc(st.pools, func(a, b heraldv1.IPAddressPool) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	var advs heraldv1.L2AdvertisementList
	if err := k8s.List(ctx, &advs); err != nil {
		return nil, err
	}
	st.advs = advs.Items
	for _, ns := range h.nss {
		var svcs corev1.ServiceList
		if err := k8s.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		st.svcs = append(st.svcs, svcs.Items...)
	}
	return st, nil
}

func (st *churnState) describe(h *churnHarness) string {
	var b strings.Builder
	b.WriteString("cluster state:\n")
	for _, p := range st.pools {
		fmt.Fprintf(&b, "  pool %s (created %s) %v autoAssign=%v avoidBuggyIPs=%t serviceAllocation=%+v\n", p.Name,
			p.CreationTimestamp.Format(time.TimeOnly), p.Spec.Addresses, ptr.Deref(p.Spec.AutoAssign, true), p.Spec.AvoidBuggyIPs, p.Spec.ServiceAllocation)
	}
	for _, s := range st.svcs {
		fmt.Fprintf(&b, "  service %s: %v %v requested=%q key=%q status=%v\n", h.symbolic(&s), ptr.Deref(s.Spec.IPFamilyPolicy, ""),
			s.Spec.IPFamilies, s.Annotations[AnnotationLoadBalancerIPs], s.Annotations[AnnotationAllowSharedIP], statusAddrs(&s))
	}
	return b.String()
}

// symbolic names a Service as the steps do: ns0/s1.
func (h *churnHarness) symbolic(s *corev1.Service) string {
	for i, ns := range h.nss {
		if ns == s.Namespace {
			return fmt.Sprintf("ns%d/%s", i, s.Name)
		}
	}
	return s.Namespace + "/" + s.Name
}

func statusAddrs(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		a, err := netip.ParseAddr(in.IP)
		if err != nil {
			a = netip.Addr{} // shows as "invalid IP"; no valid address is ever that
		}
		out = append(out, a)
	}
	return out
}

// families is what a Service wants, primary first, as its spec says.
func families(s *corev1.Service) []corev1.IPFamily {
	f := s.Spec.IPFamilies
	if len(f) == 0 {
		f = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	if p := s.Spec.IPFamilyPolicy; p == nil || *p == corev1.IPFamilyPolicySingleStack {
		f = f[:1]
	}
	return f
}

func familyOf(a netip.Addr) corev1.IPFamily {
	if a.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// poolAdmits reports whether a pool's serviceAllocation lets a Service take its addresses.
func poolAdmits(p *heraldv1.IPAddressPool, s *corev1.Service) bool {
	sa := p.Spec.ServiceAllocation
	return sa == nil || len(sa.Namespaces) == 0 || slices.Contains(sa.Namespaces, s.Namespace)
}

func poolLists(p *heraldv1.IPAddressPool, a netip.Addr) bool {
	for _, r := range p.Spec.Addresses {
		if rg, err := ipam.ParseRange(string(r)); err == nil && rg.Contains(a) {
			return true
		}
	}
	return false
}

// valid reports whether Service s may hold address a, from the documented rules rather than the controller's
// code: a has one of the Service's families and is the address it requests, if it requests some; the address
// belongs to the earliest-created pool listing it (its owner), which does not exclude it (avoidBuggyIPs); and the
// owner or another pool listing it is one the Service may use: the pool its annotation names, else any pool
// whose serviceAllocation admits it, with autoAssign on unless the Service requests addresses.
func (st *churnState) valid(s *corev1.Service, a netip.Addr) (bool, string) {
	if !a.IsValid() {
		return false, "not an address"
	}
	if !slices.Contains(families(s), familyOf(a)) {
		return false, "not of the Service's families"
	}
	requested := requestedAddrs(s)
	if len(requested) > 0 && !slices.Contains(requested, a) {
		return false, "not the requested address"
	}
	var owner *heraldv1.IPAddressPool
	for i := range st.pools {
		if poolLists(&st.pools[i], a) {
			owner = &st.pools[i]
			break
		}
	}
	if owner == nil {
		return false, "in no pool"
	}
	if owner.Spec.AvoidBuggyIPs && a.Is4() && (a.As4()[3] == 0 || a.As4()[3] == 255) {
		return false, "excluded by pool " + owner.Name + "'s avoidBuggyIPs"
	}
	named := strings.TrimSpace(s.Annotations[AnnotationIPPool])
	for i := range st.pools {
		p := &st.pools[i]
		if p != owner && !poolLists(p, a) {
			continue
		}
		switch {
		case named != "" && p.Name != named:
		case !poolAdmits(p, s):
		case named == "" && len(requested) == 0 && !ptr.Deref(p.Spec.AutoAssign, true):
		default:
			return true, ""
		}
	}
	return false, "no pool listing it may serve the Service"
}

func requestedAddrs(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, f := range strings.Split(s.Annotations[AnnotationLoadBalancerIPs], ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(f)); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// mayShare reports whether two Services may hold one address: the same sharing key, the same backends for
// externalTrafficPolicy Local, no port used by both.
func mayShare(a, b *corev1.Service) bool {
	ka, kb := strings.TrimSpace(a.Annotations[AnnotationAllowSharedIP]), strings.TrimSpace(b.Annotations[AnnotationAllowSharedIP])
	if ka == "" || ka != kb {
		return false
	}
	local := func(s *corev1.Service) bool {
		return s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	}
	if local(a) != local(b) || local(a) && !maps.Equal(a.Spec.Selector, b.Spec.Selector) {
		return false
	}
	for _, pa := range a.Spec.Ports {
		for _, pb := range b.Spec.Ports {
			if pa.Port == pb.Port && pa.Protocol == pb.Protocol {
				return false
			}
		}
	}
	return true
}

// check returns the invariants cur breaks, given the state before the step:
//   - no address is held by two Services that may not share it;
//   - every Service has addresses valid for it (one per family it requires), or an AllocationFailed Event;
//   - a Service keeps what it held as long as that is still valid: all of it when all of it is, and its primary
//     family's address unless it requires dual-stack (whose pair may move together when one half went invalid);
//   - every L2Advertisement's Ready condition says whether the pools it names exist.
func (h *churnHarness) check(prev, cur *churnState) []string {
	var out []string
	holders := map[netip.Addr][]*corev1.Service{}
	for i := range cur.svcs {
		s := &cur.svcs[i]
		for _, a := range statusAddrs(s) {
			holders[a] = append(holders[a], s)
		}
	}
	for a, hs := range holders {
		for i := range hs {
			for j := i + 1; j < len(hs); j++ {
				if !mayShare(hs[i], hs[j]) {
					out = append(out, fmt.Sprintf("address %s is held by %s and %s, which may not share it", a, h.symbolic(hs[i]), h.symbolic(hs[j])))
				}
			}
		}
	}

	var unexplained []*corev1.Service
	why := map[string]string{}
	for i := range cur.svcs {
		s := &cur.svcs[i]
		addrs := statusAddrs(s)
		ok := len(addrs) > 0
		if !ok {
			why[string(s.UID)] = "no address"
		}
		for _, a := range addrs {
			if v, reason := cur.valid(s, a); !v {
				ok = false
				why[string(s.UID)] = fmt.Sprintf("%s is %s", a, reason)
			}
		}
		fams := families(s)
		if p := s.Spec.IPFamilyPolicy; ok && (p == nil || *p != corev1.IPFamilyPolicyPreferDualStack) && len(addrs) != len(fams) {
			ok = false
			why[string(s.UID)] = fmt.Sprintf("%d addresses for families %v", len(addrs), fams)
		}
		if !ok {
			unexplained = append(unexplained, s)
		}
	}
	out = append(out, h.explained(unexplained, why)...)

	before := map[string]*corev1.Service{}
	for i := range prev.svcs {
		before[string(prev.svcs[i].UID)] = &prev.svcs[i]
	}
	for i := range cur.svcs {
		s := &cur.svcs[i]
		old := before[string(s.UID)]
		if old == nil {
			continue
		}
		held, now := statusAddrs(old), statusAddrs(s)
		allValid := len(held) > 0
		for _, a := range held {
			if v, _ := cur.valid(s, a); !v {
				allValid = false
			}
		}
		for _, a := range held {
			mustKeep := allValid
			if v, _ := cur.valid(s, a); v && familyOf(a) == families(s)[0] &&
				ptr.Deref(s.Spec.IPFamilyPolicy, "") != corev1.IPFamilyPolicyRequireDualStack {
				mustKeep = true
			}
			if mustKeep && !slices.Contains(now, a) {
				out = append(out, fmt.Sprintf("%s held %v and now holds %v: %s, still valid for it, was moved", h.symbolic(s), held, now, a))
			}
		}
	}

	names := map[string]bool{}
	for _, p := range cur.pools {
		names[p.Name] = true
	}
	for _, adv := range cur.advs {
		want := metav1.ConditionTrue
		for _, p := range adv.Spec.IPAddressPools {
			if !names[p] {
				want = metav1.ConditionFalse
			}
		}
		c := meta.FindStatusCondition(adv.Status.Conditions, heraldv1.ConditionReady)
		if c == nil || c.Status != want || c.ObservedGeneration != adv.Generation {
			out = append(out, fmt.Sprintf("L2Advertisement %s names pools %v and its Ready condition is %+v, want %s", adv.Name, adv.Spec.IPAddressPools, c, want))
		}
	}
	return out
}

// churnEventWait bounds the wait for an Event: the controller records them through an asynchronous broadcaster,
// which writes them a little after the status it settled.
const churnEventWait = 10 * time.Second

// explained returns a violation for each Service without an AllocationFailed Event, waiting churnEventWait for
// the Events to arrive.
func (h *churnHarness) explained(svcs []*corev1.Service, why map[string]string) []string {
	if len(svcs) == 0 {
		return nil
	}
	h.failures += len(svcs)
	var missing []*corev1.Service
	for deadline := time.Now().Add(churnEventWait); ; time.Sleep(50 * time.Millisecond) {
		have := map[string]bool{}
		for _, ns := range h.nss {
			var list eventsv1.EventList
			if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
				return []string{err.Error()}
			}
			for _, e := range list.Items {
				if e.Reason == EventAllocationFailed && e.Type == corev1.EventTypeWarning && e.Note != "" {
					have[string(e.Regarding.UID)] = true
				}
			}
		}
		missing = slices.DeleteFunc(slices.Clone(svcs), func(s *corev1.Service) bool { return have[string(s.UID)] })
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	var out []string
	for _, s := range missing {
		out = append(out, fmt.Sprintf("%s holds %v (%s) and has no %s Event saying why", h.symbolic(s), statusAddrs(s), why[string(s.UID)], EventAllocationFailed))
	}
	return out
}
