package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// plan works out the addresses req.Key should hold after Allocate(req),
// without changing anything.
func (a *Allocator) plan(req Request) ([]netip.Addr, error) {
	if e := validate(req); e != nil {
		return nil, e
	}
	cands := a.candidates(req.Pools)
	var (
		addrs []netip.Addr
		e     *Error
	)
	if len(req.Addresses) > 0 {
		addrs, e = a.planRequested(req, cands)
	} else {
		addrs, e = a.planFamilies(req, cands)
	}
	if e != nil {
		return nil, e
	}
	return addrs, nil
}

// validate checks the shape of req.
func validate(req Request) *Error {
	if req.Key == "" {
		return errorf(ReasonInvalidRequest, "the request names no Service")
	}
	if len(req.Addresses) > 0 {
		return validateAddresses(req.Addresses)
	}
	switch len(req.Families) {
	case 1, 2:
	case 0:
		return errorf(ReasonInvalidRequest, "no address family is requested")
	default:
		return errorf(ReasonInvalidRequest, "at most two address families can be requested, got %d", len(req.Families))
	}
	for i, f := range req.Families {
		if f != IPv4 && f != IPv6 {
			return errorf(ReasonInvalidRequest, "unknown address family %d", int(f))
		}
		if i > 0 && f == req.Families[0] {
			return errorf(ReasonInvalidRequest, "address family %s is requested twice", f)
		}
	}
	return nil
}

func validateAddresses(addrs []netip.Addr) *Error {
	if len(addrs) > 2 {
		return errorf(ReasonInvalidRequest, "at most two addresses can be requested, got %d", len(addrs))
	}
	for i, addr := range addrs {
		if !addr.IsValid() {
			return errorf(ReasonInvalidRequest, "requested address %d is empty", i+1)
		}
		if err := checkPlainAddr(addr); err != nil {
			return errorf(ReasonInvalidRequest, "requested %v", err)
		}
		if i > 0 && FamilyOf(addr) == FamilyOf(addrs[0]) {
			return errorf(ReasonInvalidRequest, "requested addresses %s and %s are both %s; at most one per family is allowed",
				addrs[0], addr, FamilyOf(addr))
		}
	}
	return nil
}

// candidates returns the known pools among names in allocation order.
func (a *Allocator) candidates(names []string) []*poolState {
	var pools []*poolState
	for _, name := range names {
		if p := a.pools[name]; p != nil && !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	slices.SortFunc(pools, func(x, y *poolState) int { return cmp.Compare(x.rank, y.rank) })
	return pools
}

// planRequested checks that every requested address may be used by req.Key.
func (a *Allocator) planRequested(req Request, cands []*poolState) ([]netip.Addr, *Error) {
	for _, addr := range req.Addresses {
		if e := a.check(addr, req, cands); e != nil {
			return nil, e
		}
	}
	return slices.Clone(req.Addresses), nil
}

// planFamilies keeps the still valid addresses of req.Key and picks the
// missing families.
func (a *Allocator) planFamilies(req Request, cands []*poolState) ([]netip.Addr, *Error) {
	kept := a.keepable(req, cands)
	switch missing := slices.Index(kept, netip.Addr{}); {
	case missing < 0:
		return kept, nil
	case len(kept) == 1:
		addr, e := a.pickOne(cands, req.Families[0], req)
		if e != nil {
			return nil, e
		}
		return []netip.Addr{addr}, nil
	case !kept[1-missing].IsValid():
		return a.planPair(req, cands)
	default:
		return a.completePair(req, cands, kept, missing)
	}
}

// keepable returns, per requested family, the address req.Key holds that is
// still valid for req, or the zero Addr.
func (a *Allocator) keepable(req Request, cands []*poolState) []netip.Addr {
	kept := make([]netip.Addr, len(req.Families))
	h := a.keys[req.Key]
	if h == nil {
		return kept
	}
	for i, f := range req.Families {
		for _, addr := range h.addrs {
			if FamilyOf(addr) == f && a.check(addr, req, cands) == nil {
				kept[i] = addr
			}
		}
	}
	return kept
}

// planPair picks both families of a dual-stack request from one pool, or
// falls back to the primary family alone unless req.RequireAll.
func (a *Allocator) planPair(req Request, cands []*poolState) ([]netip.Addr, *Error) {
	f1, f2 := req.Families[0], req.Families[1]
	for _, p := range cands {
		one := []*poolState{p}
		a1, ok1 := a.join(one, f1, req)
		a2, ok2 := a.join(one, f2, req)
		if ok1 && ok2 {
			return []netip.Addr{a1, a2}, nil
		}
	}
	for _, p := range cands {
		a1, ok1 := a.takeIn(p, f1, req)
		a2, ok2 := a.takeIn(p, f2, req)
		if ok1 && ok2 {
			return []netip.Addr{a1, a2}, nil
		}
	}
	if req.RequireAll {
		return nil, pairError(cands, f1, f2)
	}
	addr, e := a.pickOne(cands, f1, req)
	if e != nil {
		return nil, e
	}
	return []netip.Addr{addr}, nil
}

// completePair picks the missing family of a dual-stack request whose other
// address is kept, from the kept address's pool (for a retained address, the
// candidate it is retained for). When that pool has none, a
// kept primary stays alone unless req.RequireAll; otherwise both families are
// picked afresh.
func (a *Allocator) completePair(req Request, cands []*poolState, kept []netip.Addr, missing int) ([]netip.Addr, *Error) {
	home := a.addrs[kept[1-missing]].rs.pool
	if !slices.Contains(cands, home) {
		home = a.retainedIn(kept[1-missing], req, cands) // never the owner: it serves no longer
	}
	if home != nil {
		if addr, ok := a.takeIn(home, req.Families[missing], req); ok {
			kept[missing] = addr
			return kept, nil
		}
	}
	if missing == 1 && !req.RequireAll {
		return kept[:1], nil
	}
	return a.planPair(req, cands)
}

// pickOne picks an address of family f: joining a shared address if one
// fits, else the first free address of the first pool in order that has one.
func (a *Allocator) pickOne(order []*poolState, f Family, req Request) (netip.Addr, *Error) {
	if addr, ok := a.join(order, f, req); ok {
		return addr, nil
	}
	for _, p := range order {
		if v, ok := p.firstFree(f); ok {
			return v.addr(f), nil
		}
	}
	return netip.Addr{}, familyError(order, f)
}

// takeIn picks an address of family f in p, joining a shared one if it fits.
func (a *Allocator) takeIn(p *poolState, f Family, req Request) (netip.Addr, bool) {
	if addr, ok := a.join([]*poolState{p}, f, req); ok {
		return addr, true
	}
	if v, ok := p.firstFree(f); ok {
		return v.addr(f), true
	}
	return netip.Addr{}, false
}

// join returns the lowest address of family f used under req.SharingKey that
// req may share, in the first pool of order that has one.
func (a *Allocator) join(order []*poolState, f Family, req Request) (netip.Addr, bool) {
	if req.SharingKey == "" {
		return netip.Addr{}, false
	}
	best, bestAt := netip.Addr{}, len(order)
	for _, addr := range a.shared[req.SharingKey] {
		use := a.addrs[addr]
		if FamilyOf(addr) != f || use.rs == nil || use.rs.excluded(u128Of(addr)) {
			continue
		}
		at := slices.Index(order, use.rs.pool)
		if at < 0 || at >= bestAt || conflict(addr, use, req) != nil {
			continue
		}
		best, bestAt = addr, at
	}
	return best, best.IsValid()
}

// check reports why req.Key may not hold addr, or nil if it may.
func (a *Allocator) check(addr netip.Addr, req Request, cands []*poolState) *Error {
	rs := a.rangeOf(addr)
	switch {
	case rs == nil:
		return errorf(ReasonNotInPool, "address %s is not in any address pool", addr)
	case !slices.Contains(cands, rs.pool) && a.retainedIn(addr, req, cands) == nil:
		return errorf(ReasonNotInPool, "address %s is in pool %q, which is not one of the Service's pools%s",
			addr, rs.pool.name, listOf(cands))
	case rs.excluded(u128Of(addr)):
		return errorf(ReasonNotInPool, "address %s is not handed out by pool %q, which avoids addresses ending in .0 or .255",
			addr, rs.pool.name)
	}
	if use := a.addrs[addr]; use != nil {
		return conflict(addr, use, req)
	}
	return nil
}

// retainedIn returns the candidate pool req.Retained keeps addr for, when
// req.Key holds addr; otherwise nil.
func (a *Allocator) retainedIn(addr netip.Addr, req Request, cands []*poolState) *poolState {
	name, ok := req.Retained[addr]
	if !ok {
		return nil
	}
	if h := a.keys[req.Key]; h == nil || !slices.Contains(h.addrs, addr) {
		return nil
	}
	if p := a.pools[name]; p != nil && slices.Contains(cands, p) {
		return p
	}
	return nil
}

// conflict reports why req.Key may not share addr with its other users.
func conflict(addr netip.Addr, use *addrUse, req Request) *Error {
	for _, u := range use.users {
		if u.key == req.Key {
			continue
		}
		switch {
		case u.sharingKey == "":
			return errorf(ReasonInUse, "address %s is in use by %s, which does not share it", addr, u.key)
		case req.SharingKey != u.sharingKey:
			return errorf(ReasonInUse, "address %s is in use by %s, which shares it only under key %q", addr, u.key, u.sharingKey)
		case req.Backend != u.backend:
			return errorf(ReasonSharingConflict,
				"address %s is shared under key %q with %s, which selects different backends (externalTrafficPolicy or pod selector differ)",
				addr, u.sharingKey, u.key)
		}
		if p, ok := collision(req.Ports, u.ports); ok {
			return errorf(ReasonSharingConflict, "address %s is shared under key %q with %s, which also uses port %s",
				addr, u.sharingKey, u.key, portString(p))
		}
	}
	return nil
}

// collision returns a port both lists use.
func collision(a, b []Port) (Port, bool) {
	for _, p := range a {
		if slices.Contains(b, p) {
			return p, true
		}
	}
	return Port{}, false
}

// familyError explains why no address of family f was found in pools.
func familyError(pools []*poolState, f Family) *Error {
	if len(pools) == 0 {
		return errorf(ReasonNoPool, "none of the Service's address pools exists")
	}
	with := slices.DeleteFunc(slices.Clone(pools), func(p *poolState) bool { return !p.hasFamily(f) })
	if len(with) == 0 {
		return errorf(ReasonNoPool, "no %s addresses in pools %s", f, poolNames(pools))
	}
	return errorf(ReasonPoolExhausted, "no free %s address left in pools %s", f, poolNames(with))
}

// pairError explains why no pool could give a dual-stack pair.
func pairError(pools []*poolState, f1, f2 Family) *Error {
	if len(pools) == 0 {
		return errorf(ReasonNoPool, "none of the Service's address pools exists")
	}
	with := slices.DeleteFunc(slices.Clone(pools), func(p *poolState) bool { return !p.hasFamily(f1) || !p.hasFamily(f2) })
	if len(with) == 0 {
		return errorf(ReasonNoPool, "no pool among %s has both %s and %s addresses", poolNames(pools), f1, f2)
	}
	return errorf(ReasonPoolExhausted, "no pool among %s has both a free %s and a free %s address", poolNames(with), f1, f2)
}

// listOf formats pool names as " (\"a\", \"b\")", or "" for none.
func listOf(pools []*poolState) string {
	if len(pools) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s)", poolNames(pools))
}
