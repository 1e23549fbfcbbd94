package lab_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldlb/herald/internal/lab"
)

// A confined process has the capabilities kept and no others, in every set, cannot gain more, and finds every
// filesystem read-only: as root (the speaker's image) and as a non-root user with ambient capabilities.
func TestConfine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tc := range []struct {
		name    string
		env     string
		want    []string
		notWant []string
	}{
		{"root, NET_RAW and NET_ADMIN", "uid=0 caps=12,13 ro=true",
			[]string{"Uid:\t0\t0\t0\t0", "CapPrm:\t0000000000003000", "CapEff:\t0000000000003000",
				"CapBnd:\t0000000000003000", "CapInh:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1",
				"Read-only file system"}, []string{"WRITABLE"}},
		{"root, no capability", "uid=0 caps= ro=true",
			[]string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
				"Read-only file system"}, []string{"WRITABLE"}},
		{"non-root with ambient capabilities", "uid=65532 caps=12,13 ro=false",
			[]string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532", "CapPrm:\t0000000000003000",
				"CapEff:\t0000000000003000", "CapBnd:\t0000000000003000", "CapAmb:\t0000000000003000", "NoNewPrivs:\t1"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			script := `grep -E '^(Uid|Gid|Cap[A-Za-z]+|NoNewPrivs):' /proc/self/status; ` +
				`if touch ` + dir + `/probe 2>&1; then echo WRITABLE; fi`
			cmd := exec.Command(os.Args[0], "sh", "-c", script)
			cmd.Env = append(os.Environ(), lab.EnvChild+"=confine", lab.EnvConfine+"="+tc.env)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(string(out), w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}
