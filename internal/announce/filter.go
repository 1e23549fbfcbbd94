package announce

import (
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/internal/wire"
)

// Classic BPF filters attached to the real sockets so that only frames a
// responder may answer reach user space. Frames the kernel marks
// PACKET_OTHERHOST (3, seen in promiscuous mode) or PACKET_OUTGOING (4, our
// own transmissions) are dropped first; the responders check both again
// from the Ethernet header. A filter's first instruction loads the packet
// type and is the only Linux extension used, so tests can swap it for a
// constant and run the rest in bpf.VM.

// arpFilter passes ARP requests (opcode 1 at Ethernet offset 20). The
// socket is bound to EtherType 0x0806, so the EtherType is not re-checked.
func arpFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: wire.PacketOtherHost, SkipTrue: 3},
		bpf.LoadAbsolute{Off: wire.ARPOpOffset, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.ARPRequest, SkipTrue: 1},
		bpf.RetConstant{Val: wire.KeepFrame},
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
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: wire.PacketOtherHost, SkipTrue: 5},
		bpf.LoadAbsolute{Off: wire.NextHeaderOffset, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.ProtoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: wire.ICMPOffset, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.ICMPTypeNS, SkipTrue: 1},
		bpf.RetConstant{Val: wire.KeepFrame},
		bpf.RetConstant{Val: 0},
	}
}
