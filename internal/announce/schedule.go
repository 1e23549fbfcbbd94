package announce

import (
	"container/heap"
	"net/netip"
	"time"
)

// announceKey names one VIP on one interface.
type announceKey struct {
	link string
	vip  netip.Addr
}

// cadence is how often a VIP is re-announced after its first announcement.
type cadence struct {
	repeats  int           // announcements after the first, each interval apart
	interval time.Duration // between the first announcement and the repeats
	refresh  time.Duration // after the repeats, re-announce this often; 0 = never
}

// next returns when the announcement after one due at due must happen,
// given that left repeats remained before it, and the repeats left after
// it; ok is false when there is none.
func (c cadence) next(due time.Time, left int) (time.Time, int, bool) {
	if left > 0 {
		return due.Add(c.interval), left - 1, true
	}
	if c.refresh > 0 {
		return due.Add(c.refresh), 0, true
	}
	return time.Time{}, 0, false
}

// schedule holds the pending announcements, earliest first. It is a pure
// data structure owned by the Run goroutine (no lock).
type schedule struct {
	items []*scheduled
	index map[announceKey]*scheduled
}

type scheduled struct {
	key  announceKey
	due  time.Time
	left int // repeats still to send after the one due at due
	pos  int // position in items
}

// start records that key was just announced (at now) and schedules what
// follows per c. It replaces any pending entry for key.
func (s *schedule) start(key announceKey, now time.Time, c cadence) {
	s.remove(key)
	// The first announcement happened at now with c.repeats left after it.
	due, left, ok := c.next(now, c.repeats)
	if !ok {
		return
	}
	if s.index == nil {
		s.index = make(map[announceKey]*scheduled)
	}
	it := &scheduled{key: key, due: due, left: left}
	s.index[key] = it
	heap.Push((*schedHeap)(s), it)
}

// remove cancels key's pending announcements, if any.
func (s *schedule) remove(key announceKey) {
	if it, ok := s.index[key]; ok {
		heap.Remove((*schedHeap)(s), it.pos)
		delete(s.index, key)
	}
}

// removeLink cancels every pending announcement on link.
func (s *schedule) removeLink(link string) {
	for k := range s.index {
		if k.link == link {
			s.remove(k)
		}
	}
}

// nextDue returns the earliest due time; ok is false when nothing is pending.
func (s *schedule) nextDue() (time.Time, bool) {
	if len(s.items) == 0 {
		return time.Time{}, false
	}
	return s.items[0].due, true
}

// popDue removes and returns the earliest announcement due at or before now,
// rescheduling what follows it per c; ok is false when none is due. What
// follows is timed from the due time, or from now if that would already be
// past (the clock jumped or Run was late), so a late schedule never sends a
// burst of catch-up announcements.
func (s *schedule) popDue(now time.Time, c cadence) (announceKey, bool) {
	if len(s.items) == 0 || s.items[0].due.After(now) {
		return announceKey{}, false
	}
	it := s.items[0]
	due, left, ok := c.next(it.due, it.left)
	if ok && !due.After(now) {
		due, left, ok = c.next(now, it.left)
	}
	if !ok {
		heap.Pop((*schedHeap)(s))
		delete(s.index, it.key)
		return it.key, true
	}
	it.due, it.left = due, left
	heap.Fix((*schedHeap)(s), 0)
	return it.key, true
}

// len is the number of keys with pending announcements.
func (s *schedule) len() int { return len(s.items) }

// schedHeap implements heap.Interface over schedule.items.
type schedHeap schedule

func (h *schedHeap) Len() int { return len(h.items) }
func (h *schedHeap) Less(i, j int) bool {
	if !h.items[i].due.Equal(h.items[j].due) {
		return h.items[i].due.Before(h.items[j].due)
	}
	// Stable order for equal times: by interface, then address.
	if h.items[i].key.link != h.items[j].key.link {
		return h.items[i].key.link < h.items[j].key.link
	}
	return h.items[i].key.vip.Less(h.items[j].key.vip)
}
func (h *schedHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].pos, h.items[j].pos = i, j
}
func (h *schedHeap) Push(x any) {
	it := x.(*scheduled)
	it.pos = len(h.items)
	h.items = append(h.items, it)
}
func (h *schedHeap) Pop() any {
	n := len(h.items)
	it := h.items[n-1]
	h.items[n-1] = nil
	h.items = h.items[:n-1]
	return it
}
