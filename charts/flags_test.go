package charts_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestRenderedFlagsParse runs the real herald binary with each container's rendered arguments followed by -h, for
// the default values and every testdata/values-*.yaml: the flag parser must accept every flag and value (a
// misspelled flag, a bad duration or number exits 2) before -h stops it.
func TestRenderedFlagsParse(t *testing.T) {
	tool(t, "helm")
	herald := filepath.Join(t.TempDir(), "herald")
	if out, err := exec.Command("go", "build", "-o", herald, "../cmd/herald").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sets, err := filepath.Glob("testdata/values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range append([]string{""}, sets...) {
		var values []string
		if set != "" {
			values = []string{set}
		}
		checked := 0
		for _, o := range decode(t, render(t, "herald-system", values...)) {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				args, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
				out, err := exec.Command(herald, append(args, "-h")...).CombinedOutput()
				if err != nil {
					t.Errorf("values %q, %s: herald %s -h: %v\n%s", set, key(o), strings.Join(args, " "), err, lastLines(out))
				}
				checked++
			}
		}
		if checked != 2 {
			t.Errorf("values %q: checked %d containers, want the controller and the speaker", set, checked)
		}
	}
}

func lastLines(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[:min(3, len(lines))], "\n")
}
