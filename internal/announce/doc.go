// Package announce answers ARP (RFC 826) and IPv6 Neighbor Solicitations (RFC 4861) for virtual IPs on
// chosen interfaces and announces them with gratuitous ARP (RFC 5227) and unsolicited Neighbor Advertisements.
// Frames are parsed and built with package wire (so are the interface, wire.Interface, and the VIP set the
// responders read, wire.VIPSet); this package decides which requests to answer and how.
//
// Every received frame gets one verdict, counted in herald_announce_requests_total{family,result}:
// answered; dropped by the parsers and handlers as malformed, wrong_type, wrong_opcode, hop_limit,
// bad_checksum, own_frame, other_host, not_ours or spoofed (an ARP sender hardware address that is not
// the frame's Ethernet source); or, for a valid request about a VIP, withheld as stalled (Config.Fresh
// returned false: this process may have been stopped and lost its VIPs) or rate_limited (its requester,
// keyed by Ethernet source and target address, or the whole responder is over Config.RateLimit). A
// stalled announcer also sends no gratuitous ARP or unsolicited NA; those that come due are dropped, not
// delayed. Reannounce sends them again at once for VIPs whose neighbours must be corrected.
package announce
