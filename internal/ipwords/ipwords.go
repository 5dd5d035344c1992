// Package ipwords reads a netip.Addr as two 64-bit words, for the
// per-packet hashing and ordering of flow keys.
package ipwords

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// Of returns the 16-byte form of a (IPv4 as IPv4-mapped IPv6) as two
// big-endian words: hi holds bytes 0-7 of a.As16(), lo bytes 8-15.
//
// It reads the words netip.Addr keeps them in. Going through As16 gives
// the same values, but the compiler stores its array to the stack in two
// halves and loads it back whole, a failed store forwarding per address
// that showed up as several percent of replay time.
func Of(a netip.Addr) (hi, lo uint64) {
	if direct {
		w := (*[2]uint64)(unsafe.Pointer(&a))
		return w[0], w[1]
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// direct says that netip.Addr begins with its address as two native
// words, high word first, as it has since Go 1.18. It is checked once
// against As16, so a Go release that changes the layout costs speed, not
// correctness (and TestDirect says so).
var direct = func() bool {
	if unsafe.Sizeof(netip.Addr{}) < 16 {
		return false
	}
	for _, s := range []string{"0.0.0.0", "192.0.2.1", "255.1.2.254", "::", "::ffff:10.0.0.1", "2001:db8::1:2:3:4", "fe80::1%eth0", "ffff:eeee:dddd:cccc:bbbb:aaaa:9999:8888"} {
		a := netip.MustParseAddr(s)
		w := (*[2]uint64)(unsafe.Pointer(&a))
		b := a.As16()
		if w[0] != binary.BigEndian.Uint64(b[:8]) || w[1] != binary.BigEndian.Uint64(b[8:]) {
			return false
		}
	}
	return true
}()
