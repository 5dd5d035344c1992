package flow

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/tamperscope/tamperscope/internal/ipwords"
)

// TestCompareWords holds compareWords to bytes.Compare of the 16-byte
// forms, whose order decides which endpoint is Lo and therefore every flow
// ID.
func TestCompareWords(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100_000; i++ {
		var a, b [16]byte
		for j := range a {
			a[j] = byte(r.IntN(4)) // few values: equal prefixes are common
			b[j] = byte(r.IntN(4))
		}
		if r.IntN(4) == 0 {
			b = a
		}
		if i%3 == 0 {
			a[r.IntN(16)] = 0xff
		}
		ah, al := ipwords.Of(netip.AddrFrom16(a))
		bh, bl := ipwords.Of(netip.AddrFrom16(b))
		if got, want := compareWords(ah, al, bh, bl), bytes.Compare(a[:], b[:]); got != want {
			t.Fatalf("compareWords(%x, %x) = %d, bytes.Compare says %d", a, b, got, want)
		}
	}
}

// TestKeysOf: the keys KeysOf works out for a batch are those KeyOf gives
// each packet, vantages changing inside the batch included.
func TestKeysOf(t *testing.T) {
	pkts := workload(500, 50, 1000)
	for i := range pkts {
		pkts[i].Vantage = []string{"", "kz", "kz", "nl"}[i%4]
	}
	pkts[7].Src = netip.Addr{} // no usable address: not ok
	keys := KeysOf(make([]KeyedPacket, 3), pkts)
	if len(keys) != len(pkts) {
		t.Fatalf("%d keys for %d packets", len(keys), len(pkts))
	}
	for i := range pkts {
		k, ok := KeyOf(&pkts[i])
		h := indexHash(k.LoAddr[0], k.LoAddr[1], k.HiAddr[0], k.HiAddr[1], k.LoPort, k.HiPort, k.Proto, k.Vantage)
		if got := keys[i]; got.ok != ok || got.key != k || got.hash != h {
			t.Fatalf("packet %d (vantage %q): KeysOf gives %+v, KeyOf %+v ok=%v", i, pkts[i].Vantage, got, k, ok)
		}
	}
}

// TestIndexHashSpreads: the index hash's low bits spread flows that
// differ in a port or an address's last byte, as captures are made of,
// as a random function would: the fullest of 2^16 slots holds few of
// 2^15 flows (a random hash's fullest holds about 6).
func TestIndexHashSpreads(t *testing.T) {
	var load [1 << 16]int
	srv := netip.MustParseAddr("203.0.113.7")
	srv6 := netip.MustParseAddr("2001:db8::7")
	for i := range 1 << 15 {
		var k Key
		var h uint64
		switch i % 3 {
		case 0: // one client, many ports
			h, _ = k.set(netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv, uint16(1024+i), 443, 6, 0)
		case 1: // many clients, one port
			h, _ = k.set(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), srv, 50000, 443, 6, 0)
		default:
			h, _ = k.set(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), srv6, 50000, 443, 6, 0)
		}
		load[h&(1<<16-1)]++
	}
	if m := slices.Max(load[:]); m > 10 {
		t.Errorf("the fullest index slot holds %d of %d flows", m, 1<<15)
	}
}
