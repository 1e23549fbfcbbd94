package wire

// What classic BPF socket filters need: the Linux packet types (the skb's pkt_type, loaded with
// bpf.ExtType) and a return value that keeps a whole frame. The EtherType and ARP/IPv6/ICMPv6 offsets are
// beside their protocols.
const (
	PacketHost      = 0 // PACKET_HOST; BROADCAST 1 and MULTICAST 2 are for this host too
	PacketOtherHost = 3 // PACKET_OTHERHOST: a frame for another host, seen in promiscuous mode
	PacketOutgoing  = 4 // PACKET_OUTGOING: a frame this host sent

	EtherTypeOffset  = 12             // the EtherType, in a frame without a VLAN tag
	NextHeaderOffset = IPv6Offset + 6 // IPv6 next header

	KeepFrame = 65535 // a filter's return value that keeps the whole frame
)
