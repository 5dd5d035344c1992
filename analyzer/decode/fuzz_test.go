package decode

import (
	"testing"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/schemas"
)

// FuzzDecode feeds arbitrary bytes under any link type. Seeds are every
// table frame. Properties: no panic, a known reason, a partial or full
// decode names an IP version, and the captured payload never exceeds the
// length the headers give.
func FuzzDecode(f *testing.F) {
	for _, tc := range tableCases() {
		f.Add(tc.link, uint32(0), tc.frame)
		f.Add(tc.link, uint32(len(tc.frame)), tc.frame)
	}
	d := New(Options{})
	f.Fuzz(func(t *testing.T, link uint16, wire uint32, data []byte) {
		fr := capture.Frame{LinkType: link, WireLen: wire, Data: data}
		var p schemas.PacketMeta
		r := ReasonOf(d.Decode(&fr, &p))
		if r >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != ReasonOK && !r.Partial() {
			return
		}
		if p.IPVersion != 4 && p.IPVersion != 6 {
			t.Fatalf("reason %v with IP version %d", r, p.IPVersion)
		}
		if uint32(len(p.Payload)) > p.PayloadLen {
			t.Fatalf("reason %v: %d payload bytes captured, headers say %d", r, len(p.Payload), p.PayloadLen)
		}
	})
}
