package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, ip(s))
	}
	return out
}

func ranges(ss ...string) []Range {
	var out []Range
	for _, s := range ss {
		r, err := ParseRange(s)
		if err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return out
}

func v4(key string, pools ...string) Request {
	return Request{Key: key, Families: []Family{IPv4}, Pools: pools}
}

func v6(key string, pools ...string) Request {
	return Request{Key: key, Families: []Family{IPv6}, Pools: pools}
}

func dual(key string, requireAll bool, pools ...string) Request {
	return Request{Key: key, Families: []Family{IPv4, IPv6}, RequireAll: requireAll, Pools: pools}
}

func want(key string, a ...string) Request {
	return Request{Key: key, Addresses: addrs(a...), Pools: []string{"a", "b"}}
}

func shared(r Request, sharingKey, backend string, ports ...Port) Request {
	r.SharingKey, r.Backend, r.Ports = sharingKey, backend, ports
	return r
}

// fill returns n IPv4 requests for keys prefix-0, prefix-1, ...
func fill(prefix string, n int, pools ...string) []Request {
	var reqs []Request
	for i := range n {
		reqs = append(reqs, v4(fmt.Sprintf("%s-%d", prefix, i), pools...))
	}
	return reqs
}

var (
	tcp80  = Port{Protocol: "TCP", Port: 80}
	tcp443 = Port{Protocol: "TCP", Port: 443}
	tcp53  = Port{Protocol: "TCP", Port: 53}
	udp53  = Port{Protocol: "UDP", Port: 53}
)

// asError returns the *Error inside err, or nil.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

func TestAllocate(t *testing.T) {
	poolA := Pool{Name: "a", Ranges: ranges("10.0.0.0/30")}
	poolB := Pool{Name: "b", Ranges: ranges("10.0.1.0/30")}
	dsPool := Pool{Name: "ds", Ranges: ranges("10.0.2.0/31", "2001:db8::/127")}
	v4Pool := Pool{Name: "v4", Priority: 1, Ranges: ranges("10.0.3.0/31")}
	v6Pool := Pool{Name: "v6", Priority: 2, Ranges: ranges("2001:db8:6::/127")}
	tests := []struct {
		name    string
		pools   []Pool
		before  []Request
		req     Request
		want    []netip.Addr
		wantErr *Error
	}{
		{
			name: "lowest priority first",
			pools: []Pool{
				{Name: "a", Priority: 10, Ranges: ranges("10.0.0.0/30")},
				{Name: "b", Priority: 5, Ranges: ranges("10.0.1.0/30")},
				{Name: "c", Ranges: ranges("10.0.2.0/30")},
			},
			req:  v4("ns/svc", "a", "c", "b"),
			want: addrs("10.0.1.0"),
		},
		{
			name: "unset priority after every set one",
			pools: []Pool{
				{Name: "a", Ranges: ranges("10.0.0.0/30")},
				{Name: "z", Priority: 100, Ranges: ranges("10.0.1.0/30")},
			},
			req:  v4("ns/svc", "a", "z"),
			want: addrs("10.0.1.0"),
		},
		{
			name: "ties broken by name",
			pools: []Pool{
				{Name: "b", Priority: 3, Ranges: ranges("10.0.1.0/30")},
				{Name: "a", Priority: 3, Ranges: ranges("10.0.0.0/30")},
			},
			req:  v4("ns/svc", "b", "a"),
			want: addrs("10.0.0.0"),
		},
		{
			name:  "only candidate pools are used",
			pools: []Pool{poolA, poolB},
			req:   v4("ns/svc", "b"),
			want:  addrs("10.0.1.0"),
		},
		{
			name:   "next pool when the first is full",
			pools:  []Pool{poolA, poolB},
			before: fill("ns/x", 4, "a"),
			req:    v4("ns/svc", "a", "b"),
			want:   addrs("10.0.1.0"),
		},
		{
			name:   "first free in listed range order",
			pools:  []Pool{{Name: "a", Ranges: ranges("10.0.5.0/31", "10.0.1.7", "10.0.0.0/24")}},
			before: fill("ns/x", 2, "a"),
			req:    v4("ns/svc", "a"),
			want:   addrs("10.0.1.7"),
		},
		{
			name:  "unknown pool names ignored",
			pools: []Pool{poolA},
			req:   v4("ns/svc", "nope", "a"),
			want:  addrs("10.0.0.0"),
		},
		{
			name:    "no known pool",
			pools:   []Pool{poolA},
			req:     v4("ns/svc", "nope"),
			wantErr: &Error{Reason: ReasonNoPool, Message: `none of the Service's address pools exists`},
		},
		{
			name:    "no pool of the family",
			pools:   []Pool{poolA, poolB},
			req:     v6("ns/svc", "b", "a"),
			wantErr: &Error{Reason: ReasonNoPool, Message: `no IPv6 addresses in pools "a", "b"`},
		},
		{
			name:    "exhausted",
			pools:   []Pool{poolA, v6Pool},
			before:  fill("ns/x", 4, "a"),
			req:     v4("ns/svc", "a", "v6"),
			wantErr: &Error{Reason: ReasonPoolExhausted, Message: `no free IPv4 address left in pools "a"`},
		},
		{
			name:  "avoid buggy skips .255 and .0",
			pools: []Pool{{Name: "a", Ranges: ranges("10.0.0.255-10.0.1.1"), AvoidBuggyIPs: true}},
			req:   v4("ns/svc", "a"),
			want:  addrs("10.0.1.1"),
		},
		{
			name:   "avoid buggy across a /24 boundary",
			pools:  []Pool{{Name: "a", Ranges: ranges("10.0.0.254-10.0.1.2"), AvoidBuggyIPs: true}},
			before: fill("ns/x", 1, "a"),
			req:    v4("ns/svc", "a"),
			want:   addrs("10.0.1.1"),
		},
		{
			name:   "avoid buggy fills a /23",
			pools:  []Pool{{Name: "a", Ranges: ranges("10.0.0.0/23"), AvoidBuggyIPs: true}},
			before: fill("ns/x", 254, "a"),
			req:    v4("ns/svc", "a"),
			want:   addrs("10.0.1.1"),
		},
		{
			name:    "avoid buggy /23 exhausted",
			pools:   []Pool{{Name: "a", Ranges: ranges("10.0.0.0/23"), AvoidBuggyIPs: true}},
			before:  fill("ns/x", 508, "a"),
			req:     v4("ns/svc", "a"),
			wantErr: &Error{Reason: ReasonPoolExhausted, Message: `no free IPv4 address left in pools "a"`},
		},
		{
			name:  "avoid buggy leaves ipv6 alone",
			pools: []Pool{{Name: "a", Ranges: ranges("2001:db8::/120"), AvoidBuggyIPs: true}},
			req:   v6("ns/svc", "a"),
			want:  addrs("2001:db8::"),
		},
		{
			name:  "requested address",
			pools: []Pool{poolA, poolB},
			req:   want("ns/svc", "10.0.1.2"),
			want:  addrs("10.0.1.2"),
		},
		{
			name:  "requested addresses of both families keep their order",
			pools: []Pool{poolA, {Name: "b", Ranges: ranges("2001:db8::/64")}},
			req:   want("ns/svc", "2001:db8::5", "10.0.0.3"),
			want:  addrs("2001:db8::5", "10.0.0.3"),
		},
		{
			name:    "requested address in no pool",
			pools:   []Pool{poolA},
			req:     want("ns/svc", "192.0.2.1"),
			wantErr: &Error{Reason: ReasonNotInPool, Message: `address 192.0.2.1 is not in any address pool`},
		},
		{
			name:  "requested address in a pool that is not a candidate",
			pools: []Pool{poolA, poolB},
			req:   Request{Key: "ns/svc", Addresses: addrs("10.0.1.1"), Pools: []string{"a"}},
			wantErr: &Error{Reason: ReasonNotInPool,
				Message: `address 10.0.1.1 is in pool "b", which is not one of the Service's pools ("a")`},
		},
		{
			name:  "requested buggy address",
			pools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/24"), AvoidBuggyIPs: true}},
			req:   want("ns/svc", "10.0.0.255"),
			wantErr: &Error{Reason: ReasonNotInPool,
				Message: `address 10.0.0.255 is not handed out by pool "a", which avoids addresses ending in .0 or .255`},
		},
		{
			name:    "requested address in use",
			pools:   []Pool{poolA},
			before:  fill("ns/x", 1, "a"),
			req:     want("ns/svc", "10.0.0.0"),
			wantErr: &Error{Reason: ReasonInUse, Message: `address 10.0.0.0 is in use by ns/x-0, which does not share it`},
		},
		{
			name:   "sharing joins the address of the same key",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/web", "a"), "k", "", tcp80)},
			req:    shared(v4("ns/web-tls", "a"), "k", "", tcp443),
			want:   addrs("10.0.0.0"),
		},
		{
			name:   "sharing allows one port number over two protocols",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/dns-tcp", "a"), "dns", "", tcp53)},
			req:    shared(v4("ns/dns-udp", "a"), "dns", "", udp53),
			want:   addrs("10.0.0.0"),
		},
		{
			name:   "sharing with colliding ports takes a fresh address",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/web", "a"), "k", "", tcp80)},
			req:    shared(v4("ns/web2", "a"), "k", "", tcp443, tcp80),
			want:   addrs("10.0.0.1"),
		},
		{
			name:   "requested shared address with colliding ports",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/web", "a"), "k", "", tcp80)},
			req:    shared(want("ns/web2", "10.0.0.0"), "k", "", tcp80),
			wantErr: &Error{Reason: ReasonSharingConflict,
				Message: `address 10.0.0.0 is shared under key "k" with ns/web, which also uses port TCP/80`},
		},
		{
			name:   "requested shared address with other backends",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/web", "a"), "k", "app=web", tcp80)},
			req:    shared(want("ns/web2", "10.0.0.0"), "k", "", tcp443),
			wantErr: &Error{Reason: ReasonSharingConflict,
				Message: `address 10.0.0.0 is shared under key "k" with ns/web, which selects different backends (externalTrafficPolicy or pod selector differ)`},
		},
		{
			name:   "requested shared address under another key",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/web", "a"), "k", "", tcp80)},
			req:    shared(want("ns/web2", "10.0.0.0"), "other", "", tcp443),
			wantErr: &Error{Reason: ReasonInUse,
				Message: `address 10.0.0.0 is in use by ns/web, which shares it only under key "k"`},
		},
		{
			name:   "sharing with another key takes a fresh address",
			pools:  []Pool{poolA},
			before: []Request{shared(v4("ns/web", "a"), "k", "", tcp80)},
			req:    shared(v4("ns/web2", "a"), "other", "", tcp443),
			want:   addrs("10.0.0.1"),
		},
		{
			name:  "joining a shared address beats a fresh one in an earlier pool",
			pools: []Pool{{Name: "a", Priority: 1, Ranges: ranges("10.0.0.0/30")}, {Name: "b", Priority: 2, Ranges: ranges("10.0.1.0/30")}},
			before: []Request{
				shared(Request{Key: "ns/web", Addresses: addrs("10.0.1.2"), Pools: []string{"b"}}, "k", "app=web", tcp80),
			},
			req:  shared(v4("ns/web2", "a", "b"), "k", "app=web", tcp443),
			want: addrs("10.0.1.2"),
		},
		{
			name:  "dual-stack from the first pool holding both families",
			pools: []Pool{v4Pool, dsPool},
			req:   dual("ns/svc", true, "v4", "ds"),
			want:  addrs("10.0.2.0", "2001:db8::"),
		},
		{
			name:  "dual-stack ipv6 primary",
			pools: []Pool{dsPool},
			req:   Request{Key: "ns/svc", Families: []Family{IPv6, IPv4}, Pools: []string{"ds"}},
			want:  addrs("2001:db8::", "10.0.2.0"),
		},
		{
			name:  "prefer dual-stack falls back to the primary family",
			pools: []Pool{v4Pool, v6Pool},
			req:   dual("ns/svc", false, "v4", "v6"),
			want:  addrs("10.0.3.0"),
		},
		{
			name:   "prefer dual-stack falls back when the dual pool is exhausted",
			pools:  []Pool{v4Pool, dsPool},
			before: []Request{v6("ns/x", "ds"), v6("ns/y", "ds")},
			req:    dual("ns/svc", false, "ds", "v4"),
			want:   addrs("10.0.3.0"),
		},
		{
			name:    "prefer dual-stack fails without the primary family",
			pools:   []Pool{v6Pool},
			req:     dual("ns/svc", false, "v6"),
			wantErr: &Error{Reason: ReasonNoPool, Message: `no IPv4 addresses in pools "v6"`},
		},
		{
			name:    "require dual-stack without a dual pool",
			pools:   []Pool{v4Pool, v6Pool},
			req:     dual("ns/svc", true, "v4", "v6"),
			wantErr: &Error{Reason: ReasonNoPool, Message: `no pool among "v4", "v6" has both IPv4 and IPv6 addresses`},
		},
		{
			name:   "require dual-stack with the dual pool exhausted",
			pools:  []Pool{v4Pool, dsPool},
			before: []Request{v6("ns/x", "ds"), v6("ns/y", "ds")},
			req:    dual("ns/svc", true, "v4", "ds"),
			wantErr: &Error{Reason: ReasonPoolExhausted,
				Message: `no pool among "ds" has both a free IPv4 and a free IPv6 address`},
		},
		{
			name:  "dual-stack sharing joins both families",
			pools: []Pool{dsPool},
			before: []Request{
				v4("ns/x", "ds"),
				shared(dual("ns/web", true, "ds"), "k", "", tcp80),
			},
			req:  shared(dual("ns/web2", true, "ds"), "k", "", tcp443),
			want: addrs("10.0.2.1", "2001:db8::"),
		},
		{
			name:  "ipv6 /64",
			pools: []Pool{{Name: "a", Ranges: ranges("2001:db8::/64")}},
			before: []Request{
				v6("ns/x", "a"), v6("ns/y", "a"),
			},
			req:  v6("ns/svc", "a"),
			want: addrs("2001:db8::2"),
		},
		{
			name:   "ipv6 everything",
			pools:  []Pool{{Name: "a", Ranges: ranges("::/0")}},
			before: []Request{v6("ns/x", "a")},
			req:    v6("ns/svc", "a"),
			want:   addrs("::1"),
		},
		{
			name:  "top of the ipv6 space",
			pools: []Pool{{Name: "a", Ranges: ranges("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")}},
			before: []Request{
				v6("ns/x", "a"), v6("ns/y", "a"),
			},
			req:     v6("ns/svc", "a"),
			wantErr: &Error{Reason: ReasonPoolExhausted, Message: `no free IPv6 address left in pools "a"`},
		},
		{
			name:  "overlapping ranges are claimed once",
			pools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/31", "10.0.0.0/30")}},
			before: []Request{
				v4("ns/x", "a"), v4("ns/y", "a"),
			},
			req:  v4("ns/svc", "a"),
			want: addrs("10.0.0.2"),
		},
		{
			name:    "no key",
			pools:   []Pool{poolA},
			req:     v4("", "a"),
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `the request names no Service`},
		},
		{
			name:    "no family",
			pools:   []Pool{poolA},
			req:     Request{Key: "ns/svc", Pools: []string{"a"}},
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `no address family is requested`},
		},
		{
			name:    "family twice",
			pools:   []Pool{poolA},
			req:     Request{Key: "ns/svc", Families: []Family{IPv4, IPv4}, Pools: []string{"a"}},
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `address family IPv4 is requested twice`},
		},
		{
			name:    "three families",
			pools:   []Pool{poolA},
			req:     Request{Key: "ns/svc", Families: []Family{IPv4, IPv6, IPv4}, Pools: []string{"a"}},
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `at most two address families can be requested, got 3`},
		},
		{
			name:    "unknown family",
			pools:   []Pool{poolA},
			req:     Request{Key: "ns/svc", Families: []Family{5}, Pools: []string{"a"}},
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `unknown address family 5`},
		},
		{
			name:  "two requested addresses of one family",
			pools: []Pool{poolA},
			req:   want("ns/svc", "10.0.0.1", "10.0.0.2"),
			wantErr: &Error{Reason: ReasonInvalidRequest,
				Message: `requested addresses 10.0.0.1 and 10.0.0.2 are both IPv4; at most one per family is allowed`},
		},
		{
			name:    "three requested addresses",
			pools:   []Pool{poolA},
			req:     want("ns/svc", "10.0.0.1", "2001:db8::1", "10.0.0.2"),
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `at most two addresses can be requested, got 3`},
		},
		{
			name:  "requested mapped address",
			pools: []Pool{poolA},
			req:   want("ns/svc", "::ffff:10.0.0.1"),
			wantErr: &Error{Reason: ReasonInvalidRequest,
				Message: `requested address ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address; write it as 10.0.0.1`},
		},
		{
			name:    "requested empty address",
			pools:   []Pool{poolA},
			req:     Request{Key: "ns/svc", Addresses: []netip.Addr{{}}, Pools: []string{"a"}},
			wantErr: &Error{Reason: ReasonInvalidRequest, Message: `requested address 1 is empty`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			a.SetPools(tt.pools)
			for _, req := range tt.before {
				if _, err := a.Allocate(req); err != nil {
					t.Fatalf("Allocate(%s) before: %v", req.Key, err)
				}
			}
			got, err := a.Allocate(tt.req)
			if diff := cmp.Diff(tt.wantErr, asError(t, err)); diff != "" {
				t.Fatalf("Allocate error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, addrOpt); diff != "" {
				t.Errorf("Allocate (-want +got):\n%s", diff)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, a.Addresses(tt.req.Key), addrOpt); diff != "" {
					t.Errorf("Addresses after Allocate (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// op is one step of an allocator scenario. Exactly one of its action fields
// is set; the want fields check the action's result.
type op struct {
	setPools []Pool   // SetPools
	alloc    *Request // Allocate: want, wantErr
	release  string   // Release
	valid    *Request // Valid: wantValid
	holds    string   // Addresses: want
	pool     string   // Pool of this address: wantPool ("" for none)

	want      []netip.Addr
	wantErr   *Error
	wantValid bool
	wantPool  string
}

func alloc(r Request, a ...string) op { return op{alloc: &r, want: addrs(a...)} }

func allocErr(r Request, e *Error) op { return op{alloc: &r, wantErr: e} }

func valid(r Request, ok bool) op { return op{valid: &r, wantValid: ok} }

func holds(key string, a ...string) op { return op{holds: key, want: addrs(a...)} }

func poolOf(addr, pool string) op { return op{pool: addr, wantPool: pool} }

func (o op) run(t *testing.T, a *Allocator) {
	t.Helper()
	switch {
	case o.setPools != nil:
		a.SetPools(o.setPools)
	case o.alloc != nil:
		got, err := a.Allocate(*o.alloc)
		if diff := cmp.Diff(o.wantErr, asError(t, err)); diff != "" {
			t.Fatalf("Allocate(%s) error (-want +got):\n%s", o.alloc.Key, diff)
		}
		if diff := cmp.Diff(o.want, got, addrOpt); diff != "" {
			t.Fatalf("Allocate(%s) (-want +got):\n%s", o.alloc.Key, diff)
		}
	case o.release != "":
		a.Release(o.release)
	case o.valid != nil:
		if diff := cmp.Diff(o.wantValid, a.Valid(o.valid.Key, *o.valid)); diff != "" {
			t.Fatalf("Valid(%s) (-want +got):\n%s", o.valid.Key, diff)
		}
	case o.holds != "":
		if diff := cmp.Diff(o.want, a.Addresses(o.holds), addrOpt); diff != "" {
			t.Fatalf("Addresses(%s) (-want +got):\n%s", o.holds, diff)
		}
	case o.pool != "":
		name, ok := a.Pool(ip(o.pool))
		if diff := cmp.Diff(o.wantPool, name); diff != "" || ok != (o.wantPool != "") {
			t.Fatalf("Pool(%s) = %q, %v (-want +got):\n%s", o.pool, name, ok, diff)
		}
	default:
		t.Fatalf("empty op %+v", o)
	}
}

func TestAllocatorScenarios(t *testing.T) {
	poolA := Pool{Name: "a", Ranges: ranges("10.0.0.0/29")}
	ds := Pool{Name: "ds", Ranges: ranges("10.0.2.0/30", "2001:db8::/126")}
	tests := []struct {
		name string
		ops  []op
	}{
		{
			name: "an existing address is never moved",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				alloc(v4("ns/two", "a"), "10.0.0.1"),
				alloc(v4("ns/two", "a"), "10.0.0.1"),
				{setPools: []Pool{{Name: "z", Priority: 1, Ranges: ranges("10.0.9.0/29")}, poolA}},
				valid(v4("ns/two", "z", "a"), true),
				alloc(v4("ns/two", "z", "a"), "10.0.0.1"),
				alloc(v4("ns/three", "z", "a"), "10.0.9.0"),
				holds("ns/one", "10.0.0.0"),
			},
		},
		{
			name: "shrinking pools makes Valid false",
			ops: []op{
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/30")}}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				valid(v4("ns/one", "a"), true),
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.2/31")}}},
				poolOf("10.0.0.0", ""),
				holds("ns/one", "10.0.0.0"),
				valid(v4("ns/one", "a"), false),
				alloc(v4("ns/one", "a"), "10.0.0.2"),
				holds("ns/one", "10.0.0.2"),
				poolOf("10.0.0.2", "a"),
			},
		},
		{
			name: "Valid follows the request",
			ops: []op{
				{setPools: []Pool{poolA, ds}},
				valid(v4("ns/one", "a"), false),
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				valid(v4("ns/one", "a", "ds"), true),
				valid(v4("ns/one", "ds"), false),
				valid(v6("ns/one", "a", "ds"), false),
				valid(want("ns/one", "10.0.0.0"), true),
				valid(want("ns/one", "10.0.0.1"), false),
				valid(dual("ns/one", false, "a"), true),
				valid(dual("ns/one", false, "a", "ds"), true),
				valid(dual("ns/one", true, "a", "ds"), false),
				valid(Request{Key: "ns/one"}, false),
			},
		},
		{
			name: "release makes addresses reusable",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				alloc(v4("ns/two", "a"), "10.0.0.1"),
				alloc(v4("ns/three", "a"), "10.0.0.2"),
				{release: "ns/two"},
				holds("ns/two"),
				alloc(v4("ns/four", "a"), "10.0.0.1"),
				alloc(v4("ns/five", "a"), "10.0.0.3"),
				{release: "ns/one"},
				{release: "ns/unknown"},
				alloc(v4("ns/six", "a"), "10.0.0.0"),
			},
		},
		{
			name: "release with avoid buggy across a /24 boundary",
			ops: []op{
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.253-10.0.1.2"), AvoidBuggyIPs: true}}},
				alloc(v4("ns/one", "a"), "10.0.0.253"),
				alloc(v4("ns/two", "a"), "10.0.0.254"),
				alloc(v4("ns/three", "a"), "10.0.1.1"),
				alloc(v4("ns/four", "a"), "10.0.1.2"),
				{release: "ns/three"},
				alloc(v4("ns/five", "a"), "10.0.1.1"),
				{release: "ns/two"},
				{release: "ns/one"},
				alloc(v4("ns/six", "a"), "10.0.0.253"),
				alloc(v4("ns/seven", "a"), "10.0.0.254"),
				allocErr(v4("ns/eight", "a"), &Error{Reason: ReasonPoolExhausted, Message: `no free IPv4 address left in pools "a"`}),
			},
		},
		{
			name: "an error leaves the state unchanged",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				alloc(v4("ns/two", "a"), "10.0.0.1"),
				allocErr(want("ns/one", "10.0.0.1"), &Error{Reason: ReasonInUse, Message: `address 10.0.0.1 is in use by ns/two, which does not share it`}),
				holds("ns/one", "10.0.0.0"),
				allocErr(v4("ns/one", "nope"), &Error{Reason: ReasonNoPool, Message: `none of the Service's address pools exists`}),
				allocErr(Request{Key: "ns/one", Pools: []string{"a"}}, &Error{Reason: ReasonInvalidRequest, Message: `no address family is requested`}),
				holds("ns/one", "10.0.0.0"),
				alloc(v4("ns/three", "a"), "10.0.0.2"),
			},
		},
		{
			name: "a requested address replaces the held one",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				alloc(want("ns/one", "10.0.0.5"), "10.0.0.5"),
				alloc(v4("ns/one", "a"), "10.0.0.5"),
				alloc(v4("ns/two", "a"), "10.0.0.0"),
			},
		},
		{
			name: "prefer dual-stack completes the pair once its pool gains the other family",
			ops: []op{
				{setPools: []Pool{{Name: "v4", Ranges: ranges("10.0.0.0/30")}, ds}},
				alloc(dual("ns/one", false, "v4"), "10.0.0.0"),
				valid(dual("ns/one", false, "v4", "ds"), true),
				{setPools: []Pool{{Name: "v4", Ranges: ranges("10.0.0.0/30", "2001:db8:4::/126")}, ds}},
				valid(dual("ns/one", false, "v4", "ds"), false),
				alloc(dual("ns/one", false, "v4", "ds"), "10.0.0.0", "2001:db8:4::"),
				valid(dual("ns/one", true, "v4", "ds"), true),
			},
		},
		{
			name: "dual-stack completes from the pool of the kept address",
			ops: []op{
				{setPools: []Pool{{Name: "first", Priority: 1, Ranges: ranges("2001:db8:1::/126")}, ds}},
				alloc(v4("ns/one", "ds"), "10.0.2.0"),
				alloc(dual("ns/one", true, "first", "ds"), "10.0.2.0", "2001:db8::"),
			},
		},
		{
			name: "require dual-stack moves an address whose pool lacks the other family",
			ops: []op{
				{setPools: []Pool{{Name: "v4", Priority: 1, Ranges: ranges("10.0.0.0/30")}, ds}},
				alloc(v4("ns/one", "v4", "ds"), "10.0.0.0"),
				alloc(dual("ns/one", false, "v4", "ds"), "10.0.0.0"),
				valid(dual("ns/one", true, "v4", "ds"), false),
				alloc(dual("ns/one", true, "v4", "ds"), "10.0.2.0", "2001:db8::"),
				alloc(v4("ns/two", "v4"), "10.0.0.0"),
			},
		},
		{
			name: "a kept secondary whose pool lacks the primary is replaced",
			ops: []op{
				{setPools: []Pool{{Name: "v6", Priority: 1, Ranges: ranges("2001:db8:6::/126")}, ds}},
				alloc(v6("ns/one", "v6"), "2001:db8:6::"),
				alloc(dual("ns/one", false, "v6", "ds"), "10.0.2.0", "2001:db8::"),
				alloc(v6("ns/two", "v6"), "2001:db8:6::"),
			},
		},
		{
			name: "single-stack to dual-stack and back",
			ops: []op{
				{setPools: []Pool{ds}},
				alloc(v4("ns/one", "ds"), "10.0.2.0"),
				alloc(dual("ns/one", true, "ds"), "10.0.2.0", "2001:db8::"),
				alloc(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"ds"}}, "2001:db8::", "10.0.2.0"),
				alloc(v6("ns/one", "ds"), "2001:db8::"),
				alloc(v4("ns/two", "ds"), "10.0.2.0"),
				holds("ns/one", "2001:db8::"),
			},
		},
		{
			name: "changing the sharing key",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(shared(v4("ns/one", "a"), "s", "", tcp80), "10.0.0.0"),
				alloc(shared(v4("ns/two", "a"), "s", "", tcp443), "10.0.0.0"),
				alloc(shared(v4("ns/two", "a"), "t", "", tcp443), "10.0.0.1"),
				alloc(shared(v4("ns/one", "a"), "", "", tcp80), "10.0.0.0"),
				alloc(shared(v4("ns/three", "a"), "s", "", tcp443), "10.0.0.2"),
				alloc(shared(v4("ns/four", "a"), "t", "", tcp80), "10.0.0.1"),
			},
		},
		{
			name: "ports changed into a collision",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(shared(v4("ns/one", "a"), "s", "", tcp80), "10.0.0.0"),
				alloc(shared(v4("ns/two", "a"), "s", "", tcp443), "10.0.0.0"),
				valid(shared(v4("ns/two", "a"), "s", "", tcp80), false),
				alloc(shared(v4("ns/two", "a"), "s", "", tcp80), "10.0.0.1"),
				{release: "ns/one"},
				holds("ns/two", "10.0.0.1"),
				alloc(v4("ns/three", "a"), "10.0.0.0"),
			},
		},
		{
			name: "a shared address stays used until its last user leaves",
			ops: []op{
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/31")}}},
				alloc(shared(v4("ns/one", "a"), "s", "", tcp80), "10.0.0.0"),
				alloc(shared(v4("ns/two", "a"), "s", "", tcp443), "10.0.0.0"),
				{release: "ns/one"},
				alloc(v4("ns/three", "a"), "10.0.0.1"),
				allocErr(v4("ns/four", "a"), &Error{Reason: ReasonPoolExhausted, Message: `no free IPv4 address left in pools "a"`}),
				{release: "ns/two"},
				alloc(v4("ns/four", "a"), "10.0.0.0"),
			},
		},
		{
			name: "avoid buggy switched on",
			ops: []op{
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/30")}}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/30"), AvoidBuggyIPs: true}}},
				poolOf("10.0.0.0", "a"),
				valid(v4("ns/one", "a"), false),
				alloc(v4("ns/one", "a"), "10.0.0.1"),
				alloc(v4("ns/two", "a"), "10.0.0.2"),
				{setPools: []Pool{{Name: "a", Ranges: ranges("10.0.0.0/30")}}},
				alloc(v4("ns/three", "a"), "10.0.0.0"),
			},
		},
		{
			// The controller's case: pool "o" owns a range pool "c" lists too, then stops serving the Service.
			name: "a retained address is kept for its candidate, which completes its pair; nothing is taken from the owner",
			ops: []op{
				{setPools: []Pool{{Name: "o", Ranges: ranges("10.0.5.0/30", "2001:db8:5::/126")}, {Name: "c", Ranges: ranges("10.0.6.0/30")}}},
				alloc(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"o", "c"}}, "2001:db8:5::", "10.0.5.0"),
				// Without Retained, the IPv6 address is no longer the Service's: c has none to give.
				allocErr(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"c"}},
					&Error{Reason: ReasonNoPool, Message: `no IPv6 addresses in pools "c"`}),
				// Retained for a pool that is not a candidate: ignored.
				allocErr(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"c"}, Retained: map[netip.Addr]string{ip("2001:db8:5::"): "o"}},
					&Error{Reason: ReasonNoPool, Message: `no IPv6 addresses in pools "c"`}),
				valid(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"c"}, Retained: map[netip.Addr]string{ip("2001:db8:5::"): "c"}}, false),
				// The IPv6 address stays; the IPv4 one, which only o hands out, is replaced from c, not from o.
				alloc(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"c"}, Retained: map[netip.Addr]string{ip("2001:db8:5::"): "c"}},
					"2001:db8:5::", "10.0.6.0"),
				valid(Request{Key: "ns/one", Families: []Family{IPv6, IPv4}, Pools: []string{"c"}, Retained: map[netip.Addr]string{ip("2001:db8:5::"): "c"}}, true),
				poolOf("2001:db8:5::", "o"),
				alloc(v4("ns/two", "o"), "10.0.5.0"),
				// Retained is about what a Service holds: it does not open the owner's addresses to another.
				allocErr(Request{Key: "ns/three", Addresses: addrs("2001:db8:5::1"), Pools: []string{"c"}, Retained: map[netip.Addr]string{ip("2001:db8:5::1"): "c"}},
					&Error{Reason: ReasonNotInPool, Message: `address 2001:db8:5::1 is in pool "o", which is not one of the Service's pools ("c")`}),
			},
		},
		{
			name: "addresses outside every pool are kept until reallocated",
			ops: []op{
				{setPools: []Pool{poolA}},
				alloc(v4("ns/one", "a"), "10.0.0.0"),
				{setPools: []Pool{}},
				holds("ns/one", "10.0.0.0"),
				{setPools: []Pool{{Name: "b", Ranges: ranges("10.0.0.0/31")}}},
				poolOf("10.0.0.0", "b"),
				alloc(v4("ns/two", "b"), "10.0.0.1"),
				valid(v4("ns/one", "b"), true),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			for _, o := range tt.ops {
				o.run(t, a)
			}
		})
	}
}

func TestStats(t *testing.T) {
	two := func(n int64) *big.Int { return big.NewInt(n) }
	tests := []struct {
		name  string
		pool  Pool
		reqs  []Request
		query string
		want  map[Family]FamilyStats
	}{
		{
			name:  "ipv6 /64",
			pool:  Pool{Name: "a", Ranges: ranges("2001:db8::/64")},
			reqs:  []Request{v6("ns/x", "a"), v6("ns/y", "a")},
			query: "a",
			want: map[Family]FamilyStats{
				IPv6: {Capacity: pow2(64), InUse: two(2), Available: new(big.Int).Sub(pow2(64), two(2))},
			},
		},
		{
			name:  "ipv6 everything",
			pool:  Pool{Name: "a", Ranges: ranges("::/0")},
			reqs:  []Request{v6("ns/x", "a")},
			query: "a",
			want: map[Family]FamilyStats{
				IPv6: {Capacity: pow2(128), InUse: two(1), Available: new(big.Int).Sub(pow2(128), two(1))},
			},
		},
		{
			name:  "avoid buggy excludes .0 and .255",
			pool:  Pool{Name: "a", Ranges: ranges("10.0.0.0/23", "10.0.5.255-10.0.6.1", "2001:db8::/120"), AvoidBuggyIPs: true},
			reqs:  []Request{v4("ns/x", "a")},
			query: "a",
			want: map[Family]FamilyStats{
				IPv4: {Capacity: two(509), InUse: two(1), Available: two(508)},
				IPv6: {Capacity: two(256), InUse: two(0), Available: two(256)},
			},
		},
		{
			name: "a shared address counts once",
			pool: Pool{Name: "a", Ranges: ranges("10.0.0.0/24")},
			reqs: []Request{
				shared(v4("ns/x", "a"), "s", "", tcp80),
				shared(v4("ns/y", "a"), "s", "", tcp443),
				v4("ns/z", "a"),
			},
			query: "a",
			want: map[Family]FamilyStats{
				IPv4: {Capacity: two(256), InUse: two(2), Available: two(254)},
			},
		},
		{
			name:  "unknown pool",
			pool:  Pool{Name: "a", Ranges: ranges("10.0.0.0/24")},
			query: "b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			a.SetPools([]Pool{tt.pool})
			for _, req := range tt.reqs {
				if _, err := a.Allocate(req); err != nil {
					t.Fatalf("Allocate(%s): %v", req.Key, err)
				}
			}
			if diff := cmp.Diff(tt.want, a.Stats(tt.query), bigOpt); diff != "" {
				t.Errorf("Stats(%q) (-want +got):\n%s", tt.query, diff)
			}
		})
	}
}

func TestErrorsAs(t *testing.T) {
	a := New()
	_, err := a.Allocate(v4("ns/svc", "a"))
	wrapped := fmt.Errorf("allocating: %w", err)
	var e *Error
	if !errors.As(wrapped, &e) {
		t.Fatalf("errors.As(%v) failed", wrapped)
	}
	if diff := cmp.Diff(ReasonNoPool, e.Reason); diff != "" {
		t.Errorf("Reason (-want +got):\n%s", diff)
	}
}

func TestRestore(t *testing.T) {
	a := New()
	a.SetPools([]Pool{{Name: "a", Ranges: ranges("10.0.0.0/30")}})
	// An address in no pool is restored, and taken when a pool holds it again.
	if err := a.Restore(Request{Key: "ns/orphan", Addresses: addrs("10.0.9.1")}); err != nil {
		t.Fatalf("restoring an address in no pool: %v", err)
	}
	if err := a.Restore(Request{Key: "ns/one", Addresses: addrs("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := a.Restore(Request{Key: "ns/two", Addresses: addrs("10.0.0.1")}); !errors.As(err, &e) || e.Reason != ReasonInUse {
		t.Errorf("restoring a held address for another key: %v, want %s", err, ReasonInUse)
	}
	if err := a.Restore(Request{Key: "ns/none"}); !errors.As(err, &e) || e.Reason != ReasonInvalidRequest {
		t.Errorf("restoring no address: %v, want %s", err, ReasonInvalidRequest)
	}
	a.SetPools([]Pool{{Name: "a", Ranges: ranges("10.0.9.0/30", "10.0.0.0/30")}})
	got, err := a.Allocate(Request{Key: "ns/orphan", Families: []Family{IPv4}, Pools: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(addrs("10.0.9.1"), got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("the restored address once its pool is back (-want +got):\n%s", diff)
	}
	if got, err := a.Allocate(Request{Key: "ns/new", Families: []Family{IPv4}, Pools: []string{"a"}}); err != nil || got[0] != ip("10.0.9.0") {
		t.Errorf("a new Service got %v, %v; want 10.0.9.0 (10.0.9.1 is held)", got, err)
	}
	if s := a.Stats("a")[IPv4].InUse.String(); s != "3" {
		t.Errorf("in use: %s, want 3", s)
	}
}
