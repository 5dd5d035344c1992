package flow

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
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
		if got, want := compareWords(words(netip.AddrFrom16(a)), words(netip.AddrFrom16(b))), bytes.Compare(a[:], b[:]); got != want {
			t.Fatalf("compareWords(%x, %x) = %d, bytes.Compare says %d", a, b, got, want)
		}
	}
}
