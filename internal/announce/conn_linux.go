//go:build linux

package announce

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ListenInterface opens the real sockets of ifi: two AF_PACKET SOCK_RAW
// sockets bound to ifi.Index, one for EtherType 0x0806 passing only ARP
// requests and one for 0x86DD passing only ICMPv6 Neighbor Solicitations
// (classic BPF filters attached before bind, so nothing else is ever
// queued). Reading and writing them does not allocate. It needs
// CAP_NET_RAW. It is Config.Listen's default.
func ListenInterface(ifi Interface) (Conns, error) {
	nifi := &net.Interface{Index: ifi.Index, Name: ifi.Name, HardwareAddr: ifi.MAC}
	arp, err := listenFrames(nifi, unix.ETH_P_ARP, arpFilter())
	if err != nil {
		return Conns{}, fmt.Errorf("listen for ARP on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	ndp, err := listenFrames(nifi, unix.ETH_P_IPV6, nsFilter())
	if err != nil {
		arp.Close()
		return Conns{}, fmt.Errorf("listen for IPv6 on %s (index %d): %w", ifi.Name, ifi.Index, err)
	}
	return Conns{ARP: arp, NDP: ndp}, nil
}

// listenFrames opens one filtered AF_PACKET SOCK_RAW socket.
func listenFrames(ifi *net.Interface, etherType int, filter []bpf.Instruction) (*frameConn, error) {
	raw, err := bpf.Assemble(filter)
	if err != nil {
		return nil, fmt.Errorf("assemble BPF filter: %w", err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, etherType, &packet.Config{Filter: raw})
	if err != nil {
		return nil, err
	}
	c, err := newFrameConn(pc, ifi.Index)
	if err != nil {
		pc.Close()
		return nil, err
	}
	if err := c.setReadBuffer(readBufferBytes); err != nil {
		pc.Close()
		return nil, err
	}
	return c, nil
}

// readBufferBytes is the receive buffer asked for each socket: under a
// flood the kernel drops whatever arrives while the buffer is full, before
// the rate limiter can tell a flooder's requests from a client's, so the
// buffer must outlast a responder being off the CPU for a while. 4 MiB
// holds about 5,000 small frames (the kernel counts about 768 bytes per
// frame), 170ms of a 30,000 frames/s flood; it is only used while frames
// wait.
const readBufferBytes = 4 << 20

// setReadBuffer sets SO_RCVBUF to n bytes, beyond net.core.rmem_max with
// SO_RCVBUFFORCE if the process has CAP_NET_ADMIN, else as far as rmem_max
// allows.
func (c *frameConn) setReadBuffer(n int) error {
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set receive buffer on interface index %d: %w", c.ifIndex, os.NewSyscallError("setsockopt", err))
	}
	return nil
}

// frameConn is a net.PacketConn over a bound AF_PACKET SOCK_RAW socket
// whose ReadFrom and WriteTo do not allocate (packet.Conn's do: a sockaddr,
// an address and a closure per call). It reads and writes with read(2) and
// write(2) through the socket's syscall.RawConn, using callbacks bound once.
//
// ReadFrom must not be called concurrently (each conn has one responder
// reading it); the address it returns is reused by the next ReadFrom.
// WriteTo is safe for concurrent use and ignores its address: the frame
// carries the destination MAC and the socket's binding gives the interface
// and protocol, which is all the kernel uses for SOCK_RAW.
type frameConn struct {
	pc      *packet.Conn
	rc      syscall.RawConn
	ifIndex int

	// Reader state, used by one goroutine at a time.
	rd      ioOp
	from    packet.Addr
	fromMAC [6]byte

	// writers holds *ioOp for concurrent writers; sync.Pool takes no lock
	// on its fast path.
	writers sync.Pool
}

// ioOp is one read or write: the callback given to RawConn is bound once
// and reads its buffer and results from the op.
type ioOp struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newFrameConn(pc *packet.Conn, ifIndex int) (*frameConn, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &frameConn{pc: pc, rc: rc, ifIndex: ifIndex}
	c.from.HardwareAddr = c.fromMAC[:]
	c.rd.fn = c.rd.read
	c.writers.New = func() any {
		op := &ioOp{}
		op.fn = op.write
		return op
	}
	return c, nil
}

func (op *ioOp) read(fd uintptr) bool {
	op.n, op.err = unix.Read(int(fd), op.b)
	return op.err != unix.EAGAIN && op.err != unix.EINTR
}

func (op *ioOp) write(fd uintptr) bool {
	op.n, op.err = unix.Write(int(fd), op.b)
	return op.err != unix.EAGAIN && op.err != unix.EINTR
}

// ReadFrom reads one frame into b (a longer frame is truncated) and returns
// its Ethernet source address.
func (c *frameConn) ReadFrom(b []byte) (int, net.Addr, error) {
	op := &c.rd
	op.b = b
	err := c.rc.Read(op.fn)
	n, rerr := op.n, op.err
	op.b = nil
	if err == nil && rerr != nil {
		err = c.opError("read", os.NewSyscallError("read", rerr))
	}
	if err != nil {
		return 0, nil, err
	}
	if n >= 12 {
		copy(c.fromMAC[:], b[6:12])
		c.from.HardwareAddr = c.fromMAC[:]
	} else {
		c.from.HardwareAddr = c.fromMAC[:0]
	}
	return n, &c.from, nil
}

// WriteTo sends the Ethernet frame b; addr is not used (see frameConn).
func (c *frameConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	op := c.writers.Get().(*ioOp)
	op.b = b
	err := c.rc.Write(op.fn)
	n, werr := op.n, op.err
	op.b, op.err = nil, nil
	c.writers.Put(op)
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
// as the socket is open (PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST).
func (c *frameConn) JoinMulticast(mac net.HardwareAddr) error {
	return c.membership(unix.PACKET_ADD_MEMBERSHIP, "join", mac)
}

// LeaveMulticast undoes JoinMulticast.
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
