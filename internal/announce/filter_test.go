package announce

import (
	"testing"

	"golang.org/x/net/bpf"
)

// runFilter runs filter in bpf.VM with its first instruction (the Linux
// packet-type load, which the VM does not implement) replaced by a
// constant pktType.
func runFilter(t *testing.T, filter []bpf.Instruction, pktType uint32, frame []byte) int {
	t.Helper()
	if _, ok := filter[0].(bpf.LoadExtension); !ok {
		t.Fatalf("first instruction %v, want the packet-type load", filter[0])
	}
	prog := append([]bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegA, Val: pktType}}, filter[1:]...)
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("vm.Run: %v", err)
	}
	return n
}

func TestFilters(t *testing.T) {
	const (
		host, broadcast, multicast, otherHost, outgoing = 0, 1, 2, 3, 4
	)
	tests := []struct {
		name    string
		filter  []bpf.Instruction
		pktType uint32
		frame   []byte
		pass    bool
	}{
		{name: "ARP broadcast request", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPRequestKernel), pass: true},
		{name: "ARP unicast request", filter: arpFilter(), pktType: host, frame: arpRequest(macA, macB, ipB4, vip4), pass: true},
		{name: "ARP reply", filter: arpFilter(), pktType: host, frame: arpReplyFromB()},
		{name: "ARP request seen in promiscuous mode", filter: arpFilter(), pktType: otherHost, frame: unhex(t, vecARPRequestKernel)},
		{name: "our own gratuitous ARP going out", filter: arpFilter(), pktType: outgoing, frame: unhex(t, vecGARP)},
		{name: "ARP truncated before the opcode", filter: arpFilter(), pktType: broadcast, frame: unhex(t, vecARPRequestKernel)[:21]},
		{name: "NS multicast", filter: nsFilter(), pktType: multicast, frame: unhex(t, vecNSKernel), pass: true},
		{name: "NS unicast", filter: nsFilter(), pktType: host, frame: unhex(t, vecNSNUD), pass: true},
		{name: "NS DAD", filter: nsFilter(), pktType: multicast, frame: unhex(t, vecNSDAD), pass: true},
		{name: "NA", filter: nsFilter(), pktType: host, frame: unhex(t, vecNAKernel)},
		{name: "our own NA going out", filter: nsFilter(), pktType: outgoing, frame: unhex(t, vecNAUnsolicited)},
		{name: "NS seen in promiscuous mode", filter: nsFilter(), pktType: otherHost, frame: unhex(t, vecNSKernel)},
		{name: "NS behind a hop-by-hop header", filter: nsFilter(), pktType: multicast, frame: patch(t, vecNSKernel, 20, 0)},
		{name: "echo request", filter: nsFilter(), pktType: host, frame: patch(t, vecNSKernel, 54, 128)},
		{name: "IPv6 truncated before ICMPv6", filter: nsFilter(), pktType: host, frame: unhex(t, vecNSKernel)[:54]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := runFilter(t, tt.filter, tt.pktType, tt.frame)
			if got := n > 0; got != tt.pass {
				t.Errorf("filter returned %d (pass=%v), want pass=%v", n, got, tt.pass)
			}
			if tt.pass && n < len(tt.frame) {
				t.Errorf("filter keeps %d bytes, want at least the whole %d-byte frame", n, len(tt.frame))
			}
		})
	}
	for _, f := range [][]bpf.Instruction{arpFilter(), nsFilter()} {
		if _, err := bpf.Assemble(f); err != nil {
			t.Errorf("bpf.Assemble: %v", err)
		}
	}
}
