package charts_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/controlplane/controlplanetest"
)

const chart = "herald"

// tool returns the pinned binary bin/NAME, which `make test` builds first. Without it the test skips, except under
// CI=true, where it fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no %s (hack/tools.sh %s builds it): %v", p, name, err)
		}
		t.Skipf("no %s; `make test` builds it (hack/tools.sh %s)", p, name)
	}
	return p
}

// run runs a command and returns its standard output; stderr goes into the error.
func run(name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// render runs helm template with a release named herald in namespace ns and the given values files.
func render(t *testing.T, ns string, values ...string) []byte {
	t.Helper()
	args := []string{"template", "herald", chart, "--namespace", ns}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	out, err := run(tool(t, "helm"), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decode splits a multi-document YAML stream into objects, skipping empty documents.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		if s := string(bytes.TrimSpace(j)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		out = append(out, u)
	}
}

func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// helmOnly are the labels and annotations the chart adds to what config/default describes: Helm's bookkeeping and
// the CRDs' keep policy.
var (
	helmOnlyLabels      = []string{"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"}
	helmOnlyAnnotations = []string{"helm.sh/resource-policy"}
)

// normalize returns the objects by key, without the chart's own labels and annotations, as plain JSON values.
func normalize(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, o := range objs {
		o = o.DeepCopy()
		if l := o.GetLabels(); l != nil {
			for _, k := range helmOnlyLabels {
				delete(l, k)
			}
			o.SetLabels(l)
		}
		if a := o.GetAnnotations(); a != nil {
			for _, k := range helmOnlyAnnotations {
				delete(a, k)
			}
			o.SetAnnotations(a)
		}
		j, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[key(o)]; dup {
			t.Errorf("%s twice", key(o))
		}
		out[key(o)] = v
	}
	return out
}

func kustomizeDefault(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := run(tool(t, "kubectl"), "kustomize", "../config/default")
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

// TestDefaultsMatchKustomize checks that `helm install` with the default values and `kubectl apply -k
// config/default` create the same objects, but for Helm's labels and the CRDs' keep annotation. The chart leaves the
// Namespace to Helm (--create-namespace, or made beforehand), as Helm keeps its release record there; NOTES.txt
// names the Pod Security label that config/default's Namespace carries.
func TestDefaultsMatchKustomize(t *testing.T) {
	kust := normalize(t, kustomizeDefault(t))
	const nsKey = "Namespace /herald-system"
	ns, ok := kust[nsKey]
	if !ok {
		t.Fatalf("config/default has no %s", nsKey)
	}
	delete(kust, nsKey)
	got := normalize(t, decode(t, render(t, "herald-system")))
	if diff := cmp.Diff(kust, got); diff != "" {
		t.Errorf("config/default (-) and the chart (+) differ:\n%s", diff)
	}

	const label = "pod-security.kubernetes.io/enforce"
	labels, _, _ := unstructured.NestedStringMap(ns.(map[string]any), "metadata", "labels")
	if labels[label] != "privileged" {
		t.Errorf("config/default's Namespace: %s=%q, want privileged", label, labels[label])
	}
	notes, err := os.ReadFile(filepath.Join(chart, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(notes), label+"=privileged") {
		t.Errorf("NOTES.txt does not say to set %s=privileged", label)
	}
}

// TestImages checks that config/ and the chart name only the image `make image` builds: the Makefile's repository
// with the chart's appVersion as tag.
func TestImages(t *testing.T) {
	chartYAML, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil || meta.AppVersion == "" {
		t.Fatalf("Chart.yaml: appVersion %q, %v", meta.AppVersion, err)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE_REPOSITORY \?= (\S+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile sets no IMAGE_REPOSITORY")
	}
	if !regexp.MustCompile(`(?m)^IMAGE_TAG \?= \$\(VERSION\)$`).Match(makefile) ||
		!bytes.Contains(makefile, []byte(`charts/herald/Chart.yaml`)) {
		t.Error("the Makefile's IMAGE_TAG is not the chart's appVersion")
	}
	want := string(m[1]) + ":" + meta.AppVersion
	images := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, o := range objs {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				out = append(out, key(o)+": "+c.(map[string]any)["image"].(string))
			}
		}
		return out
	}
	for name, objs := range map[string][]*unstructured.Unstructured{
		"config/default": kustomizeDefault(t),
		"chart":          decode(t, render(t, "herald-system")),
	} {
		got := images(objs)
		if len(got) != 2 {
			t.Errorf("%s: containers %v, want the controller's and the speaker's", name, got)
		}
		for _, img := range got {
			if !strings.HasSuffix(img, ": "+want) {
				t.Errorf("%s: %s, want image %s", name, img, want)
			}
		}
	}
}

// TestLint runs helm lint with each value set.
func TestLint(t *testing.T) {
	sets, err := filepath.Glob("testdata/values-*.yaml")
	if err != nil || len(sets) == 0 {
		t.Fatalf("no testdata/values-*.yaml: %v", err)
	}
	for _, v := range append([]string{""}, sets...) {
		args := []string{"lint", "--strict", chart}
		if v != "" {
			args = append(args, "--values", v)
		}
		if out, err := run(tool(t, "helm"), args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestSchemaRefusesMisspelledKeys checks that a misspelled key fails helm lint and helm template, naming the key.
func TestSchemaRefusesMisspelledKeys(t *testing.T) {
	for file, bad := range map[string]string{
		"testdata/misspelled-top.yaml":    "imgae",
		"testdata/misspelled-nested.yaml": "tolerashuns",
		"testdata/misspelled-deep.yaml":   "conflictPolicyy",
	} {
		for _, args := range [][]string{{"lint", chart, "--values", file}, {"template", "herald", chart, "--values", file}} {
			out, err := run(tool(t, "helm"), args...)
			if err == nil {
				t.Errorf("helm %s accepted %s", strings.Join(args, " "), bad)
				continue
			}
			if msg := err.Error() + string(out); !strings.Contains(msg, "additional properties '"+bad+"' not allowed") {
				t.Errorf("helm %s: the error does not name %s:\n%s", strings.Join(args, " "), bad, msg)
			}
		}
	}
}

// TestSchemaRefusesSurge checks that helm refuses a speaker rollout with a surge, saying why: speakers use the
// host network, so a second speaker on a node could not bind the memberlist port and would never become Ready.
func TestSchemaRefusesSurge(t *testing.T) {
	const file = "testdata/surge.yaml"
	out, err := run(tool(t, "helm"), "template", "herald", chart, "--values", file)
	if err == nil {
		t.Fatalf("helm template accepted %s, a speaker rollout with maxSurge 1", file)
	}
	if msg := err.Error() + string(out); !strings.Contains(msg, "maxSurge") {
		t.Errorf("helm template %s: the error does not name maxSurge:\n%s", file, msg)
	}
}

// schemaNode is the part of values.schema.json this test reads.
type schemaNode struct {
	Comment              string                 `json:"$comment"`
	Type                 any                    `json:"type"`
	AdditionalProperties any                    `json:"additionalProperties"`
	Properties           map[string]*schemaNode `json:"properties"`
}

// oneValue is the $comment that marks an object refusing unknown keys that is still one value (resources).
const oneValue = "one value (not a group of values): values.yaml documents it as a whole"

// group reports whether a schema node is a group of values (an object that refuses unknown keys) rather than
// one value.
func (n *schemaNode) group() bool {
	return n.Type == "object" && n.AdditionalProperties == false && n.Comment != oneValue
}

// TestValuesDocumented checks that values.yaml and values.schema.json have the same keys, that every group in the
// schema refuses unknown keys, and that every value in values.yaml has a comment right above it.
func TestValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chart, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema schemaNode
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	values, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(values, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, n *schemaNode, v map[string]any)
	walk = func(path string, n *schemaNode, v map[string]any) {
		if !n.group() {
			t.Errorf("schema %s: a group that does not refuse unknown keys (additionalProperties: false)", path)
		}
		for k, sub := range n.Properties {
			if path == "" && k == "global" {
				continue // Helm's own, for subcharts
			}
			val, ok := v[k]
			if !ok {
				t.Errorf("values.yaml has no %s%s, which the schema describes", path, k)
				continue
			}
			if sub.group() {
				m, _ := val.(map[string]any)
				walk(path+k+".", sub, m)
			}
		}
		for k := range v {
			if _, ok := n.Properties[k]; !ok {
				t.Errorf("values.yaml has %s%s, which the schema does not describe (and so refuses)", path, k)
			}
		}
	}
	walk("", &schema, v)

	// Every key line outside a value's own body (a map or list spanning lines) is a group or a value; a value has a
	// comment right above it.
	keyLine := regexp.MustCompile(`^( *)([A-Za-z][A-Za-z0-9]*):(.*)$`)
	type open struct {
		indent int
		node   *schemaNode
	}
	stack := []open{{-1, &schema}}
	lines := strings.Split(string(values), "\n")
	skipDeeper := -1 // inside a value's body: lines indented deeper than this belong to it
	for i, line := range lines {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if skipDeeper >= 0 && indent > skipDeeper {
			continue
		}
		skipDeeper = -1
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("values.yaml:%d: not a key: %q", i+1, line)
			continue
		}
		for len(stack) > 1 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parent := stack[len(stack)-1].node
		n := parent.Properties[m[2]]
		if n == nil {
			continue // reported above
		}
		if n.group() {
			stack = append(stack, open{indent, n})
			continue
		}
		skipDeeper = indent
		if prev := strings.TrimSpace(lines[i-1]); !strings.HasPrefix(prev, "#") {
			t.Errorf("values.yaml:%d: %s has no comment above it", i+1, m[2])
		}
	}
}

// TestDryRunOnAPIServer renders the chart with each value set and server-side-applies every rendering with
// --dry-run=server on a real kube-apiserver: each object must pass the API server's validation and admission (the
// CRDs' schemas, the workloads' pod specs, RBAC objects, priority classes). The release namespaces exist first, and
// so do stand-ins for the Prometheus Operator's CRDs (testdata/monitoring-crds.yaml, written for this test: any
// spec), so the opt-in ServiceMonitors and PrometheusRule are accepted by kind only.
func TestDryRunOnAPIServer(t *testing.T) {
	kubectl := tool(t, "kubectl")
	tool(t, "helm")
	cp, _ := controlplanetest.Start(t)
	kc := "--kubeconfig=" + cp.Kubeconfig
	must := func(args ...string) {
		t.Helper()
		if out, err := run(kubectl, append([]string{kc}, args...)...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	must("apply", "--server-side", "-f", "testdata/monitoring-crds.yaml")
	must("wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	must("create", "namespace", "herald-system")
	must("create", "namespace", "lb")
	must("create", "namespace", "monitoring")

	sets, err := filepath.Glob("testdata/values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, ns, values string }{{"defaults", "herald-system", ""}}
	for _, s := range sets {
		cases = append(cases, struct{ name, ns, values string }{filepath.Base(s), "herald-system", s})
	}
	cases = append(cases, struct{ name, ns, values string }{"defaults in namespace lb", "lb", ""})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var values []string
			if c.values != "" {
				values = []string{c.values}
			}
			rendering := render(t, c.ns, values...)
			objs := decode(t, rendering)
			if len(objs) == 0 {
				t.Fatal("the rendering is empty")
			}
			file := filepath.Join(t.TempDir(), "rendering.yaml")
			if err := os.WriteFile(file, rendering, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run(kubectl, kc, "apply", "--server-side", "--dry-run=server", "--force-conflicts",
				"--field-manager=helm", "-o", "name", "-f", file)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// Every object was applied: one line of output per object.
			var want []string
			for _, o := range objs {
				want = append(want, o.GetName())
			}
			var got []string
			for _, l := range strings.Fields(string(out)) {
				got = append(got, l[strings.LastIndex(l, "/")+1:])
			}
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("objects applied (-rendered +applied):\n%s", diff)
			}
		})
	}

	// A real install and uninstall: the CRDs and a pool outlive the release. The control plane came with Herald's
	// CRDs, which Helm would refuse to adopt: they go first.
	t.Run("install and uninstall keep the CRDs and pools", func(t *testing.T) {
		crds := []string{"crd/announcements.herald.dev", "crd/ipaddresspools.herald.dev", "crd/l2advertisements.herald.dev"}
		must(append([]string{"delete", "--wait"}, crds...)...)
		helm := func(args ...string) {
			t.Helper()
			if out, err := run(tool(t, "helm"), append([]string{"--kubeconfig", cp.Kubeconfig, "--namespace", "herald-system"}, args...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		helm("install", "herald", chart)
		must(append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crds...)...)
		must("get", "-n", "herald-system", "daemonset/herald-speaker", "deployment/herald-controller")
		pool := filepath.Join(t.TempDir(), "pool.yaml")
		if err := os.WriteFile(pool, []byte("apiVersion: herald.dev/v1alpha1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [198.51.100.0/28]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		must("apply", "-f", pool)
		helm("uninstall", "herald", "--wait")
		if out, err := run(kubectl, kc, "get", "-n", "herald-system", "daemonset/herald-speaker"); err == nil {
			t.Errorf("the speaker DaemonSet outlived the release:\n%s", out)
		}
		must(append([]string{"get"}, crds...)...)
		must("get", "ipaddresspool/lan")
	})
}

// TestMonitoringMatchesKustomize checks that the chart's opt-in monitoring objects are config/prometheus's and
// config/grafana's: the metrics Services, the ServiceMonitors, the herald-alerts PrometheusRule and the
// dashboard's ConfigMap.
func TestMonitoringMatchesKustomize(t *testing.T) {
	var want []*unstructured.Unstructured
	for _, dir := range []string{"../config/prometheus", "../config/grafana"} {
		out, err := run(tool(t, "kubectl"), "kustomize", dir)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, decode(t, out)...)
	}
	values := filepath.Join(t.TempDir(), "monitoring.yaml")
	if err := os.WriteFile(values, []byte("metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}\n"+
		"grafana: {dashboard: {enabled: true}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := normalize(t, decode(t, render(t, "herald-system")))
	got := normalize(t, decode(t, render(t, "herald-system", values)))
	for k := range defaults {
		delete(got, k) // what the defaults render too
	}
	if diff := cmp.Diff(normalize(t, want), got); diff != "" {
		t.Errorf("config/prometheus and config/grafana (-) and the chart's monitoring (+) differ:\n%s", diff)
	}
}
