package speaker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// ConditionHealthy is the Announcement condition the watching speaker sets: true while its probes find exactly
// one responder for each address, the announcing node.
const ConditionHealthy = "Healthy"

// healthWriter writes the watching speaker's verdicts into Announcements: status.health and the Healthy
// condition. A change is written at once; an unchanged verdict is written again every refresh, to move its
// lastProbe. It only updates Announcements that exist (the announcer creates them), and it re-reads each
// before writing, so the announcer's fields are left as they are.
type healthWriter struct {
	client  client.Client
	reader  client.Reader // uncached
	log     logr.Logger
	clock   clock.WithTicker
	refresh time.Duration
	wake    chan struct{}          // capacity 1
	writes  *prometheus.CounterVec // by result; nil counts nothing

	mu      sync.Mutex // guards pending
	pending map[types.NamespacedName]healthWant

	written map[types.NamespacedName]writtenHealth // owned by run
}

type healthWant struct {
	uid    types.UID
	health heraldv1.AnnouncementHealth
}

type writtenHealth struct {
	health heraldv1.AnnouncementHealth
	at     time.Time
}

func newHealthWriter(c client.Client, r client.Reader, log logr.Logger, clk clock.WithTicker, refresh time.Duration) *healthWriter {
	return &healthWriter{client: c, reader: r, log: log, clock: clk, refresh: refresh, wake: make(chan struct{}, 1),
		pending: map[types.NamespacedName]healthWant{}, written: map[types.NamespacedName]writtenHealth{}}
}

// put asks for name's health to be written; it never blocks.
func (w *healthWriter) put(name types.NamespacedName, uid types.UID, h heraldv1.AnnouncementHealth) {
	w.mu.Lock()
	w.pending[name] = healthWant{uid: uid, health: h}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *healthWriter) run(ctx context.Context) {
	retry := w.clock.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry.C():
		}
		w.mu.Lock()
		batch := w.pending
		w.pending = map[types.NamespacedName]healthWant{}
		w.mu.Unlock()
		var errs []error
		for name, want := range batch {
			if prev, ok := w.written[name]; ok && sameHealth(prev.health, want.health) && w.clock.Since(prev.at) < w.refresh {
				continue
			}
			wrote, err := w.write(ctx, name, want)
			if err != nil {
				w.count("error")
				errs = append(errs, err)
				w.mu.Lock()
				if _, newer := w.pending[name]; !newer {
					w.pending[name] = want
				}
				w.mu.Unlock()
				continue
			}
			if !wrote {
				w.count("absent")
				continue
			}
			w.count("ok")
			w.written[name] = writtenHealth{health: want.health, at: w.clock.Now()}
		}
		if err := errors.Join(errs...); err != nil && ctx.Err() == nil {
			w.log.V(1).Info("writing health to Announcements; retrying", "error", err.Error())
		}
	}
}

func (w *healthWriter) count(result string) {
	if w.writes != nil {
		w.writes.WithLabelValues(result).Inc()
	}
}

// errNoAnnouncement: the announcer has not created the Announcement yet; the next round writes again.
var errNoAnnouncement = errors.New("no Announcement yet")

// write writes want into name's Announcement; it reports false, and no error, when there is no Announcement
// to write to.
func (w *healthWriter) write(ctx context.Context, name types.NamespacedName, want healthWant) (bool, error) {
	var an heraldv1.Announcement
	if err := w.reader.Get(ctx, name, &an); err != nil {
		if apierrors.IsNotFound(err) {
			delete(w.written, name)
			return false, nil // nothing to write to; the announcer creates it and the next round writes
		}
		return false, fmt.Errorf("reading Announcement %s: %w", name, err)
	}
	if len(an.OwnerReferences) > 0 && want.uid != "" && an.OwnerReferences[0].UID != want.uid {
		return false, fmt.Errorf("announcement %s: %w", name, errNoAnnouncement)
	}
	h := want.health
	an.Status.Health = &h
	cond := metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionTrue, Reason: string(h.Verdict),
		ObservedGeneration: an.Generation, Message: fmt.Sprintf("%s's probes find each address answered by its announcer alone", h.Watcher)}
	if h.Verdict != heraldv1.HealthHealthy {
		cond.Status = metav1.ConditionFalse
		cond.Message = healthMessage(h)
	}
	meta.SetStatusCondition(&an.Status.Conditions, cond)
	if err := w.client.Status().Update(ctx, &an); err != nil {
		return false, fmt.Errorf("writing health to Announcement %s: %w", name, err)
	}
	return true, nil
}

func healthMessage(h heraldv1.AnnouncementHealth) string {
	for _, a := range h.Addresses {
		if a.Verdict != h.Verdict {
			continue
		}
		var macs []string
		for _, r := range a.Responders {
			s := r.MAC
			if r.Node != "" {
				s += " (" + r.Node + ")"
			}
			macs = append(macs, s)
		}
		switch a.Verdict {
		case heraldv1.HealthDark:
			return fmt.Sprintf("nobody answers %s's requests for %s", h.Watcher, a.Address)
		case heraldv1.HealthDuplicate:
			return fmt.Sprintf("%s is answered by several devices: %v", a.Address, macs)
		case heraldv1.HealthWrongResponder:
			return fmt.Sprintf("%s is answered by %v, not by the announcing node", a.Address, macs)
		case heraldv1.HealthForeignResponder:
			return fmt.Sprintf("%s is answered only by %v, not a Herald speaker", a.Address, macs)
		}
	}
	return string(h.Verdict)
}

// sameHealth compares what a reader cares about: verdicts, responders (not their latencies) and since.
func sameHealth(a, b heraldv1.AnnouncementHealth) bool {
	if a.Verdict != b.Verdict || a.Watcher != b.Watcher || !a.Since.Equal(b.Since) || len(a.Addresses) != len(b.Addresses) {
		return false
	}
	for i := range a.Addresses {
		x, y := a.Addresses[i], b.Addresses[i]
		if x.Address != y.Address || x.Verdict != y.Verdict || !slices.EqualFunc(x.Responders, y.Responders,
			func(p, q heraldv1.HealthResponder) bool { return p.MAC == q.MAC && p.Node == q.Node }) {
			return false
		}
	}
	return true
}
