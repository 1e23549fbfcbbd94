package speaker

import (
	"net/netip"
	"testing"
)

func TestProxyARPAnswers(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.20")
	for _, tc := range []struct {
		name  string
		proxy map[string]int
		route map[netip.Addr]string
		want  bool
	}{
		{name: "proxy_arp off", proxy: map[string]int{}, route: map[netip.Addr]string{vip: "eth1"}},
		{name: "on for the link, routed through another", proxy: map[string]int{"eth0": 1}, route: map[netip.Addr]string{vip: "eth1"}, want: true},
		{name: "on for all, routed through another", proxy: map[string]int{"all": 1}, route: map[netip.Addr]string{vip: "kube-ipvs0"}, want: true},
		{name: "on, routed through the same link", proxy: map[string]int{"all": 1}, route: map[netip.Addr]string{vip: "eth0"}},
		{name: "on, no route", proxy: map[string]int{"all": 1}},
		{name: "on for another link only", proxy: map[string]int{"eth1": 1}, route: map[netip.Addr]string{vip: "eth1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := proxyARPAnswers(vip, "eth0", tc.proxy, tc.route); (got != "") != tc.want {
				t.Errorf("proxyARPAnswers = %q, want answering %v", got, tc.want)
			}
		})
	}
}
