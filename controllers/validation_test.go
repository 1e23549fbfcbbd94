package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// TestSchemaValidation applies pools and advertisements to the real API server and checks that each mistake
// is refused with its own readable message, and that valid objects are accepted.
func TestSchemaValidation(t *testing.T) {
	needControlPlane(t)
	pool := func(addrs ...string) client.Object {
		return &heraldv1.IPAddressPool{Spec: heraldv1.IPAddressPoolSpec{Addresses: addresses(addrs...)}}
	}
	withAlloc := func(sa heraldv1.ServiceAllocation) client.Object {
		return &heraldv1.IPAddressPool{Spec: heraldv1.IPAddressPoolSpec{Addresses: addresses("198.51.100.0/28"), ServiceAllocation: &sa}}
	}
	adv := func(spec heraldv1.L2AdvertisementSpec) client.Object { return &heraldv1.L2Advertisement{Spec: spec} }
	sel := func(s heraldv1.Selector) []heraldv1.Selector { return []heraldv1.Selector{s} }

	tests := []struct {
		name string
		obj  client.Object
		want string // a part of the error message; "" means accepted
	}{
		{"ipv4 cidr", pool("198.51.100.0/24"), ""},
		{"ipv6 cidr", pool("2001:db8::/64"), ""},
		{"ipv4 range", pool("198.51.100.10-198.51.100.20"), ""},
		{"range with spaces", pool("198.51.100.10 - 198.51.100.20"), ""},
		{"ipv6 range", pool("2001:db8::10-2001:db8::1:0"), ""},
		{"single addresses mixed", pool("198.51.100.7", "2001:db8::7"), ""},
		{"range of one address", pool("203.0.113.5-203.0.113.5"), ""},
		{"empty list", pool(), "addresses must list at least one CIDR, range or address"},
		{"not an address", pool("banana"), `"banana" is not an IP address, a CIDR or a range`},
		{"bad octet", pool("198.51.100.300"), `"198.51.100.300" is not an IP address, a CIDR or a range`},
		{"malformed cidr", pool("198.51.100.0/33"), `"198.51.100.0/33" is not a valid CIDR; write it like 198.51.100.0/24`},
		{"cidr host bits", pool("198.51.100.5/24"), `"198.51.100.5/24" has bits set after the prefix length; write the network address`},
		{"ipv6 cidr host bits", pool("2001:db8::1/64"), `"2001:db8::1/64" has bits set after the prefix length`},
		{"range of cidrs", pool("198.51.100.0/24-198.51.101.0/24"), `range "198.51.100.0/24-198.51.101.0/24" must be two IP addresses joined by '-'`},
		{"range with three parts", pool("198.51.100.1-198.51.100.2-198.51.100.3"), `must be two IP addresses joined by '-'`},
		{"range mixing families", pool("198.51.100.1-2001:db8::1"), `range "198.51.100.1-2001:db8::1" mixes IPv4 and IPv6`},
		{"ipv4 range reversed", pool("198.51.100.20-198.51.100.10"), `range "198.51.100.20-198.51.100.10": start 198.51.100.20 is after end 198.51.100.10`},
		{"ipv4 range reversed in high octet", pool("203.0.113.1-198.51.100.255"), `start 203.0.113.1 is after end 198.51.100.255`},
		{"namespace name", withAlloc(heraldv1.ServiceAllocation{Namespaces: []string{"Bad_NS"}}), `"Bad_NS" is not a valid namespace name`},
		{"negative priority", withAlloc(heraldv1.ServiceAllocation{Priority: -1}), "greater than or equal to 0"},
		{"selector operator without values", withAlloc(heraldv1.ServiceAllocation{ServiceSelectors: sel(heraldv1.Selector{
			MatchExpressions: []heraldv1.SelectorRequirement{{Key: "tier", Operator: "In"}}})}),
			"operators In and NotIn need at least one value"},
		{"selector Exists with values", withAlloc(heraldv1.ServiceAllocation{NamespaceSelectors: sel(heraldv1.Selector{
			MatchExpressions: []heraldv1.SelectorRequirement{{Key: "tier", Operator: "Exists", Values: []string{"x"}}}})}),
			"Exists and DoesNotExist take no values"},
		{"selector unknown operator", withAlloc(heraldv1.ServiceAllocation{ServiceSelectors: sel(heraldv1.Selector{
			MatchExpressions: []heraldv1.SelectorRequirement{{Key: "tier", Operator: "Near"}}})}),
			`Unsupported value: "Near"`},
		{"selector bad key", withAlloc(heraldv1.ServiceAllocation{ServiceSelectors: sel(heraldv1.Selector{
			MatchExpressions: []heraldv1.SelectorRequirement{{Key: "bad key!", Operator: "Exists"}}})}),
			`"bad key!" is not a valid label key`},
		{"selector bad matchLabels key", adv(heraldv1.L2AdvertisementSpec{NodeSelectors: sel(heraldv1.Selector{
			MatchLabels: map[string]heraldv1.LabelValue{"-zone": "a"}})}), "matchLabels keys must be label keys"},
		{"selector bad matchLabels value", adv(heraldv1.L2AdvertisementSpec{NodeSelectors: sel(heraldv1.Selector{
			MatchLabels: map[string]heraldv1.LabelValue{"zone": "a b"}})}), "is not a valid label value"},
		{"valid advertisement", adv(heraldv1.L2AdvertisementSpec{IPAddressPools: []string{"default"}, Interfaces: []string{"eth0"},
			NodeSelectors: sel(heraldv1.Selector{MatchLabels: map[string]heraldv1.LabelValue{"kubernetes.io/os": "linux"}})}), ""},
		{"advertisement serviceSelectors bad key", adv(heraldv1.L2AdvertisementSpec{ServiceSelectors: sel(heraldv1.Selector{
			MatchExpressions: []heraldv1.SelectorRequirement{{Key: "app name", Operator: "Exists"}}})}), `"app name" is not a valid label key`},
		{"advertisement serviceSelectors In without values", adv(heraldv1.L2AdvertisementSpec{ServiceSelectors: sel(heraldv1.Selector{
			MatchExpressions: []heraldv1.SelectorRequirement{{Key: "app", Operator: "In"}}})}), "operators In and NotIn need at least one value"},
		{"valid advertisement with serviceSelectors", adv(heraldv1.L2AdvertisementSpec{ServiceSelectors: []heraldv1.Selector{
			{MatchLabels: map[string]heraldv1.LabelValue{"app": "web"}},
			{MatchExpressions: []heraldv1.SelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"edge"}}}}}}), ""},
		{"preference weight 0", adv(heraldv1.L2AdvertisementSpec{PreferredNodeSelectors: []heraldv1.PreferredNodeSelector{{Weight: 0}}}),
			"weight must be 1 to 100"},
		{"preference weight 101", adv(heraldv1.L2AdvertisementSpec{PreferredNodeSelectors: []heraldv1.PreferredNodeSelector{{Weight: 101}}}),
			"weight must be 1 to 100"},
		{"preference with a bad label key", adv(heraldv1.L2AdvertisementSpec{PreferredNodeSelectors: []heraldv1.PreferredNodeSelector{{Weight: 50,
			Preference: heraldv1.Selector{MatchExpressions: []heraldv1.SelectorRequirement{{Key: "zone!", Operator: "Exists"}}}}}}),
			`"zone!" is not a valid label key`},
		{"preference In without values", adv(heraldv1.L2AdvertisementSpec{PreferredNodeSelectors: []heraldv1.PreferredNodeSelector{{Weight: 50,
			Preference: heraldv1.Selector{MatchExpressions: []heraldv1.SelectorRequirement{{Key: "zone", Operator: "In"}}}}}}),
			"operators In and NotIn need at least one value"},
		{"valid preferences, weights 1 and 100 and an empty preference", adv(heraldv1.L2AdvertisementSpec{
			NodeSelectors: sel(heraldv1.Selector{MatchLabels: map[string]heraldv1.LabelValue{"role": "lb"}}),
			PreferredNodeSelectors: []heraldv1.PreferredNodeSelector{
				{Weight: 100, Preference: heraldv1.Selector{MatchLabels: map[string]heraldv1.LabelValue{"zone": "a"}}},
				{Weight: 1}}}), ""},
		{"bad interface name", adv(heraldv1.L2AdvertisementSpec{Interfaces: []string{"eth0/1"}}), `"eth0/1" is not a Linux interface name`},
		{"bad pool name", adv(heraldv1.L2AdvertisementSpec{IPAddressPools: []string{"Pool_A"}}), `"Pool_A" is not a valid pool name`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.obj.SetName(fmt.Sprintf("validation-%d", i))
			err := k8s.Create(context.Background(), tt.obj)
			if err == nil {
				_ = k8s.Delete(context.Background(), tt.obj)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused a valid object: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted an invalid object; want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err.Error(), tt.want)
			}
		})
	}
}

// TestPoolDefaults checks the schema's defaults.
func TestPoolDefaults(t *testing.T) {
	needControlPlane(t)
	p := createPool(t, "defaults", heraldv1.IPAddressPoolSpec{Addresses: addresses("198.51.100.0/30")})
	if p.Spec.AutoAssign == nil || !*p.Spec.AutoAssign {
		t.Errorf("autoAssign = %v, want default true", p.Spec.AutoAssign)
	}
}
