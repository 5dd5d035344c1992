package analyzer

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestHexDigits holds hexDigits to fmt's %04x and %08x, which the flow
// records' cipher and QUIC version columns were written with.
func TestHexDigits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v16, v32 := uint16(r.Uint32()), r.Uint32()
		if got, want := hexDigits(uint64(v16), 4), fmt.Sprintf("%04x", v16); got != want {
			t.Fatalf("hexDigits(%d, 4) = %q, want %q", v16, got, want)
		}
		if got, want := hexDigits(uint64(v32), 8), fmt.Sprintf("%08x", v32); got != want {
			t.Fatalf("hexDigits(%d, 8) = %q, want %q", v32, got, want)
		}
	}
}
