package guard

import (
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/internal/wire"
)

// Classic BPF filters attached to the real sockets so that only frames that
// may claim an address reach user space.
//
// The sockets are bound to ETH_P_ALL, not to the EtherType they want: Linux
// hands a host's own transmissions (PACKET_OUTGOING) only to ETH_P_ALL
// packet sockets, and the watcher must see its kernel's replies. So the
// filters check the EtherType themselves. Unlike the announcer's they keep
// PACKET_OUTGOING frames, and drop PACKET_OTHERHOST (frames for other
// hosts, seen in promiscuous mode) and frames that carried an 802.1Q tag
// (the parent of a VLAN interface sees its VLANs' frames with the tag
// already stripped into metadata; they belong to the VLAN interface).
//
// Only two Linux extensions are used (packet type and VLAN tag present),
// both loads of instructions 0 and 2, so tests can swap them for constants
// and run the rest in bpf.VM.

// arpFilter passes ARP (EtherType 0x0806) replies (opcode 2), and requests
// (opcode 1) whose sender IP equals the target IP (announcements) or is
// 0.0.0.0 (probes). Ordinary requests, which may arrive by tens of
// thousands a second, stay in the kernel; the cost is that KindARPFromOwner
// (a request from a VIP to another address) is never seen on the real
// sockets. A host using an address also answers requests for it and
// announces it, which the filter passes. Frames shorter than an ARP packet
// fail the loads and are dropped.
func arpFilter() []bpf.Instruction {
	return []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.PacketOtherHost, SkipTrue: 12},
		/* 2 */ bpf.LoadExtension{Num: bpf.ExtVLANTagPresent},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 10},
		/* 4 */ bpf.LoadAbsolute{Off: wire.EtherTypeOffset, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.EtherTypeARP, SkipTrue: 8},
		/* 6 */ bpf.LoadAbsolute{Off: wire.ARPOpOffset, Size: 2},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ARPReply, SkipTrue: 7},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.ARPRequest, SkipTrue: 5},
		/* 9 */ bpf.LoadAbsolute{Off: wire.ARPTargetIPOffset, Size: 4},
		/* 10 */ bpf.TAX{},
		/* 11 */ bpf.LoadAbsolute{Off: wire.ARPSenderIPOffset, Size: 4},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 2},
		/* 13 */ bpf.JumpIfX{Cond: bpf.JumpEqual, SkipTrue: 1},
		/* 14 */ bpf.RetConstant{Val: 0},
		/* 15 */ bpf.RetConstant{Val: wire.KeepFrame},
	}
}

// ndpFilter passes IPv6 frames (EtherType 0x86DD) whose next header is
// ICMPv6 (58) and whose ICMPv6 type is Neighbor Solicitation (135) or
// Advertisement (136), i.e. NS and NA without extension headers.
func ndpFilter() []bpf.Instruction {
	return []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.PacketOtherHost, SkipTrue: 9},
		/* 2 */ bpf.LoadExtension{Num: bpf.ExtVLANTagPresent},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 7},
		/* 4 */ bpf.LoadAbsolute{Off: wire.EtherTypeOffset, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.EtherTypeIPv6, SkipTrue: 5},
		/* 6 */ bpf.LoadAbsolute{Off: wire.NextHeaderOffset, Size: 1},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: wire.ProtoICMPv6, SkipTrue: 3},
		/* 8 */ bpf.LoadAbsolute{Off: wire.ICMPOffset, Size: 1},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ICMPTypeNS, SkipTrue: 2},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ICMPTypeNA, SkipTrue: 1},
		/* 11 */ bpf.RetConstant{Val: 0},
		/* 12 */ bpf.RetConstant{Val: wire.KeepFrame},
	}
}
