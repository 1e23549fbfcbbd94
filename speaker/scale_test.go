package speaker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	goruntime "runtime"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/membership"
)

// cacheReader answers List from objects it holds, without copying them, the way controller-runtime's informer
// cache answers a List with UnsafeDisableDeepCopy (the indexer's objects, then meta.SetList, which copies each
// object's struct into the list's Items). controller-runtime's fake client deep-copies (and converts) every
// object on every List, which at 10,000 Services would measure the fake, not the speaker. Everything else goes
// to the embedded fake client.
type cacheReader struct {
	client.Client
	objs map[reflect.Type][]runtime.Object // by list type
}

func (c *cacheReader) add(list client.ObjectList, objs ...runtime.Object) {
	t := reflect.TypeOf(list)
	c.objs[t] = append(c.objs[t], objs...)
}

func (c *cacheReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	objs, ok := c.objs[reflect.TypeOf(list)]
	if !ok {
		return c.Client.List(ctx, list, opts...)
	}
	return apimeta.SetList(list, objs)
}

// scaleAgent is one speaker (node000) of a cluster of nodes Nodes, all live members, with one pool, one
// advertisement for every node and svcs LoadBalancer Services, each with its own address; its loop state is warm
// (first decision made, its probes answered by nobody, so it holds what it won). spare more Nodes exist that
// are not members. Nothing runs: the benchmark drives reconcile as the loop would.
func scaleAgent(b *testing.B, nodes, spare, svcs int) (*agent, *fakeMembers, []string) {
	b.Helper()
	scheme, err := Scheme()
	if err != nil {
		b.Fatal(err)
	}
	r := &cacheReader{Client: fake.NewClientBuilder().WithScheme(scheme).Build(), objs: map[reflect.Type][]runtime.Object{}}
	var names []string
	for i := range nodes + spare {
		n := fmt.Sprintf("node%03d", i)
		names = append(names, n)
		r.add(&corev1.NodeList{}, ptNode(n))
	}
	r.add(&heraldv1.IPAddressPoolList{}, ptPool("p", 1, "198.18.0.0/15"))
	r.add(&heraldv1.L2AdvertisementList{}, ptAdv("all"))
	for i := range svcs {
		r.add(&corev1.ServiceList{}, ptSvc(fmt.Sprintf("s%05d", i), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)))
	}
	clk := clocktesting.NewFakeClock(t0)
	cfg := Config{NodeName: names[0], HealthInterval: -1, StallThreshold: -1, Clock: clk, Registerer: prometheus.NewRegistry(),
		Logger: logr.Discard()}
	cfg.defaults()
	a := newAgent(cfg, cfg.Logger, r, &events.FakeRecorder{}, NewMetrics(cfg.Registerer))
	members := newFakeMembers(names[:nodes]...)
	w := newFakeWire()
	done := make(chan struct{})
	go func() { // the fake wire reports every probe it starts; nobody here needs them
		for {
			select {
			case <-w.probes:
			case <-done:
				return
			}
		}
	}()
	a.members, a.wire, a.ann = members, w, &fakeAnswerer{sets: make(chan struct{}, 1)}
	a.curLinks = []iface.Link{{Index: 2, Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/15")}}}
	a.status = newStatusWriter(r, r, cfg.NodeName, cfg.Logger, clk, a.metrics) // not run: update only stores the wants
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() {
		cancel()
		a.probes.Wait()
		close(done)
	})
	membershipEvent(ctx, a)
	held := 0
	for _, c := range a.claims {
		if c.State == claimHeld {
			held++
		}
	}
	if held == 0 {
		b.Fatalf("warm-up: node000 holds nothing of %d Services on %d nodes", svcs, nodes)
	}
	return a, members, names
}

// membershipEvent is what the loop does when memberlist signals a change: one reconcile (gather from the cache,
// decide, update claims, apply), then, as the probes the decision started come back, their results (here at
// once: the fake wire answers nothing, so each claim is held).
func membershipEvent(ctx context.Context, a *agent) {
	a.reconcile(ctx)
	a.probes.Wait() // fewer probes than a.probed holds: one per newly won group
	changed := false
	for more := true; more; {
		select {
		case r := <-a.probed:
			changed = a.onProbed(r) || changed
		default:
			more = false
		}
	}
	if changed {
		a.apply()
	}
}

// BenchmarkMembershipEvent10kServices100Members: what one speaker recomputes when the membership changes, with
// 10,000 Services on 100 members: the whole reconcile the loop runs on memberlist's signal (BenchmarkDecide10k*
// measure decide alone), with its inputs read from a cache-like reader.
//   - no-change: a signal with the same members (a member's metadata changed);
//   - member-leaves-returns: node099 dies, then comes back, alternately (its hash orders stay cached);
//   - new-member: a member never seen before joins while the last newcomer leaves, so the election hashes
//     every address against the new name.
func BenchmarkMembershipEvent10kServices100Members(b *testing.B) {
	const nodes, svcs = 100, 10000
	ctx := context.Background()
	b.Run("no-change", func(b *testing.B) {
		a, _, _ := scaleAgent(b, nodes, 0, svcs)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			membershipEvent(ctx, a)
		}
	})
	b.Run("member-leaves-returns", func(b *testing.B) {
		a, members, names := scaleAgent(b, nodes, 0, svcs)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%2 == 0 {
				members.leave(names[nodes-1])
			} else {
				members.add(membership.Member{Name: names[nodes-1]})
			}
			membershipEvent(ctx, a)
			if i == 0 {
				checkWins(b, a, names[nodes-1], false)
			}
		}
	})
	b.Run("new-member", func(b *testing.B) {
		// node099 is replaced by node100, node100 by node101, and so on: b.N Nodes exist beyond the 100.
		a, members, names := scaleAgent(b, nodes, b.N, svcs)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			members.leave(names[nodes-1+i])
			members.add(membership.Member{Name: names[nodes+i]})
			membershipEvent(ctx, a)
			if i == 0 {
				checkWins(b, a, names[nodes-1], false)
				checkWins(b, a, names[nodes], true)
			}
		}
	})
}

// checkWins fails the benchmark unless node wins some address (want) or none (!want) at a's last decision: the
// event it measured was seen.
func checkWins(b *testing.B, a *agent, node string, want bool) {
	b.Helper()
	n := 0
	for _, g := range a.plan.Groups {
		if g.Winner == node {
			n++
		}
	}
	if (n > 0) != want {
		b.Fatalf("%s wins %d of %d addresses after the event", node, n, len(a.plan.Groups))
	}
}

// BenchmarkDecide10kServicesByNodes: the decision at 100 and at 1,000 Nodes, all live members, for the write-up
// of how the defaults scale (docs/concepts.md). cold is the first decision, which hashes every (address, node)
// pair into the election table; it reports the heap the table then holds. warm is every later decision with
// nothing changed.
func BenchmarkDecide10kServicesByNodes(b *testing.B) {
	const svcs = 10000
	heap := func() uint64 {
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, nodes := range []int{100, 1000} {
		var live []string
		var ns []*corev1.Node
		for i := range nodes {
			n := fmt.Sprintf("node%04d", i)
			live = append(live, n)
			ns = append(ns, ptNode(n))
		}
		in := ptInputs(live[0], live, ns)
		in.Links = []iface.Link{{Index: 2, Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
			Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/15")}}}
		in.Pools = []*heraldv1.IPAddressPool{ptPool("p", 1, "198.18.0.0/15")}
		in.Advs = []*heraldv1.L2Advertisement{ptAdv("all")}
		for i := range svcs {
			in.Services = append(in.Services, ptSvc(fmt.Sprintf("s%05d", i), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)))
		}
		b.Run(fmt.Sprintf("nodes=%d/cold", nodes), func(b *testing.B) {
			var held uint64
			for range b.N {
				before := heap()
				table := election.NewTable()
				decide(in, table)
				b.StopTimer()
				held = heap() - before
				goruntime.KeepAlive(table)
				b.StartTimer()
			}
			b.ReportMetric(float64(held)/(1<<20), "table-MiB")
		})
		b.Run(fmt.Sprintf("nodes=%d/warm", nodes), func(b *testing.B) {
			table := election.NewTable()
			decide(in, table)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				decide(in, table)
			}
		})
	}
}
