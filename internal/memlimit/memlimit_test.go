package memlimit

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLimit reads limits from cgroup trees laid out as the kernel lays them out, v1 and v2, on the host and in a
// container (cgroup namespace: the path is "/").
func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cgroup string
		files  map[string]string
		want   int64
		wantOK bool
	}{
		{name: "v1 pod cgroup", cgroup: "12:cpu,cpuacct:/kubepods/pod1/c1\n5:memory:/kubepods/pod1/c1\n",
			files: map[string]string{"memory/kubepods/pod1/c1/memory.limit_in_bytes": "268435456\n"}, want: 268435456, wantOK: true},
		{name: "v1 in a container", cgroup: "5:memory:/\n",
			files: map[string]string{"memory/memory.limit_in_bytes": "134217728\n"}, want: 134217728, wantOK: true},
		{name: "v1 namespaced path not mounted: the root", cgroup: "5:memory:/kubepods/pod1/c1\n",
			files: map[string]string{"memory/memory.limit_in_bytes": "134217728\n"}, want: 134217728, wantOK: true},
		{name: "v1 unlimited", cgroup: "5:memory:/\n",
			files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}},
		{name: "v2", cgroup: "0::/kubepods.slice/pod1\n",
			files: map[string]string{"kubepods.slice/pod1/memory.max": "268435456\n"}, want: 268435456, wantOK: true},
		{name: "v2 max", cgroup: "0::/\n", files: map[string]string{"memory.max": "max\n"}},
		{name: "no memory controller", cgroup: "12:cpu,cpuacct:/\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, v := range tc.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cg := filepath.Join(t.TempDir(), "cgroup")
			if err := os.WriteFile(cg, []byte(tc.cgroup), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok, err := Limit(root, cg)
			if err != nil || got != tc.want || ok != tc.wantOK {
				t.Errorf("Limit = %d, %v, %v; want %d, %v, nil", got, ok, err, tc.want, tc.wantOK)
			}
		})
	}
}

// TestLimitGarbage: a limit file that does not hold a number is an error, not a limit.
func TestLimitGarbage(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "memory"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "memory", "memory.limit_in_bytes"), []byte("lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(cg, []byte("5:memory:/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := Limit(root, cg); err == nil || ok {
		t.Errorf("Limit of a garbage file = ok %v, err %v; want an error", ok, err)
	}
}
