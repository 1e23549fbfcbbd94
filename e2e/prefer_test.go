package e2e

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// testPreferredNodes: an advertisement prefers node2 (weight 100), then node3 (weight 50). Every address of its
// pool is placed on node2, whatever the hash order; when node2's speaker crashes they all go to node3, the next
// preferred, not spread over node1 and node3; when node2 comes back they stay on node3 (no --failback-after in
// this lab: an address that is answered is not moved), and a new address goes to node2 again.
func testPreferredNodes(t *testing.T, c *cluster) {
	c = withT(c, t)
	prefer := func(weight int32, node string) heraldv1.PreferredNodeSelector {
		return heraldv1.PreferredNodeSelector{Weight: weight, Preference: heraldv1.Selector{
			MatchLabels: map[string]heraldv1.LabelValue{"kubernetes.io/hostname": heraldv1.LabelValue(node)}}}
	}
	c.pool("prefer", []string{"198.51.100.70-198.51.100.77"}, func(a *heraldv1.L2Advertisement) {
		a.Spec.PreferredNodeSelectors = []heraldv1.PreferredNodeSelector{prefer(100, "node2"), prefer(50, "node3")}
	})
	// Four addresses: by the hash order alone all four would land on node2 once in 81 tries, and all four
	// would fail over to node3 once in 16.
	var svcs []*corev1.Service
	var addrs []netip.Addr
	for i := range 4 {
		s, a := c.service("prefer", fmt.Sprintf("s%d", i), "prefer")
		defer c.delete(s)
		svcs, addrs = append(svcs, s), append(addrs, a[0])
	}
	for i, s := range svcs {
		if node, _ := c.announcer(s, ""); node != "node2" {
			t.Errorf("%s announced by %s, want node2, the preferred node", addrs[i], node)
		}
		c.waitResponder(addrs[i], c.hosts["node2"].MAC)
	}

	// node2's speaker crashes: the next preferred node, node3, takes every address.
	if err := c.speaker["node2"].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.speaker["node2"].Wait()
	restarted := false
	defer func() {
		if !restarted {
			c.startSpeaker("node2")
			c.waitMembers(len(c.hosts))
		}
	}()
	for i, s := range svcs {
		if node, _ := c.announcer(s, "node2"); node != "node3" {
			t.Errorf("after node2 crashed, %s announced by %s, want node3, the next preferred node", addrs[i], node)
		}
		c.waitResponder(addrs[i], c.hosts["node3"].MAC)
	}

	// node2 is back. The addresses stay where they are answered, on node3; a new one goes to node2.
	c.startSpeaker("node2")
	restarted = true
	c.waitMembers(len(c.hosts))
	s, a := c.service("prefer", "late", "prefer")
	defer c.delete(s)
	if node, _ := c.announcer(s, ""); node != "node2" {
		t.Errorf("new address %s announced by %s, want node2, the preferred node", a[0], node)
	}
	c.waitResponder(a[0], c.hosts["node2"].MAC)
	// By now node2 has seen every address held by node3 (its speaker has decided the new Service since); each
	// is still answered by node3 alone, a few times over a second.
	for range 3 {
		for i := range svcs {
			if got := c.responders(addrs[i]); len(got) != 1 || got[0] != c.hosts["node3"].MAC.String() {
				t.Errorf("with node2 back, %s answered by %v, want node3 alone (no fail-back without --failback-after)", addrs[i], got)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}
