package controllers

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/controlplane"
)

// cp is the real control plane shared by the package's integration tests; nil under -short.
var cp *controlplane.ControlPlane

// k8s is a direct (uncached) client of cp.
var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() || os.Getenv("HERALD_SKIP_CONTROLPLANE") != "" {
		return m.Run()
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	var err error
	if cp, err = controlplane.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	if k8s, err = client.New(cp.Config, client.Options{Scheme: cp.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// needControlPlane skips a test under -short, where no control plane runs.
func needControlPlane(t *testing.T) {
	t.Helper()
	if cp == nil {
		t.Skip("integration test: needs the control plane (not under -short)")
	}
}

// testRegistry, when set, receives the metrics of the next controller a test starts.
var testRegistry *prometheus.Registry

// startController runs Herald's reconcilers against the control plane until the test ends or stop is called.
func startController(t testing.TB) (stop func()) {
	return startControllerWith(t, ctrl.Options{})
}

func startControllerB(b *testing.B) (stop func()) { return startController(b) }

// startControllerWith is startController with manager options (leader election) set.
func startControllerWith(t testing.TB, opts ctrl.Options) (stop func()) {
	t.Helper()
	_, stop = startManager(t, opts)
	return stop
}

// startManager is startControllerWith that also returns the manager, whose cache a test may compare with the
// API server.
func startManager(t testing.TB, opts ctrl.Options) (_ ctrl.Manager, stop func()) {
	t.Helper()
	opts.Scheme = cp.Scheme
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cp.Config, opts)
	if err != nil {
		t.Fatalf("creating manager: %v", err)
	}
	reg := testRegistry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := Setup(mgr, Options{Registerer: reg}); err != nil {
		t.Fatalf("setting up reconcilers: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return mgr, stop
}

func zapLevel() zapcore.Level {
	if os.Getenv("HERALD_TEST_VERBOSE") != "" {
		return -1
	}
	return zapcore.DPanicLevel // quiet: reconcile errors at shutdown are expected
}

// eventually polls cond until it returns true or the timeout passes, then fails with cond's last message.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		if ok, msg = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newNamespace creates a namespace for one test and deletes it at the end.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller: delete the Services so no later test's controller sees them.
		_ = k8s.DeleteAllOf(context.Background(), &corev1.Service{}, client.InNamespace(ns.Name))
		_ = k8s.Delete(context.Background(), ns)
	})
	return ns.Name
}

// createPool creates a pool that is deleted at the end of the test.
func createPool(t *testing.T, name string, spec heraldv1.IPAddressPoolSpec) *heraldv1.IPAddressPool {
	t.Helper()
	p := &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatalf("creating pool %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	return p
}

func addresses(s ...string) []heraldv1.AddressRange {
	out := make([]heraldv1.AddressRange, len(s))
	for i, a := range s {
		out[i] = heraldv1.AddressRange(a)
	}
	return out
}

// lbService returns a Service of type LoadBalancer with one TCP port.
func lbService(ns, name string, port int32, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "p", Port: port, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// ingressOf reads a Service's status addresses.
func ingressOf(t *testing.T, ns, name string) []string {
	t.Helper()
	s := &corev1.Service{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		mode := ""
		if in.IPMode != nil {
			mode = string(*in.IPMode)
		}
		out = append(out, in.IP+"/"+mode)
	}
	return out
}

// waitIngress waits until a Service's status holds exactly want (addresses, each with ipMode VIP).
func waitIngress(t *testing.T, ns, name string, want ...string) {
	t.Helper()
	w := make([]string, len(want))
	for i, a := range want {
		w[i] = a + "/VIP"
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		got := ingressOf(t, ns, name)
		return strings.Join(got, ",") == strings.Join(w, ","), fmt.Sprintf("Service %s/%s ingress %v, want %v", ns, name, got, w)
	})
}

// waitEvent waits for an Event about an object with the given reason whose note contains text.
func waitEvent(t *testing.T, ns, name, reason, text string) {
	t.Helper()
	eventually(t, 20*time.Second, func() (bool, string) {
		var list eventsv1.EventList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name != name {
				continue
			}
			seen = append(seen, e.Reason+": "+e.Note)
			if e.Reason == reason && strings.Contains(e.Note, text) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no Event %s containing %q on %s/%s; saw %q", reason, text, ns, name, seen)
	})
}
