package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"
)

// Port is a port a Service exposes, used to detect collisions between
// Services sharing an address.
type Port struct {
	Protocol string
	Port     int32
}

// portString formats p for messages, e.g. "TCP/80".
func portString(p Port) string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Request asks for the addresses of one Service.
type Request struct {
	// Key identifies the Service, "namespace/name".
	Key string
	// Families are the wanted families, primary first: 1 or 2 distinct entries.
	Families []Family
	// RequireAll fails the request unless every family gets an address
	// (RequireDualStack). When false, the primary family is required and the
	// rest is best effort.
	RequireAll bool
	// Addresses are requested addresses, at most one per family. When set,
	// exactly these are used and Families is ignored.
	Addresses []netip.Addr
	// Pools are the candidate pool names, tried by Priority then Name.
	// Unknown names are ignored.
	Pools []string
	// Retained maps addresses the key holds, whose owner pool is not a
	// candidate, to a candidate pool that lists them all the same (an earlier
	// pool was widened over them). Such an address stays valid as if that
	// candidate owned it, and the other family of its pair is taken from that
	// candidate; nothing new is ever taken from the owner. An entry whose
	// address the key does not hold, or whose pool is not a candidate, is
	// ignored.
	Retained map[netip.Addr]string
	// SharingKey lets Services with the same non-empty key share an address.
	SharingKey string
	// Ports are the ports the Service uses; sharing Services may not repeat
	// a Protocol+Port pair.
	Ports []Port
	// Backend is "" for externalTrafficPolicy Cluster and a canonical form of
	// the pod selector for Local; sharing Services must have equal backends.
	Backend string
}

// Reason classifies an allocation failure.
type Reason string

// The reasons Allocate fails.
const (
	ReasonNoPool          Reason = "NoPool"          // no candidate pool holds the wanted family(ies)
	ReasonPoolExhausted   Reason = "PoolExhausted"   // candidate pools hold the family but have no free address
	ReasonNotInPool       Reason = "NotInPool"       // a requested address is in no candidate pool
	ReasonInUse           Reason = "AddressInUse"    // a requested address is used by a Service that may not share with this one
	ReasonSharingConflict Reason = "SharingConflict" // same sharing key but ports collide or backends differ
	ReasonInvalidRequest  Reason = "InvalidRequest"  // e.g. two requested addresses of one family, Families empty
)

// Error is the error Allocate returns. Message is a sentence naming the
// address or pools involved.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// FamilyStats counts the addresses of one family in a pool.
type FamilyStats struct{ Capacity, InUse, Available *big.Int }

// holding is what one key holds and the sharing terms it asked for.
type holding struct {
	key        string
	addrs      []netip.Addr // in the family order of the last request
	sharingKey string
	ports      []Port
	backend    string
}

// addrUse records who uses an allocated address.
type addrUse struct {
	rs         *rangeState // the range holding the address; nil for an orphan
	sharingKey string      // the sharing key of every user
	users      []*holding
}

// inTree reports whether the address v is recorded in its range's intervals.
func (u *addrUse) inTree(v u128) bool { return u.rs != nil && !u.rs.excluded(v) }

// Allocator hands out addresses from pools. Its methods may be called from
// several goroutines.
type Allocator struct {
	mu     sync.Mutex // guards the fields below
	pools  map[string]*poolState
	ranges *btree.BTreeG[*rangeState] // every effective range, by family then first address
	addrs  map[netip.Addr]*addrUse
	keys   map[string]*holding
	shared map[string][]netip.Addr // sharing key -> addresses used under it, ascending
	pivot  rangeState              // search key for ranges, reused to avoid an allocation per lookup
}

// New returns an allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:  map[string]*poolState{},
		ranges: btree.NewG(8, rangeLess),
		addrs:  map[netip.Addr]*addrUse{},
		keys:   map[string]*holding{},
		shared: map[string][]netip.Addr{},
	}
}

func rangeLess(a, b *rangeState) bool { return spanLess(a.span, b.span) }

// SetPools replaces the pool set. Existing allocations are kept even if their
// addresses are now in no pool; Valid and Pool report them so the caller can
// reallocate. Pool names should be unique; of two pools with one name, the
// one tried later is ignored.
func (a *Allocator) SetPools(pools []Pool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ordered := make([]*Pool, len(pools))
	for i := range pools {
		ordered[i] = &pools[i]
	}
	slices.SortStableFunc(ordered, comparePools)

	a.pools = make(map[string]*poolState, len(ordered))
	a.ranges = btree.NewG(8, rangeLess)
	for _, p := range ordered {
		if _, dup := a.pools[p.Name]; dup {
			continue
		}
		ps := &poolState{name: p.Name, rank: len(a.pools)}
		a.pools[p.Name] = ps
		for _, r := range p.Ranges {
			s, ok := spanOf(r)
			if !ok {
				continue
			}
			for _, piece := range a.unclaimed(s) {
				rs := newRangeState(ps, piece, p.AvoidBuggyIPs)
				ps.ranges = append(ps.ranges, rs)
				a.ranges.ReplaceOrInsert(rs)
			}
		}
	}
	for addr, use := range a.addrs {
		v := u128Of(addr)
		use.rs = a.rangeOf(addr)
		if use.inTree(v) {
			use.rs.take(v)
		}
	}
}

// unclaimed returns the pieces of s no range in a.ranges covers, ascending.
func (a *Allocator) unclaimed(s span) []span {
	var pieces []span
	cur, covered := s.first, false
	visit := func(rs *rangeState) bool {
		if rs.fam != s.fam || s.last.less(rs.first) {
			return false
		}
		if rs.last.less(cur) {
			return true
		}
		if cur.less(rs.first) {
			pieces = append(pieces, span{fam: s.fam, first: cur, last: rs.first.subN(1)})
		}
		if !rs.last.less(s.last) {
			covered = true
			return false
		}
		cur = rs.last.addN(1)
		return true
	}
	pivot := &rangeState{span: s}
	a.ranges.DescendLessOrEqual(pivot, func(rs *rangeState) bool {
		visit(rs)
		return false
	})
	if !covered {
		a.ranges.AscendGreaterOrEqual(pivot, visit)
	}
	if !covered {
		pieces = append(pieces, span{fam: s.fam, first: cur, last: s.last})
	}
	return pieces
}

// rangeOf returns the effective range holding addr, or nil.
func (a *Allocator) rangeOf(addr netip.Addr) *rangeState {
	f := FamilyOf(addr)
	if f == 0 {
		return nil
	}
	v := u128Of(addr)
	var found *rangeState
	a.pivot.span = span{fam: f, first: v}
	a.ranges.DescendLessOrEqual(&a.pivot, func(rs *rangeState) bool {
		if rs.fam == f && rs.contains(v) {
			found = rs
		}
		return false
	})
	return found
}

// Allocate gives req.Key addresses and returns them in the family order of
// the request (or the order of req.Addresses).
//
// It is idempotent: an address the key holds is kept while it is still valid
// for the request (in a candidate pool or retained for one, of a wanted
// family, equal to the
// requested address when addresses are requested, sharing still compatible);
// only invalid or missing families get new addresses, and addresses the key
// no longer needs are released.
//
// A new address is taken, preferably, by joining an address already used
// under the request's non-empty SharingKey by Services whose ports do not
// collide and whose Backend is equal (first candidate pool that has one,
// lowest such address); otherwise it is the first free address of the first
// candidate pool that has one, in listed range order. Both addresses of a
// dual-stack request come from the first pool holding a free (or joinable)
// address of each family; without RequireAll and with no such pool, only the
// primary family is allocated. When the key already holds one of the two, the
// other is taken from the same pool; if that pool has none, a held primary
// stays alone without RequireAll, and otherwise both are picked afresh.
//
// On error nothing changes and the error is an *Error.
func (a *Allocator) Allocate(req Request) ([]netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	addrs, err := a.plan(req)
	if err != nil {
		return nil, err
	}
	a.commit(req, addrs)
	return slices.Clone(addrs), nil
}

// Restore records that req.Key holds exactly req.Addresses, as a restarted
// controller reads them back from Service status. Unlike Allocate it asks
// nothing of pools: an address that no pool holds any more (its Service's
// allocation failed since) is kept as SetPools keeps it, so that a pool
// holding it again neither hands it to another Service nor moves its holder.
// It fails, changing nothing, when req.Addresses is empty or malformed or
// another holder of an address may not share it with req.
func (a *Allocator) Restore(req Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(req.Addresses) == 0 {
		return errorf(ReasonInvalidRequest, "no address to restore")
	}
	if e := validate(req); e != nil {
		return e
	}
	for _, addr := range req.Addresses {
		if use := a.addrs[addr]; use != nil {
			if e := conflict(addr, use, req); e != nil {
				return e
			}
		}
	}
	a.commit(req, slices.Clone(req.Addresses))
	return nil
}

// Valid reports whether Allocate(req) for key would keep every address key
// holds and take nothing new. It records nothing: changed Ports or Backend
// are only stored by Allocate.
func (a *Allocator) Valid(key string, req Request) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.keys[key]
	if h == nil {
		return false
	}
	req.Key = key
	addrs, err := a.plan(req)
	if err != nil || len(addrs) != len(h.addrs) {
		return false
	}
	for _, addr := range addrs {
		if !slices.Contains(h.addrs, addr) {
			return false
		}
	}
	return true
}

// Release frees every address of key. An address shared with other keys
// stays in use.
func (a *Allocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.keys[key]
	if h == nil {
		return
	}
	for _, addr := range h.addrs {
		a.removeUser(addr, h)
	}
	delete(a.keys, key)
}

// Addresses returns the addresses key holds, in the order Allocate returned
// them.
func (a *Allocator) Addresses(key string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h := a.keys[key]; h != nil {
		return slices.Clone(h.addrs)
	}
	return nil
}

// Pool returns the name of the pool whose effective ranges hold addr.
func (a *Allocator) Pool(addr netip.Addr) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rs := a.rangeOf(addr); rs != nil {
		return rs.pool.name, true
	}
	return "", false
}

// Stats returns, for each family the pool has ranges of, its capacity (not
// counting .0/.255 when the pool avoids buggy IPs), the number of distinct
// allocatable addresses in use (a shared address counts once) and the number
// available. It returns nil for an unknown pool.
func (a *Allocator) Stats(pool string) map[Family]FamilyStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pools[pool]
	if p == nil {
		return nil
	}
	stats := map[Family]FamilyStats{}
	for _, rs := range p.ranges {
		st, ok := stats[rs.fam]
		if !ok {
			st = FamilyStats{Capacity: new(big.Int), InUse: new(big.Int), Available: new(big.Int)}
		}
		if rs.whole {
			st.Capacity.Add(st.Capacity, new(big.Int).Lsh(big.NewInt(1), 128))
		} else {
			st.Capacity.Add(st.Capacity, rs.capacity.big())
		}
		st.InUse.Add(st.InUse, new(big.Int).SetUint64(rs.used))
		st.Available.Sub(st.Capacity, st.InUse)
		stats[rs.fam] = st
	}
	return stats
}

// commit records that req.Key now holds exactly addrs, which it keeps.
func (a *Allocator) commit(req Request, addrs []netip.Addr) {
	h := a.keys[req.Key]
	if h == nil {
		h = &holding{key: req.Key}
		a.keys[req.Key] = h
	}
	for _, old := range h.addrs {
		if !slices.Contains(addrs, old) {
			a.removeUser(old, h)
		}
	}
	h.sharingKey, h.ports, h.backend = req.SharingKey, slices.Clone(req.Ports), req.Backend
	for _, addr := range addrs {
		if slices.Contains(h.addrs, addr) {
			a.setSharingKey(addr, req.SharingKey)
		} else {
			a.addUser(addr, h)
		}
	}
	h.addrs = addrs
}

// addUser adds h to the users of addr, taking addr if it was free.
func (a *Allocator) addUser(addr netip.Addr, h *holding) {
	use := a.addrs[addr]
	if use == nil {
		use = &addrUse{rs: a.rangeOf(addr), sharingKey: h.sharingKey}
		a.addrs[addr] = use
		if v := u128Of(addr); use.inTree(v) {
			use.rs.take(v)
		}
		a.indexShared(addr, use.sharingKey)
	}
	use.users = append(use.users, h)
}

// removeUser removes h from the users of addr, freeing addr when none remain.
func (a *Allocator) removeUser(addr netip.Addr, h *holding) {
	use := a.addrs[addr]
	if use == nil {
		return
	}
	use.users = slices.DeleteFunc(use.users, func(u *holding) bool { return u == h })
	if len(use.users) > 0 {
		return
	}
	delete(a.addrs, addr)
	if v := u128Of(addr); use.inTree(v) {
		use.rs.free(v)
	}
	a.unindexShared(addr, use.sharingKey)
}

// setSharingKey changes the sharing key of an address whose only user
// changed its key (users of a shared address always agree on it).
func (a *Allocator) setSharingKey(addr netip.Addr, key string) {
	use := a.addrs[addr]
	if use == nil || use.sharingKey == key {
		return
	}
	a.unindexShared(addr, use.sharingKey)
	use.sharingKey = key
	a.indexShared(addr, key)
}

func (a *Allocator) indexShared(addr netip.Addr, key string) {
	if key == "" {
		return
	}
	list := a.shared[key]
	if i, found := slices.BinarySearchFunc(list, addr, netip.Addr.Compare); !found {
		a.shared[key] = slices.Insert(list, i, addr)
	}
}

func (a *Allocator) unindexShared(addr netip.Addr, key string) {
	if key == "" {
		return
	}
	list := a.shared[key]
	i, found := slices.BinarySearchFunc(list, addr, netip.Addr.Compare)
	if !found {
		return
	}
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(a.shared, key)
	} else {
		a.shared[key] = list
	}
}

// poolNames formats pool names for messages: `"a", "b"`.
func poolNames(pools []*poolState) string {
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = fmt.Sprintf("%q", p.name)
	}
	return strings.Join(names, ", ")
}
