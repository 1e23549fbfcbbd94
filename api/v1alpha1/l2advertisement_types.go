package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AdvertisementSpec says which pools' addresses are announced on the local network, from which nodes and on
// which interfaces.
type L2AdvertisementSpec struct {
	// ipAddressPools names the pools whose addresses are announced. When neither ipAddressPools nor
	// ipAddressPoolSelectors is given, every pool is announced.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,messageExpression=`'"' + self + '" is not a valid pool name: lower-case alphanumeric, \'-\' and \'.\''`
	// +listType=set
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// ipAddressPoolSelectors select pools, by their labels, whose addresses are announced.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	IPAddressPoolSelectors []Selector `json:"ipAddressPoolSelectors,omitempty"`

	// nodeSelectors limit the nodes that may announce to those whose labels match one of the selectors.
	// Without them every node may announce.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	NodeSelectors []Selector `json:"nodeSelectors,omitempty"`

	// serviceSelectors limit the advertisement to the Services whose labels match one of the selectors. Without
	// them it applies to every Service. A Service that no advertisement of its address's pool selects is not
	// announced. Services sharing an address are announced from one node, among those every one of them may be
	// announced from (see docs/concepts.md); when the advertisements selecting them allow different nodes the
	// speakers report a SelectorConflict.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	ServiceSelectors []Selector `json:"serviceSelectors,omitempty"`

	// preferredNodeSelectors are soft preferences among the nodes the advertisement lets announce (MetalLB's
	// field): a node scores the sum of the weights of the preferences its labels match, summed over the
	// advertisements that apply to the Service and select the node, and an address is placed on the eligible
	// node with the highest score, ties broken by the usual sha256(node#address) order. Unlike nodeSelectors
	// they never make a node ineligible: when no preferred node is available any eligible node announces, in
	// the same order. An address already answered stays where it is until --failback-after moves it back (see
	// docs/concepts.md).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	PreferredNodeSelectors []PreferredNodeSelector `json:"preferredNodeSelectors,omitempty"`

	// interfaces limits announcing to these network interfaces. Without them a node announces an address on
	// the interfaces whose connected subnet holds it.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^[^/:\\s]{1,15}$') && self != '.' && self != '..'`,messageExpression=`'"' + self + '" is not a Linux interface name: 1 to 15 characters without \'/\', \':\' or spaces'`
	// +listType=set
	Interfaces []string `json:"interfaces,omitempty"`
}

// PreferredNodeSelector is one weighted soft preference for the nodes its selector matches (the shape of
// Kubernetes' PreferredSchedulingTerm).
type PreferredNodeSelector struct {
	// weight is added to the score of every node the preference matches: 1 to 100, higher is preferred.
	// +required
	// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 100`,message="weight must be 1 to 100 (a higher weight is preferred more)"
	Weight int32 `json:"weight"`

	// preference selects the nodes, by their labels, that get the weight. An empty selector ({}) matches every
	// node the advertisement selects.
	// +required
	Preference Selector `json:"preference"`
}

// L2AdvertisementStatus reports whether the advertisement is valid.
type L2AdvertisementStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready is false, with the reason, when the advertisement names pools that do not exist.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// L2Advertisement makes Herald's speakers announce pools' addresses on the local network with ARP and NDP.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=herald,shortName=l2adv
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what is announced, from where.
	// +optional
	Spec L2AdvertisementSpec `json:"spec,omitempty"`

	// status reports whether the advertisement is valid.
	// +optional
	Status L2AdvertisementStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&L2Advertisement{}, &L2AdvertisementList{})
}
