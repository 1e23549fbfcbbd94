package speaker

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/controlplane"
)

// k8s is a direct client of a real control plane; nil under -short.
var k8s client.Client

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	cp, err := controlplane.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.Stop()
	if k8s, err = client.New(cp.Config, client.Options{Scheme: cp.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func TestStatusWriter(t *testing.T) {
	if k8s == nil {
		t.Skip("needs the control plane; skipped with -short")
	}
	ctx := context.Background()
	ns := newStatusNamespace(t, "status-")
	svc := func() *corev1.Service { return createWeb(t, ns.Name) }
	s := svc()
	name := types.NamespacedName{Namespace: ns.Name, Name: "web"}
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC))
	m := NewMetrics(prometheus.NewRegistry())
	w := newStatusWriter(k8s, k8s, "node1", logr.Discard(), clk, m)
	get := func() *heraldv1.Announcement {
		t.Helper()
		var an heraldv1.Announcement
		if err := k8s.Get(ctx, name, &an); err != nil {
			t.Fatalf("reading the Announcement: %v", err)
		}
		return &an
	}
	st := announcementState{UID: s.UID, Node: "node1", Addresses: []string{"198.51.100.5", "2001:db8::5"},
		Interfaces: []string{"eth0"}, Announced: true, Reason: "Announcing", Message: "node1 answers"}
	if err := w.apply(ctx, &statusWants{Set: map[types.NamespacedName]announcementState{name: st}}, nil); err != nil {
		t.Fatal(err)
	}
	an := get()
	want := heraldv1.AnnouncementStatus{Node: "node1", Addresses: st.Addresses, Interfaces: st.Interfaces,
		Since: &metav1.Time{Time: clk.Now()}}
	got := an.Status
	got.Conditions = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	cond := meta.FindStatusCondition(an.Status.Conditions, ConditionAnnounced)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != "Announcing" || cond.Message != "node1 answers" {
		t.Errorf("Announced condition %+v", cond)
	}
	if len(an.OwnerReferences) != 1 || an.OwnerReferences[0].UID != s.UID || an.OwnerReferences[0].Kind != "Service" {
		t.Errorf("owner references %+v, want the Service", an.OwnerReferences)
	}

	// The same wants again write nothing.
	rv := an.ResourceVersion
	if err := w.apply(ctx, &statusWants{Set: map[types.NamespacedName]announcementState{name: st}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := get().ResourceVersion; got != rv {
		t.Errorf("an unchanged want rewrote the Announcement (resourceVersion %s -> %s)", rv, got)
	}

	// Another speaker overwrites it (one that lost its link and caught up late): a recheck of that name alone
	// writes it back; a recheck of a name this writer does not own writes nothing.
	an = get()
	an.Status.Node = "node9"
	if err := k8s.Status().Update(ctx, an); err != nil {
		t.Fatal(err)
	}
	wants1 := &statusWants{Set: map[types.NamespacedName]announcementState{name: st}}
	if err := w.apply(ctx, wants1, map[types.NamespacedName]bool{{Namespace: ns.Name, Name: "other"}: true}); err != nil {
		t.Fatal(err)
	}
	if got := get().Status.Node; got != "node9" {
		t.Fatalf("a recheck of another name wrote this one (node %s)", got)
	}
	if err := w.apply(ctx, wants1, map[types.NamespacedName]bool{name: true}); err != nil {
		t.Fatal(err)
	}
	if got := get().Status.Node; got != "node1" {
		t.Errorf("after the recheck: node %s, want node1 written back", got)
	}
	// Overwritten again at once (a partition: both believe they announce it): written back only after
	// rewriteEvery, so that the two do not overwrite each other as fast as the API server allows.
	an = get()
	an.Status.Node = "node9"
	if err := k8s.Status().Update(ctx, an); err != nil {
		t.Fatal(err)
	}
	if err := w.apply(ctx, wants1, map[types.NamespacedName]bool{name: true}); err != nil {
		t.Fatal(err)
	}
	if got := get().Status.Node; got != "node9" || !w.recheckPending() {
		t.Errorf("a second overwrite within %v: node %s (want node9 for now), recheck pending %v", rewriteEvery, got, w.recheckPending())
	}
	clk.Step(rewriteEvery)
	if err := w.apply(ctx, wants1, map[types.NamespacedName]bool{name: true}); err != nil {
		t.Fatal(err)
	}
	if got := get().Status.Node; got != "node1" {
		t.Errorf("after %v: node %s, want node1 written back", rewriteEvery, got)
	}

	// Another node takes over (as this writer would if it were that node's): node and since change.
	clk.Step(time.Minute)
	st2 := st
	st2.Node, st2.Message = "node2", "node2 answers"
	if err := w.apply(ctx, &statusWants{Set: map[types.NamespacedName]announcementState{name: st2}}, nil); err != nil {
		t.Fatal(err)
	}
	if an := get(); an.Status.Node != "node2" || !an.Status.Since.Time.Equal(clk.Now()) {
		t.Errorf("after the change: node %s since %v, want node2 since %v", an.Status.Node, an.Status.Since, clk.Now())
	}

	// The Service is deleted and made again under the same name: the stale Announcement goes, a new one comes.
	if err := k8s.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	s2 := svc()
	st3 := st2
	st3.UID = s2.UID
	wants := &statusWants{Set: map[types.NamespacedName]announcementState{name: st3}}
	if err := w.apply(ctx, wants, nil); err == nil {
		t.Error("applying over a stale Announcement returned no error; the writer would not retry")
	}
	if err := w.apply(ctx, wants, nil); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if an := get(); an.OwnerReferences[0].UID != s2.UID {
		t.Errorf("owner %s, want the new Service %s", an.OwnerReferences[0].UID, s2.UID)
	}

	// The watcher side, through the same writer: a verdict is written once, not again while it stays the same
	// (unless a refresh is set), and again when it changes; an Announcement that does not exist is left alone.
	health := func(v heraldv1.HealthVerdict) heraldv1.AnnouncementHealth {
		return heraldv1.AnnouncementHealth{Verdict: v, Watcher: "node3", Since: &metav1.Time{Time: clk.Now()},
			Addresses: []heraldv1.AddressHealth{{Address: "198.51.100.5", Verdict: v}}}
	}
	writes := func(result string) float64 {
		return testutil.ToFloat64(m.HealthWrites.WithLabelValues(result))
	}
	h := health(heraldv1.HealthHealthy)
	w.putHealth(name, s2.UID, h)
	if err := w.applyHealth(ctx); err != nil {
		t.Fatal(err)
	}
	an = get()
	if an.Status.Health == nil || an.Status.Health.Verdict != heraldv1.HealthHealthy || an.Status.Node != "node2" {
		t.Fatalf("after the health write: health %+v, node %s", an.Status.Health, an.Status.Node)
	}
	rv = an.ResourceVersion
	clk.Step(10 * time.Minute)
	w.putHealth(name, s2.UID, h)
	if err := w.applyHealth(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get().ResourceVersion; got != rv || writes("ok") != 1 {
		t.Errorf("an unchanged verdict was written again (resourceVersion %s -> %s, %v writes)", rv, got, writes("ok"))
	}
	w.healthRefresh = 5 * time.Minute
	w.putHealth(name, s2.UID, h)
	if err := w.applyHealth(ctx); err != nil {
		t.Fatal(err)
	}
	if writes("ok") != 2 {
		t.Errorf("with a 5 min refresh, a verdict written 10 min ago was not written again (%v writes)", writes("ok"))
	}
	w.healthRefresh = 0
	w.putHealth(name, s2.UID, health(heraldv1.HealthDark))
	if err := w.applyHealth(ctx); err != nil {
		t.Fatal(err)
	}
	if an := get(); an.Status.Health.Verdict != heraldv1.HealthDark || meta.IsStatusConditionTrue(an.Status.Conditions, ConditionHealthy) {
		t.Errorf("after a change to Dark: health %+v", an.Status.Health)
	}
	w.putHealth(types.NamespacedName{Namespace: ns.Name, Name: "absent"}, "", h)
	if err := w.applyHealth(ctx); err != nil || writes("absent") != 1 {
		t.Errorf("health of an absent Announcement: %v, %v counted absent", err, writes("absent"))
	}

	// Deletion.
	if err := w.apply(ctx, &statusWants{Delete: []types.NamespacedName{name}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, name, &heraldv1.Announcement{}); !apierrors.IsNotFound(err) {
		t.Errorf("after deletion: %v, want NotFound", err)
	}
}

// staleCache is a client whose reads of the objects in stale return those copies, as an informer cache that
// lags behind the API server does; everything else goes to the API server.
type staleCache struct {
	client.Client
	stale map[types.NamespacedName]*heraldv1.Announcement
}

func (c *staleCache) Get(ctx context.Context, key types.NamespacedName, obj client.Object, opts ...client.GetOption) error {
	if an, ok := c.stale[key]; ok {
		an.DeepCopyInto(obj.(*heraldv1.Announcement))
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestStatusWriterStaleCache: the writer reads Announcements from the cache (one request per write); when the
// cache is behind, the update fails on its resourceVersion and is made again from a fresh read, for both the
// announcer's status and the watcher's health.
func TestStatusWriterStaleCache(t *testing.T) {
	if k8s == nil {
		t.Skip("needs the control plane; skipped with -short")
	}
	ctx := context.Background()
	ns := newStatusNamespace(t, "stale-")
	s := createWeb(t, ns.Name)
	name := types.NamespacedName{Namespace: ns.Name, Name: "web"}
	cache := &staleCache{Client: k8s, stale: map[types.NamespacedName]*heraldv1.Announcement{}}
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	reader := &countingReader{Reader: k8s}
	w := newStatusWriter(cache, reader, "node1", logr.Discard(), clk, NewMetrics(prometheus.NewRegistry()))
	get := func() *heraldv1.Announcement {
		t.Helper()
		var an heraldv1.Announcement
		if err := k8s.Get(ctx, name, &an); err != nil {
			t.Fatalf("reading the Announcement: %v", err)
		}
		return &an
	}
	st := announcementState{UID: s.UID, Node: "node1", Addresses: []string{"198.51.100.6"}, Interfaces: []string{"eth0"},
		Announced: true, Reason: "Announcing", Message: "node1 answers"}
	if err := w.write(ctx, name, st); err != nil {
		t.Fatal(err)
	}
	if reader.gets != 0 {
		t.Errorf("creating the Announcement read it from the API server %d times; the cache said it did not exist", reader.gets)
	}
	// The cache keeps this version while another speaker writes a newer one.
	cache.stale[name] = get()
	an := get()
	an.Status.Node = "node9"
	if err := k8s.Status().Update(ctx, an); err != nil {
		t.Fatal(err)
	}
	st.Message = "node1 answers, again"
	if err := w.write(ctx, name, st); err != nil {
		t.Fatalf("writing over a stale cache: %v", err)
	}
	if got := get(); got.Status.Node != "node1" || meta.FindStatusCondition(got.Status.Conditions, ConditionAnnounced).Message != st.Message {
		t.Errorf("after the write: node %s, condition %+v", got.Status.Node, got.Status.Conditions)
	}
	// The same for health: the cache is stale again.
	an = get()
	an.Status.Node = "node1" // a no-op write that moves the resourceVersion on
	an.Status.Interfaces = []string{"eth1"}
	if err := k8s.Status().Update(ctx, an); err != nil {
		t.Fatal(err)
	}
	ok, err := w.writeHealth(ctx, name, healthWant{uid: s.UID, health: heraldv1.AnnouncementHealth{Verdict: heraldv1.HealthHealthy, Watcher: "node2"}})
	if err != nil || !ok {
		t.Fatalf("writing health over a stale cache: %v, %v", ok, err)
	}
	if got := get(); got.Status.Health == nil || got.Status.Health.Watcher != "node2" || !slices.Equal(got.Status.Interfaces, []string{"eth1"}) {
		t.Errorf("after the health write: health %+v, interfaces %v", got.Status.Health, got.Status.Interfaces)
	}
}

// countingReader counts the reads that reach the API server.
type countingReader struct {
	client.Reader
	gets int
}

func (r *countingReader) Get(ctx context.Context, key types.NamespacedName, obj client.Object, opts ...client.GetOption) error {
	r.gets++
	return r.Reader.Get(ctx, key, obj, opts...)
}

// newStatusNamespace creates a namespace named from prefix on the control plane.
func newStatusNamespace(t *testing.T, prefix string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// createWeb creates the LoadBalancer Service "web" in ns.
func createWeb(t *testing.T, ns string) *corev1.Service {
	t.Helper()
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}
