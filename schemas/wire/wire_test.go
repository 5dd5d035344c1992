package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/tamperscope/tamperscope/schemas"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

var codecs = []Codec{Zstd, LZ4, Uncompressed}

// addrs covers every shape of netip.Addr: zero, IPv4, IPv6, 4-in-6, zoned,
// unspecified.
var addrs = []netip.Addr{
	{},
	netip.MustParseAddr("192.0.2.1"),
	netip.MustParseAddr("0.0.0.0"),
	netip.MustParseAddr("255.255.255.255"),
	netip.MustParseAddr("2001:db8::1"),
	netip.MustParseAddr("::"),
	netip.MustParseAddr("::ffff:198.51.100.7"),
	netip.MustParseAddr("fe80::1%eth0"),
}

// randomBatch fills every field with random values; payloads are nil,
// empty or random bytes in the batch's arena.
func randomBatch(rng *rand.Rand, n int) *schemas.PacketBatch {
	b := &schemas.PacketBatch{}
	type span struct{ lo, hi int }
	spans := make([]span, n)
	for i := range n {
		switch rng.IntN(4) {
		case 0:
			spans[i] = span{-1, -1} // nil
		case 1:
			spans[i] = span{len(b.Arena), len(b.Arena)} // empty
		default:
			lo := len(b.Arena)
			for range rng.IntN(600) {
				b.Arena = append(b.Arena, byte(rng.Uint32()))
			}
			spans[i] = span{lo, len(b.Arena)}
		}
	}
	u8 := func() uint8 { return uint8(rng.Uint32()) }
	u16 := func() uint16 { return uint16(rng.Uint32()) }
	addr := func() netip.Addr { return addrs[rng.IntN(len(addrs))] }
	vantages := []string{"", "ams-1", "vps-ü"}
	for i := range n {
		p := schemas.PacketMeta{
			TimestampNs: rng.Int64() - rng.Int64(),
			Vantage:     vantages[rng.IntN(len(vantages))],
			Iface:       rng.Uint32(),
			WireLen:     rng.Uint32(),
			IPVersion:   u8(),
			Src:         addr(),
			Dst:         addr(),
			Proto:       u8(),
			TTL:         u8(),
			IPID:        rng.Uint32(),
			IPLen:       u16(),
			Frag:        schemas.Frag(u8()),
			FragOff:     u16(),
			SrcPort:     u16(),
			DstPort:     u16(),
			TCPFlags:    u8(),
			Seq:         rng.Uint32(),
			Ack:         rng.Uint32(),
			Window:      u16(),
			TCPOpts:     u8(),
			MSS:         u16(),
			WScale:      u8(),
			TSVal:       rng.Uint32(),
			TSEcr:       rng.Uint32(),
			BadCsum:     rng.IntN(2) == 0,
			PayloadLen:  rng.Uint32(),
			ICMPType:    u8(),
			ICMPCode:    u8(),
			Quoted: schemas.Quoted{
				Src: addr(), Dst: addr(), SrcPort: u16(), DstPort: u16(), Proto: u8(),
			},
		}
		if s := spans[i]; s.lo >= 0 {
			p.Payload = b.Arena[s.lo:s.hi:s.hi]
		}
		b.Packets = append(b.Packets, p)
	}
	return b
}

func encode(t testing.TB, c Codec, b *schemas.PacketBatch) []byte {
	t.Helper()
	e, err := NewEncoder(EncoderOptions{Codec: c})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := e.Encode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func inArena(p, arena []byte) bool {
	if len(p) == 0 {
		return true
	}
	a := uintptr(unsafe.Pointer(unsafe.SliceData(arena)))
	q := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return q >= a && q+uintptr(len(p)) <= a+uintptr(len(arena))
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range codecs {
		for _, n := range []int{0, 1, 7, 8, 9, 1000} {
			t.Run(c.String()+"/"+itoa(n), func(t *testing.T) {
				in := randomBatch(rng, n)
				msg := encode(t, c, in)
				// One decoder and one batch across two messages: the second
				// decode must not keep anything of the first.
				d := NewDecoder(DecoderOptions{})
				out := randomBatch(rng, 50)
				if err := d.Decode(encode(t, c, randomBatch(rng, 30)), out); err != nil {
					t.Fatal(err)
				}
				if err := d.Decode(msg, out); err != nil {
					t.Fatal(err)
				}
				if n == 0 && len(out.Packets) == 0 {
					return
				}
				if diff := cmp.Diff(in.Packets, out.Packets, addrCmp); diff != "" {
					t.Fatalf("round trip (-in +out):\n%s", diff)
				}
				for i, p := range out.Packets {
					if !inArena(p.Payload, out.Arena) {
						t.Fatalf("row %d: payload outside the batch arena", i)
					}
				}
			})
		}
	}
}

func TestEncoderReuse(t *testing.T) {
	// A batch with nil payloads followed by one without must not inherit
	// the first one's nulls.
	rng := rand.New(rand.NewPCG(3, 4))
	e, _ := NewEncoder(EncoderOptions{})
	d := NewDecoder(DecoderOptions{})
	var out schemas.PacketBatch
	for i := range 4 {
		in := randomBatch(rng, 100+i*50)
		if i%2 == 1 {
			for j := range in.Packets {
				in.Packets[j].Payload = in.Arena[:0]
			}
		}
		msg, err := e.Encode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Decode(msg, &out); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(in.Packets, out.Packets, addrCmp); diff != "" {
			t.Fatalf("batch %d (-in +out):\n%s", i, diff)
		}
	}
}

func TestEncodeAppends(t *testing.T) {
	e, _ := NewEncoder(EncoderOptions{})
	in := randomBatch(rand.New(rand.NewPCG(5, 6)), 10)
	msg, err := e.Encode([]byte("prefix"), in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(msg, []byte("prefix")) {
		t.Fatal("Encode dropped dst's contents")
	}
	var out schemas.PacketBatch
	if err := NewDecoder(DecoderOptions{}).Decode(msg[len("prefix"):], &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Packets) != 10 {
		t.Fatalf("got %d rows, want 10", len(out.Packets))
	}
}

// withMetadata re-writes msg with its schema metadata replaced.
func withMetadata(t *testing.T, msg []byte, keys, values []string) []byte {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	if !rd.Next() {
		t.Fatal("no record")
	}
	rec := rd.RecordBatch()
	md := arrow.NewMetadata(keys, values)
	s := arrow.NewSchema(schema.Fields(), &md)
	out := array.NewRecordBatch(s, rec.Columns(), rec.NumRows())
	defer out.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s))
	if err := w.Write(out); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	good := encode(t, Zstd, randomBatch(rng, 200))

	var foreign bytes.Buffer
	{
		s := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
		bld := array.NewInt64Builder(memory.DefaultAllocator)
		bld.AppendValues([]int64{1, 2, 3}, nil)
		col := bld.NewArray()
		rec := array.NewRecordBatch(s, []arrow.Array{col}, 3)
		w := ipc.NewWriter(&foreign, ipc.WithSchema(s))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"garbage", []byte("this is not an arrow stream at all\xff\xff\xff\xff\x00\x00\x00\x00"), ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"no end marker", good[:len(good)-8], ErrCorrupt},
		{"foreign arrow stream", foreign.Bytes(), ErrCorrupt},
		{"future wire version", withMetadata(t, good,
			[]string{MetaWireVersion, MetaPacketMetaVersion}, []string{"2", "1"}), ErrVersion},
		{"future packet version", withMetadata(t, good,
			[]string{MetaWireVersion, MetaPacketMetaVersion}, []string{"1", "99"}), ErrVersion},
		{"no version", withMetadata(t, good, nil, nil), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := randomBatch(rng, 5)
			err := NewDecoder(DecoderOptions{}).Decode(tt.msg, b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode error %v, want %v", err, tt.want)
			}
			if len(b.Packets) != 0 {
				t.Fatalf("failed Decode left %d rows", len(b.Packets))
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	msg := encode(t, Zstd, randomBatch(rand.New(rand.NewPCG(9, 10)), 2000))
	var b schemas.PacketBatch
	for _, o := range []DecoderOptions{{MaxBytes: 4096}, {MaxRows: 1999}} {
		if err := NewDecoder(o).Decode(msg, &b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v: Decode error %v, want ErrCorrupt", o, err)
		}
	}
	if err := NewDecoder(DecoderOptions{MaxRows: 2000}).Decode(msg, &b); err != nil {
		t.Errorf("at the row limit: %v", err)
	}
}

// TestDecodeEveryTruncation cuts a message at every length: always an
// error, never a panic or a partial batch.
func TestDecodeEveryTruncation(t *testing.T) {
	for _, c := range codecs {
		msg := encode(t, c, randomBatch(rand.New(rand.NewPCG(11, 12)), 20))
		d := NewDecoder(DecoderOptions{})
		var b schemas.PacketBatch
		for i := range len(msg) {
			if err := d.Decode(msg[:i], &b); err == nil || len(b.Packets) != 0 {
				t.Fatalf("%v: Decode of %d of %d bytes: err %v, %d rows", c, i, len(msg), err, len(b.Packets))
			}
		}
	}
}

func TestDecodeAllocsIndependentOfRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	allocs := func(n int) float64 {
		msg := encode(t, Zstd, randomBatch(rng, n))
		d := NewDecoder(DecoderOptions{})
		var b schemas.PacketBatch
		return testing.AllocsPerRun(20, func() {
			if err := d.Decode(msg, &b); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(100), allocs(5000)
	t.Logf("allocs per message: %v (100 rows), %v (5000 rows)", small, large)
	// The ipc reader's own allocations vary a little with buffer sizes; a
	// per-row allocation would add thousands.
	if large-small > 50 {
		t.Fatalf("decode allocates per row: %v allocs for 100 rows, %v for 5000", small, large)
	}
}

func TestEncodeAllocsIndependentOfRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	allocs := func(n int) float64 {
		in := randomBatch(rng, n)
		e, _ := NewEncoder(EncoderOptions{})
		buf := make([]byte, 0, 8<<20)
		return testing.AllocsPerRun(20, func() {
			if _, err := e.Encode(buf[:0], in); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(100), allocs(5000)
	t.Logf("allocs per message: %v (100 rows), %v (5000 rows)", small, large)
	if large-small > 50 {
		t.Fatalf("encode allocates per row: %v allocs for 100 rows, %v for 5000", small, large)
	}
}

func itoa(n int) string {
	return string(rune('0'+n/1000%10)) + string(rune('0'+n/100%10)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

// TestEncodedSizeBound: a message is at most its rows' Size plus
// MaxOverhead, for every codec, compressible rows or not, which lets the
// publisher close a message by size before encoding it.
func TestEncodedSizeBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	incompressible := func(n int) *schemas.PacketBatch {
		b := randomBatch(rng, n)
		for i := range b.Packets {
			p := make([]byte, 1500)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			b.Packets[i].Payload = p
		}
		return b
	}
	for _, c := range codecs {
		e, _ := NewEncoder(EncoderOptions{Codec: c})
		for _, in := range []*schemas.PacketBatch{randomBatch(rng, 0), randomBatch(rng, 1), trafficBatch(4096), incompressible(600)} {
			var r Rows
			for i := range in.Packets {
				r.Append(&in.Packets[i])
			}
			msg, err := e.EncodeRows(nil, &r)
			if err != nil {
				t.Fatal(err)
			}
			if len(msg) > r.Size()+MaxOverhead {
				t.Errorf("%v, %d rows: %d bytes, over Size %d + MaxOverhead", c, r.Len(), len(msg), r.Size())
			}
		}
	}
}
