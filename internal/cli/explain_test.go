package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainUsage: herald explain refuses bad command lines with exit 2 and says what is wrong, before it reads
// any kubeconfig; an unreadable kubeconfig is exit 2 too. What it prints from live speakers is checked by
// e2e/TestRealNodes, through the API server's pod proxy.
func TestExplainUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"explain"}, "the address (or NAMESPACE/SERVICE) to explain is missing"},
		{[]string{"explain", "web"}, `"web": want an IP address or NAMESPACE/SERVICE`},
		{[]string{"explain", "shop/web/x"}, "want an IP address or NAMESPACE/SERVICE"},
		{[]string{"explain", "198.51.100.7", "x"}, `unexpected argument "x"`},
		{[]string{"explain", "198.51.100.7", "-o", "yaml"}, `-o "yaml": want text or json`},
		{[]string{"explain", "--timeout=0", "198.51.100.7"}, "--timeout 0s: want more than 0"},
		{[]string{"explain", "198.51.100.7", "--kubeconfig", missing}, "loading the kubeconfig"},
	} {
		var out, errb bytes.Buffer
		code := operator("herald", usage, tc.args, nil, &out, &errb)
		if code != explainError || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("herald %v: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
