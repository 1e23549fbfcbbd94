// Package migrate translates MetalLB (metallb.io/v1beta1) Layer-2 configuration into Herald's herald.dev/v1alpha1
// resources, and says in Notes what could not be translated or changes meaning on the way.
package migrate
