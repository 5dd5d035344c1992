package columnar

import (
	"net/netip"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// chunkRows bounds the per-column scratch buffers of AppendSlice.
const chunkRows = 4096

// Builder appends records of type T to Arrow builders and cuts them into
// record batches with the schema of TableOf[T]. It is not safe for
// concurrent use.
type Builder[T Record] struct {
	table    *Table
	rb       *array.RecordBuilder
	cols     []appender
	rows     int
	repaired int
}

// appender appends n records found stride bytes apart from base.
type appender interface {
	appendRows(base unsafe.Pointer, n int, stride uintptr)
}

// NewBuilder returns a Builder for T allocating from mem (nil: the Go heap).
func NewBuilder[T Record](mem memory.Allocator) *Builder[T] {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	t := TableOf[T]()
	b := &Builder[T]{table: t, rb: array.NewRecordBuilder(mem, t.Schema)}
	b.cols = make([]appender, len(t.Columns))
	for i, c := range t.Columns {
		b.cols[i] = newAppender(c, b.rb.Field(i), &b.repaired)
	}
	return b
}

func newAppender(c Column, fb array.Builder, repaired *int) appender {
	switch c.kind {
	case kInt8:
		return &fixedCol[int8]{off: c.offset, b: fb.(*array.Int8Builder)}
	case kInt16:
		return &fixedCol[int16]{off: c.offset, b: fb.(*array.Int16Builder)}
	case kInt32:
		return &fixedCol[int32]{off: c.offset, b: fb.(*array.Int32Builder)}
	case kInt64:
		return &fixedCol[int64]{off: c.offset, b: fb.(*array.Int64Builder)}
	case kUint8:
		return &fixedCol[uint8]{off: c.offset, b: fb.(*array.Uint8Builder)}
	case kUint16:
		return &fixedCol[uint16]{off: c.offset, b: fb.(*array.Uint16Builder)}
	case kUint32:
		return &fixedCol[uint32]{off: c.offset, b: fb.(*array.Uint32Builder)}
	case kUint64:
		return &fixedCol[uint64]{off: c.offset, b: fb.(*array.Uint64Builder)}
	case kFloat64:
		return &fixedCol[float64]{off: c.offset, b: fb.(*array.Float64Builder)}
	case kBool:
		return &fixedCol[bool]{off: c.offset, b: fb.(*array.BooleanBuilder)}
	case kTime:
		// arrow.Timestamp is an int64: the field's bytes are read as is.
		return &fixedCol[arrow.Timestamp]{off: c.offset, b: fb.(*array.TimestampBuilder)}
	case kString:
		return &stringCol{off: c.offset, b: fb.(*array.StringBuilder), repaired: repaired}
	case kStrings:
		lb := fb.(*array.ListBuilder)
		return &stringsCol{off: c.offset, lb: lb, vb: lb.ValueBuilder().(*array.StringBuilder), repaired: repaired}
	case kAddr:
		return &addrCol{off: c.offset, b: fb.(*array.StringBuilder)}
	default: // kBytes
		return &bytesCol{off: c.offset, b: fb.(*array.BinaryBuilder)}
	}
}

// Table returns the dataset table of T.
func (b *Builder[T]) Table() *Table { return b.table }

// Len returns the number of records appended since the last NewRecordBatch.
func (b *Builder[T]) Len() int { return b.rows }

// Repaired returns how many strings held invalid UTF-8 and were written
// with U+FFFD in place of the bad bytes (utf8 columns must be valid UTF-8 or
// readers such as DuckDB reject the file).
func (b *Builder[T]) Repaired() int { return b.repaired }

// Append appends one record. The record is copied; r may be reused.
func (b *Builder[T]) Append(r *T) {
	for _, c := range b.cols {
		c.appendRows(unsafe.Pointer(r), 1, 0)
	}
	b.rows++
}

// AppendSlice appends rs column by column, which is several times faster
// than appending the records one by one.
func (b *Builder[T]) AppendSlice(rs []T) {
	stride := unsafe.Sizeof(*new(T))
	for len(rs) > 0 {
		n := min(len(rs), chunkRows)
		base := unsafe.Pointer(&rs[0])
		for _, c := range b.cols {
			c.appendRows(base, n, stride)
		}
		b.rows += n
		rs = rs[n:]
	}
}

// Reserve makes room for n more records in every column, so that filling a
// batch of known size copies no buffer while it grows.
func (b *Builder[T]) Reserve(n int) { b.rb.Reserve(n) }

// NewRecordBatch returns the records appended so far as one record batch and
// resets the builder. The caller must Release the batch.
func (b *Builder[T]) NewRecordBatch() arrow.RecordBatch {
	b.rows = 0
	return b.rb.NewRecordBatch()
}

// Release frees the builder's buffers.
func (b *Builder[T]) Release() { b.rb.Release() }

type valuesAppender[V any] interface {
	Append(v V)
	AppendValues(v []V, valid []bool)
}

// fixedCol gathers a fixed-width field into a scratch slice and appends it
// with one AppendValues call.
type fixedCol[V any] struct {
	off     uintptr
	b       valuesAppender[V]
	scratch []V
}

func (c *fixedCol[V]) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	if n == 1 {
		c.b.Append(*(*V)(unsafe.Add(base, c.off)))
		return
	}
	if cap(c.scratch) < n {
		c.scratch = make([]V, n, max(n, chunkRows))
	}
	buf := c.scratch[:n]
	p := unsafe.Add(base, c.off)
	for i := range buf {
		buf[i] = *(*V)(unsafe.Add(p, uintptr(i)*stride))
	}
	c.b.AppendValues(buf, nil)
}

type stringCol struct {
	off      uintptr
	b        *array.StringBuilder
	repaired *int
}

func (c *stringCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		c.b.AppendString(validUTF8(*(*string)(unsafe.Add(p, uintptr(i)*stride)), c.repaired))
	}
}

type stringsCol struct {
	off      uintptr
	lb       *array.ListBuilder
	vb       *array.StringBuilder
	repaired *int
}

func (c *stringsCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		c.lb.Append(true)
		for _, s := range *(*[]string)(unsafe.Add(p, uintptr(i)*stride)) {
			c.vb.AppendString(validUTF8(s, c.repaired))
		}
	}
}

type addrCol struct {
	off     uintptr
	b       *array.StringBuilder
	scratch []byte
}

func (c *addrCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		a := (*netip.Addr)(unsafe.Add(p, uintptr(i)*stride))
		if !a.IsValid() {
			c.b.AppendNull()
			continue
		}
		c.scratch = a.AppendTo(c.scratch[:0])
		c.b.BinaryBuilder.Append(c.scratch)
	}
}

type bytesCol struct {
	off uintptr
	b   *array.BinaryBuilder
}

func (c *bytesCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		v := *(*[]byte)(unsafe.Add(p, uintptr(i)*stride))
		if len(v) == 0 {
			c.b.AppendNull()
			continue
		}
		c.b.Append(v)
	}
}

func validUTF8(s string, repaired *int) string {
	if utf8.ValidString(s) {
		return s
	}
	*repaired++
	return strings.ToValidUTF8(s, "\uFFFD")
}
