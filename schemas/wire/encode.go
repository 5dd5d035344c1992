package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"

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

// Encoder turns rows into message values. It keeps its buffers between
// calls; it is not safe for concurrent use.
type Encoder struct {
	ipcOpts []ipc.Option
	// mem holds the writer's compressed buffers and message metadata,
	// reused from one message to the next: without it they are new garbage
	// the size of each message.
	mem  slab
	rows Rows // Encode's
	out  appendWriter
}

// Rows accumulates PacketMeta rows as the columns of one message: Append
// transposes each row as it comes, so a caller that regroups rows (the
// Kafka publisher, by partition) copies a row once, into its columns. The
// zero value is empty and ready; Reset empties it and keeps its storage.
type Rows struct {
	n     int
	room  int             // rows the fixed columns have room for
	fixed [numCols][]byte // room rows long: row i of column c at i*width[c]
	vars  [numCols]varColumn
}

// varColumn is an Arrow binary/utf8 column under construction.
type varColumn struct {
	offsets  []byte // int32 little endian, rows+1 of them
	data     []byte
	validity []byte // kept from the first null on; nil while every value is valid
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

func isVar(c int) bool { return slices.Contains(varCols[:], c) }

// MaxOverhead bounds what a message adds to its rows: a message of rows
// r encodes to at most r.Size()+MaxOverhead bytes, whatever the codec
// makes of them (TestEncodedSizeBound).
const MaxOverhead = 16 << 10

// Encode appends the message value for b to dst and returns it. An empty
// batch encodes to a valid message of zero rows.
func (e *Encoder) Encode(dst []byte, b *schemas.PacketBatch) ([]byte, error) {
	e.rows.Reset()
	for i := range b.Packets {
		e.rows.Append(&b.Packets[i])
	}
	return e.EncodeRows(dst, &e.rows)
}

// EncodeRows appends the message value for r to dst and returns it.
func (e *Encoder) EncodeRows(dst []byte, r *Rows) ([]byte, error) {
	if r.n == 0 {
		r.start()
	}
	n := r.n
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
			v := &r.vars[i]
			var valid *memory.Buffer
			if v.nulls > 0 {
				valid = memory.NewBufferBytes(v.validity)
			}
			bufs = []*memory.Buffer{valid, memory.NewBufferBytes(v.offsets), memory.NewBufferBytes(v.data)}
			nulls = v.nulls
		case i == colBadCsum:
			bufs = []*memory.Buffer{nil, memory.NewBufferBytes(r.fixed[i][:(n+7)/8])}
		default:
			bufs = []*memory.Buffer{nil, memory.NewBufferBytes(r.fixed[i][:n*width[i]])}
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

// Len is the number of rows.
func (r *Rows) Len() int { return r.n }

// Size is the bytes of the columns.
func (r *Rows) Size() int {
	n := rowWidth*r.n + (r.n+7)/8
	for _, i := range varCols {
		v := &r.vars[i]
		n += len(v.offsets) + len(v.data) + len(v.validity)
	}
	return n
}

var varCols = [...]int{colVantage, colSrc, colDst, colPayload, colQSrc, colQDst}

// rowWidth is the bytes of a row in the fixed-width columns.
var rowWidth = func() int {
	n := 0
	for _, w := range width {
		n += w
	}
	return n
}()

// Reset empties r.
func (r *Rows) Reset() { r.n = 0 }

// start empties the columns for a first row: offsets start at 0.
func (r *Rows) start() {
	clear(r.fixed[colBadCsum]) // set bit by bit
	for i := range numCols {
		v := &r.vars[i]
		v.offsets = append(v.offsets[:0], 0, 0, 0, 0)
		v.data, v.validity, v.nulls = v.data[:0], v.validity[:0], 0
	}
}

// Append adds p as the last row; p may be reused after the call.
func (r *Rows) Append(p *schemas.PacketMeta) {
	if r.n == 0 {
		r.start()
	}
	if r.n == r.room {
		r.grow()
	}
	le := binary.LittleEndian
	f, v, n := &r.fixed, &r.vars, r.n
	le.PutUint64(f[colTimestamp][8*n:], uint64(p.TimestampNs))
	v[colVantage].appendString(p.Vantage)
	le.PutUint32(f[colIface][4*n:], p.Iface)
	le.PutUint32(f[colWireLen][4*n:], p.WireLen)
	f[colIPVersion][n] = p.IPVersion
	v[colSrc].appendAddr(p.Src)
	v[colDst].appendAddr(p.Dst)
	f[colProto][n] = p.Proto
	f[colTTL][n] = p.TTL
	le.PutUint32(f[colIPID][4*n:], p.IPID)
	le.PutUint16(f[colIPLen][2*n:], p.IPLen)
	f[colFrag][n] = uint8(p.Frag)
	le.PutUint16(f[colFragOff][2*n:], p.FragOff)
	le.PutUint16(f[colSrcPort][2*n:], p.SrcPort)
	le.PutUint16(f[colDstPort][2*n:], p.DstPort)
	f[colTCPFlags][n] = p.TCPFlags
	le.PutUint32(f[colSeq][4*n:], p.Seq)
	le.PutUint32(f[colAck][4*n:], p.Ack)
	le.PutUint16(f[colWindow][2*n:], p.Window)
	f[colTCPOpts][n] = p.TCPOpts
	le.PutUint16(f[colMSS][2*n:], p.MSS)
	f[colWScale][n] = p.WScale
	le.PutUint32(f[colTSVal][4*n:], p.TSVal)
	le.PutUint32(f[colTSEcr][4*n:], p.TSEcr)
	if p.BadCsum {
		f[colBadCsum][n/8] |= 1 << (n % 8)
	}
	le.PutUint32(f[colPayloadLen][4*n:], p.PayloadLen)
	v[colPayload].appendPayload(n, p.Payload)
	f[colICMPType][n] = p.ICMPType
	f[colICMPCode][n] = p.ICMPCode
	v[colQSrc].appendAddr(p.Quoted.Src)
	v[colQDst].appendAddr(p.Quoted.Dst)
	le.PutUint16(f[colQSrcPort][2*n:], p.Quoted.SrcPort)
	le.PutUint16(f[colQDstPort][2*n:], p.Quoted.DstPort)
	f[colQProto][n] = p.Quoted.Proto
	r.n++
}

// grow doubles the room of the fixed-width columns, keeping their rows.
func (r *Rows) grow() {
	r.room = max(2*r.room, 256)
	for i := range numCols {
		size := width[i] * r.room
		switch {
		case i == colBadCsum:
			size = (r.room + 7) / 8
		case isVar(i):
			continue
		}
		r.fixed[i] = append(r.fixed[i], make([]byte, size-len(r.fixed[i]))...)
	}
}

func (v *varColumn) endRow() {
	v.offsets = binary.LittleEndian.AppendUint32(v.offsets, uint32(len(v.data)))
}

func (v *varColumn) appendString(s string) {
	v.data = append(v.data, s...)
	v.endRow()
}

func (v *varColumn) appendAddr(a netip.Addr) {
	v.data, _ = a.AppendBinary(v.data) // never fails for netip.Addr
	v.endRow()
}

// appendPayload adds row r's payload, keeping nil apart from empty: nil
// is a null value. The validity bitmap starts at the first null, with
// every earlier row valid.
func (v *varColumn) appendPayload(r int, p []byte) {
	if p == nil && v.nulls == 0 {
		for range r / 8 {
			v.validity = append(v.validity, 0xff)
		}
		if r%8 != 0 {
			v.validity = append(v.validity, byte(1)<<(r%8)-1)
		}
	}
	if p == nil || v.nulls > 0 {
		if r%8 == 0 {
			v.validity = append(v.validity, 0)
		}
		if p == nil {
			v.nulls++
		} else {
			v.validity[r/8] |= 1 << (r % 8)
		}
	}
	v.data = append(v.data, p...)
	v.endRow()
}

// appendWriter is an io.Writer that appends to a caller's slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
