//go:build linux

package wire

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Config says what a Conn receives.
type Config struct {
	// EtherType is the protocol the socket is bound to, e.g.
	// unix.ETH_P_ARP; 0 means unix.ETH_P_ALL, the only binding that also
	// receives this host's outgoing frames.
	EtherType int
	// Filter is a classic BPF program attached before bind, so frames it
	// rejects are never queued. Nil passes everything.
	Filter []bpf.Instruction
	// ReadBuffer, if positive, is the receive buffer in bytes: beyond
	// net.core.rmem_max with CAP_NET_ADMIN (SO_RCVBUFFORCE), else as far as
	// rmem_max allows.
	ReadBuffer int
}

// Conn is a net.PacketConn over an AF_PACKET SOCK_RAW socket bound to one
// interface, carrying whole Ethernet frames. Unlike packet.Conn, its
// ReadFrom and WriteTo do not allocate: they call recvfrom(2) and write(2)
// through the socket's syscall.RawConn with callbacks bound once.
//
// ReadFrom must not be called concurrently, and the *Addr it returns is
// reused by the next call. WriteTo is safe for concurrent use and ignores
// its address: the frame carries the destination MAC and the binding gives
// the interface, which is all the kernel uses for SOCK_RAW.
type Conn struct {
	pc      *packet.Conn
	rc      syscall.RawConn
	ifIndex int

	// Reader state, used by one goroutine at a time.
	rd      readOp
	from    Addr
	fromMAC [6]byte

	// writers holds *writeOp for concurrent writers; sync.Pool takes no
	// lock on its fast path.
	writers sync.Pool
}

// Listen opens a Conn on ifi (only Index and Name are used). It needs
// CAP_NET_RAW.
func Listen(ifi *net.Interface, cfg Config) (*Conn, error) {
	var pcfg packet.Config
	if cfg.Filter != nil {
		raw, err := bpf.Assemble(cfg.Filter)
		if err != nil {
			return nil, fmt.Errorf("assemble BPF filter: %w", err)
		}
		pcfg.Filter = raw
	}
	etherType := cfg.EtherType
	if etherType == 0 {
		etherType = unix.ETH_P_ALL
	}
	pc, err := packet.Listen(ifi, packet.Raw, etherType, &pcfg)
	if err != nil {
		return nil, err
	}
	rc, err := pc.SyscallConn()
	if err != nil {
		pc.Close()
		return nil, err
	}
	c := &Conn{pc: pc, rc: rc, ifIndex: ifi.Index}
	c.from.HardwareAddr = c.fromMAC[:0]
	c.rd.fn = c.rd.read
	c.writers.New = func() any {
		op := &writeOp{}
		op.fn = op.write
		return op
	}
	if cfg.ReadBuffer > 0 {
		if err := c.setReadBuffer(cfg.ReadBuffer); err != nil {
			pc.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Conn) setReadBuffer(n int) error {
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

// readOp is one recvfrom: the callback reads its buffer from the op and
// leaves its results there.
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

// writeOp is one write(2), pooled so concurrent writers need no lock.
type writeOp struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func (op *writeOp) write(fd uintptr) bool {
	for {
		op.n, op.err = unix.Write(int(fd), op.b)
		if op.err != unix.EINTR {
			return op.err != unix.EAGAIN
		}
	}
}

// ReadFrom reads one frame into b (a longer frame is truncated) and returns
// an *Addr with its Ethernet source and whether this host sent it.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
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
	n = min(n, len(b))
	c.from.HardwareAddr = c.fromMAC[:0]
	if n >= 12 {
		copy(c.fromMAC[:], b[6:12])
		c.from.HardwareAddr = c.fromMAC[:]
	}
	c.from.Outgoing = op.sa.Pkttype == unix.PACKET_OUTGOING
	return n, &c.from, nil
}

// WriteTo sends the Ethernet frame b; addr is not used (see Conn).
func (c *Conn) WriteTo(b []byte, _ net.Addr) (int, error) {
	op := c.writers.Get().(*writeOp)
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

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "packet", Addr: c.pc.LocalAddr(), Err: err}
}

// JoinMulticast adds mac to the interface's multicast filter for as long
// as the socket is open (PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST). The
// kernel counts memberships, so each Join needs its own Leave.
func (c *Conn) JoinMulticast(mac net.HardwareAddr) error {
	return c.membership(unix.PACKET_ADD_MEMBERSHIP, "join", mac)
}

// LeaveMulticast undoes one JoinMulticast.
func (c *Conn) LeaveMulticast(mac net.HardwareAddr) error {
	return c.membership(unix.PACKET_DROP_MEMBERSHIP, "leave", mac)
}

func (c *Conn) membership(opt int, name string, mac net.HardwareAddr) error {
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

func (c *Conn) Close() error                       { return c.pc.Close() }
func (c *Conn) LocalAddr() net.Addr                { return c.pc.LocalAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.pc.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.pc.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.pc.SetWriteDeadline(t) }

var (
	_ net.PacketConn      = (*Conn)(nil)
	_ MulticastMembership = (*Conn)(nil)
)
