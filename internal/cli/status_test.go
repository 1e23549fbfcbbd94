package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/controlplane/controlplanetest"
	"github.com/heraldlb/herald/internal/status"
)

func TestStatusUsage(t *testing.T) {
	// A kubeconfig whose server refuses connections: nothing listens on port 1.
	dead := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(dead, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: shop}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "help", args: []string{"-h"}, code: 0, stderr: "Exit status: 0 every listed Service"},
		{name: "positional", args: []string{"web"}, code: 2, stderr: `unexpected argument "web"`},
		{name: "-n and -A", args: []string{"-n", "a", "-A"}, code: 2, stderr: "exclude each other"},
		{name: "bad output", args: []string{"-o", "yaml"}, code: 2, stderr: `-o "yaml"`},
		{name: "missing kubeconfig", args: []string{"--kubeconfig", filepath.Join(t.TempDir(), "nope")}, code: 2, stderr: "loading the kubeconfig"},
		{name: "API server unreachable", args: []string{"--kubeconfig", dead, "--timeout", "5s"}, code: 2, stderr: "listing Services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runStatus(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			checkOutput(t, "stderr", stderr.String(), []string{tt.stderr}, false)
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty:\n%s", stdout.String())
			}
		})
	}
}

// TestStatusAgainstAPIServer runs herald status against a real kube-apiserver with Herald's CRDs: Services with
// addresses in their status, Announcements with health written through the status subresource.
func TestStatusAgainstAPIServer(t *testing.T) {
	cp, c := controlplanetest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"shop", "blog"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	service := func(ns, name string, ips ...string) {
		t.Helper()
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		if err := c.Status().Update(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	cond := func(typ string, st metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: "", LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}
	}
	announce := func(ns, name string, verdict heraldv1.HealthVerdict, addr string, responders ...heraldv1.HealthResponder) {
		t.Helper()
		an := &heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := c.Create(ctx, an); err != nil {
			t.Fatal(err)
		}
		healthy := metav1.ConditionTrue
		if verdict != heraldv1.HealthHealthy {
			healthy = metav1.ConditionFalse
		}
		an.Status = heraldv1.AnnouncementStatus{Node: "node-1", Addresses: []string{addr}, Interfaces: []string{"eth0"},
			Since: &metav1.Time{Time: now.Add(-time.Hour)},
			Health: &heraldv1.AnnouncementHealth{Verdict: verdict, Watcher: "node-2", LastProbe: &metav1.Time{Time: now.Add(-3 * time.Second)},
				Addresses: []heraldv1.AddressHealth{{Address: addr, Verdict: verdict, Responders: responders}}},
			Conditions: []metav1.Condition{cond("Announced", metav1.ConditionTrue, "Announcing"),
				cond("Conflict", metav1.ConditionFalse, "NoConflict"), cond("Healthy", healthy, string(verdict))}}
		if err := c.Status().Update(ctx, an); err != nil {
			t.Fatalf("writing the status of Announcement %s/%s: %v", ns, name, err)
		}
	}
	n1 := heraldv1.HealthResponder{MAC: "02:00:00:00:00:01", Node: "node-1", Latency: &metav1.Duration{Duration: 300 * time.Microsecond}}
	rogue := heraldv1.HealthResponder{MAC: "02:00:00:00:00:ee"}
	service("shop", "web", "198.51.100.5")
	announce("shop", "web", heraldv1.HealthHealthy, "198.51.100.5", n1)
	service("shop", "api", "198.51.100.6")
	announce("shop", "api", heraldv1.HealthDuplicate, "198.51.100.6", n1, rogue)
	service("shop", "lonely", "198.51.100.7")
	service("shop", "pending")
	service("blog", "www", "203.0.113.8")
	announce("blog", "www", heraldv1.HealthHealthy, "203.0.113.8", n1)

	run := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := runStatus(append([]string{"--kubeconfig", cp.Kubeconfig}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := run("-A")
	if code != 1 {
		t.Errorf("-A: exit code %d, want 1 (shop/api is duplicate, shop/lonely not announced); stderr:\n%s", code, errOut)
	}
	var got [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		got = append(got, strings.Fields(l))
	}
	want := [][]string{
		status.Columns,
		{"blog", "www", "203.0.113.8", "node-1", "eth0", "Healthy", "02:00:00:00:00:01(node-1)", "3s", "Healthy"},
		{"shop", "api", "198.51.100.6", "node-1", "eth0", "Duplicate", "02:00:00:00:00:01(node-1),02:00:00:00:00:ee", "3s", "Unhealthy"},
		{"shop", "lonely", "198.51.100.7", "-", "-", "-", "-", "-", "NotAnnounced"},
		{"shop", "web", "198.51.100.5", "node-1", "eth0", "Healthy", "02:00:00:00:00:01(node-1)", "3s", "Healthy"},
	}
	// The age reads 3s, or more on a slow machine.
	for _, row := range got[1:] {
		if len(row) > 7 && regexp.MustCompile(`^[0-9]+s$`).MatchString(row[7]) {
			row[7] = "3s"
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-A table (-want +got):\n%s\n%s", diff, out)
	}
	checkOutput(t, "stderr", errOut, []string{
		"shop/api: health Duplicate; 198.51.100.6: Duplicate, answered by 02:00:00:00:00:01 (node-1), 02:00:00:00:00:ee",
		"shop/lonely: no Announcement",
	}, false)

	if code, out, errOut := run("-n", "blog"); code != 0 || strings.Count(out, "\n") != 2 || errOut != "" {
		t.Errorf("-n blog: exit code %d, want 0, and one Service:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, out, errOut := run("--namespace", "empty"); code != 0 || out != "" || !strings.Contains(errOut, "No Services of type LoadBalancer with an address in namespace empty") {
		t.Errorf("an empty namespace: exit code %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, out, errOut = run("-A", "-o", "json")
	if code != 1 || errOut != "" {
		t.Errorf("-o json: exit code %d, want 1; stderr %s", code, errOut)
	}
	var doc status.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	var names []string
	for _, r := range doc.Services {
		names = append(names, r.Namespace+"/"+r.Name+"="+string(r.State))
	}
	if diff := cmp.Diff([]string{"blog/www=Healthy", "shop/api=Unhealthy", "shop/lonely=NotAnnounced", "shop/web=Healthy"}, names); diff != "" || doc.Version != 1 || doc.OK {
		t.Errorf("-o json: version %d ok %v, services (-want +got):\n%s", doc.Version, doc.OK, diff)
	}
	if h := doc.Services[1].Health; h == nil || len(h.Addresses) != 1 || len(h.Addresses[0].Responders) != 2 || h.Watcher != "node-2" {
		t.Errorf("-o json: shop/api health %+v", h)
	}

	code, out, _ = run("-A", "-o", "wide")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 5 {
		t.Fatalf("-o wide: exit code %d, want 1 and 5 lines:\n%s", code, out)
	}
	wantWide := []string{"60m", "node-2", "Announced=True/Announcing,Conflict=False/NoConflict,Healthy=False/Duplicate"}
	if diff := cmp.Diff(wantWide, strings.Fields(lines[2])[len(status.Columns):]); diff != "" {
		t.Errorf("-o wide columns of shop/api (-want +got):\n%s", diff)
	}
}
