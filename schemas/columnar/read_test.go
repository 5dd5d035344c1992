package columnar_test

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
	"github.com/tamperscope/tamperscope/schemas/columnar/columnartest"
)

// decodeRoundTrip builds a batch of random records with Builder and reads it
// back with Decoder; both are compared column by column in the canonical
// form of columnartest, which does not use columnar's offsets.
func decodeRoundTrip[T columnar.Record](t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	recs := make([]T, 300)
	for i := range recs {
		columnartest.Fill(&recs[i], r)
	}
	b := columnar.NewBuilder[T]()
	b.AppendSlice(recs)
	rec := b.NewRecordBatch()
	defer rec.Release()
	d := columnar.NewDecoder[T]()
	if err := d.Reset(rec); err != nil {
		t.Fatal(err)
	}
	var got T
	for i := range recs {
		if err := d.Decode(i, &got); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if diff := cmp.Diff(columnartest.Values(&recs[i]), columnartest.Values(&got)); diff != "" {
			t.Fatalf("row %d (-written +read):\n%s", i, diff)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	t.Run("flows", decodeRoundTrip[schemas.FlowRecord])
	t.Run("findings", decodeRoundTrip[schemas.Finding])
	t.Run("packets", decodeRoundTrip[schemas.PacketMeta])
}

// project returns rec with only the named columns, types optionally
// replaced, as an older or foreign file would hold them.
func project(t *testing.T, rec arrow.RecordBatch, cols []arrow.Array, names ...string) arrow.RecordBatch {
	t.Helper()
	var fields []arrow.Field
	var arrs []arrow.Array
	for i, n := range names {
		idx := rec.Schema().FieldIndices(n)
		if len(idx) == 0 {
			t.Fatalf("no column %s", n)
		}
		a := rec.Column(idx[0])
		if i < len(cols) && cols[i] != nil {
			a = cols[i]
		}
		fields = append(fields, arrow.Field{Name: n, Type: a.DataType(), Nullable: true})
		arrs = append(arrs, a)
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, rec.NumRows())
}

func TestDecodeSchemaDrift(t *testing.T) {
	mem := memory.NewGoAllocator()
	b := columnar.NewBuilder[schemas.PacketMeta]()
	p := schemas.PacketMeta{TimestampNs: 1e18, Vantage: "v1", Seq: 42, Payload: []byte("x")}
	b.Append(&p)
	rec := b.NewRecordBatch()
	defer rec.Release()
	d := columnar.NewDecoder[schemas.PacketMeta]()

	t.Run("missing columns read as zero", func(t *testing.T) {
		old := project(t, rec, nil, "ts_ns", "seq")
		defer old.Release()
		if err := d.Reset(old); err != nil {
			t.Fatal(err)
		}
		got := schemas.PacketMeta{Vantage: "stale", Window: 9}
		if err := d.Decode(0, &got); err != nil {
			t.Fatal(err)
		}
		if got.TimestampNs != p.TimestampNs || got.Seq != 42 || got.Vantage != "" || got.Window != 0 || got.Payload != nil {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("int64 time column", func(t *testing.T) {
		ib := array.NewInt64Builder(mem)
		ib.Append(p.TimestampNs)
		ts := ib.NewArray()
		defer ts.Release()
		plain := project(t, rec, []arrow.Array{ts}, "ts_ns")
		defer plain.Release()
		var got schemas.PacketMeta
		if err := d.Reset(plain); err != nil {
			t.Fatal(err)
		}
		if err := d.Decode(0, &got); err != nil || got.TimestampNs != p.TimestampNs {
			t.Errorf("got ts %d, %v", got.TimestampNs, err)
		}
	})
	t.Run("wrong type", func(t *testing.T) {
		sb := array.NewStringBuilder(mem)
		sb.Append("42")
		s := sb.NewArray()
		defer s.Release()
		bad := project(t, rec, []arrow.Array{s}, "seq")
		defer bad.Release()
		if err := d.Reset(bad); err == nil {
			t.Error("a utf8 seq column was accepted")
		}
	})
	t.Run("bad address", func(t *testing.T) {
		sb := array.NewStringBuilder(mem)
		sb.Append("not-an-address")
		s := sb.NewArray()
		defer s.Release()
		bad := project(t, rec, []arrow.Array{s}, "src")
		defer bad.Release()
		if err := d.Reset(bad); err != nil {
			t.Fatal(err)
		}
		var got schemas.PacketMeta
		if err := d.Decode(0, &got); err == nil {
			t.Error("a bad address decoded without error")
		}
	})
}
