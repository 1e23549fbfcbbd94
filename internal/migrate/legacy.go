package migrate

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// legacyConfigKey is the data key of the ConfigMap (metallb-system/config) that configured MetalLB before 0.13.
const legacyConfigKey = "config"

// legacyPool is one entry of address-pools in MetalLB's legacy ConfigMap.
type legacyPool struct {
	Name          string   `json:"name"`
	Protocol      string   `json:"protocol"`
	Addresses     []string `json:"addresses"`
	AutoAssign    *bool    `json:"auto-assign"`
	AvoidBuggyIPs bool     `json:"avoid-buggy-ips"`
}

// legacyBGPKeys are the top-level keys of the legacy configuration that only BGP uses.
var legacyBGPKeys = []string{"peers", "bgp-communities", "bfd-profiles"}

// configMap translates a ConfigMap that holds MetalLB's legacy configuration: data.config with address-pools.
// Other ConfigMaps are ignored.
func (t *translator) configMap(u *unstructured.Unstructured) {
	text, ok, _ := unstructured.NestedString(u.Object, "data", legacyConfigKey)
	if !ok {
		return
	}
	var top map[string]any
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		if u.GetName() == "config" {
			t.skipped(source("ConfigMap", u.GetNamespace(), u.GetName()), "data.config", "not MetalLB's legacy YAML configuration: %v", err)
		}
		return
	}
	_, hasPools := top["address-pools"]
	_, hasPeers := top["peers"]
	if !hasPools && !hasPeers {
		return // some other program's ConfigMap
	}
	ns, name := u.GetNamespace(), u.GetName()
	if t.repeat("ConfigMap", ns, name) {
		return
	}
	src := source("ConfigMap", ns, name)
	t.legacyCMs = append(t.legacyCMs, src)
	for _, k := range legacyBGPKeys {
		if _, ok := top[k]; ok {
			t.skipped(src, "data.config: "+k, "Herald announces on Layer 2 only")
		}
	}
	for _, k := range unknownFields(top, append(legacyBGPKeys, "address-pools")...) {
		t.warn(src, "data.config: "+k, "not translated: unknown to Herald")
	}
	raw, ok := top["address-pools"].([]any)
	if !ok && top["address-pools"] != nil {
		t.skipped(src, "data.config: address-pools", "is not a list")
		return
	}
	for i, entry := range raw {
		field := fmt.Sprintf("data.config: address-pools[%d]", i)
		m, ok := entry.(map[string]any)
		if !ok {
			t.skipped(src, field, "is not an object")
			continue
		}
		var lp legacyPool
		b, err := yaml.Marshal(m)
		if err == nil {
			err = yaml.UnmarshalStrict(b, &lp)
		}
		if err != nil {
			// UnmarshalStrict fails on unknown keys too: note them and read the rest leniently.
			for _, f := range unknownFields(m, "name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips") {
				if f == "bgp-advertisements" {
					t.skipped(src, field+"."+f, "Herald announces on Layer 2 only")
					continue
				}
				t.warn(src, field+"."+f, "not translated: Herald's IPAddressPool has no such field")
			}
			if err = yaml.Unmarshal(b, &lp); err != nil {
				t.skipped(src, field, "%v", err)
				continue
			}
		}
		if lp.Name == "" {
			t.skipped(src, field+".name", "a pool without a name: not translated")
			continue
		}
		p := &pool{ns: ns, name: lp.Name, src: src, field: field, legacyL2: true}
		if !t.protocolLayer2(p, lp.Protocol, field+".protocol") {
			continue
		}
		t.translatePool(p, metallbPoolSpec{
			Addresses:     lp.Addresses,
			AutoAssign:    lp.AutoAssign,
			AvoidBuggyIPs: lp.AvoidBuggyIPs,
		}, field+".", m)
	}
}
