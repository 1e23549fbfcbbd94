package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/controlplane/controlplanetest"
	"github.com/heraldlb/herald/internal/validate"
	"github.com/heraldlb/herald/speaker"
)

const validPools = `apiVersion: herald.dev/v1alpha1
kind: IPAddressPool
metadata: {name: web}
spec: {addresses: [198.51.100.0/26, "2001:db8::/120"]}
---
apiVersion: herald.dev/v1alpha1
kind: L2Advertisement
metadata: {name: web}
spec: {ipAddressPools: [web]}
`

// overlapping adds a pool whose IPv6 range overlaps web's: an error.
const overlapping = `apiVersion: herald.dev/v1alpha1
kind: IPAddressPool
metadata: {name: web-b}
spec: {addresses: ["2001:db8::80/121"]}
`

// unannounced adds a pool nobody announces: a warning.
const unannounced = `apiVersion: herald.dev/v1alpha1
kind: IPAddressPool
metadata: {name: spare}
spec: {addresses: [203.0.113.0/28]}
`

// validateJSON runs `herald validate -o json` and returns its report.
func validateJSON(t *testing.T, args ...string) (int, validate.Report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runValidate(append(args, "-o", "json"), strings.NewReader(""), &stdout, &stderr)
	var r validate.Report
	if code != validateError {
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("-o json: %v\n%s", err, stdout.String())
		}
	}
	return code, r, stderr.String()
}

func briefFindings(r validate.Report) []string {
	out := []string{}
	for _, f := range r.Findings {
		out = append(out, fmt.Sprintf("%s %s %s %s", f.Severity, f.Check, f.Object, f.Field))
	}
	return out
}

func TestValidateCLI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clean := write("clean.yaml", validPools)
	overlap := write("overlap.yaml", overlapping)
	warn := write("warn.yaml", unannounced)
	bad := write("bad.yaml", validPools+"---\nkind: [\n")
	tree := filepath.Join(dir, "tree")
	write("tree/a/pools.yaml", validPools)
	write("tree/b/more.json", `{"apiVersion":"herald.dev/v1alpha1","kind":"IPAddressPool","metadata":{"name":"web-b"},"spec":{"addresses":["2001:db8::80/121"]}}`)
	write("tree/notes.txt", "not read")

	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string // substrings, in order
		stderr []string
	}{
		{name: "clean", args: []string{"-f", clean}, code: validateOK,
			stdout: []string{"No problems found in 1 IPAddressPool, 1 L2Advertisement, 0 Services, 0 Nodes"}},
		{name: "an error", args: []string{"-f", clean, "-f", overlap}, code: validateFindings,
			stdout: []string{"1 error, 1 warning, 0 unchecked in 2 IPAddressPools", "\nerror pool-overlap: IPAddressPool web-b spec.addresses[0]\n",
				"  2001:db8::80/121: also listed by IPAddressPool \"web\"", "  fix: list each address in one pool only"}},
		{name: "a directory", args: []string{"-f", tree}, code: validateFindings, stdout: []string{"error pool-overlap: IPAddressPool web-b"}},
		{name: "stdin", args: []string{"-f", "-"}, stdin: validPools + "---\n" + overlapping, code: validateFindings, stdout: []string{"error pool-overlap"}},
		{name: "warnings alone pass", args: []string{"-f", clean, "--filename", warn}, code: validateOK,
			stdout: []string{"0 errors, 1 warning", "warning pool-not-announced: IPAddressPool spare"}},
		{name: "warnings fail with --strict", args: []string{"-f", clean, "-f", warn, "--strict"}, code: validateFindings},
		{name: "other kinds passed over", args: []string{"-f", "-"}, stdin: validPools + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
			code: validateOK, stderr: []string{"passed over 1 objects of kinds it does not check"}},
		{name: "help", args: []string{"-h"}, code: validateOK, stderr: []string{"Usage: herald validate", "Exit status: 0 no error"}},
		{name: "no input", code: validateError, stderr: []string{"no input: give -f FILE|DIR|- or --from-cluster"}},
		{name: "an argument", args: []string{clean}, code: validateError, stderr: []string{"unexpected argument"}},
		{name: "bad format", args: []string{"-f", clean, "-o", "yaml"}, code: validateError, stderr: []string{`-o "yaml": the output format is text or json`}},
		{name: "kubeconfig without the cluster", args: []string{"-f", clean, "--kubeconfig", "x"}, code: validateError,
			stderr: []string{"--kubeconfig and --context need --from-cluster"}},
		{name: "unknown flag", args: []string{"--nope"}, code: validateError, stderr: []string{"flag provided but not defined"}},
		{name: "missing file", args: []string{"-f", filepath.Join(dir, "absent.yaml")}, code: validateError, stderr: []string{"absent.yaml: no such file"}},
		{name: "malformed YAML", args: []string{"-f", bad}, code: validateError, stderr: []string{"bad.yaml: document 3"}},
		{name: "stdin twice", args: []string{"-f", "-", "-f", "-"}, code: validateError, stderr: []string{"stdin can be read once"}},
		{name: "unreachable cluster", args: []string{"--from-cluster", "--kubeconfig", filepath.Join(dir, "absent-kubeconfig")}, code: validateError,
			stderr: []string{"loading the kubeconfig"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runValidate(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			checkOutput(t, "stdout", stdout.String(), tt.stdout, false)
			checkOutput(t, "stderr", stderr.String(), tt.stderr, false)
		})
	}

	code, r, _ := validateJSON(t, "-f", clean, "-f", overlap)
	want := []string{"error pool-overlap IPAddressPool web-b spec.addresses[0]", "warning pool-not-announced IPAddressPool web-b "}
	if diff := cmp.Diff(want, briefFindings(r)); diff != "" || code != validateFindings || r.OK || r.Version != 1 || r.Counts.Errors != 1 {
		t.Errorf("-o json: exit code %d, version %d, ok %v, counts %+v, findings (-want +got):\n%s", code, r.Version, r.OK, r.Counts, diff)
	}
}

// TestValidateFromCluster runs herald validate --from-cluster against a real kube-apiserver with Herald's CRDs
// (and without MetalLB's): every check that needs the cluster's Nodes, EndpointSlices and Announcements, and
// files laid over the cluster's objects.
func TestValidateFromCluster(t *testing.T) {
	cp, c := controlplanetest.Start(t)
	ctx := context.Background()
	mk := func(objs ...client.Object) {
		t.Helper()
		for _, o := range objs {
			if err := c.Create(ctx, o); err != nil {
				t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
			}
		}
	}
	poolObj := func(name string, addrs ...heraldv1.AddressRange) *heraldv1.IPAddressPool {
		return &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: heraldv1.IPAddressPoolSpec{Addresses: addrs}}
	}
	svc := func(name string, ann map[string]string, local bool) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: ann},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}},
				Selector: map[string]string{"app": name}}}
		if local {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		return s
	}
	mk(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"rack": "r1"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2", Labels: map[string]string{"rack": "r2"}}},
		poolObj("web", "198.51.100.0/26", "2001:db8::/120"),
		poolObj("web-b", "198.51.100.32/27"),
		&heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: heraldv1.L2AdvertisementSpec{
			IPAddressPools: []string{"web", "web-b", "gone"},
			NodeSelectors:  []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"rack": "r9"}}},
		}},
		&heraldv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "eth"}, Spec: heraldv1.L2AdvertisementSpec{
			IPAddressPools: []string{"web"}, Interfaces: []string{"eth9"},
		}},
		svc("web", map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.10"}, true),
		svc("api", map[string]string{"herald.dev/load-balancer-ips": "198.18.0.5"}, false),
	)
	an := &heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	mk(an)
	an.Status = heraldv1.AnnouncementStatus{Node: "node-2", Addresses: []string{"198.51.100.10"},
		Conditions: []metav1.Condition{{Type: speaker.ConditionAnnounced, Status: metav1.ConditionFalse, Reason: speaker.ReasonNoInterface,
			Message: "node-2 is elected but no interface", LastTransitionTime: metav1.Now()}}}
	if err := c.Status().Update(ctx, an); err != nil {
		t.Fatalf("writing the Announcement's status: %v", err)
	}

	code, r, errOut := validateJSON(t, "--from-cluster", "--kubeconfig", cp.Kubeconfig)
	want := []string{
		"error pool-overlap IPAddressPool web-b spec.addresses[0]",
		"error interface-not-found L2Advertisement eth spec.interfaces[0]",
		"error pool-not-found L2Advertisement web spec.ipAddressPools[2]",
		"error node-selector-matches-nothing L2Advertisement web spec.nodeSelectors[0]",
		"error service-request Service shop/api metadata.annotations[herald.dev/load-balancer-ips]",
		"error local-no-ready-endpoint Service shop/web spec.externalTrafficPolicy",
	}
	if diff := cmp.Diff(want, briefFindings(r)); diff != "" || code != validateFindings {
		t.Errorf("--from-cluster: exit code %d, want %d; findings (-want +got):\n%s\nstderr: %s", code, validateFindings, diff, errOut)
	}
	if r.Objects.Nodes != 2 || r.Objects.Announcements != 1 {
		t.Errorf("--from-cluster read %+v, want 2 Nodes and 1 Announcement", r.Objects)
	}

	// Files laid over the cluster: a fixed web-b and advertisement replace the cluster's.
	dir := t.TempDir()
	fix := filepath.Join(dir, "fix.yaml")
	if err := os.WriteFile(fix, []byte(`apiVersion: herald.dev/v1alpha1
kind: IPAddressPool
metadata: {name: web-b}
spec: {addresses: [198.51.100.64/27]}
---
apiVersion: herald.dev/v1alpha1
kind: L2Advertisement
metadata: {name: web}
spec:
  ipAddressPools: [web, web-b]
  nodeSelectors: [{matchLabels: {rack: r1}}, {matchLabels: {rack: r9}}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, r, errOut = validateJSON(t, "--from-cluster", "--kubeconfig", cp.Kubeconfig, "-f", fix)
	want = []string{
		"error interface-not-found L2Advertisement eth spec.interfaces[0]",
		"error service-request Service shop/api metadata.annotations[herald.dev/load-balancer-ips]",
		"error local-no-ready-endpoint Service shop/web spec.externalTrafficPolicy",
		"warning node-selector-matches-nothing L2Advertisement web spec.nodeSelectors[1]",
	}
	if diff := cmp.Diff(want, briefFindings(r)); diff != "" || code != validateFindings {
		t.Errorf("--from-cluster -f: exit code %d; findings (-want +got):\n%s\nstderr: %s", code, diff, errOut)
	}
}
