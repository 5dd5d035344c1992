package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/tamperscope/tamperscope/schemas"
)

// Codec is the IPC body compression of a message.
type Codec uint8

const (
	// LZ4: LZ4 frames, the default: a quarter of zstd's encoding CPU for
	// messages about 20 % larger (BenchmarkEncode).
	LZ4 Codec = iota
	// Zstd: the smallest messages.
	Zstd
	// Uncompressed: no body compression, for debugging and measurement.
	Uncompressed
)

func (c Codec) String() string {
	switch c {
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "none"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// EncoderOptions configures an Encoder. The zero value works.
type EncoderOptions struct {
	// Codec compresses the message body. The default is LZ4.
	Codec Codec
}

// Encoder turns PacketBatches into message values. It keeps its column
// buffers between calls; it is not safe for concurrent use.
type Encoder struct {
	ipcOpts []ipc.Option
	// mem holds the writer's compressed buffers and message metadata,
	// reused from one message to the next: without it they are new garbage
	// the size of each message.
	mem   slab
	fixed [numCols][]byte
	vars  [numCols]varColumn
	out   appendWriter
}

// varColumn is an Arrow binary/utf8 column under construction.
type varColumn struct {
	offsets  []byte // int32 little endian, rows+1 of them
	data     []byte
	validity []byte // nil while every value is valid
	nulls    int
}

// NewEncoder returns an Encoder.
func NewEncoder(opts EncoderOptions) (*Encoder, error) {
	e := &Encoder{mem: slab{limit: math.MaxInt}}
	e.ipcOpts = []ipc.Option{ipc.WithSchema(schema), ipc.WithAllocator(&e.mem)}
	switch opts.Codec {
	case LZ4:
		e.ipcOpts = append(e.ipcOpts, ipc.WithLZ4())
	case Zstd:
		e.ipcOpts = append(e.ipcOpts, ipc.WithZstd())
	case Uncompressed:
	default:
		return nil, fmt.Errorf("new encoder: unknown codec %v", opts.Codec)
	}
	return e, nil
}

// width is the byte width of each fixed-width column; 0 for binary columns
// and for the bit-packed boolean.
var width = [numCols]int{
	colTimestamp: 8, colIface: 4, colWireLen: 4, colIPVersion: 1, colProto: 1,
	colTTL: 1, colIPID: 4, colIPLen: 2, colFrag: 1, colFragOff: 2, colSrcPort: 2,
	colDstPort: 2, colTCPFlags: 1, colSeq: 4, colAck: 4, colWindow: 2,
	colTCPOpts: 1, colMSS: 2, colWScale: 1, colTSVal: 4, colTSEcr: 4,
	colPayloadLen: 4, colICMPType: 1, colICMPCode: 1, colQSrcPort: 2,
	colQDstPort: 2, colQProto: 1,
}

func isVar(c int) bool {
	switch c {
	case colVantage, colSrc, colDst, colPayload, colQSrc, colQDst:
		return true
	}
	return false
}

// Encode appends the message value for b to dst and returns it. An empty
// batch encodes to a valid message of zero rows.
func (e *Encoder) Encode(dst []byte, b *schemas.PacketBatch) ([]byte, error) {
	n := len(b.Packets)
	e.fill(b.Packets)
	e.mem.reset()

	cols := make([]arrow.Array, numCols)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range numCols {
		f := schema.Field(i)
		var bufs []*memory.Buffer
		nulls := 0
		switch {
		case isVar(i):
			v := &e.vars[i]
			var valid *memory.Buffer
			if v.nulls > 0 {
				valid = memory.NewBufferBytes(v.validity)
			}
			bufs = []*memory.Buffer{valid, memory.NewBufferBytes(v.offsets), memory.NewBufferBytes(v.data)}
			nulls = v.nulls
		default:
			bufs = []*memory.Buffer{nil, memory.NewBufferBytes(e.fixed[i])}
		}
		d := array.NewData(f.Type, n, bufs, nil, nulls, 0)
		cols[i] = array.MakeFromData(d)
		d.Release()
	}
	rec := array.NewRecordBatch(schema, cols, int64(n))
	defer rec.Release()

	e.out.b = dst
	w := ipc.NewWriter(&e.out, e.ipcOpts...)
	if err := w.Write(rec); err != nil {
		w.Close()
		return dst, fmt.Errorf("encode packet batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return dst, fmt.Errorf("encode packet batch: %w", err)
	}
	out := e.out.b
	e.out.b = nil
	return out, nil
}

// fill transposes the rows into the column buffers.
func (e *Encoder) fill(ps []schemas.PacketMeta) {
	n := len(ps)
	for i := range numCols {
		switch {
		case isVar(i):
			v := &e.vars[i]
			v.offsets = grow(v.offsets, 4*(n+1))
			binary.LittleEndian.PutUint32(v.offsets, 0)
			v.data = v.data[:0]
			v.nulls = 0
		case i == colBadCsum:
			e.fixed[i] = grow(e.fixed[i], (n+7)/8)
			clear(e.fixed[i])
		default:
			e.fixed[i] = grow(e.fixed[i], width[i]*n)
		}
	}
	le := binary.LittleEndian
	f := &e.fixed
	for r := range ps {
		p := &ps[r]
		le.PutUint64(f[colTimestamp][8*r:], uint64(p.TimestampNs))
		e.vars[colVantage].appendString(r, p.Vantage)
		le.PutUint32(f[colIface][4*r:], p.Iface)
		le.PutUint32(f[colWireLen][4*r:], p.WireLen)
		f[colIPVersion][r] = p.IPVersion
		e.vars[colSrc].appendAddr(r, p.Src)
		e.vars[colDst].appendAddr(r, p.Dst)
		f[colProto][r] = p.Proto
		f[colTTL][r] = p.TTL
		le.PutUint32(f[colIPID][4*r:], p.IPID)
		le.PutUint16(f[colIPLen][2*r:], p.IPLen)
		f[colFrag][r] = uint8(p.Frag)
		le.PutUint16(f[colFragOff][2*r:], p.FragOff)
		le.PutUint16(f[colSrcPort][2*r:], p.SrcPort)
		le.PutUint16(f[colDstPort][2*r:], p.DstPort)
		f[colTCPFlags][r] = p.TCPFlags
		le.PutUint32(f[colSeq][4*r:], p.Seq)
		le.PutUint32(f[colAck][4*r:], p.Ack)
		le.PutUint16(f[colWindow][2*r:], p.Window)
		f[colTCPOpts][r] = p.TCPOpts
		le.PutUint16(f[colMSS][2*r:], p.MSS)
		f[colWScale][r] = p.WScale
		le.PutUint32(f[colTSVal][4*r:], p.TSVal)
		le.PutUint32(f[colTSEcr][4*r:], p.TSEcr)
		if p.BadCsum {
			f[colBadCsum][r/8] |= 1 << (r % 8)
		}
		le.PutUint32(f[colPayloadLen][4*r:], p.PayloadLen)
		e.vars[colPayload].appendPayload(r, n, p.Payload)
		f[colICMPType][r] = p.ICMPType
		f[colICMPCode][r] = p.ICMPCode
		e.vars[colQSrc].appendAddr(r, p.Quoted.Src)
		e.vars[colQDst].appendAddr(r, p.Quoted.Dst)
		le.PutUint16(f[colQSrcPort][2*r:], p.Quoted.SrcPort)
		le.PutUint16(f[colQDstPort][2*r:], p.Quoted.DstPort)
		f[colQProto][r] = p.Quoted.Proto
	}
}

func (v *varColumn) endRow(r int) {
	binary.LittleEndian.PutUint32(v.offsets[4*(r+1):], uint32(len(v.data)))
}

func (v *varColumn) appendString(r int, s string) {
	v.data = append(v.data, s...)
	v.endRow(r)
}

func (v *varColumn) appendAddr(r int, a netip.Addr) {
	v.data, _ = a.AppendBinary(v.data) // never fails for netip.Addr
	v.endRow(r)
}

// appendPayload keeps nil apart from empty: nil is a null value.
func (v *varColumn) appendPayload(r, n int, p []byte) {
	if p == nil {
		if v.nulls == 0 {
			v.validity = grow(v.validity, (n+7)/8)
			for i := range v.validity {
				v.validity[i] = 0xff
			}
		}
		v.validity[r/8] &^= 1 << (r % 8)
		v.nulls++
	}
	v.data = append(v.data, p...)
	v.endRow(r)
}

// grow returns b resized to n bytes, reusing its storage when it can.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, n+n/4)
	}
	return b[:n]
}

// appendWriter is an io.Writer that appends to a caller's slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
