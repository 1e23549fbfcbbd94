package election

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScoreShellVectors pins Score to digests computed once with
// `printf 'node#ip' | sha256sum`, catching a changed separator or input order.
func TestScoreShellVectors(t *testing.T) {
	tests := []struct {
		name, node, key, want string
	}{
		{name: "ipv4", node: "node-a", key: "198.51.100.10", want: "17cc5af78a8b2b3bdc4699970fa1ee457e9f3f4322f2c811d85220dd944bf72e"},
		{name: "ipv6", node: "node-b", key: "2001:db8::10", want: "21d5668f18c03bbe00f394da685dde376e0293fd36d5320ac575f592bd70c06b"},
		{name: "worker", node: "worker-3", key: "198.51.100.10", want: "a246b08f721dd9794b7259af2b733c2e0f21804a84a50af11e8e044aa6b2ac3c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Score(tc.node, tc.key)
			if diff := cmp.Diff(tc.want, hex.EncodeToString(got[:])); diff != "" {
				t.Errorf("Score(%q, %q) (-want +got):\n%s", tc.node, tc.key, diff)
			}
		})
	}
}

// TestMetalLBWinners checks election orders against winners computed once
// with sha256sum from the shell (see TestScoreShellVectors), so they hold
// even if Score and the test's own hashing both drifted.
func TestMetalLBWinners(t *testing.T) {
	abc := []string{"node-c", "node-a", "node-b"}
	workers := []string{"worker-2", "worker-3", "worker-1"}
	tests := []struct {
		name       string
		key        string
		nodes      []string
		wantOrder  []string
		wantWinner string
	}{
		// node-a 17cc.. < node-b 530f.. < node-c 9257..
		{name: "ipv4 abc", key: "198.51.100.10", nodes: abc, wantOrder: []string{"node-a", "node-b", "node-c"}, wantWinner: "node-a"},
		// node-b 21d5.. < node-a 5525.. < node-c d30d..
		{name: "ipv6 abc", key: "2001:db8::10", nodes: abc, wantOrder: []string{"node-b", "node-a", "node-c"}, wantWinner: "node-b"},
		// worker-1 0279.. < worker-3 a246.. < worker-2 ccc7..
		{name: "ipv4 workers", key: "198.51.100.10", nodes: workers, wantOrder: []string{"worker-1", "worker-3", "worker-2"}, wantWinner: "worker-1"},
		// worker-1 25fa.. < worker-2 2e92.. < worker-3 92a6..
		{name: "ipv6 workers", key: "2001:db8::10", nodes: workers, wantOrder: []string{"worker-1", "worker-2", "worker-3"}, wantWinner: "worker-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.wantOrder, Order(tc.key, tc.nodes)); diff != "" {
				t.Errorf("Order (-want +got):\n%s", diff)
			}
			got, ok := Winner(tc.key, tc.nodes)
			if diff := cmp.Diff(tc.wantWinner, got); diff != "" || !ok {
				t.Errorf("Winner ok=%v (-want +got):\n%s", ok, diff)
			}
			tab := NewTable()
			tab.SetNodes(tc.nodes)
			got, ok = tab.Elect(tc.key, func(string) bool { return true })
			if diff := cmp.Diff(tc.wantWinner, got); diff != "" || !ok {
				t.Errorf("Table.Elect ok=%v (-want +got):\n%s", ok, diff)
			}
		})
	}
}

// refOrder is an independent reference: MetalLB's sort written out with
// crypto/sha256 and string concatenation.
func refOrder(key string, nodes []string) []string {
	out := append([]string(nil), nodes...)
	sort.SliceStable(out, func(i, j int) bool {
		hi := sha256.Sum256([]byte(out[i] + "#" + key))
		hj := sha256.Sum256([]byte(out[j] + "#" + key))
		return bytes.Compare(hi[:], hj[:]) < 0
	})
	return out
}

func TestOrderMatchesReference(t *testing.T) {
	nodes := []string{"k8s-cp-1", "k8s-cp-2", "k8s-cp-3", "w1", "w2", "w3", "w4", "a.example.com", "b.example.com"}
	keys := []string{"198.51.100.1", "198.51.100.200", "203.0.113.7", "2001:db8::1", "2001:db8:1::ff", "198.18.3.4"}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			want := refOrder(key, nodes)
			if diff := cmp.Diff(want, Order(key, nodes)); diff != "" {
				t.Errorf("Order (-want +got):\n%s", diff)
			}
			w, ok := Winner(key, nodes)
			if diff := cmp.Diff(want[0], w); diff != "" || !ok {
				t.Errorf("Winner ok=%v (-want +got):\n%s", ok, diff)
			}
		})
	}
}

func TestOrderAndWinnerEdgeCases(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []string
		wantOrder  []string
		wantWinner string
		wantOK     bool
	}{
		{name: "nil", nodes: nil, wantOrder: []string{}, wantOK: false},
		{name: "one", nodes: []string{"solo"}, wantOrder: []string{"solo"}, wantWinner: "solo", wantOK: true},
		{name: "duplicates kept together", nodes: []string{"node-b", "node-a", "node-b"}, wantOrder: []string{"node-a", "node-b", "node-b"}, wantWinner: "node-a", wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]string(nil), tc.nodes...)
			if diff := cmp.Diff(tc.wantOrder, Order("198.51.100.10", tc.nodes)); diff != "" {
				t.Errorf("Order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(in, tc.nodes); diff != "" {
				t.Errorf("Order modified its input (-want +got):\n%s", diff)
			}
			w, ok := Winner("198.51.100.10", tc.nodes)
			if diff := cmp.Diff(struct {
				W  string
				OK bool
			}{tc.wantWinner, tc.wantOK}, struct {
				W  string
				OK bool
			}{w, ok}); diff != "" {
				t.Errorf("Winner (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want string
	}{
		{name: "ipv4", addr: "198.51.100.10", want: "198.51.100.10"},
		{name: "ipv4-mapped", addr: "::ffff:198.51.100.10", want: "198.51.100.10"},
		{name: "ipv6 canonical", addr: "2001:0db8:0000:0000:0000:0000:0000:0010", want: "2001:db8::10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Key(netip.MustParseAddr(tc.addr))); diff != "" {
				t.Errorf("Key (-want +got):\n%s", diff)
			}
		})
	}
}
