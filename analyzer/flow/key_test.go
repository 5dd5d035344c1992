package flow

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCompare16 holds compare16 to bytes.Compare, whose order decides
// which endpoint is Lo and therefore every flow ID.
func TestCompare16(t *testing.T) {
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
		if got, want := compare16(&a, &b), bytes.Compare(a[:], b[:]); got != want {
			t.Fatalf("compare16(%x, %x) = %d, bytes.Compare says %d", a, b, got, want)
		}
	}
}
