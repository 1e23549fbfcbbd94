package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker"
)

// TestHealth checks the health prober with the default 5 s interval: the watching speaker's verdict for each
// kind of trouble made on purpose, in the Announcement, the metric and Events, and the announcer withdrawing
// when an address it answers for stays dark.
func TestHealth(t *testing.T) {
	c := newClusterWith(t, 3, []string{"rogue"}, "--conflict-retry-max=2s")
	c.pool("lab", []string{poolV4, poolV6})
	t.Run("healthy", func(t *testing.T) { healthHealthy(t, c) })
	t.Run("duplicate responder", func(t *testing.T) { healthDuplicate(t, c) })
	t.Run("wrong responder", func(t *testing.T) { healthWrong(t, c) })
	t.Run("foreign responder", func(t *testing.T) { healthForeign(t, c) })
	t.Run("deaf watcher: the announcer keeps the address", func(t *testing.T) { healthDeafWatcher(t, c) })
	t.Run("dark: the announcer withdraws", func(t *testing.T) { healthDark(t, c) })
}

// health waits for the Service's Announcement to carry the verdict for addr and returns the Announcement.
func (c *cluster) health(s *corev1.Service, addr netip.Addr, want heraldv1.HealthVerdict, timeout time.Duration) *heraldv1.Announcement {
	c.t.Helper()
	var an heraldv1.Announcement
	c.eventually(timeout, fmt.Sprintf("%s's health verdict for %s to be %s", s.Name, addr, want), func() (bool, string) {
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(s), &an); err != nil {
			return false, err.Error()
		}
		h := an.Status.Health
		if h == nil {
			return false, "no health yet"
		}
		for _, a := range h.Addresses {
			if a.Address == addr.String() {
				return a.Verdict == want, fmt.Sprintf("verdict %s, responders %+v", a.Verdict, a.Responders)
			}
		}
		return false, fmt.Sprintf("health %+v", *h)
	})
	return &an
}

// verdictMetric is the watcher's herald_health_address_verdict series for addr: its verdict label, or "".
func (c *cluster) verdictMetric(node string, addr netip.Addr) string {
	body, err := c.metrics(node)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "herald_health_address_verdict{") && strings.Contains(line, `address="`+addr.String()+`"`) &&
			strings.HasSuffix(line, " 1") {
			_, rest, _ := strings.Cut(line, `verdict="`)
			v, _, _ := strings.Cut(rest, `"`)
			return v
		}
	}
	return ""
}

// metrics reads a speaker's whole /metrics page.
func (c *cluster) metrics(node string) (string, error) {
	h := c.hosts[node]
	conn, err := h.DialContext(c.ctx, "tcp", net.JoinHostPort(h.IPv4.String(), "9122"))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

// visible measures how long after start the watcher's verdict for addr is want in both the Announcement and
// the metric.
func (c *cluster) visible(s *corev1.Service, addr netip.Addr, want heraldv1.HealthVerdict, start time.Time, timeout time.Duration) (status, metric time.Duration, an *heraldv1.Announcement) {
	c.t.Helper()
	c.eventually(timeout, fmt.Sprintf("%s's verdict %s in the status and the metric", addr, want), func() (bool, string) {
		var cur heraldv1.Announcement
		if err := c.c.Get(c.ctx, client.ObjectKeyFromObject(s), &cur); err != nil {
			return false, err.Error()
		}
		if h := cur.Status.Health; h != nil {
			for _, a := range h.Addresses {
				if a.Address == addr.String() && a.Verdict == want && status == 0 {
					status = time.Since(start)
					an = cur.DeepCopy()
				}
			}
			if metric == 0 && c.verdictMetric(h.Watcher, addr) == string(want) {
				metric = time.Since(start)
			}
		}
		return status > 0 && metric > 0, fmt.Sprintf("status after %v, metric after %v", status, metric)
	})
	return status, metric, an
}

func healthHealthy(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("health", "ok", "lab", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	defer c.delete(svc)
	node := c.settled(svc, addrs[0])
	for _, a := range addrs {
		an := c.health(svc, a, heraldv1.HealthHealthy, 20*time.Second)
		h := an.Status.Health
		if h.Watcher == "" || h.Watcher == node {
			t.Errorf("watcher %q: want a node other than the announcer %s", h.Watcher, node)
		}
		if h.LastProbe == nil || time.Since(h.LastProbe.Time) > time.Minute {
			t.Errorf("lastProbe %v: want a recent time", h.LastProbe)
		}
		for _, ah := range h.Addresses {
			if ah.Address != a.String() {
				continue
			}
			if len(ah.Responders) != 1 || ah.Responders[0].MAC != c.hosts[node].MAC.String() || ah.Responders[0].Node != node {
				t.Errorf("%s responders %+v: want %s (%s) alone", a, ah.Responders, c.hosts[node].MAC, node)
			}
			if l := ah.Responders[0].Latency; l == nil || l.Duration <= 0 || l.Duration > time.Second {
				t.Errorf("%s latency %v: want a positive time under a second", a, l)
			}
		}
		cond := meta.FindStatusCondition(an.Status.Conditions, speaker.ConditionHealthy)
		if cond == nil || cond.Status != metav1.ConditionTrue {
			t.Errorf("Healthy condition %+v: want True", cond)
		}
		c.eventually(10*time.Second, "the watcher's metric", func() (bool, string) {
			v := c.verdictMetric(h.Watcher, a)
			return v == "Healthy", "verdict metric " + v
		})
	}
	t.Logf("health: %v announced by %s, watched by the next node in its election order", addrs, node)
}

func healthDuplicate(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("health", "dup", "lab")
	defer c.delete(svc)
	vip := addrs[0]
	node := c.settled(svc, vip)
	c.health(svc, vip, heraldv1.HealthHealthy, 20*time.Second)
	// A host that owns the address without telling anyone (no gratuitous ARP): only requests find it.
	start := time.Now()
	remove := c.rogueOwn(vip)
	defer remove()
	st, mt, an := c.visible(svc, vip, heraldv1.HealthDuplicate, start, 30*time.Second)
	t.Logf("health: verdict=Duplicate visible_in_status=%v visible_in_metric=%v (interval 5s)", st.Round(time.Millisecond), mt.Round(time.Millisecond))
	var macs []string
	for _, a := range an.Status.Health.Addresses {
		for _, r := range a.Responders {
			macs = append(macs, r.MAC)
		}
	}
	slices.Sort(macs)
	want := []string{c.hosts[node].MAC.String(), c.lab.Others[0].MAC.String()}
	slices.Sort(want)
	if !slices.Equal(macs, want) {
		t.Errorf("responders %v, want the announcer's and the rogue's %v", macs, want)
	}
	if cond := meta.FindStatusCondition(an.Status.Conditions, speaker.ConditionHealthy); cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "Duplicate" {
		t.Errorf("Healthy condition %+v: want False, Duplicate", cond)
	}
	c.awaitEvent(svc, speaker.EventDuplicateResponders, c.lab.Others[0].MAC.String(), 10*time.Second)
	remove()
	c.health(svc, vip, heraldv1.HealthHealthy, 30*time.Second)
	c.awaitEvent(svc, speaker.EventAddressHealthy, "", 10*time.Second)
}

// silence drops, on node's eth0, every ARP frame leaving with addr as its sender address: the node's answers
// for addr (and its gratuitous ARPs) never reach the wire. It returns the undo.
func (c *cluster) silence(node string, addr netip.Addr) func() {
	c.t.Helper()
	return c.nftDropARP(func(args ...string) error { return nft(c, node, args...) }, "eth0", addr, "egress")
}

// deafen drops, on the switch port node is plugged into, every ARP frame going to node with addr as its sender
// address: whoever answers for addr, node never hears it, as if its own link failed for that address. (A rule
// on node's own eth0 would not do: the prober's ETH_P_ALL socket sees frames before the ingress hook.) It
// returns the undo.
func (c *cluster) deafen(node string, addr netip.Addr) func() {
	c.t.Helper()
	sw := func(args ...string) error {
		cmd := append([]string{"netns", "exec", c.lab.Switch, "nft"}, args...)
		if out, err := exec.CommandContext(c.ctx, "ip", cmd...).CombinedOutput(); err != nil {
			return fmt.Errorf("nft %s in the switch: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	return c.nftDropARP(sw, c.hosts[node].Port(), addr, "egress")
}

// nftDropARP adds, through nft, a netdev table on dev whose hook drops ARP frames with sender address addr, and
// returns the undo, which deletes the table.
func (c *cluster) nftDropARP(nft func(args ...string) error, dev string, addr netip.Addr, hook string) func() {
	c.t.Helper()
	table := "herald_" + hook + "_" + strings.ReplaceAll(addr.String(), ".", "_")
	if err := nft("add", "table", "netdev", table); err != nil {
		c.t.Fatal(err)
	}
	undo := func() {
		if table != "" {
			if err := nft("delete", "table", "netdev", table); err != nil {
				c.t.Error(err)
			}
			table = ""
		}
	}
	if err := nft("add", "chain", "netdev", table, "filter", "{ type filter hook "+hook+" device "+dev+" priority 0 ; }"); err != nil {
		undo()
		c.t.Fatal(err)
	}
	if err := nft("add", "rule", "netdev", table, "filter", "arp", "saddr", "ip", addr.String(), "drop"); err != nil {
		undo()
		c.t.Fatal(err)
	}
	return undo
}

// awaitEvent waits for an Event of the Service with reason whose note contains want ("" for any).
func (c *cluster) awaitEvent(s *corev1.Service, reason, want string, timeout time.Duration) {
	c.t.Helper()
	c.eventually(timeout, fmt.Sprintf("a %s Event mentioning %q", reason, want), func() (bool, string) {
		evs := c.events(s.Namespace, s.Name, reason)
		for _, e := range evs {
			if strings.Contains(e, want) {
				return true, ""
			}
		}
		return false, fmt.Sprint(evs)
	})
}

// roles waits until addr is answered by its announcer alone and judged Healthy, and returns the three nodes'
// roles for it: the announcer, the watcher, and the third (the corroborator).
func (c *cluster) roles(s *corev1.Service, addr netip.Addr) (announcer, watcher, third string) {
	c.t.Helper()
	announcer = c.settled(s, addr)
	watcher = c.health(s, addr, heraldv1.HealthHealthy, 20*time.Second).Status.Health.Watcher
	for n := range c.hosts {
		if n != announcer && n != watcher {
			third = n
		}
	}
	return announcer, watcher, third
}

func healthWrong(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("health", "wrong", "lab")
	defer c.delete(svc)
	vip := addrs[0]
	node, _, third := c.roles(svc, vip)
	// The announcer's answers vanish, and a third node's kernel answers instead (the address on its lo, no
	// strict ARP): one speaker's MAC answers, not the announcer's.
	undo := c.silence(node, vip)
	defer undo()
	remove := c.onLo(third, vip)
	defer remove()
	start := time.Now()
	st, mt, an := c.visible(svc, vip, heraldv1.HealthWrongResponder, start, 30*time.Second)
	t.Logf("health: verdict=WrongResponder visible_in_status=%v visible_in_metric=%v", st.Round(time.Millisecond), mt.Round(time.Millisecond))
	for _, a := range an.Status.Health.Addresses {
		if len(a.Responders) != 1 || a.Responders[0].Node != third {
			t.Errorf("responders %+v: want %s alone", a.Responders, third)
		}
	}
	c.awaitEvent(svc, speaker.EventWrongResponder, third, 10*time.Second)
	remove()
	undo()
	c.health(svc, vip, heraldv1.HealthHealthy, 30*time.Second)
}

func healthForeign(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("health", "foreign", "lab")
	defer c.delete(svc)
	vip := addrs[0]
	c.settled(svc, vip)
	c.health(svc, vip, heraldv1.HealthHealthy, 20*time.Second)
	// A host takes the address and says so (gratuitous ARP): Herald yields, and only that host answers.
	remove := c.rogueOwn(vip)
	defer remove()
	r := c.lab.Others[0]
	if out, err := r.Run(c.ctx, "arping", "-U", "-c", "2", "-I", r.Link, vip.String()); err != nil {
		t.Logf("arping -U: %v %s", err, out) // iputils arping exits 1 when no reply comes; the frames went out
	}
	_, _, an := c.visible(svc, vip, heraldv1.HealthForeignResponder, time.Now(), 30*time.Second)
	for _, a := range an.Status.Health.Addresses {
		if len(a.Responders) != 1 || a.Responders[0].MAC != r.MAC.String() || a.Responders[0].Node != "" {
			t.Errorf("responders %+v: want the rogue %s alone", a.Responders, r.MAC)
		}
	}
	c.awaitEvent(svc, speaker.EventForeignResponder, "", 10*time.Second)
	remove()
	c.health(svc, vip, heraldv1.HealthHealthy, 40*time.Second)
}

// healthDeafWatcher makes the watcher deaf to the address (its own link at fault): the watcher finds it dark and
// reports it, the announcer re-announces, but the corroborator finds it answered, so the announcer keeps it.
func healthDeafWatcher(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("health", "deaf", "lab")
	defer c.delete(svc)
	vip := addrs[0]
	node, watcher, corroborator := c.roles(svc, vip)
	answered := c.labelled(corroborator, `herald_health_corroborations_total{result="answered"}`)
	undo := c.deafen(watcher, vip)
	defer undo()
	c.health(svc, vip, heraldv1.HealthDark, 30*time.Second)
	c.awaitEvent(svc, speaker.EventDarkReported, watcher, 20*time.Second)
	reported := time.Now()
	c.awaitEvent(svc, speaker.EventWatcherDisagrees, corroborator, 20*time.Second)
	if v := c.labelled(corroborator, `herald_health_corroborations_total{result="answered"}`); v <= answered {
		t.Errorf("corroborations finding the address answered on %s: %v, want more than %v", corroborator, v, answered)
	}
	// Past the announcer's grace (2×5 s + 6×250 ms + 1 s), with a margin: it has not withdrawn.
	time.Sleep(time.Until(reported.Add(16 * time.Second)))
	if evs := c.events(svc.Namespace, svc.Name, speaker.EventWithdrawn); len(evs) != 0 {
		t.Errorf("Withdrawn Events %v: the announcer withdrew on an uncorroborated report", evs)
	}
	if got, want := c.responders(vip), []string{c.hosts[node].MAC.String()}; !slices.Equal(got, want) {
		t.Errorf("%s answered by %v, want the announcer %s alone", vip, got, node)
	}
	if v, err := c.metric(node, "herald_health_impaired_prefixes"); err != nil || v != 0 {
		t.Errorf("herald_health_impaired_prefixes on %s = %v (%v), want 0", node, v, err)
	}
	undo()
	c.health(svc, vip, heraldv1.HealthHealthy, 30*time.Second)
}

// healthDark silences the announcer on the wire: the watcher finds the address dark and publishes it, the
// announcer re-announces (still silenced), the corroborator finds it dark too, the announcer withdraws, and
// another node answers. Runs last: the node stays
// withdrawn from the lab's prefix for the hold (a minute).
func healthDark(t *testing.T, c *cluster) {
	c = withT(c, t)
	svc, addrs := c.service("health", "dark", "lab")
	defer c.delete(svc)
	vip := addrs[0]
	node, _, corroborator := c.roles(svc, vip)
	start := time.Now()
	undo := c.silence(node, vip)
	defer undo()
	if got := c.responders(vip); len(got) != 0 {
		t.Fatalf("the silenced address is answered by %v", got)
	}
	st, mt, _ := c.visible(svc, vip, heraldv1.HealthDark, start, 30*time.Second)
	t.Logf("health: verdict=Dark visible_in_status=%v visible_in_metric=%v (interval 5s)", st.Round(time.Millisecond), mt.Round(time.Millisecond))
	c.awaitEvent(svc, speaker.EventAddressDark, "", 10*time.Second)
	c.awaitEvent(svc, speaker.EventDarkReported, node, 20*time.Second)
	newNode, _ := c.announcer(svc, node)
	moved := time.Since(start)
	c.waitResponder(vip, c.hosts[newNode].MAC)
	if evs := c.events(svc.Namespace, svc.Name, speaker.EventWithdrawn); len(evs) == 0 || !strings.Contains(evs[0], node) {
		t.Errorf("Withdrawn Events %v: want one from %s", evs, node)
	}
	if v, err := c.metric(node, "herald_health_impaired_prefixes"); err != nil || v != 1 {
		t.Errorf("herald_health_impaired_prefixes on %s = %v (%v), want 1", node, v, err)
	}
	if v := c.labelled(corroborator, `herald_health_corroborations_total{result="dark"}`); v < 1 {
		t.Errorf("corroborations finding the address dark on %s = %v, want at least 1 before the withdrawal", corroborator, v)
	}
	c.health(svc, vip, heraldv1.HealthHealthy, 30*time.Second)
	t.Logf("health: dark address answered again by %s %v after %s was silenced", newNode, moved.Round(time.Millisecond), node)
}
