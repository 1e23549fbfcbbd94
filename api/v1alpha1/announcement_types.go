package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnouncementStatus says which node answers ARP and NDP for a Service's addresses, and on which interfaces.
type AnnouncementStatus struct {
	// node is the node whose speaker answers for the Service's addresses.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`

	// addresses are the Service's load-balancer addresses this node announces.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:MaxLength=45
	// +listType=atomic
	Addresses []string `json:"addresses,omitempty"`

	// interfaces are the node's network interfaces the addresses are answered on. Empty when the node is
	// elected but no interface suits (no connected subnet holds the address and the L2Advertisement names none).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=15
	// +listType=atomic
	Interfaces []string `json:"interfaces,omitempty"`

	// since is when this node started announcing.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// conflict describes another device found answering for the addresses, while that lasts: a host that owns
	// an address (Herald yields to it by default and reports IPConflict), another speaker after a split brain,
	// or a node's own kernel.
	// +optional
	Conflict *AnnouncementConflict `json:"conflict,omitempty"`

	// health is what the last health probe of the addresses found. It is written by the watching speaker, a node
	// other than the announcer (the next in the address's election order), which asks the network who answers
	// for each address every few seconds, like arping and ndisc6 do.
	// +optional
	Health *AnnouncementHealth `json:"health,omitempty"`

	// conditions: Announced is true while the node answers on at least one interface; Conflict is true while
	// another device answers for an address too (or instead, when Herald yields); Healthy is true while the
	// watching speaker's probes find exactly one responder for each address, the announcing node.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// ConflictKind says who else answers for an address.
// +kubebuilder:validation:Enum=Foreign;Speaker;Kernel
type ConflictKind string

const (
	// ConflictForeign is a device that is not a Herald speaker: a host that owns the address.
	ConflictForeign ConflictKind = "Foreign"
	// ConflictSpeaker is another Herald speaker answering too (a split brain).
	ConflictSpeaker ConflictKind = "Speaker"
	// ConflictKernel is a node's own kernel answering beside its speaker or another node's.
	ConflictKernel ConflictKind = "Kernel"
)

// AnnouncementConflict is another device answering ARP or NDP for one of a Service's addresses.
type AnnouncementConflict struct {
	// kind is who answers: Foreign, Speaker or Kernel.
	// +required
	Kind ConflictKind `json:"kind"`

	// address is the load-balancer address answered by someone else.
	// +required
	// +kubebuilder:validation:MaxLength=45
	Address string `json:"address"`

	// mac is the other responder's hardware address.
	// +optional
	// +kubebuilder:validation:MaxLength=59
	MAC string `json:"mac,omitempty"`

	// node is the other responder's node, when it is a speaker.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`

	// since is when the conflict was first seen.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// HealthVerdict is what a health probe found for an address.
// +kubebuilder:validation:Enum=Healthy;Dark;Duplicate;WrongResponder;ForeignResponder
type HealthVerdict string

const (
	// HealthHealthy: exactly one responder, the node the Announcement names.
	HealthHealthy HealthVerdict = "Healthy"
	// HealthDark: nobody answered, so clients cannot reach the address.
	HealthDark HealthVerdict = "Dark"
	// HealthDuplicate: more than one MAC answered; clients reach whichever they heard last.
	HealthDuplicate HealthVerdict = "Duplicate"
	// HealthWrongResponder: one speaker answered, but not the node the Announcement names.
	HealthWrongResponder HealthVerdict = "WrongResponder"
	// HealthForeignResponder: one device answered that is not a Herald speaker, such as a host that owns the
	// address.
	HealthForeignResponder HealthVerdict = "ForeignResponder"
)

// AnnouncementHealth is what the watching speaker's latest probe of a Service's addresses found.
type AnnouncementHealth struct {
	// verdict is the worst of the addresses' verdicts: Healthy, Dark, Duplicate, WrongResponder or
	// ForeignResponder.
	// +required
	Verdict HealthVerdict `json:"verdict"`

	// watcher is the node whose speaker probes the addresses.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Watcher string `json:"watcher,omitempty"`

	// lastProbe is when the addresses were probed for the verdict shown. The watcher writes a verdict when it
	// changes (and, with --health-status-refresh, again that often), so it may be old for a verdict that holds.
	// +optional
	LastProbe *metav1.Time `json:"lastProbe,omitempty"`

	// since is when the verdict began.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// addresses are the verdict and responders of each address.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +listType=map
	// +listMapKey=address
	Addresses []AddressHealth `json:"addresses,omitempty"`
}

// AddressHealth is what the latest probe of one address found.
type AddressHealth struct {
	// address is the load-balancer address probed.
	// +required
	// +kubebuilder:validation:MaxLength=45
	Address string `json:"address"`

	// verdict is what the probe found for this address.
	// +required
	Verdict HealthVerdict `json:"verdict"`

	// responders are the distinct devices that answered, in the order their first answers arrived.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	Responders []HealthResponder `json:"responders,omitempty"`
}

// HealthResponder is one device that answered a health probe.
type HealthResponder struct {
	// mac is the hardware address the answer gave.
	// +required
	// +kubebuilder:validation:MaxLength=59
	MAC string `json:"mac"`

	// node is the responder's node, when the MAC belongs to a Herald speaker.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`

	// latency is how long after the request its first answer arrived.
	// +optional
	Latency *metav1.Duration `json:"latency,omitempty"`
}

// Announcement records, for one Service of type LoadBalancer, which node's speaker answers ARP and NDP for its
// addresses. It has the Service's name and namespace and is written by the announcing speaker.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=herald,shortName=hann
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.status.addresses`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.status.interfaces`
// +kubebuilder:printcolumn:name="Announced",type=string,JSONPath=`.status.conditions[?(@.type=="Announced")].status`
// +kubebuilder:printcolumn:name="Conflict",type=string,JSONPath=`.status.conflict.mac`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health.verdict`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.since`
type Announcement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is written by the announcing speaker.
	// +optional
	Status AnnouncementStatus `json:"status,omitempty"`
}

// AnnouncementList is a list of Announcements.
// +kubebuilder:object:root=true
type AnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Announcement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Announcement{}, &AnnouncementList{})
}
