package probe

import (
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/wire"
)

// replyFilter is the socket filter of a Prober: ARP replies and Neighbor Advertisements only, and none the host
// sent itself (an AF_PACKET socket bound to all protocols also sees outgoing frames).
func replyFilter() ([]bpf.RawInstruction, error) {
	prog := append([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType}, // the skb's packet type
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}, replyFilterBody()...)
	return bpf.Assemble(prog)
}

// replyFilterBody accepts Ethernet frames holding an ARP reply or an ICMPv6 Neighbor Advertisement directly
// behind the IPv6 header. It reads only the frame, so bpf.VM can run it in tests.
func replyFilterBody() []bpf.Instruction {
	const accept = 1 << 18
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: wire.EtherTypeOffset, Size: 2}, // EtherType
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.EtherTypeARP, SkipTrue: 0, SkipFalse: 2},
		/* 2 */ bpf.LoadAbsolute{Off: wire.ARPOpOffset, Size: 2}, // ARP operation
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ARPReply, SkipTrue: 5, SkipFalse: 6},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.EtherTypeIPv6, SkipTrue: 0, SkipFalse: 5},
		/* 5 */ bpf.LoadAbsolute{Off: wire.NextHeaderOffset, Size: 1}, // IPv6 next header
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ProtoICMPv6, SkipTrue: 0, SkipFalse: 3},
		/* 7 */ bpf.LoadAbsolute{Off: wire.ICMPOffset, Size: 1}, // ICMPv6 type
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ICMPTypeNA, SkipTrue: 0, SkipFalse: 1},
		/* 9 */ bpf.RetConstant{Val: accept},
		/* 10 */ bpf.RetConstant{Val: 0},
	}
}
