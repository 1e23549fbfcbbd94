package guard

import "golang.org/x/net/bpf"

// Classic BPF filters attached to the real sockets so that only frames that
// may claim an address reach user space. Unlike the announcer's, they keep
// PACKET_OUTGOING frames (this host's own replies, announcements and
// probes, which the watcher reports with Outgoing set) and drop only
// PACKET_OTHERHOST (frames for other hosts, seen in promiscuous mode). The
// first instruction loads the packet type and is the only Linux extension
// used, so tests can swap it for a constant and run the rest in bpf.VM.

const (
	pktTypeOtherHost = 3     // PACKET_OTHERHOST
	pktTypeOutgoing  = 4     // PACKET_OUTGOING
	snapAll          = 65535 // return value: keep the whole frame
)

// arpFilter passes ARP replies (opcode 2), and requests (opcode 1) whose
// sender IP equals the target IP (announcements) or is 0.0.0.0 (probes).
// Ordinary requests, which may arrive by tens of thousands a second, stay in
// the kernel; the cost is that KindARPFromOwner (a request from a VIP to
// another address) is never seen on the real sockets. A host using an
// address also answers requests for it and announces it, which the filter
// passes. The socket is bound to EtherType 0x0806; frames shorter than an
// ARP packet fail the loads and are dropped.
func arpFilter() []bpf.Instruction {
	return []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: pktTypeOtherHost, SkipTrue: 8},
		/* 2 */ bpf.LoadAbsolute{Off: arpOpOff, Size: 2},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: arpOpReply, SkipTrue: 7},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: arpOpRequest, SkipTrue: 5},
		/* 5 */ bpf.LoadAbsolute{Off: arpTPAOff, Size: 4},
		/* 6 */ bpf.TAX{},
		/* 7 */ bpf.LoadAbsolute{Off: arpSPAOff, Size: 4},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 2},
		/* 9 */ bpf.JumpIfX{Cond: bpf.JumpEqual, SkipTrue: 1},
		/* 10 */ bpf.RetConstant{Val: 0},
		/* 11 */ bpf.RetConstant{Val: snapAll},
	}
}

// ndpFilter passes IPv6 frames whose next header is ICMPv6 (58) and whose
// ICMPv6 type is Neighbor Solicitation (135) or Advertisement (136), i.e.
// NS and NA without extension headers. The socket is bound to EtherType
// 0x86DD.
func ndpFilter() []bpf.Instruction {
	return []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: pktTypeOtherHost, SkipTrue: 5},
		/* 2 */ bpf.LoadAbsolute{Off: ipv6Off + 6, Size: 1},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		/* 4 */ bpf.LoadAbsolute{Off: icmpOff, Size: 1},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNS, SkipTrue: 2},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNA, SkipTrue: 1},
		/* 7 */ bpf.RetConstant{Val: 0},
		/* 8 */ bpf.RetConstant{Val: snapAll},
	}
}
