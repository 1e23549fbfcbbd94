// Package v1alpha1 holds Herald's API, group herald.dev version v1alpha1: the IPAddressPool and L2Advertisement
// resources that say which virtual IPs Services get and how they are announced.
// +kubebuilder:object:generate=true
// +groupName=herald.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of Herald's resources.
	GroupVersion = schema.GroupVersion{Group: "herald.dev", Version: "v1alpha1"}

	// SchemeBuilder registers Herald's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds Herald's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
