package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/tamperscope/tamperscope/schemas"
)

// DecoderOptions configures a Decoder. The zero value works.
type DecoderOptions struct {
	// MaxBytes caps the column memory one message may decode to, whatever
	// sizes it claims. The default is 64 MiB.
	MaxBytes int
	// MaxRows caps the rows of one message. The default is 262144.
	MaxRows int
}

// Decoder turns message values back into PacketBatches. It reuses its
// memory between calls; it is not safe for concurrent use.
type Decoder struct {
	mem     slab
	src     bytes.Reader
	maxRows int
	ipcOpts []ipc.Option
	// vantages are recent vantage names: rows of one vantage share one
	// string instead of allocating one each.
	vantages []string
	zone     string // the same for the last IPv6 zone
}

// maxVantages bounds the names a Decoder remembers; a message mixes a few
// vantages at most.
const maxVantages = 8

// NewDecoder returns a Decoder.
func NewDecoder(opts DecoderOptions) *Decoder {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 1 << 18
	}
	d := &Decoder{maxRows: opts.MaxRows}
	d.mem.limit = opts.MaxBytes
	d.ipcOpts = []ipc.Option{
		ipc.WithAllocator(&d.mem),
		ipc.WithBodySizeLimit(int64(opts.MaxBytes)),
		ipc.WithMetadataSizeLimit(1 << 20),
	}
	return d
}

// eos is the Arrow IPC end-of-stream marker every message ends with.
var eos = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// noBytes backs zero-length payloads, which differ from nil ones.
var noBytes [0]byte

// Decode replaces the contents of b with the rows of msg, reusing b's
// Packets and Arena storage; payloads point into b.Arena. On error b holds
// no rows, and the error answers errors.Is with ErrCorrupt or ErrVersion.
func (d *Decoder) Decode(msg []byte, b *schemas.PacketBatch) (err error) {
	b.Packets = b.Packets[:0]
	b.Arena = b.Arena[:0]
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode packet batch: %w: %v", ErrCorrupt, r)
		}
		if err != nil {
			b.Packets = b.Packets[:0]
			b.Arena = b.Arena[:0]
		}
	}()
	// A stream cut at a message boundary still parses; the marker tells a
	// complete message from a truncated one.
	if !bytes.HasSuffix(msg, eos) {
		return fmt.Errorf("decode packet batch: %w: no end-of-stream marker (truncated?)", ErrCorrupt)
	}
	if err := checkSchema(msg); err != nil {
		return fmt.Errorf("decode packet batch: %w", err)
	}
	d.mem.reset()
	d.src.Reset(msg)
	rd, err := ipc.NewReader(&d.src, d.ipcOpts...)
	if err != nil {
		return fmt.Errorf("decode packet batch: %w: %v", ErrCorrupt, err)
	}
	defer rd.Release()
	records := 0
	for rd.Next() {
		if records++; records > 1 {
			return fmt.Errorf("decode packet batch: %w: more than one record batch", ErrCorrupt)
		}
		if err := d.appendRecord(rd.RecordBatch(), b); err != nil {
			return fmt.Errorf("decode packet batch: %w", err)
		}
	}
	if err := rd.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode packet batch: %w: %v", ErrCorrupt, err)
	}
	if records == 0 {
		return fmt.Errorf("decode packet batch: %w: no record batch", ErrCorrupt)
	}
	return nil
}

// checkSchema accepts exactly the schema message this package writes. A
// schema of unknown bytes is never handed to the Arrow reader, which trusts
// the counts in it (a damaged field count makes it allocate terabytes).
func checkSchema(msg []byte) error {
	if bytes.HasPrefix(msg, schemaMessage) {
		return nil
	}
	// Tell a message of another version (it names the version key in its
	// schema) from bytes that are no packet batch at all.
	head := msg
	if len(head) >= 8 {
		if n := int(binary.LittleEndian.Uint32(msg[4:8])); n >= 0 && n <= len(msg)-8 {
			head = msg[:8+n]
		}
	}
	if bytes.Contains(head, []byte(MetaWireVersion)) {
		return fmt.Errorf("%w: schema is not that of wire version %d / packet version %d (another version, or damaged)",
			ErrVersion, Version, schemas.PacketMetaVersion)
	}
	return fmt.Errorf("%w: not a packet batch schema", ErrCorrupt)
}

// column is one validated column of a record: fixed holds n values of the
// column's width (bits for the boolean); offsets and data a binary column.
type column struct {
	fixed   []byte
	offsets []byte
	data    []byte
	valid   []byte // nil: no nulls
}

func (d *Decoder) appendRecord(rec arrow.RecordBatch, b *schemas.PacketBatch) error {
	n64 := rec.NumRows()
	if n64 < 0 || n64 > int64(d.maxRows) {
		return fmt.Errorf("%w: %d rows, limit %d", ErrCorrupt, n64, d.maxRows)
	}
	n := int(n64)
	var cols [numCols]column
	for i := range numCols {
		if err := cols[i].load(rec.Column(i), i, n); err != nil {
			return fmt.Errorf("%w: column %s: %v", ErrCorrupt, schema.Field(i).Name, err)
		}
	}
	for _, i := range [...]int{colVantage, colSrc, colDst, colQSrc, colQDst} {
		if err := cols[i].checkAddrOrString(i, n); err != nil {
			return fmt.Errorf("%w: column %s: %v", ErrCorrupt, schema.Field(i).Name, err)
		}
	}

	// Payloads are copied once, as one block, into the arena.
	pay := &cols[colPayload]
	le := binary.LittleEndian
	p0 := le.Uint32(pay.offsets)
	b.Arena = append(b.Arena[:0], pay.data[p0:le.Uint32(pay.offsets[4*n:])]...)

	start := len(b.Packets)
	b.Packets = slices.Grow(b.Packets, n)[:start+n]
	c := &cols
	for r := range n {
		var payload []byte
		if pay.valid == nil || pay.valid[r/8]&(1<<(r%8)) != 0 {
			lo, hi := le.Uint32(pay.offsets[4*r:])-p0, le.Uint32(pay.offsets[4*r+4:])-p0
			payload = b.Arena[lo:hi:hi]
			if lo == hi {
				payload = noBytes[:]
			}
		}
		b.Packets[start+r] = schemas.PacketMeta{
			TimestampNs: int64(le.Uint64(c[colTimestamp].fixed[8*r:])),
			Vantage:     d.vantageAt(&c[colVantage], r),
			Iface:       le.Uint32(c[colIface].fixed[4*r:]),
			WireLen:     le.Uint32(c[colWireLen].fixed[4*r:]),
			IPVersion:   c[colIPVersion].fixed[r],
			Src:         d.addrAt(&c[colSrc], r),
			Dst:         d.addrAt(&c[colDst], r),
			Proto:       c[colProto].fixed[r],
			TTL:         c[colTTL].fixed[r],
			IPID:        le.Uint32(c[colIPID].fixed[4*r:]),
			IPLen:       le.Uint16(c[colIPLen].fixed[2*r:]),
			Frag:        schemas.Frag(c[colFrag].fixed[r]),
			FragOff:     le.Uint16(c[colFragOff].fixed[2*r:]),
			SrcPort:     le.Uint16(c[colSrcPort].fixed[2*r:]),
			DstPort:     le.Uint16(c[colDstPort].fixed[2*r:]),
			TCPFlags:    c[colTCPFlags].fixed[r],
			Seq:         le.Uint32(c[colSeq].fixed[4*r:]),
			Ack:         le.Uint32(c[colAck].fixed[4*r:]),
			Window:      le.Uint16(c[colWindow].fixed[2*r:]),
			TCPOpts:     c[colTCPOpts].fixed[r],
			MSS:         le.Uint16(c[colMSS].fixed[2*r:]),
			WScale:      c[colWScale].fixed[r],
			TSVal:       le.Uint32(c[colTSVal].fixed[4*r:]),
			TSEcr:       le.Uint32(c[colTSEcr].fixed[4*r:]),
			BadCsum:     c[colBadCsum].fixed[r/8]&(1<<(r%8)) != 0,
			PayloadLen:  le.Uint32(c[colPayloadLen].fixed[4*r:]),
			Payload:     payload,
			ICMPType:    c[colICMPType].fixed[r],
			ICMPCode:    c[colICMPCode].fixed[r],
			Quoted: schemas.Quoted{
				Src:     d.addrAt(&c[colQSrc], r),
				Dst:     d.addrAt(&c[colQDst], r),
				SrcPort: le.Uint16(c[colQSrcPort].fixed[2*r:]),
				DstPort: le.Uint16(c[colQDstPort].fixed[2*r:]),
				Proto:   c[colQProto].fixed[r],
			},
		}
	}
	return nil
}

// load checks that a's buffers hold n values and keeps them.
func (c *column) load(a arrow.Array, i, n int) error {
	if a.Len() != n {
		return fmt.Errorf("%d values in %d rows", a.Len(), n)
	}
	data := a.Data()
	if data.Offset() != 0 {
		return fmt.Errorf("offset %d", data.Offset())
	}
	bufs := data.Buffers()
	if a.NullN() > 0 {
		if i != colPayload {
			return fmt.Errorf("%d nulls in a column without nulls", a.NullN())
		}
		if len(bufs) == 0 || bufs[0] == nil || bufs[0].Len() < (n+7)/8 {
			return errors.New("short validity bitmap")
		}
		c.valid = bufs[0].Bytes()
	}
	need := (n + 7) / 8
	if i != colBadCsum {
		need = width[i] * n
	}
	if isVar(i) {
		if len(bufs) < 3 || bufs[1] == nil || bufs[1].Len() < 4*(n+1) {
			return errors.New("short offsets")
		}
		c.offsets = bufs[1].Bytes()
		if bufs[2] != nil {
			c.data = bufs[2].Bytes()
		}
		return c.checkOffsets(n)
	}
	if need == 0 {
		return nil
	}
	if len(bufs) < 2 || bufs[1] == nil || bufs[1].Len() < need {
		return errors.New("short values")
	}
	c.fixed = bufs[1].Bytes()
	return nil
}

func (c *column) checkOffsets(n int) error {
	le := binary.LittleEndian
	prev := le.Uint32(c.offsets)
	for r := 1; r <= n; r++ {
		o := le.Uint32(c.offsets[4*r:])
		if o < prev {
			return fmt.Errorf("offset %d decreases", r)
		}
		prev = o
	}
	if int64(prev) > int64(len(c.data)) {
		return fmt.Errorf("offsets end at %d past %d data bytes", prev, len(c.data))
	}
	return nil
}

// checkAddrOrString rejects address values of a length netip.Addr never
// marshals to, so addrAt cannot fail.
func (c *column) checkAddrOrString(i, n int) error {
	if i == colVantage {
		return nil
	}
	le := binary.LittleEndian
	for r := range n {
		switch l := le.Uint32(c.offsets[4*r+4:]) - le.Uint32(c.offsets[4*r:]); {
		// Beyond 16 bytes comes an IPv6 zone name.
		case l == 0, l == 4, l >= 16:
		default:
			return fmt.Errorf("row %d: %d-byte address", r, l)
		}
	}
	return nil
}

func (c *column) value(r int) []byte {
	le := binary.LittleEndian
	return c.data[le.Uint32(c.offsets[4*r:]):le.Uint32(c.offsets[4*r+4:])]
}

func (d *Decoder) addrAt(c *column, r int) netip.Addr {
	v := c.value(r)
	switch len(v) {
	case 0:
		return netip.Addr{}
	case 4:
		return netip.AddrFrom4([4]byte(v))
	case 16:
		return netip.AddrFrom16([16]byte(v))
	}
	if string(v[16:]) != d.zone {
		d.zone = string(v[16:])
	}
	return netip.AddrFrom16([16]byte(v[:16])).WithZone(d.zone)
}

func (d *Decoder) vantageAt(c *column, r int) string {
	v := c.value(r)
	for _, s := range d.vantages {
		if s == string(v) {
			return s
		}
	}
	s := string(v)
	if len(d.vantages) < maxVantages {
		d.vantages = append(d.vantages, s)
	} else {
		d.vantages[r%maxVantages] = s
	}
	return s
}
