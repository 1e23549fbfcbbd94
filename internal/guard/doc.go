// Package guard watches a link for frames claiming the virtual IPs Herald manages (ARP, RFC 826 and RFC 5227;
// IPv6 Neighbor Discovery, RFC 4861) and probes an address before it is first announced (RFC 5227 §2.1, RFC 4862 §5.4).
// Frames are parsed and built with package wire, on a wire.Interface; this package decides what is a claim
// (Kind) and who made it.
package guard
