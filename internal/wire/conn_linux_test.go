//go:build linux

package wire

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/netnstest"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0x77, 0x0a}
	macB = net.HardwareAddr{2, 0, 0, 0, 0x77, 0x0b}
)

// arpFrame is an Ethernet broadcast ARP frame from src with the given
// opcode, padded to the 60-byte minimum.
func arpFrame(src net.HardwareAddr, opcode byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], src)
	f[12], f[13] = 0x08, 0x06
	copy(f[14:22], []byte{0, 1, 8, 0, 6, 4, 0, opcode})
	copy(f[22:28], src)
	copy(f[28:32], []byte{198, 51, 100, 1})
	copy(f[38:42], []byte{198, 51, 100, 2})
	return f
}

// repliesOnly passes ARP replies (opcode 2 at offset 20) and drops the rest.
var repliesOnly = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 20, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 2, SkipTrue: 1},
	bpf.RetConstant{Val: 0xffff},
	bpf.RetConstant{Val: 0},
}

// pair opens Conns on the veth pair va/vb in a fresh namespace: a on va
// for writing, tap on va seeing every frame (ETH_P_ALL), and b on vb seeing
// only ARP replies.
func pair(t *testing.T) (a, tap, b *Conn, ns *netnstest.NS) {
	t.Helper()
	ns = netnstest.New(t, "wire")
	ns.Shell(t, `
ip link add va type veth peer name vb
ip link set va address `+macA.String()+` up
ip link set vb address `+macB.String()+` up
`)
	err := ns.Do(func() error {
		va, err := net.InterfaceByName("va")
		if err != nil {
			return err
		}
		vb, err := net.InterfaceByName("vb")
		if err != nil {
			return err
		}
		if a, err = Listen(va, Config{EtherType: unix.ETH_P_ARP}); err != nil {
			return err
		}
		if tap, err = Listen(va, Config{}); err != nil {
			return err
		}
		b, err = Listen(vb, Config{EtherType: unix.ETH_P_ARP, Filter: repliesOnly, ReadBuffer: 1 << 20})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); tap.Close(); b.Close() })
	return a, tap, b, ns
}

// readMatching reads c until a frame equal to want (as far as want goes)
// arrives, skipping the kernel's own IPv6 chatter, and returns its address.
func readMatching(t *testing.T, c *Conn, want []byte) Addr {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no frame like % x: %v", want[:14], err)
		}
		if bytes.Equal(buf[:min(n, len(want))], want) {
			a := addr.(*Addr)
			return Addr{HardwareAddr: append(net.HardwareAddr(nil), a.HardwareAddr...), Outgoing: a.Outgoing}
		}
	}
}

func TestConn(t *testing.T) {
	a, tap, b, _ := pair(t)
	req, reply := arpFrame(macA, 1), arpFrame(macA, 2)
	for _, f := range [][]byte{req, reply} {
		if n, err := a.WriteTo(f, nil); err != nil || n != len(f) {
			t.Fatalf("WriteTo: %d, %v", n, err)
		}
	}
	// An ETH_P_ALL socket sees this host's frames as outgoing (the kernel
	// does not loop a frame back to the socket that sent it).
	if got := readMatching(t, tap, req); !got.Outgoing || got.HardwareAddr.String() != macA.String() {
		t.Errorf("own request read back as %+v, want outgoing from %v", got, macA)
	}
	// The filtered socket at the other end gets the reply, not the request,
	// from a, and not outgoing.
	if err := b.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, addr, err := b.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], reply) {
		t.Errorf("b read % x, want the reply % x (the request must be filtered out)", buf[:n], reply)
	}
	if got := addr.(*Addr); got.Outgoing || got.HardwareAddr.String() != macA.String() {
		t.Errorf("b's address %+v, want incoming from %v", got, macA)
	}

	// A short buffer truncates.
	if _, err := a.WriteTo(reply, nil); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 16)
	if n, _, err := b.ReadFrom(small); err != nil || n != len(small) || !bytes.Equal(small, reply[:16]) {
		t.Errorf("short read: %d, %v, % x; want the first 16 bytes", n, err, small[:n])
	}

	// A deadline ends a read with a timeout.
	if err := b.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want a deadline error", err)
	}
}

func TestConnDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so WriteTo allocates now and then")
	}
	a, _, b, _ := pair(t)
	reply := arpFrame(macA, 2)
	buf := make([]byte, 1500)
	if err := b.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var failed error
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.WriteTo(reply, nil); err != nil {
			failed = err
		}
		if _, _, err := b.ReadFrom(buf); err != nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per write and read, want 0", allocs)
	}
}

func TestMulticastMembership(t *testing.T) {
	_, _, b, ns := pair(t)
	group := net.HardwareAddr{0x33, 0x33, 0xff, 0, 0x77, 0x01}
	joined := func() bool { return strings.Contains(ns.Run(t, "ip", "maddr", "show", "dev", "vb"), group.String()) }
	if joined() {
		t.Fatalf("%v joined before JoinMulticast", group)
	}
	if err := b.JoinMulticast(group); err != nil {
		t.Fatal(err)
	}
	if !joined() {
		t.Errorf("%v not in vb's multicast list after JoinMulticast", group)
	}
	if err := b.LeaveMulticast(group); err != nil {
		t.Fatal(err)
	}
	if joined() {
		t.Errorf("%v still in vb's multicast list after LeaveMulticast", group)
	}
	if err := b.JoinMulticast(group[:5]); err == nil || !strings.Contains(err.Error(), "not an Ethernet address") {
		t.Errorf("JoinMulticast of a 5-byte address: %v, want a clear error", err)
	}
}

func TestListenErrors(t *testing.T) {
	ns := netnstest.New(t, "wire")
	err := ns.Do(func() error {
		_, err := Listen(&net.Interface{Index: 999, Name: "missing"}, Config{})
		return err
	})
	if err == nil {
		t.Error("Listen on a missing interface succeeded")
	}
	err = ns.Do(func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		_, err = Listen(lo, Config{Filter: []bpf.Instruction{bpf.LoadAbsolute{Size: 3}, bpf.RetA{}}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "BPF") {
		t.Errorf("Listen with a 3-byte load: %v, want a BPF assembly error", err)
	}
}
