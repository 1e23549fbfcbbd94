package migrate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// objs decodes YAML documents written inline in a test.
func objs(t *testing.T, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := Decode(t.Name(), strings.NewReader(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// noteKeys projects notes onto "severity source field", the part a test pins exactly.
func noteKeys(notes []Note) []string {
	var out []string
	for _, n := range notes {
		out = append(out, n.Severity+" "+n.Source+" "+n.Field)
	}
	return out
}

const (
	poolA = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [198.51.100.0/28]}`
	l2All = `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, namespace: metallb-system}`
)

func TestTranslateNotes(t *testing.T) {
	tests := []struct {
		name  string
		docs  []string
		opts  Options
		want  []string // noteKeys
		words string   // a phrase the first note's message must hold
	}{
		{
			name: "everything translates",
			docs: []string{poolA, l2All},
		},
		{
			name: "more preferences than Herald takes",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: many, namespace: metallb-system}
spec:
  preferredNodeSelectors: [{weight: 1, preference: {}}, {weight: 2, preference: {}}, {weight: 3, preference: {}},
    {weight: 4, preference: {}}, {weight: 5, preference: {}}, {weight: 6, preference: {}}, {weight: 7, preference: {}},
    {weight: 8, preference: {}}, {weight: 9, preference: {}}]`},
			want:  []string{"skipped L2Advertisement metallb-system/many spec.preferredNodeSelectors", "info IPAddressPool metallb-system/a "},
			words: "9 preferences, Herald takes at most 8",
		},
		{
			name: "a preference with an invalid selector",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: bad, namespace: metallb-system}
spec:
  preferredNodeSelectors: [{weight: 10, preference: {matchExpressions: [{key: zone, operator: In}]}}]`},
			want:  []string{"skipped L2Advertisement metallb-system/bad spec.preferredNodeSelectors", "info IPAddressPool metallb-system/a "},
			words: "preference 0 is invalid",
		},
		{
			name: "invalid address skipped",
			docs: []string{`
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [198.51.100.0/28, "2001:db8::1-198.51.100.9"]}`, l2All},
			want:  []string{"skipped IPAddressPool metallb-system/a spec.addresses[1]"},
			words: "mixes IPv4 and IPv6",
		},
		{
			name: "unknown pool field",
			docs: []string{`
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/28]
  futureField: 1
  serviceAllocation: {priority: 1, colour: red}`, l2All},
			want: []string{
				"warning IPAddressPool metallb-system/a spec.futureField",
				"warning IPAddressPool metallb-system/a spec.serviceAllocation.colour",
			},
			words: "no such field",
		},
		{
			name: "same pool name in two namespaces",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: other}
spec: {addresses: [192.0.2.0/28]}`, l2All},
			want: []string{
				"warning IPAddressPool other/a metadata.name",
				"warning L2Advertisement metallb-system/all spec",
			},
			words: `renamed "other-a"`,
		},
		{
			name:  "same object twice",
			docs:  []string{poolA, poolA, l2All},
			want:  []string{"skipped IPAddressPool metallb-system/a "},
			words: "more than once",
		},
		{
			name: "advertisement names a pool not in the input",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [a, elsewhere]}`},
			want:  []string{"warning L2Advertisement metallb-system/l2 spec.ipAddressPools[1]"},
			words: "PoolNotFound",
		},
		{
			name: "bad interface name",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {interfaces: [eth0, "eth0:1"]}`},
			want: []string{"warning L2Advertisement metallb-system/l2 spec.interfaces[1]"},
		},
		{
			name: "unknown advertisement field",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {nodeSelectors: [{matchLabels: {a: b}}], priority: 3}`},
			want: []string{"warning L2Advertisement metallb-system/l2 spec.priority"},
		},
		{
			name: "pool announced by BGP only",
			docs: []string{poolA, `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b, namespace: metallb-system}
spec: {ipAddressPools: [a]}`},
			want: []string{
				"skipped BGPAdvertisement metallb-system/b ",
				"warning IPAddressPool metallb-system/a ",
			},
			words: "Layer 2 only",
		},
		{
			name: "BGP kinds",
			docs: []string{poolA, l2All, `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p, namespace: metallb-system}`, `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: f, namespace: metallb-system}`, `
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c, namespace: metallb-system}`},
			want: []string{
				"skipped BGPPeer metallb-system/p ",
				"skipped BFDProfile metallb-system/f ",
				"skipped Community metallb-system/c ",
			},
		},
		{
			name: "unknown MetalLB kind is informational",
			docs: []string{poolA, l2All, `
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: s, namespace: metallb-system}`},
			want: []string{"info ServiceL2Status metallb-system/s "},
		},
		{
			name:  "pool without advertisement",
			docs:  []string{poolA},
			want:  []string{"info IPAddressPool metallb-system/a "},
			words: "announces none",
		},
		{
			name: "deprecated AddressPool",
			docs: []string{`
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {name: old, namespace: metallb-system}
spec: {protocol: layer2, addresses: [198.51.100.0/28]}`, `
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {name: oldbgp, namespace: metallb-system}
spec: {protocol: bgp, addresses: [192.0.2.0/28]}`},
			want: []string{
				"skipped AddressPool metallb-system/oldbgp spec.protocol",
				"info L2Advertisement metallb-legacy-layer2 ",
			},
		},
		{
			name: "legacy ConfigMap with unknown keys",
			docs: []string{`
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    bgp-communities: {a: "1:1"}
    mystery: 1
    address-pools:
    - {name: p, protocol: layer2, addresses: [198.51.100.0/28], colour: red}
    - {protocol: layer2, addresses: [198.51.100.16/28]}
    - {name: q, protocol: ospf, addresses: [198.51.100.32/28]}`},
			want: []string{
				"skipped ConfigMap metallb-system/config data.config: bgp-communities",
				"warning ConfigMap metallb-system/config data.config: mystery",
				"warning ConfigMap metallb-system/config data.config: address-pools[0].colour",
				"skipped ConfigMap metallb-system/config data.config: address-pools[1].name",
				"skipped ConfigMap metallb-system/config data.config: address-pools[2].protocol",
				"info L2Advertisement metallb-legacy-layer2 ",
			},
		},
		{
			name: "legacy ConfigMap beside IPAddressPool resources",
			docs: []string{poolA, l2All, `
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools:
    - {name: old, protocol: layer2, addresses: [192.0.2.0/28]}`},
			want: []string{
				"warning ConfigMap metallb-system/config data.config",
				"info L2Advertisement metallb-legacy-layer2 ",
			},
			words: "leftover",
		},
		{
			name: "legacy ConfigMap that is not YAML",
			docs: []string{`
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data: {config: "address-pools: [unclosed"}`},
			want: []string{"skipped ConfigMap metallb-system/config data.config"},
		},
		{
			name: "Service with MetalLB's class",
			docs: []string{`
apiVersion: v1
kind: Service
metadata: {name: s, namespace: ns}
spec: {type: LoadBalancer, loadBalancerClass: metallb}`},
			want:  []string{"warning Service ns/s spec.loadBalancerClass"},
			words: "recreate the Service",
		},
		{
			name: "Service annotations that disagree",
			docs: []string{`
apiVersion: v1
kind: Service
metadata:
  name: s
  namespace: ns
  annotations: {metallb.io/loadBalancerIPs: 198.51.100.1, metallb.universe.tf/loadBalancerIPs: 198.51.100.2}
spec: {type: LoadBalancer}`},
			want: []string{"warning Service ns/s metadata.annotations.metallb.universe.tf/loadBalancerIPs"},
		},
		{
			name: "Service annotation disagrees with Herald's",
			docs: []string{`
apiVersion: v1
kind: Service
metadata:
  name: s
  namespace: ns
  annotations: {metallb.io/allow-shared-ip: a, herald.dev/allow-shared-ip: b}
spec: {type: LoadBalancer}`},
			want: []string{"warning Service ns/s metadata.annotations.herald.dev/allow-shared-ip"},
		},
		{
			name: "Service names a skipped pool",
			docs: []string{`
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bad, namespace: metallb-system}
spec: {addresses: [nonsense]}`, `
apiVersion: v1
kind: Service
metadata:
  name: s
  namespace: ns
  annotations: {metallb.io/address-pool: bad}
spec: {type: LoadBalancer}`},
			want: []string{
				"skipped IPAddressPool metallb-system/bad spec.addresses[0]",
				"skipped IPAddressPool metallb-system/bad spec.addresses",
				"warning Service ns/s metadata.annotations.metallb.io/address-pool",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Translate(objs(t, tt.docs...), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, noteKeys(res.Notes)); diff != "" {
				t.Errorf("notes (-want +got):\n%s\nall notes: %v", diff, res.Notes)
			}
			if tt.words != "" && (len(res.Notes) == 0 || !strings.Contains(res.Notes[0].Message, tt.words)) {
				t.Errorf("first note %v does not say %q", res.Notes, tt.words)
			}
			complete := true
			for _, n := range tt.want {
				if !strings.HasPrefix(n, "info ") {
					complete = false
				}
			}
			if got := res.Complete(); got != complete {
				t.Errorf("Complete() = %v, want %v", got, complete)
			}
		})
	}
}

func TestTranslatePoolFields(t *testing.T) {
	res, err := Translate(objs(t, `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system, labels: {zone: x}, annotations: {owner: me}}
spec:
  addresses: [" 198.51.100.0/28 ", "2001:db8::10-2001:db8::1f"]
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 5
    namespaces: [shop]
    namespaceSelectors: [{matchLabels: {team: web}}]
    serviceSelectors: [{matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}]`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []heraldv1.IPAddressPool{{
		TypeMeta:   heraldTypeMeta("IPAddressPool"),
		ObjectMeta: objectMeta("a", map[string]string{"zone": "x"}, "IPAddressPool metallb-system/a"),
		Spec: heraldv1.IPAddressPoolSpec{
			Addresses:     []heraldv1.AddressRange{"198.51.100.0/28", "2001:db8::10-2001:db8::1f"},
			AutoAssign:    ptr.To(false),
			AvoidBuggyIPs: true,
			ServiceAllocation: &heraldv1.ServiceAllocation{
				Priority:           5,
				Namespaces:         []string{"shop"},
				NamespaceSelectors: []heraldv1.Selector{{MatchLabels: map[string]heraldv1.LabelValue{"team": "web"}}},
				ServiceSelectors: []heraldv1.Selector{{MatchExpressions: []heraldv1.SelectorRequirement{
					{Key: "tier", Operator: "NotIn", Values: []string{"db"}},
				}}},
			},
		},
	}}
	if diff := cmp.Diff(want, res.Pools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
}

func TestTranslateRenamedPoolReferences(t *testing.T) {
	res, err := Translate(objs(t, poolA, `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: lab}
spec: {addresses: [192.0.2.0/28]}`, `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lab-a, namespace: x}
spec: {addresses: [192.0.2.16/28]}`, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: lab}
spec: {ipAddressPools: [a]}`, `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: x}
spec: {ipAddressPools: [lab-a]}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var pools, advs []string
	for _, p := range res.Pools {
		pools = append(pools, p.Name)
	}
	for _, a := range res.Advertisements {
		advs = append(advs, a.Name+":"+strings.Join(a.Spec.IPAddressPools, ","))
	}
	if diff := cmp.Diff([]string{"a", "lab-a", "x-lab-a"}, pools); diff != "" {
		t.Errorf("pool names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"l2:lab-a", "x-l2:x-lab-a"}, advs); diff != "" {
		t.Errorf("advertisements (-want +got):\n%s", diff)
	}
}

func TestTranslateServices(t *testing.T) {
	svc := `
apiVersion: v1
kind: Service
metadata:
  name: s
  namespace: ns
  annotations:
    metallb.universe.tf/loadBalancerIPs: 198.51.100.1
    metallb.io/address-pool: a
    metallb.io/ip-allocated-from-pool: a
    herald.dev/allow-shared-ip: k
    metallb.universe.tf/allow-shared-ip: k
spec: {type: LoadBalancer}`
	tests := []struct {
		name string
		opts Options
		want []ServicePatch
	}{
		{
			name: "rewrite",
			want: []ServicePatch{{
				Namespace: "ns", Name: "s",
				Set: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.1", "herald.dev/ip-pool": "a"},
				Remove: []string{"metallb.io/address-pool", "metallb.io/ip-allocated-from-pool",
					"metallb.universe.tf/allow-shared-ip", "metallb.universe.tf/loadBalancerIPs"},
			}},
		},
		{
			name: "keep",
			opts: Options{KeepMetalLBAnnotations: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Translate(objs(t, poolA, l2All, svc), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res.Services); diff != "" {
				t.Errorf("service patches (-want +got):\n%s", diff)
			}
			if len(res.Notes) != 0 {
				t.Errorf("unexpected notes %v", res.Notes)
			}
		})
	}
}

func TestTranslateErrors(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool"}}
	if _, err := Translate([]*unstructured.Unstructured{u}, Options{}); err == nil || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("Translate of a nameless object: error %v, want one naming metadata.name", err)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kinds   []string
		wantErr string
	}{
		{name: "yaml stream with empty documents", in: "---\n" + poolA + "\n---\n\n---\n" + l2All, kinds: []string{"IPAddressPool", "L2Advertisement"}},
		{name: "json", in: `{"apiVersion":"v1","kind":"List","items":[]}`, kinds: []string{"List"}},
		{name: "bad yaml", in: poolA + "\n---\nkind: [", wantErr: "in.yaml: document 2"},
		{name: "not an object", in: "a: 1\n", wantErr: "in.yaml: document 1 has no apiVersion or kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode("in.yaml", strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one holding %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, u := range got {
				kinds = append(kinds, u.GetKind())
			}
			if diff := cmp.Diff(tt.kinds, kinds); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}
