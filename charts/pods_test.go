package charts_test

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestPodDefaults checks the chart's promises about its pods, in every rendering: requests on every container,
// RuntimeDefault seccomp, no privilege escalation, a read-only root filesystem; and with the default values, the
// speaker's rollout one node at a time, its system-node-critical priority, its memory limit and no CPU limit (CFS throttling stalls it), and a
// grace period longer than its 2 s leave timeout.
func TestPodDefaults(t *testing.T) {
	sets, err := filepath.Glob("testdata/values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range append([]string{""}, sets...) {
		var values []string
		if set != "" {
			values = []string{set}
		}
		for _, o := range decode(t, render(t, "herald-system", values...)) {
			pod, found, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
			if !found {
				continue
			}
			where := set + " " + key(o)
			if p, _, _ := unstructured.NestedString(pod, "securityContext", "seccompProfile", "type"); p != "RuntimeDefault" {
				t.Errorf("%s: seccompProfile %q, want RuntimeDefault", where, p)
			}
			cs, _, _ := unstructured.NestedSlice(pod, "containers")
			for _, c := range cs {
				c := c.(map[string]any)
				for _, r := range []string{"cpu", "memory"} {
					if v, _, _ := unstructured.NestedString(c, "resources", "requests", r); v == "" {
						t.Errorf("%s: container %v has no %s request", where, c["name"], r)
					}
				}
				if e, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); !found || e {
					t.Errorf("%s: container %v allows privilege escalation", where, c["name"])
				}
				if ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem"); !ro {
					t.Errorf("%s: container %v has a writable root filesystem", where, c["name"])
				}
			}
			if set != "" || o.GetName() != "herald-speaker" {
				continue
			}
			u, _, _ := unstructured.NestedMap(o.Object, "spec", "updateStrategy")
			if typ, _, _ := unstructured.NestedString(u, "type"); typ != "RollingUpdate" {
				t.Errorf("speaker: updateStrategy %q, want RollingUpdate", typ)
			}
			if n, _, _ := unstructured.NestedInt64(u, "rollingUpdate", "maxUnavailable"); n != 1 {
				t.Errorf("speaker: maxUnavailable %d, want 1 (one speaker at a time hands its addresses off)", n)
			}
			if p, _, _ := unstructured.NestedString(pod, "priorityClassName"); p != "system-node-critical" {
				t.Errorf("speaker: priorityClassName %q, want system-node-critical", p)
			}
			if g, _, _ := unstructured.NestedInt64(pod, "terminationGracePeriodSeconds"); g <= 2 {
				t.Errorf("speaker: terminationGracePeriodSeconds %d, want more than the 2 s leave timeout", g)
			}
			limits, _, _ := unstructured.NestedStringMap(cs[0].(map[string]any), "resources", "limits")
			if _, ok := limits["cpu"]; ok {
				t.Errorf("speaker: a CPU limit %s; CFS throttling stalls the speaker", limits["cpu"])
			}
			if limits["memory"] != "512Mi" {
				t.Errorf("speaker: memory limit %q, want 512Mi (1.9 times the 269 MiB peak with 10,000 Services on 3 nodes)", limits["memory"])
			}
		}
	}
}
