package validate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// reportSnapshot has one finding of each severity.
func reportSnapshot() *Snapshot {
	s := clean()
	s.Pools = append(s.Pools, pool("web-b", nil, "198.51.100.32/27"))
	s.Advertisements[0].Spec.Interfaces = []string{"eth0", "eth1"}
	return s
}

// lanSnapshot is the README's example (testdata/lan.yaml, output testdata/lan.golden.txt).
func lanSnapshot(t *testing.T) *Snapshot {
	s, _, err := FromObjects(readTestdata(t, "lan.yaml"), "herald.dev/l2")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteTextGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		snap *Snapshot
	}{{"report", reportSnapshot()}, {"clean", clean()}, {"lan", lanSnapshot(t)}} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := NewReport(tt.snap, false).WriteText(&out); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden.txt")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/validate -run TestWriteTextGolden -update to write it)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("text output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriteJSON pins the JSON document's shape: its keys and types.
func TestWriteJSON(t *testing.T) {
	var out bytes.Buffer
	if err := NewReport(reportSnapshot(), true).WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	findings := doc["findings"].([]any)
	doc["findings"] = len(findings)
	want := map[string]any{
		"version": 1.0, "ok": false, "strict": true,
		"counts":   map[string]any{"errors": 1.0, "warnings": 1.0, "unchecked": 1.0},
		"objects":  map[string]any{"ipAddressPools": 3.0, "l2Advertisements": 2.0, "services": 3.0, "nodes": 2.0, "endpointSlices": 1.0, "announcements": 1.0},
		"findings": 3,
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("JSON document (-want +got):\n%s", diff)
	}
	wantFinding := map[string]any{"check": "pool-overlap", "severity": "error", "object": "IPAddressPool web-b", "field": "spec.addresses[0]",
		"message": `198.51.100.32/27: also listed by IPAddressPool "web"; the controller hands them out only from "web", created earlier, and marks this pool Overlapping`,
		"fix":     `list each address in one pool only: take 198.51.100.32/27 out of IPAddressPool "web-b" or "web"`}
	if diff := cmp.Diff(wantFinding, findings[0]); diff != "" {
		t.Errorf("first finding (-want +got):\n%s", diff)
	}
	var empty bytes.Buffer
	if err := NewReport(clean(), false).WriteJSON(&empty); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(empty.Bytes(), []byte(`"findings": []`)) || !bytes.Contains(empty.Bytes(), []byte(`"ok": true`)) {
		t.Errorf("a clean report: want ok and an empty findings list, got\n%s", empty.String())
	}
}

// TestOK: errors fail, warnings fail only with strict, unchecked never.
func TestOK(t *testing.T) {
	warn := clean()
	warn.Pools = append(warn.Pools, pool("spare", nil, "198.18.0.0/24"))
	unchecked := clean()
	unchecked.FromCluster, unchecked.Nodes = false, nil
	for _, tt := range []struct {
		name            string
		snap            *Snapshot
		lenient, strict bool
	}{
		{"clean", clean(), true, true},
		{"error", reportSnapshot(), false, false},
		{"warning", warn, true, false},
		{"unchecked", unchecked, true, true},
	} {
		if got := NewReport(tt.snap, false).OK; got != tt.lenient {
			t.Errorf("%s: OK %v, want %v", tt.name, got, tt.lenient)
		}
		if got := NewReport(tt.snap, true).OK; got != tt.strict {
			t.Errorf("%s --strict: OK %v, want %v", tt.name, got, tt.strict)
		}
	}
}
