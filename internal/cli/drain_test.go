package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestPlacementUsage: drain, undrain and move refuse bad command lines with exit 2 and say what is wrong,
// before they read any kubeconfig.
func TestPlacementUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drain"}, "the node to drain is missing"},
		{[]string{"undrain"}, "the node to undrain is missing"},
		{[]string{"drain", "n1", "n2"}, `unexpected argument "n2"`},
		{[]string{"drain", "n1", "--wait=-1s"}, "--wait -1s: want 0 or more"},
		{[]string{"drain", "--timeout=0", "n1"}, "--timeout 0s: want more than 0"},
		{[]string{"move"}, "the Service to move (NAMESPACE/SERVICE) is missing"},
		{[]string{"move", "web"}, `"web": want NAMESPACE/SERVICE`},
		{[]string{"move", "shop/web"}, "give either --to NODE or --unpin"},
		{[]string{"move", "shop/web", "--to", "n1", "--unpin"}, "give either --to NODE or --unpin"},
		{[]string{"move", "shop/web/x", "--to", "n1"}, "want NAMESPACE/SERVICE"},
	} {
		var out, errb bytes.Buffer
		code := operator("herald", usage, tc.args, nil, &out, &errb)
		if code != drainError || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("herald %v: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
