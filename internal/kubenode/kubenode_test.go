package kubenode

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnescapeMount(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "/run/herald-kubenode/hl1/node1/containerd", "/run/herald-kubenode/hl1/node1/containerd"},
		{"space", `/var/lib/a\040b`, "/var/lib/a b"},
		{"tab and backslash", `/x\011y\134z`, "/x\ty\\z"},
		{"not an escape", `/x\9`, `/x\9`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unescapeMount(tc.in); got != tc.want {
				t.Errorf("unescapeMount(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// The configurations render with every verb filled: a wrong index shows as %!.
func TestConfigsRender(t *testing.T) {
	for name, s := range map[string]string{
		"containerd": fmt.Sprintf(containerdConfig, "/data", "/state", "herald.test/labpod:e2e"),
		"cni":        fmt.Sprintf(cniConfig, "herald-kubenode-hl1", "198.18.65.0/24", "/state"),
		"kubelet":    fmt.Sprintf(kubeletConfig, "/herald-kubenode-hl1-node1", "/state", "198.51.100.11", "/data"),
		"kube-proxy": fmt.Sprintf(proxyConfig, "/kubeconfig", "node1", ClusterCIDR),
	} {
		if strings.Contains(s, "%!") {
			t.Errorf("%s configuration renders badly:\n%s", name, s)
		}
	}
}
