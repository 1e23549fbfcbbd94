package speaker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// ConditionAnnounced is the Announcement condition saying whether a node answers for the Service.
const ConditionAnnounced = "Announced"

// ReasonNoInterface is the Announced condition's reason when the elected node has no interface to answer on:
// none of those the L2Advertisement names is usable there, or none has a subnet holding the address.
const ReasonNoInterface = "NoInterface"

// ReasonProbeFailed is the Announced condition's reason while the elected node cannot send its probe before
// answering (claim.ProbeErr), and so does not answer.
const ReasonProbeFailed = "ProbeFailed"

// announcementState is what one Announcement's status should say.
type announcementState struct {
	UID        types.UID
	Node       string
	Addresses  []string
	Interfaces []string
	Announced  bool
	Reason     string
	Message    string
	Conflict   *heraldv1.AnnouncementConflict
}

func (s announcementState) equal(o announcementState) bool {
	return s.UID == o.UID && s.Node == o.Node && slices.Equal(s.Addresses, o.Addresses) &&
		slices.Equal(s.Interfaces, o.Interfaces) && s.Announced == o.Announced && s.Reason == o.Reason && s.Message == o.Message &&
		equalConflict(s.Conflict, o.Conflict)
}

func equalConflict(a, b *heraldv1.AnnouncementConflict) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.Address == b.Address && a.MAC == b.MAC && a.Node == b.Node
}

// ConditionConflict is the Announcement condition saying whether another device answers for an address too.
const ConditionConflict = "Conflict"

// statusWants is the whole set of Announcements a speaker is responsible for.
type statusWants struct {
	Set    map[types.NamespacedName]announcementState
	Delete []types.NamespacedName
}

// statusWriter is the speaker's one writer of Announcements. It writes in the background, so that a slow or
// unreachable API server never delays answering, and it is the only goroutine of the speaker that writes them,
// for both of the loop's parts that want something written: the announcer side (the whole set of Announcements
// this node announces, with node, addresses, interfaces and the Announced and Conflict conditions; the latest
// wants replace unread ones) and the watcher side (the health of the addresses this node watches, per
// Announcement; healthstatus.go). It retries what failed.
type statusWriter struct {
	client  client.Client // its reads come from the informer cache
	reader  client.Reader // uncached: the cache may lag behind this writer's own writes
	node    string
	log     logr.Logger
	clock   clock.WithTicker
	metrics *Metrics
	in      chan statusWants // capacity 1: the latest wants replace unread ones
	wake    chan struct{}    // capacity 1: health verdicts are pending

	mu     sync.Mutex // guards health and recheck
	health map[types.NamespacedName]healthWant
	// recheck are Announcements whose status changed in the cache: the writer compares them with what it wrote,
	// and writes again those another speaker overwrote.
	recheck map[types.NamespacedName]bool
	// healthRefresh, when positive, writes an unchanged verdict again after this long.
	healthRefresh time.Duration

	written       map[types.NamespacedName]announcementState // owned by run
	healthWritten map[types.NamespacedName]writtenHealth     // owned by run
	// rewritten is when each Announcement was last written back after another speaker overwrote it (owned by
	// run): two speakers that both believe they announce an address (a partition) would otherwise overwrite
	// each other as fast as the API server lets them.
	rewritten map[types.NamespacedName]time.Time
}

// rewriteEvery is how often one Announcement is written back over another speaker's write.
const rewriteEvery = 5 * time.Second

func newStatusWriter(c client.Client, r client.Reader, node string, log logr.Logger, clk clock.WithTicker, m *Metrics) *statusWriter {
	return &statusWriter{client: c, reader: r, node: node, log: log, clock: clk, metrics: m, in: make(chan statusWants, 1),
		wake: make(chan struct{}, 1), health: map[types.NamespacedName]healthWant{}, recheck: map[types.NamespacedName]bool{},
		written: map[types.NamespacedName]announcementState{}, healthWritten: map[types.NamespacedName]writtenHealth{},
		rewritten: map[types.NamespacedName]time.Time{}}
}

// update hands the writer new wants; it never blocks.
func (w *statusWriter) update(s statusWants) {
	for {
		select {
		case w.in <- s:
			return
		default:
		}
		select {
		case <-w.in:
		default:
		}
	}
}

func (w *statusWriter) run(ctx context.Context) {
	retry := w.clock.NewTicker(time.Second)
	defer retry.Stop()
	var cur *statusWants
	failed := false
	for {
		announce := false
		select {
		case <-ctx.Done():
			return
		case s := <-w.in:
			cur, announce = &s, true
		case <-w.wake:
		case <-retry.C():
			announce = failed
			if !failed && !w.healthPending() && !w.recheckPending() {
				continue
			}
		}
		w.mu.Lock()
		recheck := w.recheck
		w.recheck = map[types.NamespacedName]bool{}
		w.mu.Unlock()
		switch {
		case announce && cur != nil:
			failed = w.apply(ctx, cur, nil) != nil
		case len(recheck) > 0 && cur != nil:
			failed = w.apply(ctx, cur, recheck) != nil || failed
		}
		if err := w.applyHealth(ctx); err != nil && ctx.Err() == nil {
			w.log.V(1).Info("writing health to Announcements; retrying", "error", err.Error())
		}
	}
}

// changed notes that name's Announcement changed in the informer cache (from its event handler); it never
// blocks.
func (w *statusWriter) changed(name types.NamespacedName) {
	w.mu.Lock()
	w.recheck[name] = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// recheckPending says whether Announcements wait to be compared again.
func (w *statusWriter) recheckPending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.recheck) > 0
}

// apply writes what differs from what was last written, or from what the cache shows (another speaker may have
// overwritten it), for every want, or only those named in only when it is not nil; it returns the first error
// after trying everything.
func (w *statusWriter) apply(ctx context.Context, s *statusWants, only map[types.NamespacedName]bool) error {
	var errs []error
	var later []types.NamespacedName
	for name, st := range s.Set {
		if only != nil && !only[name] {
			continue
		}
		prev, ok := w.written[name]
		if ok && prev.equal(st) && w.cached(ctx, name, st) {
			continue
		}
		if ok && prev.equal(st) {
			// Someone else overwrote what this writer wrote: write it back, but not more often than rewriteEvery.
			if t, seen := w.rewritten[name]; seen && w.clock.Since(t) < rewriteEvery {
				later = append(later, name)
				continue
			}
			w.rewritten[name] = w.clock.Now()
		}
		if err := w.write(ctx, name, st); err != nil {
			w.metrics.StatusWrites.WithLabelValues("error").Inc()
			errs = append(errs, err)
			continue
		}
		w.metrics.StatusWrites.WithLabelValues("ok").Inc()
		w.written[name] = st
	}
	if len(later) > 0 {
		w.mu.Lock()
		for _, name := range later {
			w.recheck[name] = true
		}
		w.mu.Unlock()
	}
	if only != nil {
		return errors.Join(errs...)
	}
	for name := range w.rewritten {
		if _, ok := s.Set[name]; !ok {
			delete(w.rewritten, name)
		}
	}
	for name := range w.written {
		if _, ok := s.Set[name]; !ok {
			delete(w.written, name) // someone else's now; write again if it comes back
		}
	}
	for _, name := range s.Delete {
		an := &heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}}
		if err := w.client.Delete(ctx, an); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting Announcement %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		w.log.Error(err, "writing Announcements; retrying")
		return err
	}
	return nil
}

// cached says whether the informer cache shows the Announcement as st would write it: another speaker (one
// that lost its link and caught up late, say) may have overwritten what this one wrote.
func (w *statusWriter) cached(ctx context.Context, name types.NamespacedName, st announcementState) bool {
	var an heraldv1.Announcement
	if err := w.client.Get(ctx, name, &an, client.UnsafeDisableDeepCopy); err != nil {
		return false
	}
	s := &an.Status
	if s.Node != st.Node || !slices.Equal(s.Addresses, st.Addresses) || !slices.Equal(s.Interfaces, st.Interfaces) ||
		!equalConflict(s.Conflict, st.Conflict) {
		return false
	}
	c := meta.FindStatusCondition(s.Conditions, ConditionAnnounced)
	return c != nil && (c.Status == metav1.ConditionTrue) == st.Announced && c.Reason == st.Reason && c.Message == st.Message
}

// write writes st into name's Announcement, creating it if need be. It reads the Announcement from the informer
// cache first, so that a write is one request, not two (a failover rewrites thousands); an update the cache was
// too stale for fails on its resourceVersion and is tried again once, read from the API server.
func (w *statusWriter) write(ctx context.Context, name types.NamespacedName, st announcementState) error {
	err := w.writeOnce(ctx, name, st, false)
	if apierrors.IsConflict(err) {
		err = w.writeOnce(ctx, name, st, true)
	}
	return err
}

// read gets name's Announcement: from the informer cache unless fresh, and from the API server when fresh or
// when the cache fails. Not found in the cache is taken as not found: a write then creates it (and reads it from
// the API server if it exists after all), and a health write waits for the next round. A creation storm asked the
// API server for Announcements that did not exist yet 23,000 times in 21 minutes.
func (w *statusWriter) read(ctx context.Context, name types.NamespacedName, an *heraldv1.Announcement, fresh bool) error {
	if !fresh {
		if err := w.client.Get(ctx, name, an); err == nil || apierrors.IsNotFound(err) {
			return err
		}
	}
	return w.reader.Get(ctx, name, an)
}

func (w *statusWriter) writeOnce(ctx context.Context, name types.NamespacedName, st announcementState, fresh bool) error {
	var an heraldv1.Announcement
	err := w.read(ctx, name, &an, fresh)
	if apierrors.IsNotFound(err) {
		an = heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{
			Namespace: name.Namespace, Name: name.Name,
			Labels: map[string]string{"app.kubernetes.io/part-of": "herald"},
			// Owned by the Service, so the garbage collector removes it with the Service.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: name.Name, UID: st.UID,
				BlockOwnerDeletion: ptr.To(false)}},
		}}
		if err := w.client.Create(ctx, &an); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Announcement %s: %w", name, err)
		} else if apierrors.IsAlreadyExists(err) {
			if err := w.reader.Get(ctx, name, &an); err != nil {
				return fmt.Errorf("reading Announcement %s: %w", name, err)
			}
		}
	} else if err != nil {
		return fmt.Errorf("reading Announcement %s: %w", name, err)
	}
	if len(an.OwnerReferences) > 0 && an.OwnerReferences[0].UID != st.UID {
		// The Service was deleted and made again under the same name: the old Announcement is stale.
		if err := w.client.Delete(ctx, &an); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting stale Announcement %s: %w", name, err)
		}
		return fmt.Errorf("announcement %s belonged to an earlier Service; recreating", name)
	}
	before := an.Status.DeepCopy()
	if an.Status.Node != st.Node || an.Status.Since == nil {
		an.Status.Since = &metav1.Time{Time: w.clock.Now()}
	}
	an.Status.Node = st.Node
	an.Status.Addresses = st.Addresses
	an.Status.Interfaces = st.Interfaces
	status := metav1.ConditionFalse
	if st.Announced {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&an.Status.Conditions, metav1.Condition{Type: ConditionAnnounced, Status: status,
		Reason: st.Reason, Message: st.Message, ObservedGeneration: an.Generation})
	if cf := st.Conflict; cf != nil {
		if !equalConflict(an.Status.Conflict, cf) {
			an.Status.Conflict = cf.DeepCopy()
		}
		reason, msg := "IPConflict", fmt.Sprintf("%s is also answered by %s, a device that is not a Herald speaker", cf.Address, cf.MAC)
		switch cf.Kind {
		case heraldv1.ConflictSpeaker:
			reason, msg = "DuplicateAnnouncer", fmt.Sprintf("%s was also answered by speaker %s (%s); %s keeps it", cf.Address, cf.Node, cf.MAC, st.Node)
		case heraldv1.ConflictKernel:
			reason, msg = "KernelAnswers", fmt.Sprintf("%s is also answered by the kernel of a node (%s)", cf.Address, cf.MAC)
		}
		meta.SetStatusCondition(&an.Status.Conditions, metav1.Condition{Type: ConditionConflict, Status: metav1.ConditionTrue,
			Reason: reason, Message: msg, ObservedGeneration: an.Generation})
	} else {
		an.Status.Conflict = nil
		if meta.FindStatusCondition(an.Status.Conditions, ConditionConflict) != nil {
			meta.SetStatusCondition(&an.Status.Conditions, metav1.Condition{Type: ConditionConflict, Status: metav1.ConditionFalse,
				Reason: "NoConflict", Message: "no other device was seen answering for the addresses", ObservedGeneration: an.Generation})
		}
	}
	if equalStatus(before, &an.Status) {
		return nil
	}
	if err := w.client.Status().Update(ctx, &an); err != nil {
		return fmt.Errorf("updating Announcement %s status: %w", name, err)
	}
	return nil
}

func equalStatus(a, b *heraldv1.AnnouncementStatus) bool {
	if !equalConflict(a.Conflict, b.Conflict) {
		return false
	}
	if a.Node != b.Node || !slices.Equal(a.Addresses, b.Addresses) || !slices.Equal(a.Interfaces, b.Interfaces) {
		return false
	}
	if (a.Since == nil) != (b.Since == nil) || (a.Since != nil && !a.Since.Equal(b.Since)) {
		return false
	}
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return false
		}
	}
	return true
}
