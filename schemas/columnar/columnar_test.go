package columnar

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar/columnartest"
)

func TestDescribe(t *testing.T) {
	zero := map[string]any{
		Flows:    schemas.FlowRecord{},
		Findings: schemas.Finding{},
		Packets:  schemas.PacketMeta{},
		Digests:  schemas.WindowDigest{},
	}
	timeSeen := map[string]bool{}
	for _, tb := range Describe() {
		t.Run(tb.Name, func(t *testing.T) {
			want := columnartest.Values(zero[tb.Name])
			if len(tb.Columns) != len(want) || tb.Schema.NumFields() != len(want) {
				t.Fatalf("%d columns, %d schema fields, want %d", len(tb.Columns), tb.Schema.NumFields(), len(want))
			}
			for i, c := range tb.Columns {
				if _, ok := want[c.Name]; !ok {
					t.Errorf("column %q is not a record field", c.Name)
				}
				if c.Doc == "" {
					t.Errorf("column %q has no doc", c.Name)
				}
				if f := tb.Schema.Field(i); f.Name != c.Name || !arrow.TypeEqual(f.Type, c.Type) || f.Nullable != c.Nullable {
					t.Errorf("schema field %d = %v, column %+v", i, f, c)
				}
				if c.Type.ID() == arrow.DICTIONARY {
					t.Errorf("column %q is dictionary-encoded", c.Name)
				}
				if c.Type.ID() == arrow.TIMESTAMP {
					timeSeen[c.Name] = true
				}
			}
		})
	}
	for _, n := range TimeColumns {
		if !timeSeen[n] {
			t.Errorf("time column %q is in no dataset", n)
		}
	}
}

func TestColumnTypes(t *testing.T) {
	tests := []struct {
		table, column string
		typ           arrow.DataType
		nullable      bool
	}{
		{Packets, "ts_ns", Timestamp, false},
		{Packets, "src", arrow.BinaryTypes.String, true},
		{Packets, "frag", arrow.PrimitiveTypes.Uint8, false},
		{Packets, "seq", arrow.PrimitiveTypes.Uint32, false},
		{Packets, "payload", arrow.BinaryTypes.Binary, true},
		{Packets, "bad_csum", arrow.FixedWidthTypes.Boolean, false},
		{Packets, "quoted_src", arrow.BinaryTypes.String, true},
		{Packets, "quoted_dst_port", arrow.PrimitiveTypes.Uint16, false},
		{Flows, "start_ns", Timestamp, false},
		{Flows, "end_ns", Timestamp, false},
		{Flows, "handshake_rtt_ns", arrow.PrimitiveTypes.Int64, false},
		{Flows, "rst_ttl_delta", arrow.PrimitiveTypes.Int16, false},
		{Flows, "client_bytes", arrow.PrimitiveTypes.Uint64, false},
		{Flows, "server_ip", arrow.BinaryTypes.String, false},
		{Flows, "goodput_bps", arrow.PrimitiveTypes.Float64, false},
		{Findings, "window_start_ns", Timestamp, false},
		{Findings, "example_flows", arrow.ListOfNonNullable(arrow.BinaryTypes.String), false},
		{Findings, "targeted", arrow.FixedWidthTypes.Boolean, false},
	}
	tables := map[string]*Table{}
	for _, tb := range Describe() {
		tables[tb.Name] = tb
	}
	for _, tt := range tests {
		t.Run(tt.table+"/"+tt.column, func(t *testing.T) {
			for _, c := range tables[tt.table].Columns {
				if c.Name == tt.column {
					if !arrow.TypeEqual(c.Type, tt.typ) || c.Nullable != tt.nullable {
						t.Errorf("type %s nullable %v, want %s nullable %v", c.Type, c.Nullable, tt.typ, tt.nullable)
					}
					return
				}
			}
			t.Errorf("no column %q", tt.column)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Run(Flows, roundTrip[schemas.FlowRecord])
	t.Run(Findings, roundTrip[schemas.Finding])
	t.Run(Packets, roundTrip[schemas.PacketMeta])
}

func roundTrip[T Record](t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	recs := make([]T, 5000)
	for i := range recs {
		columnartest.Fill(&recs[i], r)
	}
	b := NewBuilder[T]()
	// Three batches through one builder: the later ones are appended into
	// the memory the earlier ones used, with values of other lengths; the
	// last is empty.
	for _, part := range [][]T{recs[:1000], recs[1000:], nil} {
		for i := range min(100, len(part)) {
			b.Append(&part[i])
		}
		b.AppendSlice(part[min(100, len(part)):])
		if b.Len() != len(part) {
			t.Fatalf("Len = %d, want %d", b.Len(), len(part))
		}
		rec := b.NewRecordBatch()
		if b.Len() != 0 || rec.NumRows() != int64(len(part)) {
			t.Fatalf("after NewRecordBatch: Len %d, batch rows %d, want 0 and %d", b.Len(), rec.NumRows(), len(part))
		}
		for row := range part {
			want := columnartest.Values(&part[row])
			for col, f := range rec.Schema().Fields() {
				got := arrowValue(rec.Column(col), row)
				if d := cmp.Diff(want[f.Name], got); d != "" {
					t.Fatalf("row %d column %s (-want +got):\n%s", row, f.Name, d)
				}
			}
		}
		rec.Release()
	}
}

// arrowValue returns element i of arr in the canonical form of
// columnartest.Values.
func arrowValue(arr arrow.Array, i int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return bytes.Clone(a.Value(i))
	case *array.List:
		start, end := a.ValueOffsets(i)
		vals := a.ListValues().(*array.String)
		out := []string{}
		for j := start; j < end; j++ {
			out = append(out, vals.Value(int(j)))
		}
		return out
	}
	return "unexpected array type " + arr.DataType().String()
}

func TestRepairsInvalidUTF8(t *testing.T) {
	b := NewBuilder[schemas.Finding]()
	b.Append(&schemas.Finding{TargetName: "ex\xffample.com", Collateral: []string{"ok", "b\xc3ad"}})
	rec := b.NewRecordBatch()
	defer rec.Release()
	if b.Repaired() != 2 {
		t.Errorf("Repaired = %d, want 2", b.Repaired())
	}
	got := columnartest.Values(&schemas.Finding{TargetName: "ex\uFFFDample.com", Collateral: []string{"ok", "b\uFFFDad"}})
	for col, f := range rec.Schema().Fields() {
		if d := cmp.Diff(got[f.Name], arrowValue(rec.Column(col), 0)); d != "" {
			t.Errorf("column %s (-want +got):\n%s", f.Name, d)
		}
	}
}

func packetBatch(n int) []schemas.PacketMeta {
	pkts := make([]schemas.PacketMeta, n)
	src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::1")
	for i := range pkts {
		pkts[i] = schemas.PacketMeta{
			TimestampNs: 1_750_000_000_000_000_000 + int64(i)*20_000, Vantage: "vp1", WireLen: 1514,
			IPVersion: 4, Src: src, Dst: dst, Proto: schemas.ProtoTCP, TTL: 57, IPID: uint32(i),
			IPLen: 1500, SrcPort: 443, DstPort: uint16(40000 + i%1000), TCPFlags: schemas.TCPAck,
			Seq: uint32(i) * 1448, Ack: 1, Window: 501, PayloadLen: 1448,
		}
	}
	return pkts
}

// TestAppendAllocs: once a builder's columns have grown to a batch, appending
// allocates nothing, and cutting a batch only its few Arrow headers per
// column.
func TestAppendAllocs(t *testing.T) {
	pkts := packetBatch(1024)
	b := NewBuilder[schemas.PacketMeta]()
	for range 16 {
		b.AppendSlice(pkts)
	}
	b.NewRecordBatch().Release()
	allocs := testing.AllocsPerRun(64, func() {
		b.AppendSlice(pkts)
		if b.Len() >= 16*1024 {
			b.NewRecordBatch().Release()
		}
	})
	if perRow := allocs / float64(len(pkts)); perRow > 0.01 {
		t.Errorf("%.4f allocations per appended packet (%v per 1024), want < 0.01", perRow, allocs)
	}
	flow := &schemas.FlowRecord{FlowID: "f", ClientIP: "192.0.2.1", SNI: "example.com", StartNs: 1}
	fb := NewBuilder[schemas.FlowRecord]()
	for range 1024 {
		fb.Append(flow)
	}
	fb.NewRecordBatch().Release()
	allocs = testing.AllocsPerRun(1000, func() { fb.Append(flow) })
	if allocs != 0 {
		t.Errorf("%v allocations per appended flow, want 0", allocs)
	}
}

func BenchmarkAppendPackets(b *testing.B) {
	pkts := packetBatch(1024)
	bl := NewBuilder[schemas.PacketMeta]()
	b.ReportAllocs()
	for b.Loop() {
		bl.AppendSlice(pkts)
		if bl.Len() >= 64*1024 {
			bl.NewRecordBatch().Release()
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(pkts))/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkAppendFlow(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	var flow schemas.FlowRecord
	columnartest.Fill(&flow, r)
	bl := NewBuilder[schemas.FlowRecord]()
	b.ReportAllocs()
	for b.Loop() {
		bl.Append(&flow)
		if bl.Len() >= 64*1024 {
			bl.NewRecordBatch().Release()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
