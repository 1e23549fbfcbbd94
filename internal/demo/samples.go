package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/speaker"
)

// The sample manifests, relative to the repository root, applied in this order.
var samples = []string{"config/samples/pools.yaml", "config/samples/services.yaml"}

const (
	addressTimeout  = 60 * time.Second // for every Service to get its addresses
	settleTimeout   = 10 * time.Second // then for pool counts and Events to catch up
	readyTimeout    = 30 * time.Second // for pools to turn Ready, for a restarted controller to start
	announceTimeout = 30 * time.Second // for every Service's Announcement
	restartSettle   = 2 * time.Second  // how long the restarted controller runs before addresses are compared
)

// startedMarker is what the controller logs once it has rebuilt its allocations from Service status, the first
// thing it does when it reconciles.
const startedMarker = "rebuilt allocations from Service status"

// applySamples applies the pools, waits until the controller has read them, then applies the Services, so that
// the Services are allocated in the order they are listed and the result does not depend on timing.
func (d *demo) applySamples(ctx context.Context) error {
	for i, f := range samples {
		d.step("kubectl apply -f %s", f)
		out, err := d.kubectl(ctx, "apply", "-f", filepath.Join(d.root, f))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			d.detail("%s", line)
		}
		if i == 0 {
			if err := d.waitForReadyPools(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitForReadyPools waits until every pool and L2Advertisement is Ready: the controller has read them.
func (d *demo) waitForReadyPools(ctx context.Context) error {
	d.step("Waiting for the controller to mark the pools and the L2Advertisements Ready")
	return d.poll(ctx, readyTimeout, func(ctx context.Context) (bool, string, error) {
		var pools heraldv1.IPAddressPoolList
		if err := d.c.List(ctx, &pools); err != nil {
			return false, "", err
		}
		var advs heraldv1.L2AdvertisementList
		if err := d.c.List(ctx, &advs); err != nil {
			return false, "", err
		}
		var pending []string
		for _, p := range pools.Items {
			if !meta.IsStatusConditionTrue(p.Status.Conditions, heraldv1.ConditionReady) {
				pending = append(pending, "IPAddressPool "+p.Name)
			}
		}
		for _, a := range advs.Items {
			if !meta.IsStatusConditionTrue(a.Status.Conditions, heraldv1.ConditionReady) {
				pending = append(pending, "L2Advertisement "+a.Name)
			}
		}
		if len(pools.Items) == 0 {
			pending = append(pending, "the pools to appear")
		}
		return len(pending) == 0, "not Ready: " + strings.Join(pending, ", "), nil
	})
}

// waitForAddresses waits until every Service of the namespace has its addresses, then, briefly, until the pools'
// counts and the Events have caught up, and returns each Service's addresses.
func (d *demo) waitForAddresses(ctx context.Context) (map[string][]string, error) {
	d.step("Waiting (at most %s) for every Service in %s to get its addresses", addressTimeout, Namespace)
	start := time.Now()
	var addrs map[string][]string
	err := d.poll(ctx, addressTimeout, func(ctx context.Context) (bool, string, error) {
		var err error
		if addrs, err = d.addresses(ctx); err != nil {
			return false, "", err
		}
		var waiting []string
		for name, a := range addrs {
			if len(a) == 0 {
				waiting = append(waiting, name)
			}
		}
		slices.Sort(waiting)
		return len(addrs) > 0 && len(waiting) == 0, "Services without an address: " + strings.Join(waiting, ", "), nil
	})
	if err != nil {
		return nil, err
	}
	d.detail("%d Services have their addresses after %s", len(addrs), time.Since(start).Round(time.Millisecond))

	// The pools' status and the Events are written after the Services' status: wait for them so that the
	// tables below are complete.
	err = d.poll(ctx, settleTimeout, func(ctx context.Context) (bool, string, error) {
		return d.settled(ctx, addrs)
	})
	if errors.Is(err, errTimeout) {
		d.detail("(pool counts or Events still settling: %v)", err)
	} else if err != nil {
		return nil, err
	}
	return addrs, nil
}

// settled reports whether the pools count every address the Services hold and every Service has its
// IPAllocated Event.
func (d *demo) settled(ctx context.Context, addrs map[string][]string) (bool, string, error) {
	distinct := map[string]bool{}
	for _, a := range addrs {
		for _, ip := range a {
			distinct[ip] = true
		}
	}
	var pools heraldv1.IPAddressPoolList
	if err := d.c.List(ctx, &pools); err != nil {
		return false, "", err
	}
	var counted uint64
	for _, p := range pools.Items {
		for _, s := range []string{p.Status.AssignedIPv4, p.Status.AssignedIPv6} {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				counted += n
			}
		}
	}
	if counted != uint64(len(distinct)) {
		return false, fmt.Sprintf("the pools count %d addresses in use, the Services hold %d", counted, len(distinct)), nil
	}
	var events eventsv1.EventList
	if err := d.c.List(ctx, &events, client.InNamespace(Namespace)); err != nil {
		return false, "", err
	}
	allocated := map[string]bool{}
	for _, e := range events.Items {
		if e.Reason == controllers.EventIPAllocated && e.Regarding.Kind == "Service" {
			allocated[e.Regarding.Name] = true
		}
	}
	var missing []string
	for name := range addrs {
		if !allocated[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	return len(missing) == 0, "no " + controllers.EventIPAllocated + " Event yet for " + strings.Join(missing, ", "), nil
}

// addresses returns the load-balancer addresses of every Service in the namespace, by name.
func (d *demo) addresses(ctx context.Context) (map[string][]string, error) {
	var svcs corev1.ServiceList
	if err := d.c.List(ctx, &svcs, client.InNamespace(Namespace)); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(svcs.Items))
	for _, s := range svcs.Items {
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			}
		}
		out[s.Name] = ips
	}
	return out, nil
}

// waitForAnnouncements waits until every Service has an Announcement saying that a node announces all its
// addresses on at least one interface, and returns them by Service name.
func (d *demo) waitForAnnouncements(ctx context.Context, addrs map[string][]string) (map[string]*heraldv1.Announcement, error) {
	d.step("Waiting for the speakers to elect an announcer for every Service (the Announcement objects)")
	start := time.Now()
	anns := map[string]*heraldv1.Announcement{}
	err := d.poll(ctx, announceTimeout, func(ctx context.Context) (bool, string, error) {
		for _, name := range sortedKeys(addrs) {
			if _, ok := anns[name]; ok {
				continue
			}
			an, why, err := d.announcement(ctx, name, "")
			if err != nil || an == nil {
				return false, name + ": " + why, err
			}
			if !sameSet(an.Status.Addresses, addrs[name]) {
				return false, fmt.Sprintf("%s: the Announcement lists %v, the Service has %v", name, an.Status.Addresses, addrs[name]), nil
			}
			anns[name] = an
		}
		return true, "", nil
	})
	if err != nil {
		return nil, err
	}
	d.detail("every Service is announced, %s after they all had addresses", time.Since(start).Round(time.Millisecond))
	return anns, nil
}

// announcement returns a Service's Announcement once a node other than not says it announces the Service on
// at least one interface, nil and why not before that.
func (d *demo) announcement(ctx context.Context, svc, not string) (*heraldv1.Announcement, string, error) {
	var an heraldv1.Announcement
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: Namespace, Name: svc}, &an); apierrors.IsNotFound(err) {
		return nil, "no Announcement yet", nil
	} else if err != nil {
		return nil, "", err
	}
	cond := meta.FindStatusCondition(an.Status.Conditions, speaker.ConditionAnnounced)
	switch {
	case cond == nil || cond.Status != metav1.ConditionTrue:
		return nil, fmt.Sprintf("not announced: %+v", an.Status), nil
	case an.Status.Node == not:
		return nil, "still announced by " + not, nil
	case len(an.Status.Interfaces) == 0:
		return nil, "announced on no interface", nil
	}
	return &an, "", nil
}

// show prints, with kubectl, the pools, the L2Advertisements, the Announcements and the namespace's Events.
func (d *demo) show(ctx context.Context) error {
	d.step("What the controller and the speakers did (kubectl in %s)", d.lab.CP.NS)
	for _, args := range [][]string{
		{"get", "ipaddresspools"},
		{"get", "l2advertisements", "-o",
			"custom-columns=NAME:.metadata.name,POOLS:.spec.ipAddressPools,INTERFACES:.spec.interfaces"},
		{"get", "announcements", "-n", Namespace},
		// "events" is core/v1, where the events.k8s.io/v1 fields regarding and note read involvedObject and
		// message. eventTime, in microseconds, keeps the order in which they happened (creationTimestamp, in
		// seconds, ties).
		{"get", "events", "-n", Namespace, "--sort-by=.eventTime", "-o",
			"custom-columns=REASON:.reason,OBJECT:.involvedObject.name,FROM:.reportingComponent,MESSAGE:.message"},
	} {
		out, err := d.kubectl(ctx, args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "\n$ kubectl %s\n%s", strings.Join(args, " "), out)
	}
	fmt.Fprintln(d.out)
	return nil
}

// restart stops the controller, starts it again, lets it run and checks that every Service kept the addresses
// it had before.
func (d *demo) restart(ctx context.Context, before map[string][]string) error {
	d.step("Restarting the controller: the new one rebuilds its allocations from the Services' status")
	old := d.ctrl
	d.ctrl = nil
	if err := stop(ctx, old); err != nil {
		return fmt.Errorf("stopping the controller: %w", err)
	}
	d.detail("stopped with SIGTERM")
	if err := d.startController(); err != nil {
		return err
	}
	if err := d.poll(ctx, readyTimeout, func(context.Context) (bool, string, error) {
		log, err := os.ReadFile(d.ctrl.Log())
		return bytes.Contains(log, []byte(startedMarker)), "the controller has not logged " + strconv.Quote(startedMarker), err
	}); err != nil {
		return err
	}
	d.detail("it rebuilt its allocations; letting it run for %s", restartSettle)
	select {
	case <-ctx.Done():
		return interrupted(ctx)
	case <-d.ctrl.Done():
		return exitedError("the controller", d.ctrl)
	case <-time.After(restartSettle):
	}
	after, err := d.addresses(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    SERVICE\tBEFORE\tAFTER\tRESULT")
	moved := false
	for _, name := range sortedKeys(before) {
		was, now := strings.Join(before[name], ","), strings.Join(after[name], ",")
		verdict := "kept"
		if was != now {
			verdict, moved = "MOVED", true
			d.problem("the controller restart moved %s from %s to %s", name, was, orNone(now))
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", name, was, orNone(now), verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !moved {
		d.detail("Every Service kept its addresses across the controller restart.")
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sameSet tells whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
