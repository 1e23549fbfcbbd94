package ipam

import (
	"encoding/binary"
	"math/big"
	"math/bits"
	"net/netip"
)

// u128 is an unsigned 128-bit integer used for address arithmetic. IPv4
// addresses occupy the low 32 bits; IPv6 addresses use all 128.
type u128 struct{ hi, lo uint64 }

// maxU128 is 2^128-1, the largest IPv6 address.
var maxU128 = u128{hi: ^uint64(0), lo: ^uint64(0)}

// u128Of returns the integer value of a within its family.
func u128Of(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr returns the address of family f whose value is x.
func (x u128) addr(f Family) netip.Addr {
	if f == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

// cmp returns -1, 0 or +1 as x is less than, equal to or greater than y.
func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.hi < y.hi || (x.hi == y.hi && x.lo < y.lo) }

func (x u128) isZero() bool { return x.hi == 0 && x.lo == 0 }

// add returns x+y, wrapping on overflow.
func (x u128) add(y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return u128{hi: hi, lo: lo}
}

// sub returns x-y, wrapping on underflow.
func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi: hi, lo: lo}
}

func (x u128) addN(n uint64) u128 { return x.add(u128{lo: n}) }

func (x u128) subN(n uint64) u128 { return x.sub(u128{lo: n}) }

func (x u128) and(y u128) u128 { return u128{hi: x.hi & y.hi, lo: x.lo & y.lo} }

func (x u128) onesCount() int { return bits.OnesCount64(x.hi) + bits.OnesCount64(x.lo) }

// big returns x as a big.Int.
func (x u128) big() *big.Int {
	b := new(big.Int).SetUint64(x.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(x.lo))
}

func (x u128) or(y u128) u128 { return u128{hi: x.hi | y.hi, lo: x.lo | y.lo} }

// lowOnes returns 2^n-1 for 0 <= n <= 128.
func lowOnes(n int) u128 {
	if n >= 64 {
		return u128{hi: 1<<uint(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{lo: 1<<uint(n) - 1}
}
