package speaker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// ConditionHealthy is the Announcement condition the watching speaker sets: true while its probes find exactly
// one responder for each address, the announcing node.
const ConditionHealthy = "Healthy"

// The watcher side of the Announcement writer (status.go): status.health and the Healthy condition of the
// Announcements of the addresses this node watches. A verdict is written when it changes; an unchanged one is
// written again only every Config.HealthStatusRefresh, when that is set (off by default: at 10,000 addresses a
// refresh of every verdict costs the API server a write per Announcement per period, for a timestamp that the
// herald_health_oldest_probe_age_seconds metric shows better). It only updates Announcements that exist (the
// announcer creates them), and it re-reads each before writing, so the announcer's fields are left as they are.

type healthWant struct {
	uid    types.UID
	health heraldv1.AnnouncementHealth
}

type writtenHealth struct {
	health heraldv1.AnnouncementHealth
	at     time.Time
}

// putHealth asks for name's health to be written; it never blocks.
func (w *statusWriter) putHealth(name types.NamespacedName, uid types.UID, h heraldv1.AnnouncementHealth) {
	w.mu.Lock()
	w.health[name] = healthWant{uid: uid, health: h}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// applyHealth writes the health verdicts handed over since the last round that differ from what was written;
// a failed write is kept for the next round unless a newer verdict replaced it.
func (w *statusWriter) applyHealth(ctx context.Context) error {
	w.mu.Lock()
	batch := w.health
	w.health = map[types.NamespacedName]healthWant{}
	w.mu.Unlock()
	var errs []error
	for name, want := range batch {
		if prev, ok := w.healthWritten[name]; ok && sameHealth(prev.health, want.health) &&
			(w.healthRefresh <= 0 || w.clock.Since(prev.at) < w.healthRefresh) {
			continue
		}
		wrote, err := w.writeHealth(ctx, name, want)
		if err != nil {
			w.countHealth("error")
			errs = append(errs, err)
			w.mu.Lock()
			if _, newer := w.health[name]; !newer {
				w.health[name] = want
			}
			w.mu.Unlock()
			continue
		}
		if !wrote {
			w.countHealth("absent")
			continue
		}
		w.countHealth("ok")
		w.healthWritten[name] = writtenHealth{health: want.health, at: w.clock.Now()}
	}
	return errors.Join(errs...)
}

// healthPending says whether verdicts wait to be written.
func (w *statusWriter) healthPending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.health) > 0
}

func (w *statusWriter) countHealth(result string) {
	if w.metrics != nil && w.metrics.HealthWrites != nil {
		w.metrics.HealthWrites.WithLabelValues(result).Inc()
	}
}

// errNoAnnouncement: the announcer has not created the Announcement yet; the next round writes again.
var errNoAnnouncement = errors.New("no Announcement yet")

// writeHealth writes want into name's Announcement; it reports false, and no error, when there is no
// Announcement to write to.
func (w *statusWriter) writeHealth(ctx context.Context, name types.NamespacedName, want healthWant) (bool, error) {
	ok, err := w.writeHealthOnce(ctx, name, want, false)
	if apierrors.IsConflict(err) {
		ok, err = w.writeHealthOnce(ctx, name, want, true) // the cache was stale (see write)
	}
	return ok, err
}

func (w *statusWriter) writeHealthOnce(ctx context.Context, name types.NamespacedName, want healthWant, fresh bool) (bool, error) {
	var an heraldv1.Announcement
	if err := w.read(ctx, name, &an, fresh); err != nil {
		if apierrors.IsNotFound(err) {
			delete(w.healthWritten, name)
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
