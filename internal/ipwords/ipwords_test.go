package ipwords

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestDirect: this Go release still lays netip.Addr out as Of expects. A
// failure here means Of fell back to As16: correct, but slower.
func TestDirect(t *testing.T) {
	if !direct {
		t.Fatal("netip.Addr no longer starts with its address words; Of takes the slow path")
	}
}

// TestOf: Of agrees with As16 on both of its paths, for IPv4, IPv6, zones
// and the zero Addr.
func TestOf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addrs := []netip.Addr{{}, netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.1")}
	for range 1000 {
		var b16 [16]byte
		for i := range b16 {
			b16[i] = byte(r.Uint32())
		}
		addrs = append(addrs, netip.AddrFrom16(b16), netip.AddrFrom4([4]byte(b16[:4])))
	}
	defer func(d bool) { direct = d }(direct)
	for _, d := range []bool{true, false} {
		direct = d
		for _, a := range addrs {
			b := a.As16()
			hi, lo := Of(a)
			if hi != binary.BigEndian.Uint64(b[:8]) || lo != binary.BigEndian.Uint64(b[8:]) {
				t.Fatalf("direct=%v: Of(%v) = %#x %#x, As16 says %x", d, a, hi, lo, b)
			}
		}
	}
}
