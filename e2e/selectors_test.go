package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker"
)

// testServiceSelectors: two advertisements of one pool select Services by a label and allow different nodes.
// Each Service is answered only from a node its advertisement allows; a Service neither selects is answered by
// nobody; two Services sharing an address whose advertisements allow disjoint nodes are answered by nobody and
// reported, and once the advertisements allow a common node, by that node alone.
func testServiceSelectors(t *testing.T, c *cluster) {
	c = withT(c, t)
	tier := func(v string) []heraldv1.Selector {
		return []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"tier": heraldv1.LabelValue(v)}}}
	}
	onNodes := func(nodes ...string) []heraldv1.Selector {
		return []heraldv1.Selector{{MatchExpressions: []heraldv1.SelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: "In", Values: nodes}}}}
	}
	c.pool("by-tier", []string{"198.51.100.80-198.51.100.87"}, func(a *heraldv1.L2Advertisement) {
		a.Spec.ServiceSelectors, a.Spec.NodeSelectors = tier("front"), onNodes("node1")
	})
	back := &heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "by-tier-back"}}
	back.Spec.IPAddressPools = []string{"by-tier"}
	back.Spec.ServiceSelectors, back.Spec.NodeSelectors = tier("back"), onNodes("node2", "node3")
	c.create(back)
	t.Cleanup(func() { c.delete(back) })

	labelled := func(v string, more ...func(*corev1.Service)) []func(*corev1.Service) {
		return append([]func(*corev1.Service){func(s *corev1.Service) { s.Labels = map[string]string{"tier": v} }}, more...)
	}
	front, fa := c.service("tiers", "front", "by-tier", labelled("front")...)
	defer c.delete(front)
	backSvc, ba := c.service("tiers", "back", "by-tier", labelled("back")...)
	defer c.delete(backSvc)
	plain, pa := c.service("tiers", "plain", "by-tier")
	defer c.delete(plain)

	if node, _ := c.announcer(front, ""); node != "node1" {
		t.Errorf("front (%s) announced by %s; its advertisement allows node1 only", fa[0], node)
	}
	c.waitResponder(fa[0], c.hosts["node1"].MAC)
	node, _ := c.announcer(backSvc, "")
	if node != "node2" && node != "node3" {
		t.Errorf("back (%s) announced by %s; its advertisement allows node2 and node3", ba[0], node)
	}
	c.waitResponder(ba[0], c.hosts[node].MAC)
	c.waitReason(plain, speaker.ReasonNotSelected, "")
	c.silent(pa[0])

	// Two Services share 198.51.100.86, one of each tier: node1 and node2/node3 have nothing in common.
	shared := netip.MustParseAddr("198.51.100.86")
	share := func(port int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations["herald.dev/load-balancer-ips"] = shared.String()
			s.Annotations["herald.dev/allow-shared-ip"] = "tiers"
			for i := range s.Spec.Ports {
				s.Spec.Ports[i].Port = port
			}
		}
	}
	sf, _ := c.service("tiers", "shared-front", "by-tier", labelled("front", share(8080))...)
	defer c.delete(sf)
	sb, _ := c.service("tiers", "shared-back", "by-tier", labelled("back", share(8081))...)
	defer c.delete(sb)
	for _, s := range []*corev1.Service{sf, sb} {
		c.waitReason(s, speaker.ReasonSelectorConflict, "no node is allowed for all of them")
	}
	c.eventually(20*time.Second, "a SelectorConflict Event on both Services", func() (bool, string) {
		f, b := c.events("tiers", "shared-front", speaker.ReasonSelectorConflict), c.events("tiers", "shared-back", speaker.ReasonSelectorConflict)
		return len(f) > 0 && len(b) > 0, fmt.Sprintf("front %q, back %q", f, b)
	})
	t.Logf("conflict: %s", c.events("tiers", "shared-front", speaker.ReasonSelectorConflict)[0])
	c.silent(shared)

	// The back advertisement now allows node1 too: node1, the one node allowed for both, answers alone and the
	// Announced condition still names the conflict.
	if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(back), back); err != nil {
		t.Fatal(err)
	}
	back.Spec.NodeSelectors = onNodes("node1", "node2", "node3")
	if err := c.c.Update(c.ctx, back); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Service{sf, sb} {
		if node, _ := c.announcer(s, ""); node != "node1" {
			t.Errorf("%s announced by %s, want node1, the only node allowed for both", s.Name, node)
		}
		c.waitReason(s, "Announcing", "announced only from a node allowed for all of them (node1)")
	}
	c.waitResponder(shared, c.hosts["node1"].MAC)
	// back's own Service may now be announced by node1 too; it is still answered by one node.
	node, _ = c.announcer(backSvc, "")
	c.waitResponder(ba[0], c.hosts[node].MAC)
}

// waitReason waits until the Service's Announcement has an Announced condition with this reason and a message
// holding text.
func (c *cluster) waitReason(s *corev1.Service, reason, text string) {
	c.t.Helper()
	c.eventually(30*time.Second, fmt.Sprintf("%s's Announcement to say %s %q", s.Name, reason, text), func() (bool, string) {
		var an heraldv1.Announcement
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(s), &an); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(an.Status.Conditions, speaker.ConditionAnnounced)
		if cond == nil {
			return false, fmt.Sprintf("status %+v", an.Status)
		}
		return cond.Reason == reason && strings.Contains(cond.Message, text), cond.Reason + ": " + cond.Message
	})
}

// silent checks, for a second, that nobody answers for addr.
func (c *cluster) silent(addr netip.Addr) {
	c.t.Helper()
	for range 3 {
		if got := c.responders(addr); len(got) > 0 {
			var nodes []string
			for _, m := range got {
				nodes = append(nodes, c.nodeOfMAC(m))
			}
			c.t.Errorf("%s answered by %v, want nobody", addr, nodes)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}
