package ingest

import (
	"bytes"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// tlsRecord is a TLS record of type typ with n body bytes.
func tlsRecord(typ byte, n int) []byte {
	return append([]byte{typ, 0x03, 0x03, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{typ}, n)...)
}

// TestTLSFraming: a TLS direction keeps its handshake records, however the
// segments cut them, and nothing from the first record of another type on;
// anything the framing cannot follow falls back to the budget.
func TestTLSFraming(t *testing.T) {
	hello := tlsRecord(0x16, 300)
	cert := tlsRecord(0x16, 2500)
	ccs := tlsRecord(0x14, 1)
	app := tlsRecord(0x17, 40)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	type seg struct {
		off  uint32 // sequence offset from the first segment
		data []byte
		keep int
	}
	tests := []struct {
		name string
		segs []seg
	}{
		{"handshake, change cipher spec and data in one segment", []seg{
			{0, cat(hello, ccs, app), len(hello)},
			{uint32(len(hello) + len(ccs) + len(app)), app, 0},
		}},
		{"hello over two segments", []seg{
			{0, hello[:200], 200},
			{200, cat(hello[200:], app), len(hello) - 200},
			{uint32(len(hello) + len(app)), app, 0},
		}},
		{"TLS 1.2 server flight over three segments", []seg{
			{0, cat(hello, cert[:1000]), len(hello) + 1000},
			{uint32(len(hello) + 1000), cert[1000:2000], 1000},
			{uint32(len(hello) + 2000), cat(cert[2000:], ccs), len(cert) - 2000},
		}},
		{"a gap leaves the rest to the budget", []seg{
			{0, hello[:200], 200},
			{300, app, len(app)},
			{uint32(300 + len(app)), app, len(app)},
		}},
		{"a retransmission leaves the rest to the budget", []seg{
			{0, hello[:200], 200},
			{0, hello[:200], 200},
			{200, cat(hello[200:], app), len(hello) - 200 + len(app)},
		}},
		{"a record header cut by the segment end", []seg{
			{0, cat(hello, ccs[:2]), len(hello) + 2},
			{uint32(len(hello) + 2), cat(ccs[2:], app), len(ccs) - 2 + len(app)},
		}},
		{"not TLS", []seg{
			{0, []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 37},
			{37, app, len(app)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f tlsFraming
			const isn = 0xfffffe00 // the sequence space wraps inside the flow
			for i, s := range tt.segs {
				p := schemas.PacketMeta{Proto: schemas.ProtoTCP, Seq: isn + s.off, Payload: s.data}
				if got := f.keepTLS(&p, len(s.data)); got != s.keep {
					t.Fatalf("segment %d: kept %d of %d bytes, want %d", i, got, len(s.data), s.keep)
				}
			}
		})
	}
}
