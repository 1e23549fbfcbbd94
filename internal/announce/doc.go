// Package announce answers ARP (RFC 826) and IPv6 Neighbor Solicitations (RFC 4861) for virtual IPs on
// chosen interfaces and announces them with gratuitous ARP (RFC 5227) and unsolicited Neighbor Advertisements.
package announce
