package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/controlplane"
	"github.com/heraldlb/herald/internal/election"
)

// prevRelease is the Herald whose speakers TestRealNodesMixed runs beside today's: the last commit before the
// handoffs and preferred nodes. Its speakers ignore the handoff messages new ones send over memberlist, and never
// fail back (new ones do after --failback-after).
const (
	prevRelease = "07ac589"
	prevTag     = "v0.1.0-prev-" + prevRelease
	// mixedFailback is the new speakers' --failback-after in the mixed cluster: the default (30 s) would only
	// make the test wait longer for the same fail-backs.
	mixedFailback = 5 * time.Second
)

// prevImage returns the image of prevRelease's Herald, ghcr.io/heraldlb/herald:prevTag. The first call builds it
// into bin/ (keyed by the commit, so later runs reuse it): cmd/herald of that commit's tree, extracted with git
// archive into a temporary directory (removed on every exit path), assembled with today's bin/herald-image.
func prevImage(t *testing.T, root string) string {
	t.Helper()
	cached := filepath.Join(root, "bin", "herald-image-"+prevRelease+"-linux-amd64.tar")
	if _, err := os.Stat(cached); err == nil {
		return cached
	}
	start := time.Now()
	tmp := t.TempDir()
	src, archive := filepath.Join(tmp, "src"), filepath.Join(tmp, "src.tar")
	for _, argv := range [][]string{{"git", "archive", "-o", archive, prevRelease}, {"mkdir", src},
		{"tar", "-xf", archive, "-C", src}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("extracting Herald %s (a shallow clone lacks it: git fetch --unshallow): %s: %v\n%s",
				prevRelease, strings.Join(argv, " "), err, out)
		}
	}
	b, err := os.ReadFile(buildHeraldImage(t, root, src, prevTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cached+".tmp", cached); err != nil {
		t.Fatal(err)
	}
	t.Logf("mixed: built Herald %s's image in %.0f s, kept as %s", prevRelease, time.Since(start).Seconds(), cached)
	return cached
}

// TestRealNodesMixed runs the previous release's speakers (prevRelease) beside today's on three real nodes, with
// 16 Cluster addresses probed by the client every 10 ms throughout. Herald is installed from prevRelease's image;
// the DaemonSet's updateStrategy is set to OnDelete and `helm upgrade` moves the release to today's image, which
// replaces the controller but no speaker; then the speaker pods of two nodes are deleted one after the other, and
// the DaemonSet starts today's speaker there. Checked: no address is answered by two MACs, each Announcement
// names the node the wire shows, and each address sits where both versions' rules put it: the first node of its
// election order among the live nodes when it last moved, handed back by fail-back only from a new speaker to a
// new speaker (old ones neither offer nor accept handoffs, nor fail back). Then kill -9 of an old speaker's
// container and of a new one's each fail over.
func TestRealNodesMixed(t *testing.T) {
	needLab(t)
	needRealNodes(t)
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	prev := prevImage(t, root)
	rc := newRealCluster(t, 3, realOptions{Images: []string{prev}, Set: []string{"image.tag=" + prevTag}})
	version := map[string]string{}
	names := rc.nodeNames()
	for _, n := range names {
		version[n] = prevTag
	}
	rc.speakersRun(version)

	rc.pool("mixed", []string{poolV4})
	const services = 16
	vips := rc.settledServices("mixed", "mixed", services)
	// Where the previous release put each address: the first node of its election order, as today's election
	// package computes it, unless a speaker was still joining when the address came (then the holder rule keeps
	// it where it was first answered: the previous release never fails back). The wire is the starting point.
	place := rc.holders(vips)
	elected := 0
	for _, v := range vips {
		if place[v] == election.Order(v.String(), names)[0] {
			elected++
		}
	}
	t.Logf("mixed: all speakers %s: %d of %d addresses on the first node of their election order", prevRelease,
		elected, len(vips))
	rc.checkPlacement(vips, place, "all speakers "+prevRelease)

	// OnDelete: the DaemonSet replaces a speaker only when its pod is deleted, as an operator moving node by node
	// does. The previous release's chart has no updateStrategy value, so it is set on the DaemonSet first; the
	// upgrade to today's chart sets the same (speaker.updateStrategy), or its apply would conflict with this one.
	var ds appsv1.DaemonSet
	if err := rc.c.Get(rc.ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "herald-speaker"}, &ds); err != nil {
		t.Fatal(err)
	}
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	if err := rc.c.Update(rc.ctx, &ds); err != nil {
		t.Fatalf("setting the speakers' updateStrategy to OnDelete: %v", err)
	}
	w := rc.watch(vips)
	start := time.Now()
	// No --wait: helm's waiter counts an OnDelete DaemonSet's pods not yet replaced as not ready, and times out.
	if out, err := helm(rc.ctx, rc.lab, "upgrade", "herald", filepath.Join(root, "charts", "herald"),
		"--namespace", releaseNamespace, "--set", "image.pullPolicy=Never", "--set", "controller.replicas=1",
		"--set", "speaker.failbackAfter="+mixedFailback.String(), "--set", "speaker.updateStrategy.type=OnDelete",
		"--set", "speaker.updateStrategy.rollingUpdate=null"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	rc.eventually(2*time.Minute, "the controller Deployment rolled", func() (bool, string) {
		var d appsv1.Deployment
		if err := rc.c.Get(rc.ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "herald-controller"}, &d); err != nil {
			return false, err.Error()
		}
		st := d.Status
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == st.Replicas && st.ReadyReplicas == st.Replicas,
			fmt.Sprintf("%+v", st)
	})
	rc.speakersRun(version) // OnDelete: no speaker replaced yet
	newTag := rc.speakerImageTag()
	if newTag == prevTag {
		t.Fatalf("the DaemonSet still runs %s after helm upgrade", prevTag)
	}
	// The two nodes answering the most addresses move to the new speaker, one after the other.
	byLoad := slices.Clone(names)
	slices.SortStableFunc(byLoad, func(a, b string) int { return count(place, b) - count(place, a) })
	for _, n := range byLoad[:2] {
		rc.delete(ptr.To(rc.speakers()[n]))
		version[n] = newTag
		rc.eventually(2*time.Minute, "today's speaker on "+n+" Ready", func() (bool, string) {
			p, ok := rc.speakers()[n]
			return ok && p.DeletionTimestamp == nil && podReady(p) && imageTag(p) == newTag,
				fmt.Sprintf("present %v, image %s, ready %v", ok, imageTag(p), podReady(p))
		})
		// The old speaker sent no takes when it stopped: its addresses failed over to the first live node of
		// their order. The new speaker takes an address back (fail-back, by a handoff) from a new holder only.
		for v, h := range place {
			if h == n {
				place[v] = election.Order(v.String(), slices.DeleteFunc(slices.Clone(names), func(m string) bool { return m == n }))[0]
			}
		}
		time.Sleep(mixedFailback + 3*time.Second)
		for v, h := range place {
			if e := election.Order(v.String(), names)[0]; e != h && version[e] == newTag && version[h] == newTag {
				place[v] = e
			}
		}
		t.Logf("mixed: %s's speaker replaced by today's (%s): versions %v", n, newTag, version)
	}
	w.stop()
	st := w.stats(t, "mixed upgrade")
	t.Logf("mixed: %s to %s on 2 of 3 nodes over %d addresses, %.0f s: %s", prevRelease, newTag, services,
		time.Since(start).Seconds(), st)
	if st.DupRun > 1 {
		t.Errorf("two MACs answered one address for %d requests in a row during the mixed upgrade", st.DupRun)
	}
	rc.checkPlacement(vips, place, "two speakers new, one "+prevRelease)

	// kill -9 of the old speaker's container, then of the new one answering the most addresses.
	var newest string
	for _, n := range byLoad[:2] {
		if newest == "" || count(place, n) > count(place, newest) {
			newest = n
		}
	}
	for _, victim := range []string{byLoad[2], newest} {
		rc.mixedKill(vips, place, victim, version[victim])
	}
}

// mixedKill kills (SIGKILL) the speaker container of victim and reports what the client saw of vips until the
// kubelet restarted it and it is Ready: the addresses victim answered fail over, no address is answered by two
// MACs, and afterwards every Announcement names the node the wire shows. place is updated to the wire.
func (rc *realCluster) mixedKill(vips []netip.Addr, place map[netip.Addr]string, victim, version string) {
	t := rc.t
	t.Helper()
	id, restarts := rc.speakerContainer(victim)
	held := count(place, victim)
	w := rc.watch(vips)
	time.Sleep(time.Second) // a baseline
	killed := time.Now()
	if err := rc.node(victim).KillContainer(rc.ctx, id); err != nil {
		t.Fatal(err)
	}
	rc.eventually(90*time.Second, "the killed speaker on "+victim+" restarted and Ready", func() (bool, string) {
		return rc.speakerRestarted(victim, restarts)
	})
	restarted := time.Since(killed)
	// The restarted speaker has joined and seen its addresses answered, and has been a member long enough for
	// new holders of addresses it is elected for to offer them back (an old one ignores the offers).
	time.Sleep(mixedFailback + handoffWaitE2E + 2*time.Second)
	w.stop()
	st := w.stats(t, "mixed kill -9 "+victim)
	now := rc.holders(vips)
	moved := 0
	for _, v := range vips {
		if place[v] == victim && now[v] != victim {
			moved++
		}
	}
	t.Logf("mixed: kill -9 of the %s speaker on %s (answering %d of %d addresses): %d moved, %s; restarted and "+
		"Ready after %.1f s", version, victim, held, len(vips), moved, st, restarted.Seconds())
	if st.DupRun > 1 {
		t.Errorf("two MACs answered one address for %d requests in a row after kill -9 on %s", st.DupRun, victim)
	}
	if st.Gap > failoverBound {
		t.Errorf("an address was unanswered for %v after kill -9 on %s (bound %v)", st.Gap, victim, failoverBound)
	}
	for v, n := range now {
		place[v] = n
	}
	rc.checkPlacement(vips, place, "after kill -9 on "+victim)
	// New speakers holding addresses the restarted old one is elected for offered them in vain, and said so.
	if version == prevTag && moved > 0 {
		for _, v := range vips {
			if election.Order(v.String(), rc.nodeNames())[0] == victim && place[v] != victim {
				rc.logged(place[v], "keeping addresses offered back to a node that did not accept them")
				break
			}
		}
	}
}

// handoffWaitE2E is the speakers' handoffWait: how long a holder waits for an offer to be accepted.
const handoffWaitE2E = time.Second

// nodeNames are the real nodes' names, sorted.
func (rc *realCluster) nodeNames() []string {
	var names []string
	for _, n := range rc.kn.Nodes {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names
}

// logged checks that the speaker on node logged a line containing text.
func (rc *realCluster) logged(node, text string) {
	rc.t.Helper()
	pod := rc.speakers()[node].Name
	for name, log := range rc.kn.PodLogs(releaseNamespace, 1000) {
		if strings.Contains(name, pod) && strings.Contains(log, text) {
			rc.t.Logf("mixed: %s logged %q", node, text)
			return
		}
	}
	rc.t.Errorf("the speaker on %s (%s) did not log %q", node, pod, text)
}

// checkPlacement checks that each address is answered by the node place names alone and that its Service's
// Announcement names that node.
func (rc *realCluster) checkPlacement(vips []netip.Addr, place map[netip.Addr]string, when string) {
	t := rc.t
	t.Helper()
	var wrong []string
	for i, v := range vips {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "mixed", Name: fmt.Sprintf("svc%d", i)}}
		if got := rc.settled(svc, v); got != place[v] {
			wrong = append(wrong, fmt.Sprintf("%s on %s, want %s", v, got, place[v]))
		}
	}
	per := map[string]int{}
	for _, n := range place {
		per[n]++
	}
	if len(wrong) > 0 {
		t.Errorf("%s: %d of %d addresses not where the election puts them: %s", when, len(wrong), len(vips),
			strings.Join(wrong, "; "))
		return
	}
	t.Logf("mixed: %s: every address answered by one MAC, where its Announcement and the election say (%v)", when, per)
}

// speakersRun checks that the speaker on each node runs the image version names for it.
func (rc *realCluster) speakersRun(version map[string]string) {
	rc.t.Helper()
	sp := rc.speakers()
	for n, v := range version {
		if got := imageTag(sp[n]); got != v {
			rc.t.Fatalf("the speaker on %s runs %s, want %s", n, got, v)
		}
	}
}

// speakerImageTag is the tag of the image the speaker DaemonSet's template names.
func (rc *realCluster) speakerImageTag() string {
	rc.t.Helper()
	var ds appsv1.DaemonSet
	if err := rc.c.Get(rc.ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "herald-speaker"}, &ds); err != nil {
		rc.t.Fatal(err)
	}
	_, tag, _ := strings.Cut(ds.Spec.Template.Spec.Containers[0].Image, ":")
	return tag
}

// imageTag is the tag of the image of a pod's first container.
func imageTag(p corev1.Pod) string {
	if len(p.Spec.Containers) == 0 {
		return ""
	}
	_, tag, _ := strings.Cut(p.Spec.Containers[0].Image, ":")
	return tag
}

// count is how many addresses place puts on node.
func count(place map[netip.Addr]string, node string) int {
	n := 0
	for _, m := range place {
		if m == node {
			n++
		}
	}
	return n
}
