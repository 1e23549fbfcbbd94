package prometheus_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	runbookURL = "https://github.com/heraldlb/herald/blob/main/docs/runbooks.md#"
	runbooks   = "../../docs/runbooks.md"
	// rulesFile is the name the tests under tests/ give in rule_files; TestPromtool writes the PrometheusRule's
	// groups there.
	rulesFile = "herald-alerts.rules.yaml"
)

// wantAlerts are the alerts operators rely on, with their severity.
var wantAlerts = map[string]string{
	"HeraldAddressDark":            "critical",
	"HeraldDuplicateResponders":    "critical",
	"HeraldForeignResponder":       "warning",
	"HeraldWrongResponder":         "warning",
	"HeraldMembershipDisagreement": "warning",
	"HeraldSpeakerDown":            "warning",
	"HeraldPoolNearlyExhausted":    "warning",
	"HeraldPoolExhausted":          "critical",
}

// readObjects decodes every document of a YAML file into an unstructured object.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s := string(bytes.TrimSpace(j)); s == "null" || s == "{}" {
			continue // a comment-only document
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil { // numbers become int64, as in the API server
			t.Fatalf("%s: %v", path, err)
		}
		if u.GetAPIVersion() == "" || u.GetName() == "" {
			t.Fatalf("%s: a document without apiVersion or metadata.name", path)
		}
		out = append(out, u)
	}
}

// manifests reads the resources kustomization.yaml lists, and checks that it lists every manifest here.
func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, files) {
		t.Fatalf("kustomization.yaml lists %v; the manifests here are %v", got, files)
	}
	var out []*unstructured.Unstructured
	for _, f := range k.Resources {
		out = append(out, readObjects(t, f)...)
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func stringMap(t *testing.T, o *unstructured.Unstructured, fields ...string) map[string]string {
	t.Helper()
	m, found, err := unstructured.NestedStringMap(o.Object, fields...)
	if err != nil || !found {
		t.Fatalf("%s %s: %s: found %v, %v", o.GetKind(), o.GetName(), strings.Join(fields, "."), found, err)
	}
	return m
}

func slice(t *testing.T, o map[string]any, fields ...string) []map[string]any {
	t.Helper()
	s, found, err := unstructured.NestedSlice(o, fields...)
	if err != nil || !found {
		t.Fatalf("%s: found %v, %v", strings.Join(fields, "."), found, err)
	}
	out := make([]map[string]any, len(s))
	for i, v := range s {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s[%d] is a %T", strings.Join(fields, "."), i, v)
		}
		out[i] = m
	}
	return out
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if big[k] != v {
			return false
		}
	}
	return true
}

// TestScrapeTargets checks that each metrics Service selects the pods of its workload, exposes the container
// port named metrics under that name and number, and that exactly its ServiceMonitor selects it.
func TestScrapeTargets(t *testing.T) {
	objs := manifests(t)
	rules, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		workload, kind, name, service, monitor string
		port                                   int64
		honorLabels                            bool // the speaker's health metric has a label named service
		jobInRules                             bool // HeraldSpeakerDown names the job
	}{
		{"../speaker/daemonset.yaml", "DaemonSet", "herald-speaker", "herald-speaker-metrics", "herald-speaker", 9122, true, true},
		{"../manager/controller.yaml", "Deployment", "herald-controller", "herald-controller-metrics", "herald-controller", 9120, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := find(readObjects(t, c.workload), c.kind, c.name)
			if w == nil {
				t.Fatalf("%s has no %s %s", c.workload, c.kind, c.name)
			}
			podLabels := stringMap(t, w, "spec", "template", "metadata", "labels")
			var containerPort int64
			for _, ctr := range slice(t, w.Object, "spec", "template", "spec", "containers") {
				ports, _, _ := unstructured.NestedSlice(ctr, "ports")
				for _, p := range ports {
					p := p.(map[string]any)
					if p["name"] == "metrics" {
						containerPort, _ = p["containerPort"].(int64)
					}
				}
			}
			if containerPort != c.port {
				t.Fatalf("%s: container port metrics is %d, want %d", c.workload, containerPort, c.port)
			}

			svc := find(objs, "Service", c.service)
			if svc == nil {
				t.Fatalf("no Service %s", c.service)
			}
			if svc.GetNamespace() != w.GetNamespace() {
				t.Errorf("Service %s is in namespace %q, its pods in %q", c.service, svc.GetNamespace(), w.GetNamespace())
			}
			if ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP"); ip != "None" {
				t.Errorf("Service %s: clusterIP %q, want None (headless)", c.service, ip)
			}
			if sel := stringMap(t, svc, "spec", "selector"); !maps.Equal(sel, podLabels) {
				t.Errorf("Service %s selects %v; the pods are labelled %v", c.service, sel, podLabels)
			}
			if !maps.Equal(svc.GetLabels(), w.GetLabels()) {
				t.Errorf("Service %s is labelled %v, its workload %v", c.service, svc.GetLabels(), w.GetLabels())
			}
			ports := slice(t, svc.Object, "spec", "ports")
			if len(ports) != 1 || ports[0]["name"] != "metrics" || ports[0]["port"] != c.port || ports[0]["targetPort"] != "metrics" {
				t.Errorf("Service %s ports %v, want one named metrics, port %d, targetPort metrics", c.service, ports, c.port)
			}
			if c.jobInRules && !strings.Contains(string(rules), `job="`+c.service+`"`) {
				t.Errorf("rules.yaml does not name the job %s, the Service's name", c.service)
			}

			var selecting []string
			for _, o := range objs {
				if o.GetKind() != "ServiceMonitor" {
					continue
				}
				sel := stringMap(t, o, "spec", "selector", "matchLabels")
				names, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "namespaceSelector", "matchNames")
				if len(sel) > 0 && subset(sel, svc.GetLabels()) && slices.Contains(names, svc.GetNamespace()) {
					selecting = append(selecting, o.GetName())
				}
			}
			if !slices.Equal(selecting, []string{c.monitor}) {
				t.Fatalf("Service %s is selected by the ServiceMonitors %v, want [%s]", c.service, selecting, c.monitor)
			}
			mon := find(objs, "ServiceMonitor", c.monitor)
			if mon.GetAPIVersion() != "monitoring.coreos.com/v1" || mon.GetNamespace() != svc.GetNamespace() {
				t.Errorf("ServiceMonitor %s: %s in %q", c.monitor, mon.GetAPIVersion(), mon.GetNamespace())
			}
			eps := slice(t, mon.Object, "spec", "endpoints")
			if len(eps) != 1 || eps[0]["port"] != "metrics" {
				t.Fatalf("ServiceMonitor %s endpoints %v, want one on port metrics", c.monitor, eps)
			}
			if honor, _ := eps[0]["honorLabels"].(bool); honor != c.honorLabels {
				t.Errorf("ServiceMonitor %s: honorLabels %v, want %v", c.monitor, honor, c.honorLabels)
			}
		})
	}
}

// promRule returns the herald-alerts PrometheusRule.
func promRule(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	r := find(manifests(t), "PrometheusRule", "herald-alerts")
	if r == nil {
		t.Fatal("no PrometheusRule herald-alerts")
	}
	if r.GetAPIVersion() != "monitoring.coreos.com/v1" || r.GetNamespace() != "herald-system" {
		t.Fatalf("PrometheusRule herald-alerts: %s in %q", r.GetAPIVersion(), r.GetNamespace())
	}
	return r
}

// anchors are the GitHub anchors of a Markdown file's headings.
func anchors(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	out := map[string]string{}
	inCode := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		out[a] = title
	}
	return out
}

var alertName = regexp.MustCompile(`^Herald[A-Za-z]+$`)

// TestAlerts checks that every alert has a severity, summary, description and runbook_url, that each runbook
// URL's anchor is a section of docs/runbooks.md, and that every alert section there has its alert.
func TestAlerts(t *testing.T) {
	sections := anchors(t, runbooks)
	groups := slice(t, promRule(t).Object, "spec", "groups")
	seen := map[string]bool{}
	for _, g := range groups {
		for _, r := range slice(t, g, "rules") {
			name, _ := r["alert"].(string)
			if name == "" {
				t.Errorf("group %v: a rule without alert: %v", g["name"], r)
				continue
			}
			if seen[name] {
				t.Errorf("alert %s is defined twice", name)
			}
			seen[name] = true
			if expr, _ := r["expr"].(string); strings.TrimSpace(expr) == "" {
				t.Errorf("%s: no expr", name)
			}
			if f, _ := r["for"].(string); f == "" {
				t.Errorf("%s: no for", name)
			}
			labels, _, _ := unstructured.NestedStringMap(r, "labels")
			if want, ok := wantAlerts[name]; !ok {
				t.Errorf("alert %s is not in wantAlerts", name)
			} else if labels["severity"] != want {
				t.Errorf("%s: severity %q, want %q", name, labels["severity"], want)
			}
			ann, _, _ := unstructured.NestedStringMap(r, "annotations")
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(ann[k]) == "" {
					t.Errorf("%s: no %s annotation", name, k)
				}
			}
			if want := runbookURL + strings.ToLower(name); ann["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", name, ann["runbook_url"], want)
			}
			if _, ok := sections[strings.ToLower(name)]; !ok {
				t.Errorf("%s: docs/runbooks.md has no section %q", name, name)
			}
		}
	}
	for name := range wantAlerts {
		if !seen[name] {
			t.Errorf("alert %s is missing", name)
		}
	}
	for a, title := range sections {
		if alertName.MatchString(title) && !seen[title] {
			t.Errorf("docs/runbooks.md has section %q (#%s) but no alert has that name", title, a)
		}
	}
	data, err := os.ReadFile(runbooks)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(data), -1) {
		if _, ok := sections[m[1]]; !ok {
			t.Errorf("docs/runbooks.md links to #%s, which is no section", m[1])
		}
	}
}

// TestRuleTestsCoverEveryAlert checks that for every alert the promtool tests under tests/ have an evaluation
// where it fires and one where it does not.
func TestRuleTestsCoverEveryAlert(t *testing.T) {
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no tests under tests/: %v", err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			RuleFiles []string `json:"rule_files"`
			Tests     []struct {
				AlertRuleTests []struct {
					Alertname string           `json:"alertname"`
					ExpAlerts []map[string]any `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.Equal(doc.RuleFiles, []string{rulesFile}) {
			t.Errorf("%s: rule_files %v, want [%s]", f, doc.RuleFiles, rulesFile)
		}
		for _, tc := range doc.Tests {
			for _, a := range tc.AlertRuleTests {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	for name := range wantAlerts {
		if !fires[name] {
			t.Errorf("no test under tests/ expects %s to fire", name)
		}
		if !quiet[name] {
			t.Errorf("no test under tests/ expects %s not to fire", name)
		}
	}
}

// promtool is the pinned promtool: $PROMTOOL, else bin/promtool, which `make prometheus-rules` builds.
func promtool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PROMTOOL")
	if p == "" {
		p = "../../bin/promtool"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no promtool at %s (hack/tools.sh promtool builds it): %v", p, err)
		}
		t.Skipf("no promtool at %s; `make prometheus-rules` builds it and runs this test", p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestPromtool writes the PrometheusRule's groups as a rules file beside copies of tests/*.yaml, then runs
// `promtool check rules` on it and `promtool test rules` on the tests.
func TestPromtool(t *testing.T) {
	bin := promtool(t)
	groups, _, err := unstructured.NestedSlice(promRule(t).Object, "spec", "groups")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, rulesFile), out, 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no tests under tests/: %v", err)
	}
	var tests []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, filepath.Base(f))
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}
	run("check", "rules", rulesFile)
	run(append([]string{"test", "rules"}, tests...)...)
}
