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

// Builder appends records of type T column by column into Go slices it
// keeps from batch to batch, and hands them out as Arrow record batches
// with the schema of TableOf[T]. It is not safe for concurrent use.
//
// A batch aliases the builder's slices: it is valid until the builder's
// next append. The Parquet writer encodes a batch into its pages before it
// returns, so the sink appends the next rows into the same memory, which
// spares every batch the allocation and zeroing of its buffers.
type Builder[T Record] struct {
	table    *Table
	cols     []column
	rows     int
	repaired int
}

// column holds the values of one column since the last NewRecordBatch.
type column interface {
	// appendRows appends n records found stride bytes apart from base.
	appendRows(base unsafe.Pointer, n int, stride uintptr)
	// data returns the column's values as Arrow array data of n rows.
	data(n int) arrow.ArrayData
	reset()
}

// NewBuilder returns a Builder for T.
func NewBuilder[T Record]() *Builder[T] {
	t := TableOf[T]()
	b := &Builder[T]{table: t, cols: make([]column, len(t.Columns))}
	for i, c := range t.Columns {
		b.cols[i] = newColumn(c, &b.repaired)
	}
	return b
}

func newColumn(c Column, repaired *int) column {
	switch c.kind {
	case kInt8:
		return &fixedCol[int8]{off: c.offset, typ: c.Type}
	case kInt16:
		return &fixedCol[int16]{off: c.offset, typ: c.Type}
	case kInt32:
		return &fixedCol[int32]{off: c.offset, typ: c.Type}
	case kInt64, kTime: // arrow.Timestamp is an int64: the bytes are the same
		return &fixedCol[int64]{off: c.offset, typ: c.Type}
	case kUint8:
		return &fixedCol[uint8]{off: c.offset, typ: c.Type}
	case kUint16:
		return &fixedCol[uint16]{off: c.offset, typ: c.Type}
	case kUint32:
		return &fixedCol[uint32]{off: c.offset, typ: c.Type}
	case kUint64:
		return &fixedCol[uint64]{off: c.offset, typ: c.Type}
	case kFloat64:
		return &fixedCol[float64]{off: c.offset, typ: c.Type}
	case kBool:
		return &boolCol{off: c.offset}
	case kString:
		return &stringCol{off: c.offset, repaired: repaired}
	case kStrings:
		return &stringsCol{off: c.offset, typ: c.Type, repaired: repaired}
	case kAddr:
		return &addrCol{off: c.offset}
	default: // kBytes
		return &bytesCol{off: c.offset}
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

// Reset drops the records appended since the last NewRecordBatch and
// zeroes Repaired, keeping the column memory for the next records.
func (b *Builder[T]) Reset() { b.rows, b.repaired = 0, 0 }

// Append appends one record. The record is copied; r may be reused.
func (b *Builder[T]) Append(r *T) {
	b.startAppend()
	for _, c := range b.cols {
		c.appendRows(unsafe.Pointer(r), 1, 0)
	}
	b.rows++
}

// AppendSlice appends rs column by column, which is several times faster
// than appending the records one by one.
func (b *Builder[T]) AppendSlice(rs []T) {
	if len(rs) == 0 {
		return
	}
	b.startAppend()
	for _, c := range b.cols {
		c.appendRows(unsafe.Pointer(&rs[0]), len(rs), unsafe.Sizeof(rs[0]))
	}
	b.rows += len(rs)
}

// startAppend starts a new batch in the columns' memory when the last one
// was handed out.
func (b *Builder[T]) startAppend() {
	if b.rows == 0 {
		for _, c := range b.cols {
			c.reset()
		}
	}
}

// NewRecordBatch returns the records appended since the last call as one
// record batch, which aliases the builder's memory until the builder's
// next append (see Builder). Releasing it frees nothing.
func (b *Builder[T]) NewRecordBatch() arrow.RecordBatch {
	b.startAppend() // an empty batch still needs its leading offsets
	arrs := make([]arrow.Array, len(b.cols))
	for i, c := range b.cols {
		d := c.data(b.rows)
		arrs[i] = array.MakeFromData(d)
		d.Release()
	}
	rec := array.NewRecordBatch(b.table.Schema, arrs, int64(b.rows))
	for _, a := range arrs {
		a.Release()
	}
	b.rows = 0
	return rec
}

// bytesOf views s's backing array as bytes.
func bytesOf[V any](s []V) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

func buf(b []byte) *memory.Buffer { return memory.NewBufferBytes(b) }

// bitmap is a validity or boolean bitmap under construction.
type bitmap struct {
	bits  []byte
	nulls int
}

func (m *bitmap) reset() { m.bits, m.nulls = m.bits[:0], 0 }

// add sets bit i (the next one) to v.
func (m *bitmap) add(i int, v bool) {
	if i%8 == 0 {
		m.bits = append(m.bits, 0)
	}
	if v {
		m.bits[i/8] |= 1 << (i % 8)
	} else {
		m.nulls++
	}
}

// validity returns the validity buffer, nil when no value is null.
func (m *bitmap) validity() *memory.Buffer {
	if m.nulls == 0 {
		return nil
	}
	return buf(m.bits)
}

// fixedCol gathers a fixed-width field.
type fixedCol[V any] struct {
	off  uintptr
	typ  arrow.DataType
	vals []V
}

func (c *fixedCol[V]) reset() { c.vals = c.vals[:0] }

func (c *fixedCol[V]) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		c.vals = append(c.vals, *(*V)(unsafe.Add(p, uintptr(i)*stride)))
	}
}

func (c *fixedCol[V]) data(n int) arrow.ArrayData {
	return array.NewData(c.typ, n, []*memory.Buffer{nil, buf(bytesOf(c.vals))}, nil, 0, 0)
}

type boolCol struct {
	off  uintptr
	n    int
	vals bitmap
}

func (c *boolCol) reset() { c.n = 0; c.vals.reset() }

func (c *boolCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		c.vals.add(c.n, *(*bool)(unsafe.Add(p, uintptr(i)*stride)))
		c.n++
	}
}

func (c *boolCol) data(n int) arrow.ArrayData {
	return array.NewData(arrow.FixedWidthTypes.Boolean, n, []*memory.Buffer{nil, buf(c.vals.bits)}, nil, 0, 0)
}

// binaryCol is the offsets, bytes and validity of a utf8 or binary column.
type binaryCol struct {
	offsets []int32
	bytes   []byte
	valid   bitmap
}

func (c *binaryCol) reset() {
	c.offsets = append(c.offsets[:0], 0)
	c.bytes = c.bytes[:0]
	c.valid.reset()
}

// add appends a value; a null when ok is false.
func (c *binaryCol) add(v []byte, ok bool) {
	c.valid.add(len(c.offsets)-1, ok)
	c.bytes = append(c.bytes, v...)
	c.offsets = append(c.offsets, int32(len(c.bytes)))
}

func (c *binaryCol) addString(s string) {
	c.bytes = append(c.bytes, s...)
	c.offsets = append(c.offsets, int32(len(c.bytes)))
}

func (c *binaryCol) data(typ arrow.DataType, n int) arrow.ArrayData {
	return array.NewData(typ, n, []*memory.Buffer{c.valid.validity(), buf(bytesOf(c.offsets)), buf(c.bytes)}, nil, c.valid.nulls, 0)
}

type stringCol struct {
	off uintptr
	binaryCol
	repaired *int
}

func (c *stringCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		c.addString(validUTF8(*(*string)(unsafe.Add(p, uintptr(i)*stride)), c.repaired))
	}
}

func (c *stringCol) data(n int) arrow.ArrayData { return c.binaryCol.data(arrow.BinaryTypes.String, n) }

// stringsCol is a list<utf8> column: list offsets over a string column.
type stringsCol struct {
	off      uintptr
	typ      arrow.DataType
	lists    []int32
	values   binaryCol
	repaired *int
}

func (c *stringsCol) reset() {
	c.lists = append(c.lists[:0], 0)
	c.values.reset()
}

func (c *stringsCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		for _, s := range *(*[]string)(unsafe.Add(p, uintptr(i)*stride)) {
			c.values.addString(validUTF8(s, c.repaired))
		}
		c.lists = append(c.lists, int32(len(c.values.offsets)-1))
	}
}

func (c *stringsCol) data(n int) arrow.ArrayData {
	values := c.values.data(arrow.BinaryTypes.String, len(c.values.offsets)-1)
	defer values.Release()
	return array.NewData(c.typ, n, []*memory.Buffer{nil, buf(bytesOf(c.lists))}, []arrow.ArrayData{values}, 0, 0)
}

// addrCol is a utf8 column of addresses in text form, null when invalid.
type addrCol struct {
	off uintptr
	binaryCol
}

func (c *addrCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		a := (*netip.Addr)(unsafe.Add(p, uintptr(i)*stride))
		c.valid.add(len(c.offsets)-1, a.IsValid())
		if a.IsValid() {
			c.bytes = a.AppendTo(c.bytes)
		}
		c.offsets = append(c.offsets, int32(len(c.bytes)))
	}
}

func (c *addrCol) data(n int) arrow.ArrayData { return c.binaryCol.data(arrow.BinaryTypes.String, n) }

// bytesCol is a binary column, null when empty.
type bytesCol struct {
	off uintptr
	binaryCol
}

func (c *bytesCol) appendRows(base unsafe.Pointer, n int, stride uintptr) {
	p := unsafe.Add(base, c.off)
	for i := range n {
		v := *(*[]byte)(unsafe.Add(p, uintptr(i)*stride))
		c.add(v, len(v) > 0)
	}
}

func (c *bytesCol) data(n int) arrow.ArrayData { return c.binaryCol.data(arrow.BinaryTypes.Binary, n) }

func validUTF8(s string, repaired *int) string {
	if utf8.ValidString(s) {
		return s
	}
	*repaired++
	return strings.ToValidUTF8(s, "\uFFFD")
}
