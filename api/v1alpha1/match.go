package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Matches reports whether the selector matches a label set. A selector that does not convert to a Kubernetes
// label selector (the schema refuses those) matches nothing.
func (s *Selector) Matches(set labels.Set) bool {
	sel, err := metav1.LabelSelectorAsSelector(s.LabelSelector())
	return err == nil && sel.Matches(set)
}

// SelectsPool reports whether the advertisement announces a pool: one it names, one an ipAddressPoolSelector
// matches, or any pool when it has neither.
func (s *L2AdvertisementSpec) SelectsPool(p *IPAddressPool) bool {
	if len(s.IPAddressPools) == 0 && len(s.IPAddressPoolSelectors) == 0 {
		return true
	}
	for _, name := range s.IPAddressPools {
		if name == p.Name {
			return true
		}
	}
	for i := range s.IPAddressPoolSelectors {
		if s.IPAddressPoolSelectors[i].Matches(labels.Set(p.Labels)) {
			return true
		}
	}
	return false
}

// SelectsNode reports whether the advertisement lets a node with these labels announce: one of its
// nodeSelectors matches them, or it has none.
func (s *L2AdvertisementSpec) SelectsNode(nodeLabels labels.Set) bool {
	return anyMatches(s.NodeSelectors, nodeLabels)
}

// SelectsService reports whether the advertisement applies to a Service with these labels: one of its
// serviceSelectors matches them, or it has none.
func (s *L2AdvertisementSpec) SelectsService(serviceLabels labels.Set) bool {
	return anyMatches(s.ServiceSelectors, serviceLabels)
}

// NodeScore is the preference score this advertisement gives a node with these labels: the sum of the weights of
// its preferredNodeSelectors that match them, and 0 when it does not select the node (SelectsNode).
func (s *L2AdvertisementSpec) NodeScore(nodeLabels labels.Set) int64 {
	if len(s.PreferredNodeSelectors) == 0 || !s.SelectsNode(nodeLabels) {
		return 0
	}
	var score int64
	for i := range s.PreferredNodeSelectors {
		if s.PreferredNodeSelectors[i].Preference.Matches(nodeLabels) {
			score += int64(s.PreferredNodeSelectors[i].Weight)
		}
	}
	return score
}

// anyMatches: no selectors select everything; otherwise one must match.
func anyMatches(sels []Selector, set labels.Set) bool {
	if len(sels) == 0 {
		return true
	}
	for i := range sels {
		if sels[i].Matches(set) {
			return true
		}
	}
	return false
}
