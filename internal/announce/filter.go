package announce

import "golang.org/x/net/bpf"

// Classic BPF filters attached to the real sockets so that only frames a
// responder may answer reach user space. Frames the kernel marks
// PACKET_OTHERHOST (3, seen in promiscuous mode) or PACKET_OUTGOING (4, our
// own transmissions) are dropped first; the responders check both again
// from the Ethernet header. A filter's first instruction loads the packet
// type and is the only Linux extension used, so tests can swap it for a
// constant and run the rest in bpf.VM.

const (
	pktTypeOtherHost = 3     // PACKET_OTHERHOST; HOST 0, BROADCAST 1, MULTICAST 2 pass
	snapAll          = 65535 // return value: keep the whole frame
)

// arpFilter passes ARP requests (opcode 1 at Ethernet offset 20). The
// socket is bound to EtherType 0x0806, so the EtherType is not re-checked.
func arpFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: pktTypeOtherHost, SkipTrue: 3},
		bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: arpOpRequest, SkipTrue: 1},
		bpf.RetConstant{Val: snapAll},
		bpf.RetConstant{Val: 0},
	}
}

// nsFilter passes IPv6 frames whose next header is ICMPv6 (58, at Ethernet
// offset 14+6) and whose ICMPv6 type is Neighbor Solicitation (135, at
// 14+40), i.e. NS without extension headers. The socket is bound to
// EtherType 0x86DD.
func nsFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: pktTypeOtherHost, SkipTrue: 5},
		bpf.LoadAbsolute{Off: ipv6Off + 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: icmpOff, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpTypeNS, SkipTrue: 1},
		bpf.RetConstant{Val: snapAll},
		bpf.RetConstant{Val: 0},
	}
}
