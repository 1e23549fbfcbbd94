package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/probecmd"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, heraldv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestProbeCLI(t *testing.T) {
	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "2001:db8::5"}, {IP: "198.51.100.5"}}}}}
	pending := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pending"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	inDefault := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}}}}
	an := &heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Status: heraldv1.AnnouncementStatus{Node: "n1", Health: &heraldv1.AnnouncementHealth{Verdict: heraldv1.HealthHealthy,
			Addresses: []heraldv1.AddressHealth{{Address: "198.51.100.5", Verdict: heraldv1.HealthHealthy,
				Responders: []heraldv1.HealthResponder{{MAC: "02:00:00:00:00:0a", Node: "n1"}}}}}}}

	tests := []struct {
		name       string
		args       []string
		code       int
		stderr     string
		noClient   bool // the cluster must not be asked
		kubeconfig string
		want       *probecmd.Options // what Run gets (Targets, Interface, Source, Count, Interval, Wait, JSON, Nodes)
	}{
		{name: "help", args: []string{"-h"}, code: 0, stderr: "Exit status (the worst over the addresses)", noClient: true},
		{name: "no target", args: nil, code: 2, stderr: "no target", noClient: true},
		{name: "two targets", args: []string{"198.51.100.5", "198.51.100.6"}, code: 2, stderr: "one target at a time", noClient: true},
		{name: "bad count", args: []string{"-c", "0", "198.51.100.5"}, code: 2, stderr: "-c 0", noClient: true},
		{name: "bad wait", args: []string{"-w", "0", "198.51.100.5"}, code: 2, stderr: "-w 0s", noClient: true},
		{name: "bad interval", args: []string{"-i", "soon", "198.51.100.5"}, code: 2, stderr: "want a duration", noClient: true},
		{name: "bad output", args: []string{"-o", "yaml", "198.51.100.5"}, code: 2, stderr: `-o "yaml"`, noClient: true},
		{name: "bad source", args: []string{"-s", "nope", "198.51.100.5"}, code: 2, stderr: `-s "nope"`, noClient: true},
		{name: "bad target", args: []string{"a/b/c"}, code: 2, stderr: "neither an IP address", noClient: true},
		{
			name: "IP with defaults", args: []string{"198.51.100.5"}, noClient: true,
			want: &probecmd.Options{Targets: []probecmd.Target{{Addr: netip.MustParseAddr("198.51.100.5")}}, Count: 3,
				Interval: time.Second, Wait: time.Second},
		},
		{
			name: "flags after the target, seconds as numbers", args: []string{"2001:db8::5", "-c", "5", "-i", "0.2", "-w", "300ms", "-I", "eth1", "-s", "2001:db8::1", "-o", "json"}, noClient: true,
			want: &probecmd.Options{Targets: []probecmd.Target{{Addr: netip.MustParseAddr("2001:db8::5")}}, Count: 5,
				Interval: 200 * time.Millisecond, Wait: 300 * time.Millisecond, Interface: "eth1", Source: netip.MustParseAddr("2001:db8::1"), JSON: true},
		},
		{
			name: "zone and mapped address", args: []string{"fe80::1%eth0"}, noClient: true,
			want: &probecmd.Options{Targets: []probecmd.Target{{Addr: netip.MustParseAddr("fe80::1"), Zone: "eth0"}}, Count: 3, Interval: time.Second, Wait: time.Second},
		},
		{
			name: "-- ends flags", args: []string{"-c", "1", "--", "198.51.100.5"}, noClient: true,
			want: &probecmd.Options{Targets: []probecmd.Target{{Addr: netip.MustParseAddr("198.51.100.5")}}, Count: 1, Interval: time.Second, Wait: time.Second},
		},
		{
			name: "IP with a kubeconfig names nodes", args: []string{"--kubeconfig", "/k", "198.51.100.5"}, kubeconfig: "/k",
			want: &probecmd.Options{Targets: []probecmd.Target{{Addr: netip.MustParseAddr("198.51.100.5")}}, Count: 3, Interval: time.Second, Wait: time.Second,
				Nodes: map[string]string{"02:00:00:00:00:0a": "n1"}},
		},
		{
			name: "namespace/service: every ingress IP, IPv4 first", args: []string{"shop/web", "--kubeconfig", "/k"}, kubeconfig: "/k",
			want: &probecmd.Options{Targets: []probecmd.Target{
				{Addr: netip.MustParseAddr("198.51.100.5"), Service: "shop/web"},
				{Addr: netip.MustParseAddr("2001:db8::5"), Service: "shop/web"}}, Count: 3, Interval: time.Second, Wait: time.Second,
				Nodes: map[string]string{"02:00:00:00:00:0a": "n1"}},
		},
		{
			name: "service in the context's namespace", args: []string{"db"},
			want: &probecmd.Options{Targets: []probecmd.Target{{Addr: netip.MustParseAddr("203.0.113.7"), Service: "default/db"}},
				Count: 3, Interval: time.Second, Wait: time.Second, Nodes: map[string]string{"02:00:00:00:00:0a": "n1"}},
		},
		{
			name: "service with -n", args: []string{"-n", "shop", "web"},
			want: &probecmd.Options{Targets: []probecmd.Target{
				{Addr: netip.MustParseAddr("198.51.100.5"), Service: "shop/web"},
				{Addr: netip.MustParseAddr("2001:db8::5"), Service: "shop/web"}}, Count: 3, Interval: time.Second, Wait: time.Second,
				Nodes: map[string]string{"02:00:00:00:00:0a": "n1"}},
		},
		{name: "-n disagrees", args: []string{"-n", "blog", "shop/web"}, code: 2, stderr: "name two namespaces"},
		{name: "missing service", args: []string{"shop/nope"}, code: 2, stderr: `reading Service shop/nope`},
		{name: "service without address", args: []string{"shop/pending"}, code: 2, stderr: "no load-balancer address yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			savedClient, savedRun := probeClient, probeRun
			t.Cleanup(func() { probeClient, probeRun = savedClient, savedRun })
			asked := false
			probeClient = func(kubeconfig, kubeContext string) (client.Reader, string, error) {
				asked = true
				if kubeconfig != tt.kubeconfig {
					t.Errorf("kubeconfig %q, want %q", kubeconfig, tt.kubeconfig)
				}
				return fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(lb.DeepCopy(), pending.DeepCopy(), inDefault.DeepCopy(), an.DeepCopy()).Build(), "default", nil
			}
			var got *probecmd.Options
			probeRun = func(ctx context.Context, opts probecmd.Options, stdout, stderr io.Writer) int {
				got = &opts
				return 42
			}
			var stdout, stderr bytes.Buffer
			code := runProbe(tt.args, &stdout, &stderr)
			wantCode := tt.code
			if tt.want != nil {
				wantCode = 42
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, wantCode, stderr.String())
			}
			checkOutput(t, "stderr", stderr.String(), []string{tt.stderr}, false)
			if tt.noClient && asked {
				t.Error("the cluster was asked")
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Run's options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProbeCLIClusterUnreachable(t *testing.T) {
	saved := probeClient
	t.Cleanup(func() { probeClient = saved })
	probeClient = func(string, string) (client.Reader, string, error) {
		return nil, "", errors.New("loading the kubeconfig: no such file")
	}
	var stdout, stderr bytes.Buffer
	if code := runProbe([]string{"shop/web"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	checkOutput(t, "stderr", stderr.String(), []string{"loading the kubeconfig"}, false)
}

func TestOperatorDispatch(t *testing.T) {
	tests := []struct {
		name, prog string
		args       []string
		code       int
		stderr     string
	}{
		{name: "herald usage", prog: "herald", args: nil, code: 2, stderr: "herald status [flags]"},
		{name: "herald help", prog: "herald", args: []string{"help"}, code: 0, stderr: "kubectl-herald on PATH"},
		{name: "plugin usage", prog: "kubectl herald", args: []string{"--help"}, code: 0, stderr: "kubectl herald probe [flags] TARGET"},
		{name: "plugin unknown", prog: "kubectl herald", args: []string{"speaker"}, code: 2, stderr: `kubectl herald: unknown command "speaker"`},
		{name: "status help", prog: "kubectl herald", args: []string{"status", "-h"}, code: 0, stderr: "Exit status: 0 every listed Service"},
		{name: "probe help", prog: "kubectl herald", args: []string{"probe", "-h"}, code: 0, stderr: "CAP_NET_RAW"},
		{name: "doctor help", prog: "kubectl herald", args: []string{"doctor", "-h"}, code: 0, stderr: "herald doctor"},
		{name: "migrate help", prog: "kubectl herald", args: []string{"migrate", "-h"}, code: 0, stderr: "herald migrate"},
		{name: "plugin lists validate", prog: "kubectl herald", args: []string{"help"}, code: 0, stderr: "kubectl herald validate [flags]"},
		{name: "validate help", prog: "kubectl herald", args: []string{"validate", "-h"}, code: 0, stderr: "pool-overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := usage
			if tt.prog != "herald" {
				text = pluginUsage
			}
			var stdout, stderr bytes.Buffer
			if code := operator(tt.prog, text, tt.args, nil, &stdout, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			checkOutput(t, "stderr", stderr.String(), []string{tt.stderr}, false)
		})
	}
}
