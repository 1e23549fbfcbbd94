//go:build linux

package guard

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// allNodesMAC is the Ethernet address of ff02::1 (RFC 2464 §7), where
// unsolicited Neighbor Advertisements and answers to DAD go.
var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// ListenInterface opens the real sockets of ifi: two AF_PACKET SOCK_RAW
// sockets bound to ifi.Index and ETH_P_ALL (the only binding that also
// receives this host's outgoing frames), each with a classic BPF filter
// attached before bind that passes only possible claims (see arpFilter and
// ndpFilter), so ordinary ARP requests and all other traffic never reach
// user space. The IPv6 socket joins the all-nodes group 33:33:00:00:00:01.
// ReadFrom returns an *Addr whose Outgoing is PACKET_OUTGOING, and does not
// allocate. It needs CAP_NET_RAW. It is Config.Listen's default.
func ListenInterface(ifi Interface) (Conns, error) {
	nifi := &net.Interface{Index: ifi.Index, Name: ifi.Name, HardwareAddr: ifi.MAC}
	arp, err := listenFrames(nifi, arpFilter())
	if err != nil {
		return Conns{}, fmt.Errorf("listen for ARP on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	ndp, err := listenFrames(nifi, ndpFilter())
	if err != nil {
		arp.Close()
		return Conns{}, fmt.Errorf("listen for IPv6 on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	if err := ndp.JoinMulticast(allNodesMAC); err != nil {
		arp.Close()
		ndp.Close()
		return Conns{}, fmt.Errorf("listen for IPv6 on %s: %w", ifi.Name, err)
	}
	return Conns{ARP: arp, NDP: ndp}, nil
}

// listenFrames opens one filtered AF_PACKET SOCK_RAW socket for all
// EtherTypes.
func listenFrames(ifi *net.Interface, filter []bpf.Instruction) (*frameConn, error) {
	raw, err := bpf.Assemble(filter)
	if err != nil {
		return nil, fmt.Errorf("assemble BPF filter: %w", err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: raw})
	if err != nil {
		return nil, err
	}
	rc, err := pc.SyscallConn()
	if err != nil {
		pc.Close()
		return nil, err
	}
	c := &frameConn{pc: pc, rc: rc, ifIndex: ifi.Index}
	c.rd.fn = c.rd.read
	return c, nil
}

// frameConn is a net.PacketConn over a bound AF_PACKET SOCK_RAW socket whose
// ReadFrom reports the packet type and does not allocate: it calls
// recvfrom(2) through the socket's syscall.RawConn with a callback and a
// sockaddr_ll bound once. ReadFrom must not be called concurrently, and the
// *Addr it returns is reused by the next call. WriteTo is safe for
// concurrent use and ignores its address: the frame carries the
// destination MAC and the binding gives the interface.
type frameConn struct {
	pc      *packet.Conn
	rc      syscall.RawConn
	ifIndex int

	// Reader state, used by one goroutine at a time.
	rd      readOp
	from    Addr
	fromMAC [6]byte
}

// readOp is one recvfrom: the callback reads its buffer from and leaves its
// results in the op.
type readOp struct {
	b     []byte
	n     int
	err   error
	sa    unix.RawSockaddrLinklayer
	salen uint32
	fn    func(fd uintptr) bool
}

func (op *readOp) read(fd uintptr) bool {
	if len(op.b) == 0 {
		op.n, op.err = 0, nil
		return true
	}
	for {
		op.salen = unix.SizeofSockaddrLinklayer
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&op.b[0])), uintptr(len(op.b)), 0,
			uintptr(unsafe.Pointer(&op.sa)), uintptr(unsafe.Pointer(&op.salen)))
		switch errno {
		case 0:
			op.n, op.err = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for readability
		default:
			op.n, op.err = 0, errno
			return true
		}
	}
}

// ReadFrom reads one frame into b (a longer frame is truncated) and returns
// its Ethernet source and whether it was outgoing.
func (c *frameConn) ReadFrom(b []byte) (int, net.Addr, error) {
	op := &c.rd
	op.b = b
	err := c.rc.Read(op.fn)
	n, rerr := op.n, op.err
	op.b = nil
	if err == nil && rerr != nil {
		err = c.opError("read", os.NewSyscallError("recvfrom", rerr))
	}
	if err != nil {
		return 0, nil, err
	}
	if n > len(b) {
		n = len(b)
	}
	c.from.HardwareAddr = c.fromMAC[:0]
	if n >= 12 {
		copy(c.fromMAC[:], b[6:12])
		c.from.HardwareAddr = c.fromMAC[:]
	}
	c.from.Outgoing = op.sa.Pkttype == pktTypeOutgoing
	return n, &c.from, nil
}

// WriteTo sends the Ethernet frame b; addr is not used (see frameConn).
func (c *frameConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	var n int
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), b)
			if werr != unix.EINTR {
				return werr != unix.EAGAIN
			}
		}
	})
	if err == nil && werr != nil {
		err = c.opError("write", os.NewSyscallError("write", werr))
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (c *frameConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "packet", Addr: c.pc.LocalAddr(), Err: err}
}

// JoinMulticast adds mac to the interface's multicast filter for as long
// as the socket is open (PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST). The
// kernel counts memberships, so each Join needs its own Leave.
func (c *frameConn) JoinMulticast(mac net.HardwareAddr) error {
	return c.membership(unix.PACKET_ADD_MEMBERSHIP, "join", mac)
}

// LeaveMulticast undoes one JoinMulticast.
func (c *frameConn) LeaveMulticast(mac net.HardwareAddr) error {
	return c.membership(unix.PACKET_DROP_MEMBERSHIP, "leave", mac)
}

func (c *frameConn) membership(opt int, name string, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("%s multicast group %v: not an Ethernet address", name, mac)
	}
	mreq := unix.PacketMreq{Ifindex: int32(c.ifIndex), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
	copy(mreq.Address[:], mac)
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptPacketMreq(int(fd), unix.SOL_PACKET, opt, &mreq)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("%s multicast group %v on interface index %d: %w", name, mac, c.ifIndex,
			os.NewSyscallError("setsockopt", err))
	}
	return nil
}

func (c *frameConn) Close() error                       { return c.pc.Close() }
func (c *frameConn) LocalAddr() net.Addr                { return c.pc.LocalAddr() }
func (c *frameConn) SetDeadline(t time.Time) error      { return c.pc.SetDeadline(t) }
func (c *frameConn) SetReadDeadline(t time.Time) error  { return c.pc.SetReadDeadline(t) }
func (c *frameConn) SetWriteDeadline(t time.Time) error { return c.pc.SetWriteDeadline(t) }

var (
	_ net.PacketConn      = (*frameConn)(nil)
	_ MulticastMembership = (*frameConn)(nil)
)
