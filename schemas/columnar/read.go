package columnar

import (
	"fmt"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Decoder reads records of type T back from Arrow record batches of their
// dataset: the inverse of Builder. Columns are matched by name, so batches
// of an older schema version, which lack columns added later, read those
// fields as zero values; a column of another type than the table's is an
// error. It is not safe for concurrent use.
type Decoder[T Record] struct {
	table *Table
	cols  []reader
	last  []string // per column: the previous string, reused when it repeats
}

// reader sets one field of the record at base from row i.
type reader interface {
	read(base unsafe.Pointer, i int) error
}

// NewDecoder returns a Decoder for T.
func NewDecoder[T Record]() *Decoder[T] {
	t := TableOf[T]()
	return &Decoder[T]{table: t, last: make([]string, len(t.Columns))}
}

// Reset binds the decoder to rec, whose rows Decode then reads. It fails
// when a column that rec shares with the table has another type.
func (d *Decoder[T]) Reset(rec arrow.RecordBatch) error {
	d.cols = d.cols[:0]
	sc := rec.Schema()
	for ci, c := range d.table.Columns {
		idx := sc.FieldIndices(c.Name)
		if len(idx) == 0 {
			continue
		}
		r, err := newReader(c, rec.Column(idx[0]), &d.last[ci])
		if err != nil {
			d.cols = d.cols[:0]
			return fmt.Errorf("read %s column %s: %w", d.table.Name, c.Name, err)
		}
		d.cols = append(d.cols, r)
	}
	return nil
}

// Decode sets *dst to row i of the bound batch. Fields whose column the
// batch lacks are zeroed. Strings are copied; []byte fields alias the
// batch's buffers and must be copied to outlive it. An error (an address
// that does not parse) leaves *dst partly set.
func (d *Decoder[T]) Decode(i int, dst *T) error {
	*dst = *new(T)
	base := unsafe.Pointer(dst)
	for _, c := range d.cols {
		if err := c.read(base, i); err != nil {
			return fmt.Errorf("read %s row %d: %w", d.table.Name, i, err)
		}
	}
	return nil
}

func newReader(c Column, arr arrow.Array, last *string) (reader, error) {
	want := c.Type
	if c.kind == kTime && arr.DataType().ID() == arrow.INT64 {
		want = arrow.PrimitiveTypes.Int64 // written without the Arrow schema
	}
	if !arrow.TypeEqual(arr.DataType(), want) {
		return nil, fmt.Errorf("type %s, want %s", arr.DataType(), c.Type)
	}
	switch a := arr.(type) {
	case *array.Int8:
		return &fixedReader[int8]{c.offset, a.Int8Values()}, nil
	case *array.Int16:
		return &fixedReader[int16]{c.offset, a.Int16Values()}, nil
	case *array.Int32:
		return &fixedReader[int32]{c.offset, a.Int32Values()}, nil
	case *array.Int64:
		return &fixedReader[int64]{c.offset, a.Int64Values()}, nil
	case *array.Uint8:
		return &fixedReader[uint8]{c.offset, a.Uint8Values()}, nil
	case *array.Uint16:
		return &fixedReader[uint16]{c.offset, a.Uint16Values()}, nil
	case *array.Uint32:
		return &fixedReader[uint32]{c.offset, a.Uint32Values()}, nil
	case *array.Uint64:
		return &fixedReader[uint64]{c.offset, a.Uint64Values()}, nil
	case *array.Float64:
		return &fixedReader[float64]{c.offset, a.Float64Values()}, nil
	case *array.Timestamp:
		return &fixedReader[arrow.Timestamp]{c.offset, a.TimestampValues()}, nil
	case *array.Boolean:
		return &boolReader{c.offset, a}, nil
	case *array.String:
		if c.kind == kAddr {
			return &addrReader{c.offset, a}, nil
		}
		return &stringReader{c.offset, a, last}, nil
	case *array.List:
		return &stringsReader{c.offset, a, a.ListValues().(*array.String)}, nil
	case *array.Binary:
		return &bytesReader{c.offset, a}, nil
	}
	return nil, fmt.Errorf("unsupported array %T", arr)
}

type fixedReader[V any] struct {
	off  uintptr
	vals []V
}

func (r *fixedReader[V]) read(base unsafe.Pointer, i int) error {
	*(*V)(unsafe.Add(base, r.off)) = r.vals[i]
	return nil
}

type boolReader struct {
	off uintptr
	a   *array.Boolean
}

func (r *boolReader) read(base unsafe.Pointer, i int) error {
	*(*bool)(unsafe.Add(base, r.off)) = r.a.Value(i)
	return nil
}

type stringReader struct {
	off  uintptr
	a    *array.String
	last *string
}

func (r *stringReader) read(base unsafe.Pointer, i int) error {
	v := r.a.Value(i)
	// Vantage ids and other repeated strings are copied once, not per row.
	if v != *r.last {
		*r.last = strings.Clone(v)
	}
	*(*string)(unsafe.Add(base, r.off)) = *r.last
	return nil
}

type addrReader struct {
	off uintptr
	a   *array.String
}

func (r *addrReader) read(base unsafe.Pointer, i int) error {
	if r.a.IsNull(i) {
		return nil
	}
	ip, err := netip.ParseAddr(r.a.Value(i))
	if err != nil {
		return err
	}
	*(*netip.Addr)(unsafe.Add(base, r.off)) = ip
	return nil
}

type stringsReader struct {
	off  uintptr
	l    *array.List
	vals *array.String
}

func (r *stringsReader) read(base unsafe.Pointer, i int) error {
	if r.l.IsNull(i) {
		return nil
	}
	start, end := r.l.ValueOffsets(i)
	if start == end {
		return nil
	}
	out := make([]string, 0, end-start)
	for j := start; j < end; j++ {
		out = append(out, strings.Clone(r.vals.Value(int(j))))
	}
	*(*[]string)(unsafe.Add(base, r.off)) = out
	return nil
}

type bytesReader struct {
	off uintptr
	a   *array.Binary
}

func (r *bytesReader) read(base unsafe.Pointer, i int) error {
	if r.a.IsNull(i) {
		return nil
	}
	*(*[]byte)(unsafe.Add(base, r.off)) = r.a.Value(i)
	return nil
}
