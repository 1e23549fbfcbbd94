package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClusterOptions says which of the cluster's Services and Nodes FromCluster turns into VIPs and peers.
type ClusterOptions struct {
	// Node is this node's name; its own InternalIPs are not peers.
	Node string
	// LoadBalancerClass is the class Herald serves, besides Services that name none.
	LoadBalancerClass string
	// MemberlistPort is the peers' memberlist port.
	MemberlistPort int
	// Interfaces are given to every VIP (the L2Advertisement's spec.interfaces); empty means by subnet.
	Interfaces []string
}

// FromCluster lists the load-balancer addresses of Herald's Services (status.loadBalancer.ingress[].ip) and
// the InternalIPs of the other Nodes, as VIPs and peers for Gather.
func FromCluster(ctx context.Context, c client.Reader, opts ClusterOptions) ([]VIP, []Peer, error) {
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return nil, nil, fmt.Errorf("list Services: %w", err)
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return nil, nil, fmt.Errorf("list Nodes: %w", err)
	}
	vips, peers := clusterTargets(svcs.Items, nodes.Items, opts)
	return vips, peers, nil
}

// clusterTargets picks the VIPs and peers out of Services and Nodes, sorted by address.
func clusterTargets(svcs []corev1.Service, nodes []corev1.Node, opts ClusterOptions) ([]VIP, []Peer) {
	var vips []VIP
	for _, s := range svcs {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if c := s.Spec.LoadBalancerClass; c != nil && *c != opts.LoadBalancerClass {
			continue
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			a, err := netip.ParseAddr(in.IP)
			if err != nil {
				continue // a hostname, or nothing yet
			}
			vips = append(vips, VIP{Addr: a.Unmap(), Service: s.Namespace + "/" + s.Name, Interfaces: slices.Clone(opts.Interfaces)})
		}
	}
	slices.SortStableFunc(vips, func(a, b VIP) int { return a.Addr.Compare(b.Addr) })
	var (
		peers []Peer
		addrs []netip.Addr
	)
	for _, n := range nodes {
		if n.Name == opts.Node {
			continue
		}
		for _, na := range n.Status.Addresses {
			if na.Type != corev1.NodeInternalIP {
				continue
			}
			if a, err := netip.ParseAddr(na.Address); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range slices.Compact(addrs) {
		peers = append(peers, Peer{Addr: a.String(), Port: opts.MemberlistPort})
	}
	return vips, peers
}
