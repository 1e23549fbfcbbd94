package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/heraldlb/herald/internal/migrate"
)

const migrateTestdata = "../migrate/testdata"

const cleanInput = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, namespace: metallb-system}
`

func TestMigrateCLI(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(cleanInput+"---\nkind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	for path, text := range map[string]string{
		"pool.yaml":          cleanInput,
		"sub/deeper/l2.json": `{"apiVersion":"metallb.io/v1beta1","kind":"L2Advertisement","metadata":{"name":"x","namespace":"metallb-system"}}`,
		"sub/notes.txt":      "not read",
	} {
		p := filepath.Join(tree, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	crds := filepath.Join(migrateTestdata, "crds.yaml")
	services := filepath.Join(migrateTestdata, "services.yaml")

	tests := []struct {
		name       string
		args       []string
		stdin      string
		code       int
		stdout     []string // substrings of stdout
		stderr     []string // substrings of stderr
		noStdout   bool
		jsonItems  int // with -o json: items in the List
		noStderr   bool
		lineCounts map[string]int // substring -> lines of stdout holding it
	}{
		{name: "help", args: []string{"-h"}, code: 0, noStdout: true, stderr: []string{"Exit status", "--server-side --field-manager=herald-migrate", "cosmetic", "-o yaml|json"}},
		{name: "no input", args: nil, code: 2, noStdout: true, stderr: []string{"no input"}},
		{name: "unknown flag", args: []string{"--frobnicate"}, code: 2, noStdout: true},
		{name: "bad output format", args: []string{"-f", "-", "-o", "toml"}, code: 2, noStdout: true, stderr: []string{`-o "toml"`}},
		{name: "positional argument", args: []string{"pools.yaml"}, code: 2, noStdout: true, stderr: []string{"name input files with -f"}},
		{name: "kubeconfig without from-cluster", args: []string{"-f", "-", "--kubeconfig", "x"}, code: 2, noStdout: true},
		{name: "missing file", args: []string{"-f", filepath.Join(dir, "nope.yaml")}, code: 1, noStdout: true, stderr: []string{"nope.yaml"}},
		{name: "bad yaml names the file", args: []string{"-f", bad}, code: 1, noStdout: true, stderr: []string{"bad.yaml: document 3"}},
		{name: "stdin twice", args: []string{"-f", "-", "-f", "-"}, stdin: cleanInput, code: 1, noStdout: true},
		{
			name: "clean stdin", args: []string{"-f", "-"}, stdin: cleanInput, code: 0, noStderr: true,
			stdout: []string{"kind: IPAddressPool", "name: a", "kind: L2Advertisement", "name: all"},
		},
		{
			name: "directory recursively", args: []string{"-f", tree}, code: 0, noStderr: true,
			lineCounts: map[string]int{"kind: L2Advertisement": 2, "kind: IPAddressPool": 1},
		},
		{
			name: "notes make exit 3", args: []string{"-f", crds}, code: 3,
			stdout: []string{"# note: skipped: IPAddressPool metallb-system/reserved spec.addresses[2]:", "name: lab-production"},
			stderr: []string{"note: skipped: IPAddressPool metallb-system/reserved spec.addresses[2]: CIDR", "note: skipped: BGPPeer metallb-system/tor: Herald announces on Layer 2 only"},
		},
		{name: "json", args: []string{"-f", "-", "-o", "json"}, stdin: cleanInput, code: 0, jsonItems: 2, noStderr: true},
		{
			name: "services", args: []string{"-f", crds, "--filename", services, "--services"}, code: 3,
			stdout:     []string{"kind: Service", "herald.dev/load-balancer-ips: 198.51.100.5", "# kubectl annotate --namespace shop service/web"},
			stderr:     []string{"note: warning: Service blog/classy spec.loadBalancerClass"},
			lineCounts: map[string]int{"kind: IPAddressPool": 0, "kind: Service": 3},
		},
		{
			name: "services json", args: []string{"-f", services, "--services", "-o", "json"}, code: 3, jsonItems: 3,
			stderr: []string{"once MetalLB is uninstalled, run: kubectl annotate --namespace shop service/web"},
		},
		{
			name: "keep annotations", args: []string{"-f", services, "--services", "--keep-metallb-annotations"}, code: 3,
			lineCounts: map[string]int{"kind: Service": 0, "kubectl annotate": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMigrate(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			checkOutput(t, "stdout", stdout.String(), tt.stdout, tt.noStdout)
			checkOutput(t, "stderr", stderr.String(), tt.stderr, tt.noStderr)
			for sub, want := range tt.lineCounts {
				if got := strings.Count(stdout.String(), sub); got != want {
					t.Errorf("stdout holds %q %d times, want %d:\n%s", sub, got, want, stdout.String())
				}
			}
			if tt.jsonItems > 0 {
				var list struct {
					Kind  string            `json:"kind"`
					Items []json.RawMessage `json:"items"`
				}
				if err := json.Unmarshal(stdout.Bytes(), &list); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
				}
				if diff := cmp.Diff([]any{"List", tt.jsonItems}, []any{list.Kind, len(list.Items)}); diff != "" {
					t.Errorf("JSON list kind and length (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func checkOutput(t *testing.T, which, got string, want []string, empty bool) {
	t.Helper()
	if empty && got != "" {
		t.Errorf("%s is not empty:\n%s", which, got)
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not hold %q:\n%s", which, w, got)
		}
	}
}

// TestMigrateFromCluster runs --from-cluster against a controller-runtime fake client holding MetalLB's objects
// as unstructured objects (installing MetalLB's CRDs into a real API server is left to the e2e suite).
func TestMigrateFromCluster(t *testing.T) {
	objs := func(text string) []client.Object {
		us, err := migrate.Decode("objs", strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		var out []client.Object
		for _, u := range us {
			out = append(out, u)
		}
		return out
	}
	tests := []struct {
		name   string
		objs   []client.Object
		noCRDs bool // listing MetalLB's kinds fails as on a cluster without its CRDs
		code   int
		stdout string
		stderr string
	}{
		{name: "MetalLB's resources", objs: objs(cleanInput), code: 0, stdout: "name: all"},
		{name: "no MetalLB", noCRDs: true, code: 1, stderr: "no MetalLB configuration in this cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotKubeconfig string
			saved := migrateClient
			t.Cleanup(func() { migrateClient = saved })
			migrateClient = func(kubeconfig string) (client.Reader, error) {
				gotKubeconfig = kubeconfig
				return fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(tt.objs...).
					WithInterceptorFuncs(interceptor.Funcs{
						List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
							gvk := list.GetObjectKind().GroupVersionKind()
							if tt.noCRDs && gvk.Group == migrate.MetalLBGroup {
								return &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
							}
							return c.List(ctx, list, opts...)
						},
					}).Build(), nil
			}
			var stdout, stderr bytes.Buffer
			code := runMigrate([]string{"--from-cluster", "--kubeconfig", "/k"}, nil, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if gotKubeconfig != "/k" {
				t.Errorf("kubeconfig %q, want /k", gotKubeconfig)
			}
			checkOutput(t, "stdout", stdout.String(), []string{tt.stdout}, false)
			checkOutput(t, "stderr", stderr.String(), []string{tt.stderr}, false)
		})
	}
}
