package membership

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// withHealth returns m with the given health state.
func withHealth(m Member, impaired []netip.Prefix, dark []netip.Addr) Member {
	m.Impaired, m.Dark = impaired, dark
	return m
}

// quick bounds a call that must not wait for the network: well below
// updateTimeout, which a call waiting for UpdateNode would take when the
// broadcast cannot go out.
const quick = updateTimeout / 4

// setHealthQuickly calls SetHealth and fails if it took long.
func setHealthQuickly(t *testing.T, l *List, impaired []netip.Prefix, dark []netip.Addr) {
	t.Helper()
	start := time.Now()
	err := l.SetHealth(impaired, dark)
	if d := time.Since(start); d > quick {
		t.Errorf("SetHealth took %v, want under %v", d, quick)
	}
	if err != nil {
		t.Fatalf("SetHealth: %v", err)
	}
}

// publishing reports whether l's publisher holds updateMu: it is inside
// UpdateNode (or, in tests that hold updateMu themselves, the test is).
func publishing(l *List) bool {
	if l.updateMu.TryLock() {
		l.updateMu.Unlock()
		return false
	}
	return true
}

// noGoroutine waits until no goroutine runs fn (a function name as it
// appears in a stack dump).
func noGoroutine(t *testing.T, fn string) {
	t.Helper()
	eventually(t, 5*time.Second, func() string {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		if strings.Contains(string(buf), fn) {
			return fn + " still running"
		}
		return ""
	}, "%s stopped", fn)
}

// TestSetHealthSeen has a member publish health state and the others see it
// in Live and Members; UpdateMACs keeps it, and clearing it goes back to
// version 1 metadata.
func TestSetHealthSeen(t *testing.T) {
	names := []string{"a", "b", "c"}
	c := newCluster(t, names...)
	ls := c.startAll(names...)
	a := ls[0]

	// Unsorted and with a duplicate: published sorted and de-duplicated.
	setHealthQuickly(t, a,
		prefixes("2001:db8:1::/48", "192.0.2.0/24", "192.0.2.0/24"),
		addrs("2001:db8::10", "198.51.100.10"))
	wantA := withHealth(c.member("a"), prefixes("192.0.2.0/24", "2001:db8:1::/48"), addrs("198.51.100.10", "2001:db8::10"))
	if diff := cmp.Diff(wantA, a.LocalMember(), cmpAddr); diff != "" {
		t.Errorf("LocalMember right after SetHealth (-want +got):\n%s", diff)
	}
	want := []Member{wantA, c.member("b"), c.member("c")}
	for i, l := range ls {
		eventually(t, 5*time.Second, func() string { return cmp.Diff(want, l.Live(), cmpAddr) }, "%s sees a's health state", names[i])
		if diff := cmp.Diff(l.Live(), l.Members(), cmpAddr); diff != "" {
			t.Errorf("%s Members differs from Live (-want +got):\n%s", names[i], diff)
		}
	}

	// New MACs keep the health state.
	newMACs := []net.HardwareAddr{mustMAC(t, "02:00:5e:00:53:aa")}
	if err := a.UpdateMACs(newMACs); err != nil {
		t.Fatal(err)
	}
	want[0].MACs = newMACs
	for i, l := range ls {
		eventually(t, 5*time.Second, func() string { return cmp.Diff(want, l.Members(), cmpAddr) }, "%s sees a's new MACs and its health state", names[i])
	}

	// Only Dark, then nothing.
	setHealthQuickly(t, a, nil, addrs("203.0.113.9"))
	want[0] = withHealth(want[0], nil, addrs("203.0.113.9"))
	for i, l := range ls {
		eventually(t, 5*time.Second, func() string { return cmp.Diff(want, l.Members(), cmpAddr) }, "%s sees a's Impaired cleared", names[i])
	}
	setHealthQuickly(t, a, nil, nil)
	want[0] = withHealth(want[0], nil, nil)
	for i, l := range ls {
		eventually(t, 5*time.Second, func() string { return cmp.Diff(want, l.Members(), cmpAddr) }, "%s sees a's health state cleared", names[i])
	}
	a.metaMu.Lock()
	version := a.meta[0]
	a.metaMu.Unlock()
	if version != MetaVersion1 {
		t.Errorf("metadata version %d without health state, want %d", version, MetaVersion1)
	}

	c.close()
	noGoroutine(t, "(*List).publishLoop")
	noGoroutine(t, "(*List).keyLoop")
}

func TestSetHealthRejects(t *testing.T) {
	c := newCluster(t, "a")
	a := c.start(c.config("a"))
	good := prefixes("192.0.2.0/24")
	goodDark := addrs("198.51.100.1")
	if err := a.SetHealth(good, goodDark); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		impaired []netip.Prefix
		dark     []netip.Addr
		want     string
	}{
		{"9 impaired", v4Prefixes(9), nil, "9 impaired prefixes, limit 8"},
		{"9 dark", nil, v4Addrs(9), "9 dark addresses, limit 8"},
		{"invalid prefix", []netip.Prefix{{}}, nil, "impaired prefix 0: invalid prefix"},
		{"host bits", prefixes("10.0.0.0/8", "10.0.0.1/8"), nil, "impaired prefix 1: 10.0.0.1/8 has host bits set; want 10.0.0.0/8"},
		{"IPv4-mapped prefix", prefixes("::ffff:10.0.0.0/104"), nil, "impaired prefix 0: ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 prefix"},
		{"invalid address", nil, []netip.Addr{{}}, "dark address 0: invalid address"},
		{"zone", nil, addrs("fe80::1%eth0"), "dark address 0: fe80::1%eth0 has a zone"},
		{"IPv4-mapped address", nil, addrs("::ffff:10.0.0.1"), "dark address 0: ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address; use 10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.SetHealth(tc.impaired, tc.dark)
			if err == nil || !strings.HasPrefix(err.Error(), "membership: set health: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetHealth error = %v, want one mentioning %q", err, tc.want)
			}
			if diff := cmp.Diff(withHealth(c.member("a"), good, goodDark), a.LocalMember(), cmpAddr); diff != "" {
				t.Errorf("refused SetHealth changed the state (-want +got):\n%s", diff)
			}
		})
	}
	// Eight distinct entries, given nine times: accepted.
	if err := a.SetHealth(append(v4Prefixes(8), v4Prefixes(1)...), append(v4Addrs(8), v4Addrs(1)...)); err != nil {
		t.Errorf("8 distinct entries with a duplicate: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.SetHealth(nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetHealth after Close = %v, want ErrClosed", err)
	}
}

// TestSetHealthTrimmed publishes more health state than fits next to many
// MACs: what fits is published and the error says so; fewer MACs later
// make room for all of it.
func TestSetHealthTrimmed(t *testing.T) {
	c := newCluster(t, "a", "b")
	cfg := c.config("a")
	cfg.MACs = macs(68) // 480 bytes of metadata: 32 left
	a := c.start(cfg)
	b := c.start(c.config("b"))
	if _, err := b.Join([]string{c.addr("a")}); err != nil {
		t.Fatal(err)
	}
	base := c.member("a", macs(68)...)
	eventually(t, 5*time.Second, func() string { return cmp.Diff([]Member{base, c.member("b")}, b.Members(), cmpAddr) }, "b sees a")

	imp, dark := v4Prefixes(6), v4Addrs(1) // 2 + 6*6 + 5 bytes
	for i := range 2 {
		err := a.SetHealth(imp, dark)
		if !errors.Is(err, ErrMetaTrimmed) || !strings.Contains(err.Error(), "5 of 6 impaired prefixes and 0 of 1 dark addresses") {
			t.Fatalf("SetHealth %d = %v, want ErrMetaTrimmed", i, err)
		}
	}
	want := []Member{withHealth(base, imp[:5], nil), c.member("b")}
	if diff := cmp.Diff(want[0], a.LocalMember(), cmpAddr); diff != "" {
		t.Errorf("LocalMember (-want +got):\n%s", diff)
	}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(want, b.Members(), cmpAddr) }, "b sees a's trimmed state")

	if err := a.UpdateMACs(macs(10)); err != nil {
		t.Fatal(err)
	}
	want[0] = withHealth(c.member("a", macs(10)...), imp, dark)
	if diff := cmp.Diff(want[0], a.LocalMember(), cmpAddr); diff != "" {
		t.Errorf("LocalMember with fewer MACs (-want +got):\n%s", diff)
	}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(want, b.Members(), cmpAddr) }, "b sees a's whole state")
}

// TestSetHealthDoesNotBlock stops everything a member sends, so that
// memberlist's UpdateNode waits for a broadcast that cannot go out:
// SetHealth still returns at once, and the state spreads once the network
// is back.
func TestSetHealthDoesNotBlock(t *testing.T) {
	c := newCluster(t, "a", "b")
	// A suspicion timeout of 5s: a's silence below is not a failure.
	c.mod = func(cfg *Config) { cfg.Timings.SuspicionMult = 50 }
	ls := c.startAll("a", "b")
	a, b := ls[0], ls[1]

	c.tr["a"].blockSends()
	setHealthQuickly(t, a, prefixes("192.0.2.0/24"), nil)
	eventually(t, 5*time.Second, func() string {
		if !publishing(a) {
			return "a's publisher is not in UpdateNode"
		}
		return ""
	}, "a's update is stuck")
	var last []netip.Addr
	for i := range 5 {
		last = v4Addrs(i + 1)
		setHealthQuickly(t, a, prefixes("192.0.2.0/24"), last)
		if diff := cmp.Diff(last, a.LocalMember().Dark, cmpAddr); diff != "" {
			t.Errorf("LocalMember Dark after SetHealth %d (-want +got):\n%s", i, diff)
		}
	}
	c.tr["a"].unblockSends()

	want := []Member{withHealth(c.member("a"), prefixes("192.0.2.0/24"), last), c.member("b")}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(want, b.Members(), cmpAddr) }, "b sees a's last state")
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-a.pubDone:
	default:
		t.Error("publisher still running after Close")
	}
}

// TestSetHealthCoalesces holds updateMu, as an UpdateNode that takes its
// time would: changes made meanwhile wait as one pending update, and an
// unchanged state asks for none.
func TestSetHealthCoalesces(t *testing.T) {
	c := newCluster(t, "a", "b")
	ls := c.startAll("a", "b")
	a, b := ls[0], ls[1]

	a.updateMu.Lock()
	locked := true
	defer func() {
		if locked {
			a.updateMu.Unlock()
		}
	}()
	setHealthQuickly(t, a, prefixes("192.0.2.0/24", "198.51.100.0/24"), nil)
	eventually(t, 5*time.Second, func() string {
		if len(a.pubPoke) != 0 {
			return "publisher has not taken the update"
		}
		return ""
	}, "publisher waits for updateMu")

	// The same state, in another order: nothing to publish.
	setHealthQuickly(t, a, prefixes("198.51.100.0/24", "192.0.2.0/24"), nil)
	if n := len(a.pubPoke); n != 0 {
		t.Errorf("unchanged state: %d updates pending, want 0", n)
	}
	// Three changes: one pending update.
	for i := range 3 {
		setHealthQuickly(t, a, prefixes("192.0.2.0/24"), v4Addrs(i+1))
	}
	if n := len(a.pubPoke); n != 1 {
		t.Errorf("after three changes: %d updates pending, want 1", n)
	}
	a.updateMu.Unlock()
	locked = false

	want := []Member{withHealth(c.member("a"), prefixes("192.0.2.0/24"), v4Addrs(3)), c.member("b")}
	eventually(t, 5*time.Second, func() string { return cmp.Diff(want, b.Members(), cmpAddr) }, "b sees a's last state")
}

// TestCloseWhilePublishing closes a member whose update is stuck: Close
// waits for it (at most updateTimeout), then stops, and nothing is left
// running.
func TestCloseWhilePublishing(t *testing.T) {
	c := newCluster(t, "a", "b")
	c.mod = func(cfg *Config) { cfg.Timings.SuspicionMult = 50 }
	ls := c.startAll("a", "b")
	a := ls[0]

	c.tr["a"].blockSends()
	setHealthQuickly(t, a, nil, addrs("198.51.100.1"))
	eventually(t, 5*time.Second, func() string {
		if !publishing(a) {
			return "a's publisher is not in UpdateNode"
		}
		return ""
	}, "a's update is stuck")
	start := time.Now()
	err := a.Close() // its Leave cannot go out either
	d := time.Since(start)
	t.Logf("Close took %v: %v", d, err)
	if limit := updateTimeout + closeLeaveTimeout + 2*time.Second; d > limit {
		t.Errorf("Close took %v, want under %v", d, limit)
	}
	for name, ch := range map[string]chan struct{}{"publisher": a.pubDone, "key loop": a.done} {
		select {
		case <-ch:
		default:
			t.Errorf("%s still running after Close", name)
		}
	}
	if err := a.SetHealth(nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetHealth after Close = %v, want ErrClosed", err)
	}
	c.close()
	noGoroutine(t, "(*List).publishLoop")
}
