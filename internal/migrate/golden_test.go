package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// readInputs decodes testdata files.
func readInputs(t *testing.T, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range files {
		o, err := ReadPath(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	return objs
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		inputs   []string
		opts     Options
		services bool
	}{
		{name: "crds", inputs: []string{"crds.yaml"}},
		{name: "legacy", inputs: []string{"legacy-configmap.yaml"}},
		{name: "services", inputs: []string{"crds.yaml", "services.yaml"}, services: true},
		{name: "services-keep", inputs: []string{"crds.yaml", "services.yaml"}, services: true, opts: Options{KeepMetalLBAnnotations: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Translate(readInputs(t, tt.inputs...), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			write := WriteYAML
			if tt.services {
				write = WriteServicesYAML
			}
			if err := write(&got, res); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/migrate -run TestGolden -update to write it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("output differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}
