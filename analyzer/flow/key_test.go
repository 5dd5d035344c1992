package flow

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
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
		if got := keys[i]; got.ok != ok || got.key != k || got.hash != k.Hash() {
			t.Fatalf("packet %d (vantage %q): KeysOf gives %+v, KeyOf %+v ok=%v", i, pkts[i].Vantage, got, k, ok)
		}
	}
}
