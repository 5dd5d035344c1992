package packetread

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
	"github.com/tamperscope/tamperscope/schemas/columnar/columnartest"
	"github.com/tamperscope/tamperscope/sink"
)

// collector keeps copies of the packets published to it.
type collector struct {
	pkts    []schemas.PacketMeta
	batches int
}

func (c *collector) Publish(_ context.Context, b *schemas.PacketBatch) error {
	c.batches++
	for _, p := range b.Packets {
		if len(p.Payload) > 0 && !inArena(p.Payload, b.Arena) {
			return errors.New("payload outside the batch arena")
		}
		p.Payload = bytes.Clone(p.Payload)
		c.pkts = append(c.pkts, p)
	}
	return nil
}
func (c *collector) Close() error { return nil }

func inArena(p, arena []byte) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(arena)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return at >= base && at+uintptr(len(p)) <= base+uintptr(len(arena))
}

var t0 = time.Date(2025, 6, 15, 13, 30, 0, 0, time.UTC).UnixNano()

// randomPackets returns n packets in time order spanning about three
// hours, with random fields; vantage one of vs.
func randomPackets(r *rand.Rand, n int, vs ...string) []schemas.PacketMeta {
	pkts := make([]schemas.PacketMeta, n)
	ts := t0
	for i := range pkts {
		columnartest.Fill(&pkts[i], r)
		ts += int64(r.IntN(int(3 * time.Hour / time.Duration(n) * 2)))
		pkts[i].TimestampNs = ts
		pkts[i].Vantage = vs[r.IntN(len(vs))]
	}
	return pkts
}

func write(t testing.TB, root, name string, fileRows int64, pkts []schemas.PacketMeta) {
	t.Helper()
	ds, err := sink.Open(root, sink.Config{Name: name, FileRows: fileRows, BatchRows: 64})
	if err != nil {
		t.Fatal(err)
	}
	for len(pkts) > 0 {
		n := min(len(pkts), 50)
		if err := ds.WritePackets(pkts[:n]); err != nil {
			t.Fatal(err)
		}
		pkts = pkts[n:]
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
}

func values(ps []schemas.PacketMeta) []map[string]any {
	out := make([]map[string]any, len(ps))
	for i := range ps {
		out[i] = columnartest.Values(&ps[i])
	}
	return out
}

func hour(ts int64) int64 { return ts / int64(time.Hour) }

// TestRoundTrip: two writers share a dataset, one rotating files every 100
// rows. Every row comes back once, each writer's rows in the order written,
// and the merged stream is in time order within each hour.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	a := randomPackets(r, 1500, "v1")
	b := randomPackets(r, 700, "v1")
	root := t.TempDir()
	write(t, root, "a", 100, a)
	write(t, root, "b", 0, b)

	var c collector
	st, err := Run(context.Background(), root, &c, Config{BatchSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	if st.BadFiles != 0 || st.BadRows != 0 || st.Published != uint64(len(a)+len(b)) || st.Rows != st.Published {
		t.Fatalf("stats %+v, want %d rows, all published", st, len(a)+len(b))
	}
	snaps := 0
	for _, p := range append(slices.Clone(a), b...) {
		if len(p.Payload) > 0 {
			snaps++
		}
	}
	if st.Snapshots != uint64(snaps) {
		t.Errorf("%d snapshots counted, %d written", st.Snapshots, snaps)
	}
	if st.Files < 2*3 || c.batches < (len(a)+len(b))/256 {
		t.Errorf("%d files, %d batches: rotation or batching not exercised", st.Files, c.batches)
	}
	for i := 1; i < len(c.pkts); i++ {
		p, q := c.pkts[i-1].TimestampNs, c.pkts[i].TimestampNs
		if q < p || hour(q) < hour(p) {
			t.Fatalf("packet %d at %d follows one at %d", i, q, p)
		}
	}
	// Split the merged stream back by origin: payloads and sequence numbers
	// make rows distinct enough to attribute them by value.
	want := append(values(a), values(b)...)
	got := values(c.pkts)
	key := func(m map[string]any) string { return fmt.Sprint(m) } // fmt sorts map keys
	slices.SortFunc(want, func(x, y map[string]any) int { return strings.Compare(key(x), key(y)) })
	slices.SortFunc(got, func(x, y map[string]any) int { return strings.Compare(key(x), key(y)) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rows differ (-written +read):\n%s", diff)
	}
	// Writer a's rows, in the order they were read, are a as written.
	pos := map[string]int{}
	for i, m := range values(a) {
		pos[key(m)] = i
	}
	last := -1
	for _, m := range values(c.pkts) {
		if i, ok := pos[key(m)]; ok {
			if i < last {
				t.Fatalf("writer a's row %d read after its row %d", i, last)
			}
			last = i
		}
	}
}

func TestVantageFilter(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	pkts := randomPackets(r, 400, "ams", "fra", "")
	root := t.TempDir()
	write(t, root, "x", 0, pkts)
	var c collector
	st, err := Run(context.Background(), root, &c, Config{Vantage: "fra"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pkts {
		if p.Vantage == "fra" {
			n++
		}
	}
	if len(c.pkts) != n || st.Filtered != uint64(len(pkts)-n) {
		t.Fatalf("read %d (filtered %d), want %d of %d", len(c.pkts), st.Filtered, n, len(pkts))
	}
	for _, p := range c.pkts {
		if p.Vantage != "fra" {
			t.Fatalf("packet of vantage %q kept", p.Vantage)
		}
	}
	if st.Vantages["ams"]+st.Vantages["fra"]+st.Vantages[""] != uint64(len(pkts)) {
		t.Errorf("vantage counts %v", st.Vantages)
	}
}

// badAddressFile writes a packets file whose second row has a src that is
// not an address.
func badAddressFile(t *testing.T, path string) {
	t.Helper()
	mem := memory.NewGoAllocator()
	b := columnar.NewBuilder[schemas.PacketMeta]()
	for i := range 3 {
		b.Append(&schemas.PacketMeta{TimestampNs: t0 + int64(i), Src: netip.MustParseAddr("192.0.2.1")})
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"192.0.2.1", "bogus", "192.0.2.3"}, nil)
	src := sb.NewArray()
	defer src.Release()
	cols := slices.Clone(rec.Columns())
	cols[rec.Schema().FieldIndices("src")[0]] = src
	bad := array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
	defer bad.Release()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(bad.Schema(), f, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(bad); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		_, err := Run(context.Background(), filepath.Join(t.TempDir(), "nope"), &collector{}, Config{})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want not-exist", err)
		}
	})
	t.Run("no packets dataset", func(t *testing.T) {
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "flows"), 0o755)
		if _, err := Run(context.Background(), root, &collector{}, Config{}); !errors.Is(err, ErrNoDataset) {
			t.Errorf("err = %v, want ErrNoDataset", err)
		}
	})
	t.Run("empty packets dataset", func(t *testing.T) {
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "packets"), 0o755)
		var c collector
		st, err := Run(context.Background(), root, &c, Config{})
		if err != nil || st.Files != 0 || len(c.pkts) != 0 {
			t.Errorf("st %+v, err %v", st, err)
		}
	})
	t.Run("corrupt files are skipped", func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 3))
		pkts := randomPackets(r, 300, "v")
		root := t.TempDir()
		write(t, root, "good", 0, pkts)
		files, err := Files(root)
		if err != nil || len(files) == 0 {
			t.Fatal(files, err)
		}
		dir := filepath.Dir(files[0])
		good, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.WriteFile(filepath.Join(dir, "garbage.parquet"), []byte("PAR1 this is not parquet PAR1"), 0o644))
		must(os.WriteFile(filepath.Join(dir, "truncated.parquet"), good[:len(good)/2], 0o644))
		mangled := bytes.Clone(good)
		for i := 64; i < len(mangled)/2; i += 7 {
			mangled[i] ^= 0x5a
		}
		must(os.WriteFile(filepath.Join(dir, "mangled.parquet"), mangled, 0o644))
		must(os.WriteFile(filepath.Join(dir, ".part-x.parquet.tmp"), []byte("pending"), 0o644))
		// A flows file where a packets file belongs.
		fds, err := sink.Open(filepath.Join(root, "f"), sink.Config{})
		must(err)
		must(fds.WriteFlow(&schemas.FlowRecord{StartNs: t0}))
		flows, err := fds.Flush()
		must(err)
		must(fds.Close())
		must(os.Rename(flows[0], filepath.Join(dir, "flows.parquet")))
		badAddressFile(t, filepath.Join(dir, "badaddr.parquet"))

		var errs []error
		var c collector
		st, err := Run(context.Background(), root, &c, Config{OnError: func(err error) { errs = append(errs, err) }})
		if err != nil {
			t.Fatal(err)
		}
		if st.BadFiles < 3 || len(errs) != st.BadFiles {
			t.Errorf("%d bad files, %d errors reported (%v), want at least garbage, truncated and flows", st.BadFiles, len(errs), errs)
		}
		if st.BadRows != 1 {
			t.Errorf("%d bad rows, want the bogus address", st.BadRows)
		}
		// The good file is read whole; the mangled one may or may not
		// yield rows, and the bad-address file yields its two good rows.
		if st.Published < uint64(len(pkts)+2) {
			t.Errorf("published %d, want at least the %d good rows", st.Published, len(pkts)+2)
		}
		t.Logf("stats %+v; errors %v", st, errs)
	})
}

// FuzzReadFile: whatever bytes a packets file holds, reading it neither
// panics nor publishes more rows than it read.
func FuzzReadFile(f *testing.F) {
	root := f.TempDir()
	write(f, root, "seed", 0, randomPackets(rand.New(rand.NewPCG(4, 4)), 40, "v"))
	files, _ := Files(root)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "packets", "date=2025-06-15", "hour=13")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "x.parquet"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		var c collector
		st, err := Run(context.Background(), root, &c, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Published > st.Rows || uint64(len(c.pkts)) != st.Published {
			t.Fatalf("stats %+v, %d collected", st, len(c.pkts))
		}
	})
}

// TestMutatedFiles reads damaged copies of a real packets file: byte
// changes (which once reached the Arrow schema decoder and exhausted
// memory), cuts and insertions. None may crash the run or stop it.
func TestMutatedFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, "seed", 0, randomPackets(rand.New(rand.NewPCG(4, 4)), 40, "v"))
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for i := range 600 {
		data := bytes.Clone(seed)
		for range 1 + r.IntN(4) {
			k := r.IntN(len(data))
			op := 0
			if i >= 300 {
				op = r.IntN(3)
			}
			switch op {
			case 0:
				data[k] = byte(r.Uint32())
			case 1:
				data = append(data[:k], data[min(len(data), k+1+r.IntN(8)):]...)
			default:
				data = slices.Insert(data, k, byte(r.Uint32()), 0xff, 0x7f)
			}
		}
		dir := filepath.Join(t.TempDir(), "packets", "date=2025-06-15", "hour=13")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "x.parquet"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		var c collector
		st, err := Run(context.Background(), filepath.Dir(filepath.Dir(filepath.Dir(dir))), &c, Config{})
		if err != nil {
			t.Fatalf("mutation %d: %v", i, err)
		}
		if uint64(len(c.pkts)) != st.Published || st.Published > st.Rows {
			t.Fatalf("mutation %d: stats %+v, %d collected", i, st, len(c.pkts))
		}
	}
}
