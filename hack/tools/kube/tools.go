//go:build tools

// Package tools records the Kubernetes commands this module builds: the control plane (kube-apiserver,
// kube-controller-manager, kube-scheduler), kubectl, and the node agents of the real-node lab (kubelet, kube-proxy).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
