package ipam

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// propConfigs are the pool sets the property test switches between.
var propConfigs = [][]Pool{
	{
		{Name: "a", Priority: 1, Ranges: ranges("10.0.0.250-10.0.1.3", "10.0.2.0/30"), AvoidBuggyIPs: true},
		{Name: "b", Ranges: ranges("10.1.0.0/29", "2001:db8:b::/125")},
		{Name: "c", Priority: 2, Ranges: ranges("2001:db8:c::/126", "10.2.0.254/31")},
		{Name: "d", Priority: 1, Ranges: ranges("2001:db8:d::/127")},
	},
	{
		{Name: "a", Priority: 1, Ranges: ranges("10.0.0.252-10.0.1.1")},
		{Name: "b", Priority: 3, Ranges: ranges("10.1.0.0/30", "2001:db8:b::/126"), AvoidBuggyIPs: true},
		{Name: "d", Ranges: ranges("2001:db8:d::/126", "10.2.0.255")},
		{Name: "e", Priority: 2, Ranges: ranges("10.3.0.0/30")},
	},
}

var (
	propPoolNames   = []string{"a", "b", "c", "d", "e", "missing"}
	propSharingKeys = []string{"", "", "s1", "s2"}
	propPorts       = []Port{tcp80, tcp443, udp53}
	propOutsiders   = addrs("192.0.2.1", "2001:db8:ff::1")
)

// propOp is one random operation: SetPools(propConfigs[config]) when
// setPools, else Release(key) when release, else Allocate(req).
type propOp struct {
	setPools bool
	config   int
	release  bool
	key      string
	req      Request
}

func randomOps(seed uint64, n int) []propOp {
	r := rand.New(rand.NewPCG(seed, seed*7+1))
	universe := slices.Clone(propOutsiders)
	for _, cfg := range propConfigs {
		for _, p := range cfg {
			for _, rg := range p.Ranges {
				universe = append(universe, enumerate(rg)...)
			}
		}
	}
	ops := make([]propOp, n)
	for i := range ops {
		key := fmt.Sprintf("ns/k%02d", r.IntN(25))
		switch x := r.IntN(100); {
		case x < 3:
			ops[i] = propOp{setPools: true, config: r.IntN(len(propConfigs))}
		case x < 25:
			ops[i] = propOp{release: true, key: key}
		default:
			ops[i] = propOp{key: key, req: randomRequest(r, key, universe)}
		}
	}
	return ops
}

func randomRequest(r *rand.Rand, key string, universe []netip.Addr) Request {
	req := Request{
		Key:        key,
		RequireAll: r.IntN(2) == 0,
		SharingKey: propSharingKeys[r.IntN(len(propSharingKeys))],
		Families:   [][]Family{{IPv4}, {IPv6}, {IPv4, IPv6}, {IPv6, IPv4}}[r.IntN(4)],
	}
	for _, name := range propPoolNames {
		if r.IntN(2) == 0 {
			req.Pools = append(req.Pools, name)
		}
	}
	for _, p := range propPorts {
		if r.IntN(2) == 0 {
			req.Ports = append(req.Ports, p)
		}
	}
	if r.IntN(4) == 0 {
		req.Backend = "app=web"
	}
	if r.IntN(6) == 0 {
		req.Addresses = []netip.Addr{universe[r.IntN(len(universe))]}
		if r.IntN(3) == 0 {
			req.Addresses = append(req.Addresses, universe[r.IntN(len(universe))])
		}
	}
	return req
}

// enumerate lists every address of a small range.
func enumerate(r Range) []netip.Addr {
	var out []netip.Addr
	for a := r.First; a.IsValid() && a.Compare(r.Last) <= 0; a = a.Next() {
		out = append(out, a)
	}
	return out
}

// propState is what the property test knows independently of the allocator.
type propState struct {
	config  int
	reqs    map[string]Request  // each key's last successful request
	orphans map[netip.Addr]bool // held addresses in no pool at the last SetPools
	held    map[string][]netip.Addr
}

func TestAllocatorProperties(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			ops := randomOps(seed, 3000)
			checked := runProp(t, ops, true)
			again := runProp(t, ops, false)
			if diff := cmp.Diff(checked, again); diff != "" {
				t.Errorf("same operations gave different results (-first +second):\n%s", diff)
			}
		})
	}
}

// runProp applies ops to a fresh allocator and returns a log of the results.
// With check, it verifies the allocator's properties after every operation.
func runProp(t *testing.T, ops []propOp, check bool) []string {
	t.Helper()
	a := New()
	st := &propState{reqs: map[string]Request{}, orphans: map[netip.Addr]bool{}, held: map[string][]netip.Addr{}}
	a.SetPools(propConfigs[0])
	var log []string
	for i, o := range ops {
		switch {
		case o.setPools:
			a.SetPools(propConfigs[o.config])
			st.config = o.config
			st.orphans = map[netip.Addr]bool{}
			for _, held := range st.held {
				for _, addr := range held {
					if _, ok := a.Pool(addr); !ok {
						st.orphans[addr] = true
					}
				}
			}
			log = append(log, fmt.Sprintf("%d SetPools(%d)", i, o.config))
		case o.release:
			freed := st.held[o.key]
			a.Release(o.key)
			delete(st.held, o.key)
			delete(st.reqs, o.key)
			log = append(log, fmt.Sprintf("%d Release(%s)", i, o.key))
			if check {
				checkReusable(t, a, st, freed)
			}
		default:
			log = append(log, propAllocate(t, a, st, o.req, check))
		}
		if check {
			checkInvariants(t, a, st)
			if t.Failed() {
				t.Fatalf("after operation %d: %s", i, log[len(log)-1])
			}
		}
	}
	return log
}

// propAllocate allocates req and checks its result against the model.
func propAllocate(t *testing.T, a *Allocator, st *propState, req Request, check bool) string {
	t.Helper()
	naive, naiveOK := netip.Addr{}, false
	fresh := len(st.held[req.Key]) == 0 && len(req.Addresses) == 0 && len(req.Families) == 1 && req.SharingKey == ""
	if fresh {
		naive, naiveOK = naiveFirstFree(st, req)
	}
	got, err := a.Allocate(req)
	entry := fmt.Sprintf("Allocate(%+v) = %v, %v", req, got, err)
	if err != nil {
		if check {
			if now := a.Addresses(req.Key); !slices.Equal(st.held[req.Key], now) {
				t.Errorf("failed Allocate changed the addresses of %s (-want +got):\n%s", req.Key, cmp.Diff(st.held[req.Key], now, addrOpt))
			}
			if fresh && naiveOK {
				t.Errorf("Allocate failed with %v, but %s is free", err, naive)
			}
		}
		return entry
	}
	st.held[req.Key] = got
	st.reqs[req.Key] = req
	if !check {
		return entry
	}
	if fresh && (!naiveOK || got[0] != naive) {
		t.Errorf("Allocate = %v, naive first free = %v (found %v)", got, naive, naiveOK)
	}
	checkAllocation(t, a, req, got)
	if !a.Valid(req.Key, req) {
		t.Errorf("Valid(%s) = false right after Allocate", req.Key)
	}
	again, err := a.Allocate(req)
	if !slices.Equal(got, again) || err != nil {
		t.Errorf("repeated Allocate changed result (err %v) (-first +second):\n%s", err, cmp.Diff(got, again, addrOpt))
	}
	return entry
}

// checkAllocation checks that got fits req: wanted families in order, in
// candidate pools, the requested addresses when given.
func checkAllocation(t *testing.T, a *Allocator, req Request, got []netip.Addr) {
	t.Helper()
	if len(req.Addresses) > 0 {
		if !slices.Equal(req.Addresses, got) {
			t.Errorf("Allocate did not return the requested addresses (-want +got):\n%s", cmp.Diff(req.Addresses, got, addrOpt))
		}
		return
	}
	if len(got) == 0 || len(got) > len(req.Families) || (req.RequireAll && len(got) != len(req.Families)) {
		t.Errorf("Allocate(%v, RequireAll %v) = %v", req.Families, req.RequireAll, got)
	}
	for i, addr := range got {
		if i < len(req.Families) && FamilyOf(addr) != req.Families[i] {
			t.Errorf("address %d %s is not %s", i, addr, req.Families[i])
		}
		if name, ok := a.Pool(addr); !ok || !slices.Contains(req.Pools, name) {
			t.Errorf("address %s is in pool %q (%v), not in candidates %v", addr, name, ok, req.Pools)
		}
	}
}

// naiveFirstFree scans the candidate pools address by address.
func naiveFirstFree(st *propState, req Request) (netip.Addr, bool) {
	used := map[netip.Addr]bool{}
	for _, held := range st.held {
		for _, addr := range held {
			used[addr] = true
		}
	}
	var pools []*Pool
	for i, p := range propConfigs[st.config] {
		if slices.Contains(req.Pools, p.Name) {
			pools = append(pools, &propConfigs[st.config][i])
		}
	}
	slices.SortFunc(pools, comparePools)
	for _, p := range pools {
		for _, r := range p.Ranges {
			if r.Family() != req.Families[0] {
				continue
			}
			for _, addr := range enumerate(r) {
				if !used[addr] && !buggy(*p, addr) {
					return addr, true
				}
			}
		}
	}
	return netip.Addr{}, false
}

func buggy(p Pool, addr netip.Addr) bool {
	b := addr.As16()[15]
	return p.AvoidBuggyIPs && addr.Is4() && (b == 0 || b == 255)
}

// checkReusable checks that an address freed by Release can be requested
// again, then gives it back.
func checkReusable(t *testing.T, a *Allocator, st *propState, freed []netip.Addr) {
	t.Helper()
	for _, addr := range freed {
		name, ok := a.Pool(addr)
		if !ok || heldBy(st, addr) != nil || buggy(poolNamed(st.config, name), addr) {
			continue
		}
		req := Request{Key: "probe/reuse", Addresses: []netip.Addr{addr}, Pools: []string{name}}
		if _, err := a.Allocate(req); err != nil {
			t.Errorf("released address %s cannot be allocated again: %v", addr, err)
		}
		a.Release(req.Key)
	}
}

func poolNamed(config int, name string) Pool {
	for _, p := range propConfigs[config] {
		if p.Name == name {
			return p
		}
	}
	return Pool{}
}

func heldBy(st *propState, addr netip.Addr) []string {
	var keys []string
	for key, held := range st.held {
		if slices.Contains(held, addr) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// checkInvariants checks sharing legality, pool membership, Stats and the
// internal interval sets.
func checkInvariants(t *testing.T, a *Allocator, st *propState) {
	t.Helper()
	for key, held := range st.held {
		if got := a.Addresses(key); !slices.Equal(held, got) {
			t.Errorf("Addresses(%s) (-model +allocator):\n%s", key, cmp.Diff(held, got, addrOpt))
		}
	}
	holders := map[netip.Addr][]string{}
	for key, held := range st.held {
		for _, addr := range held {
			holders[addr] = append(holders[addr], key)
		}
	}
	inUse := map[string]map[Family]int64{}
	for addr, keys := range holders {
		checkSharing(t, st, addr, keys)
		name, ok := a.Pool(addr)
		if !ok {
			if !st.orphans[addr] {
				t.Errorf("held address %s is in no pool and was not orphaned by SetPools", addr)
			}
			continue
		}
		if buggy(poolNamed(st.config, name), addr) {
			continue
		}
		if inUse[name] == nil {
			inUse[name] = map[Family]int64{}
		}
		inUse[name][FamilyOf(addr)]++
	}
	for _, p := range propConfigs[st.config] {
		checkStats(t, a, p, inUse[p.Name])
	}
	checkRangeStates(t, a)
}

// checkSharing checks that every pair of keys holding addr may share it.
func checkSharing(t *testing.T, st *propState, addr netip.Addr, keys []string) {
	t.Helper()
	for i, k1 := range keys {
		for _, k2 := range keys[i+1:] {
			r1, r2 := st.reqs[k1], st.reqs[k2]
			_, collide := collision(r1.Ports, r2.Ports)
			if r1.SharingKey == "" || r1.SharingKey != r2.SharingKey || r1.Backend != r2.Backend || collide {
				t.Errorf("%s is held by %s (%q %q %v) and %s (%q %q %v)", addr,
					k1, r1.SharingKey, r1.Backend, r1.Ports, k2, r2.SharingKey, r2.Backend, r2.Ports)
			}
		}
	}
}

// checkStats compares Stats(p) with counts made by enumerating p's ranges.
func checkStats(t *testing.T, a *Allocator, p Pool, inUse map[Family]int64) {
	t.Helper()
	capacity := map[Family]int64{}
	for _, r := range p.Ranges {
		capacity[r.Family()] += 0 // a family with no usable address still has stats
		for _, addr := range enumerate(r) {
			if !buggy(p, addr) {
				capacity[FamilyOf(addr)]++
			}
		}
	}
	want := map[Family][3]int64{}
	for f, c := range capacity {
		want[f] = [3]int64{c, inUse[f], c - inUse[f]}
	}
	got := map[Family][3]int64{}
	for f, s := range a.Stats(p.Name) {
		got[f] = [3]int64{s.Capacity.Int64(), s.InUse.Int64(), s.Available.Int64()}
	}
	if !maps.Equal(want, got) {
		t.Errorf("Stats(%s) [capacity, in use, available] (-want +got):\n%s", p.Name, cmp.Diff(want, got))
	}
}

// checkRangeStates checks every range's interval set against the addresses
// the allocator records as used, address by address.
func checkRangeStates(t *testing.T, a *Allocator) {
	t.Helper()
	a.ranges.Ascend(func(rs *rangeState) bool {
		var intervals []interval
		rs.taken.Ascend(func(it interval) bool {
			intervals = append(intervals, it)
			return true
		})
		covered := func(v u128) bool {
			return slices.ContainsFunc(intervals, func(it interval) bool { return !v.less(it.first) && !it.last.less(v) })
		}
		var used uint64
		for _, addr := range enumerate(rs.rng()) {
			v := u128Of(addr)
			if rs.excluded(v) {
				continue
			}
			_, taken := a.addrs[addr]
			if taken {
				used++
			}
			if covered(v) != taken {
				t.Errorf("range %s: %s taken %v but covered by intervals %v", rs.rng(), addr, taken, intervals)
			}
		}
		if used != rs.used {
			t.Errorf("range %s: used = %d, counted %d", rs.rng(), rs.used, used)
		}
		for i, it := range intervals {
			if rs.excluded(it.first) || rs.excluded(it.last) {
				t.Errorf("range %s: interval %v starts or ends on an excluded address", rs.rng(), it)
			}
			if i > 0 && rs.onlyExcludedBetween(intervals[i-1].last, it.first) {
				t.Errorf("range %s: intervals %v and %v should have merged", rs.rng(), intervals[i-1], it)
			}
		}
		return true
	})
}
