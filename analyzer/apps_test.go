package analyzer

import (
	"fmt"
	"math/rand/v2"
	"strings"
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

// TestALPNField holds alpnField to strings.Join, which the column was
// written with.
func TestALPNField(t *testing.T) {
	for _, protos := range [][]string{nil, {"h2"}, {"http/1.1"}, {"h2", "http/1.1"}, {"http/1.1", "h2"}, {"h3", "h2", "http/1.1"}, {""}} {
		if got, want := alpnField(protos), strings.Join(protos, ","); got != want {
			t.Errorf("alpnField(%q) = %q, want %q", protos, got, want)
		}
	}
}
