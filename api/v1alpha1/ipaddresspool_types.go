package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddressRange is one entry of a pool: a CIDR ("198.51.100.0/24"), an inclusive range of two addresses of one
// family joined by '-' ("198.51.100.10-198.51.100.20"), or a single address ("2001:db8::5").
// The schema checks each form. Checking the order of an IPv6 range's ends costs more than CEL's budget allows,
// so a reversed IPv6 range is reported by the controller instead: the pool's Ready condition turns False.
// +kubebuilder:validation:MaxLength=100
// +kubebuilder:validation:XValidation:rule=`self.contains('-') || self.contains('/') || isIP(self)`,messageExpression=`'"' + self + '" is not an IP address, a CIDR or a range; write 198.51.100.7, 198.51.100.0/24 or 198.51.100.10-198.51.100.20'`
// +kubebuilder:validation:XValidation:rule=`self.contains('-') || !self.contains('/') || isCIDR(self)`,messageExpression=`'"' + self + '" is not a valid CIDR; write it like 198.51.100.0/24 or 2001:db8::/64'`
// +kubebuilder:validation:XValidation:rule=`self.contains('-') || !isCIDR(self) || cidr(self) == cidr(self).masked()`,messageExpression=`'"' + self + '" has bits set after the prefix length; write the network address, like 198.51.100.0/24'`
// +kubebuilder:validation:XValidation:rule=`!self.contains('-') || (size(self.split('-')) == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()))`,messageExpression=`'range "' + self + '" must be two IP addresses joined by \'-\', like 198.51.100.10-198.51.100.20'`
// +kubebuilder:validation:XValidation:rule=`!self.contains('-') || size(self.split('-')) != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()`,messageExpression=`'range "' + self + '" mixes IPv4 and IPv6; a range holds addresses of one family'`
// +kubebuilder:validation:XValidation:rule=`!self.contains('-') || size(self.split('-')) != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() != 4 || ip(self.split('-')[1].trim()).family() != 4 || (int(self.split('-')[0].trim().split('.')[0]) * 16777216 + int(self.split('-')[0].trim().split('.')[1]) * 65536 + int(self.split('-')[0].trim().split('.')[2]) * 256 + int(self.split('-')[0].trim().split('.')[3])) <= (int(self.split('-')[1].trim().split('.')[0]) * 16777216 + int(self.split('-')[1].trim().split('.')[1]) * 65536 + int(self.split('-')[1].trim().split('.')[2]) * 256 + int(self.split('-')[1].trim().split('.')[3]))`,messageExpression=`'range "' + self + '": start ' + self.split('-')[0].trim() + ' is after end ' + self.split('-')[1].trim()`
type AddressRange string

// IPAddressPoolSpec says which addresses a pool holds and which Services may take them.
// +kubebuilder:validation:XValidation:rule=`size(self.addresses) > 0`,message="addresses must list at least one CIDR, range or address"
type IPAddressPoolSpec struct {
	// addresses are the CIDRs, ranges ("first-last") and single addresses the pool hands out, IPv4 and IPv6
	// mixed. Addresses are handed out in the order listed, the first free one first.
	// +required
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Addresses []AddressRange `json:"addresses"`

	// autoAssign lets Services that name no pool and request no address take addresses from this pool.
	// Set it to false to keep the pool for Services that ask for it by name or address.
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// avoidBuggyIPs keeps addresses ending in .0 and .255 out of use, for clients that mistake them for
	// network or broadcast addresses.
	// +optional
	// +kubebuilder:default=false
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// serviceAllocation limits the pool to some Services and orders it among pools. Without it every Service
	// may use the pool, after the pools whose serviceAllocation selects the Service.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation restricts a pool to Services in some namespaces or with some labels, and gives its priority.
type ServiceAllocation struct {
	// priority orders pools that may serve a Service: lower numbers are tried first, and a pool without a
	// priority comes after those with one. Pools of equal priority are tried in name order.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority int32 `json:"priority,omitempty"`

	// namespaces lists namespaces whose Services may use the pool.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,messageExpression=`'"' + self + '" is not a valid namespace name: lower-case alphanumeric and \'-\', at most 63 characters'`
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`

	// namespaceSelectors select namespaces, by their labels, whose Services may use the pool.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	NamespaceSelectors []Selector `json:"namespaceSelectors,omitempty"`

	// serviceSelectors select Services, by their labels, that may use the pool.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	ServiceSelectors []Selector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports how much of the pool is in use and whether it is usable.
type IPAddressPoolStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// capacityIPv4 is the number of IPv4 addresses the pool can hand out, as a decimal string.
	// +optional
	CapacityIPv4 string `json:"capacityIPv4,omitempty"`
	// assignedIPv4 is the number of IPv4 addresses in use, an address shared by several Services once.
	// +optional
	AssignedIPv4 string `json:"assignedIPv4,omitempty"`
	// availableIPv4 is the number of IPv4 addresses still free.
	// +optional
	AvailableIPv4 string `json:"availableIPv4,omitempty"`
	// capacityIPv6 is the number of IPv6 addresses the pool can hand out, as a decimal string: an IPv6 /64
	// holds 18446744073709551616, more than an integer field can carry.
	// +optional
	CapacityIPv6 string `json:"capacityIPv6,omitempty"`
	// assignedIPv6 is the number of IPv6 addresses in use.
	// +optional
	AssignedIPv6 string `json:"assignedIPv6,omitempty"`
	// availableIPv6 is the number of IPv6 addresses still free.
	// +optional
	AvailableIPv6 string `json:"availableIPv6,omitempty"`

	// conditions: Ready says whether the pool hands out addresses; Overlapping is true when some of its
	// addresses also belong to a pool created earlier, which keeps them.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// IPAddressPool is a set of addresses that Herald hands out to Services of type LoadBalancer.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=herald,shortName=hpool
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Assigned IPv4",type=string,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="Available IPv4",type=string,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="Assigned IPv6",type=string,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="Available IPv6",type=string,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which addresses the pool holds and which Services may use them.
	// +required
	Spec IPAddressPoolSpec `json:"spec"`

	// status reports the pool's use and health.
	// +optional
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPools.
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}

// Condition types and reasons of IPAddressPool and L2Advertisement status.
const (
	// ConditionReady is true when the resource is valid and in use.
	ConditionReady = "Ready"
	// ConditionOverlapping is true when a pool shares addresses with a pool created earlier.
	ConditionOverlapping = "Overlapping"

	ReasonValid           = "Valid"
	ReasonInvalid         = "Invalid"
	ReasonNoAddresses     = "NoAddresses"
	ReasonAddressesShared = "AddressesOverlap"
	ReasonNoOverlap       = "NoOverlap"
	ReasonPoolNotFound    = "PoolNotFound"
)

func init() {
	SchemeBuilder.Register(&IPAddressPool{}, &IPAddressPoolList{})
}
