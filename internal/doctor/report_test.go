package doctor

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReport(t *testing.T) {
	findings := []Finding{
		{Check: CheckIPForward, Severity: SeverityInfo, Subject: "ipv4", Message: "forwarding on"},
		{Check: CheckArpIgnore, Severity: SeverityOK, Subject: "eth0", Message: "fine"},
		{Check: CheckProxyARP, Severity: SeverityError, Subject: "eth1", Message: "proxy_arp on", Fix: "sysctl -w net.ipv4.conf.eth1.proxy_arp=0"},
		{Check: CheckShadowRoute, Severity: SeverityWarning, Subject: "198.51.100.10", Message: "shadowed", Fix: "ip route del x"},
		{Check: CheckMemberlistPort, Severity: SeverityError, Subject: "198.51.100.3:7946", Message: "refused", Fix: "open it"},
	}
	tests := []struct {
		name     string
		report   Report
		wantText string
		wantJSON string
	}{
		{
			name:   "grouped by severity, worst first, fixes underneath",
			report: Report{Node: "node-a", Findings: findings},
			wantText: `herald doctor on node-a: 2 errors, 1 warning, 1 info, 1 ok

Errors:
  ✗ proxy_arp eth1: proxy_arp on
      fix: sysctl -w net.ipv4.conf.eth1.proxy_arp=0
  ✗ memberlist_port 198.51.100.3:7946: refused
      fix: open it

Warnings:
  ! shadow_route 198.51.100.10: shadowed
      fix: ip route del x

Info:
  i ip_forward ipv4: forwarding on

OK:
  ✓ arp_ignore eth0: fine
`,
		},
		{
			name:     "no findings",
			report:   Report{Node: "node-b"},
			wantText: "herald doctor on node-b: 0 errors, 0 warnings, 0 info, 0 ok\n",
			wantJSON: `{"node":"node-b","findings":[]}`,
		},
		{
			name:     "JSON leaves out an empty fix",
			report:   Report{Node: "n", Findings: findings[1:3]},
			wantJSON: `{"node":"n","findings":[{"check":"arp_ignore","severity":"ok","subject":"eth0","message":"fine"},{"check":"proxy_arp","severity":"error","subject":"eth1","message":"proxy_arp on","fix":"sysctl -w net.ipv4.conf.eth1.proxy_arp=0"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantText != "" {
				var b strings.Builder
				if err := tt.report.WriteText(&b); err != nil {
					t.Fatalf("WriteText: %v", err)
				}
				if diff := cmp.Diff(tt.wantText, b.String()); diff != "" {
					t.Errorf("WriteText (-want +got):\n%s", diff)
				}
			}
			var b strings.Builder
			if err := tt.report.WriteJSON(&b); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			if tt.wantJSON != "" {
				var v any
				if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
					t.Fatalf("WriteJSON wrote invalid JSON: %v\n%s", err, b.String())
				}
				var want any
				if err := json.Unmarshal([]byte(tt.wantJSON), &want); err != nil {
					t.Fatalf("bad wantJSON: %v", err)
				}
				if diff := cmp.Diff(want, v); diff != "" {
					t.Errorf("WriteJSON (-want +got):\n%s", diff)
				}
			}
			var back Report
			if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
				t.Fatalf("WriteJSON output does not decode: %v", err)
			}
			if diff := cmp.Diff(tt.report.Findings, back.Findings, cmpEmptyAsNil); diff != "" {
				t.Errorf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmptyAsNil treats a nil and an empty finding list alike.
var cmpEmptyAsNil = cmp.FilterValues(func(a, b []Finding) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())
