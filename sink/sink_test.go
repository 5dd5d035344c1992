package sink

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
	"github.com/tamperscope/tamperscope/schemas/columnar/columnartest"
)

// base is 2025-06-15T14:00:00Z.
var base = time.Date(2025, 6, 15, 14, 0, 0, 0, time.UTC).UnixNano()

func randomRecords[T columnar.Record](n int, seed uint64, setTime func(*T, int64)) []T {
	r := rand.New(rand.NewPCG(seed, seed+1))
	recs := make([]T, n)
	for i := range recs {
		columnartest.Fill(&recs[i], r)
		// Ascending times inside one hour.
		setTime(&recs[i], base+int64(i)*int64(time.Hour)/int64(n+1))
	}
	return recs
}

func setFlowTime(f *schemas.FlowRecord, ns int64)   { f.StartNs = ns }
func setFindingTime(f *schemas.Finding, ns int64)   { f.WindowStartNs = ns }
func setPacketTime(p *schemas.PacketMeta, ns int64) { p.TimestampNs = ns }

func TestRoundTrip(t *testing.T) {
	root := t.TempDir()
	cfg := Config{
		Version:        "v1.2.3",
		DetectorConfig: `{"rst_ttl_delta":3}`,
		Name:           "rt",
		BatchRows:      700,  // several batches per row group
		RowGroupRows:   2000, // several row groups per file
		FileRows:       5000, // several files per partition
	}
	d, err := Open(root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	flows := randomRecords(6000, 1, setFlowTime)
	findings := randomRecords(900, 2, setFindingTime)
	packets := randomRecords(12000, 3, setPacketTime)
	for i := range flows {
		if err := d.WriteFlow(&flows[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range findings {
		if err := d.WriteFinding(&findings[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(packets); i += 1000 {
		if err := d.WritePackets(packets[i : i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Stats().Packets.PendingRows; got != int64(len(packets)) {
		t.Errorf("pending packet rows before Flush = %d, want %d", got, len(packets))
	}
	published, err := d.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(visible(t, root), sortedCopy(published)); d != "" {
		t.Errorf("visible files differ from the published list (-visible +published):\n%s", d)
	}
	st := d.Stats()
	check := func(t *testing.T, table *columnar.Table, want []map[string]any, ds DatasetStats) {
		dir := filepath.Join(root, table.Name, "date=2025-06-15", "hour=14")
		var got []map[string]any
		for k := 0; ; k++ {
			path := filepath.Join(dir, "part-rt-0-"+strconv.Itoa(k)+".parquet")
			if _, err := os.Stat(path); err != nil {
				break
			}
			pf := readParquet(t, path, table)
			wantMeta := map[string]string{
				MetaVersion:        "v1.2.3",
				MetaSchemaVersion:  strconv.Itoa(table.Version),
				MetaRecord:         table.Name,
				MetaDetectorConfig: `{"rst_ttl_delta":3}`,
			}
			for k, v := range wantMeta {
				if pf.meta[k] != v {
					t.Errorf("%s: metadata %s = %q, want %q", path, k, pf.meta[k], v)
				}
			}
			if pf.meta["ARROW:schema"] == "" {
				t.Errorf("%s: no ARROW:schema metadata", path)
			}
			if n := len(pf.file.RowGroups()); int64(len(pf.rows)) > cfg.RowGroupRows && n < 2 {
				t.Errorf("%s: %d rows in %d row group(s), want row groups of <= %d", path, len(pf.rows), n, cfg.RowGroupRows)
			}
			got = append(got, pf.rows...)
		}
		if int64(len(want)) > cfg.FileRows && ds.Files < 2 {
			t.Errorf("%d rows in %d files: no rotation at %d rows", len(want), ds.Files, cfg.FileRows)
		}
		if ds.Rows != int64(len(want)) || ds.PendingRows != 0 {
			t.Errorf("stats: %+v, want %d rows committed", ds, len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("read %d rows, wrote %d", len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(want[i], got[i]) {
				t.Fatalf("row %d (-written +read):\n%s", i, cmp.Diff(want[i], got[i]))
			}
		}
	}
	t.Run(columnar.Flows, func(t *testing.T) { check(t, columnar.TableOf[schemas.FlowRecord](), values(flows), st.Flows) })
	t.Run(columnar.Findings, func(t *testing.T) { check(t, columnar.TableOf[schemas.Finding](), values(findings), st.Findings) })
	t.Run(columnar.Packets, func(t *testing.T) { check(t, columnar.TableOf[schemas.PacketMeta](), values(packets), st.Packets) })
}

func values[T any](recs []T) []map[string]any {
	out := make([]map[string]any, len(recs))
	for i := range recs {
		out[i] = columnartest.Values(&recs[i])
	}
	return out
}

func sortedCopy(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}

func TestTimestampColumnType(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WritePackets([]schemas.PacketMeta{{TimestampNs: base}}); err != nil {
		t.Fatal(err)
	}
	paths, err := d.Flush()
	if err != nil || len(paths) != 1 {
		t.Fatalf("Flush = %v, %v", paths, err)
	}
	pf := readParquet(t, paths[0], columnar.TableOf[schemas.PacketMeta]())
	leaf, ok := pf.file.Schema().Lookup("ts_ns")
	if !ok {
		t.Fatal("no ts_ns column")
	}
	lt := leaf.Node.Type().LogicalType()
	ts, ok := lt.Value.(*format.TimestampType)
	if !ok || !ts.IsAdjustedToUTC || !strings.Contains(ts.String(), "NANOS") {
		t.Errorf("ts_ns logical type = %v, want TIMESTAMP(UTC, NANOS)", lt)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPartitioning(t *testing.T) {
	midnight := time.Date(2025, 6, 16, 0, 0, 0, 0, time.UTC).UnixNano()
	tests := []struct {
		name string
		ns   int64
		dir  string
	}{
		{"last ns of a day", midnight - 1, "date=2025-06-15/hour=23"},
		{"midnight", midnight, "date=2025-06-16/hour=00"},
		{"inside an hour", midnight + int64(90*time.Minute), "date=2025-06-16/hour=01"},
		{"before 1970", -1, "date=1969-12-31/hour=23"},
		{"epoch", 0, "date=1970-01-01/hour=00"},
	}
	root := t.TempDir()
	d, err := Open(root, Config{Name: "p", MaxOpenFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	var pkts []schemas.PacketMeta
	want := map[string][]int64{}
	for _, tt := range tests {
		// Several packets per partition, interleaved across partitions.
		for i := range 3 {
			pkts = append(pkts, schemas.PacketMeta{TimestampNs: tt.ns, IPID: uint32(i)})
		}
		want[filepath.Join(columnar.Packets, tt.dir)] = append(want[filepath.Join(columnar.Packets, tt.dir)], tt.ns, tt.ns, tt.ns)
		// A flow that starts before the hour ends and ends after it
		// belongs to the hour of its start.
		flow := schemas.FlowRecord{StartNs: tt.ns, EndNs: tt.ns + int64(2*time.Hour)}
		if err := d.WriteFlow(&flow); err != nil {
			t.Fatal(err)
		}
		want[filepath.Join(columnar.Flows, tt.dir)] = append(want[filepath.Join(columnar.Flows, tt.dir)], tt.ns)
	}
	for i := range pkts { // interleave: partition changes on every packet
		j := (i * 7) % len(pkts)
		pkts[i], pkts[j] = pkts[j], pkts[i]
	}
	if err := d.WritePackets(pkts); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string][]int64{}
	for _, path := range visible(t, root) {
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		table := columnar.TableOf[schemas.PacketMeta]()
		col := "ts_ns"
		if strings.HasPrefix(rel, columnar.Flows) {
			table, col = columnar.TableOf[schemas.FlowRecord](), "start_ns"
		}
		for _, row := range readParquet(t, path, table).rows {
			got[rel] = append(got[rel], row[col].(int64))
		}
	}
	for dir := range got {
		slices.Sort(got[dir])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("times per partition directory (-want +got):\n%s", d)
	}
}

// TestCrashLeavesNoPartialFile kills a writer process that has committed one
// set and written more rows, some in files rotated and closed but not
// committed, some still open: only the committed set may be visible.
func TestCrashLeavesNoPartialFile(t *testing.T) {
	if root := os.Getenv("TAMPERSCOPE_SINK_CRASH_ROOT"); root != "" {
		crashingWriter(root)
		return
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLeavesNoPartialFile$")
	cmd.Env = append(os.Environ(), "TAMPERSCOPE_SINK_CRASH_ROOT="+root)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("writer process: %v, want exit status 3\n%s", err, out)
	}
	files := visible(t, root)
	want := []string{filepath.Join(root, "packets/date=2025-06-15/hour=14/part-committed-0.parquet")}
	if d := cmp.Diff(want, files); d != "" {
		t.Fatalf("visible files after crash (-want +got):\n%s", d)
	}
	if n := len(readParquet(t, files[0], columnar.TableOf[schemas.PacketMeta]()).rows); n != 100 {
		t.Errorf("committed file holds %d rows, want 100", n)
	}
	var hidden int
	filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), ".part-") && strings.HasSuffix(e.Name(), ".parquet.tmp") {
			hidden++
		}
		return nil
	})
	if hidden < 2 {
		t.Errorf("%d temporary files left, want the closed and the open one", hidden)
	}
}

func crashingWriter(root string) {
	d, err := Open(root, Config{FileRows: 1000, BatchRows: 100})
	if err != nil {
		os.Exit(1)
	}
	pkts := randomRecords(2500, 9, setPacketTime)
	if d.WritePackets(pkts[:100]) != nil {
		os.Exit(1)
	}
	if _, err := d.Commit("committed"); err != nil {
		os.Exit(1)
	}
	if d.WritePackets(pkts[100:]) != nil {
		os.Exit(1)
	}
	os.Exit(3)
}

func TestCommitReplaces(t *testing.T) {
	root := t.TempDir()
	write := func(n int, fileRows int64) []string {
		d, err := Open(root, Config{FileRows: fileRows, BatchRows: 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WritePackets(randomRecords(n, uint64(n), setPacketTime)); err != nil {
			t.Fatal(err)
		}
		paths, err := d.Commit("topic-3-000000000042")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		return paths
	}
	first := write(30, 10) // three files: part-<set>-0..2
	if len(first) != 3 {
		t.Fatalf("first commit published %v, want 3 files", first)
	}
	second := write(15, 10) // two files, replacing 0 and 1 and removing 2
	if d := cmp.Diff(first[:2], second); d != "" {
		t.Fatalf("second commit of the same set published other names (-first +second):\n%s", d)
	}
	if d := cmp.Diff(second, visible(t, root)); d != "" {
		t.Fatalf("visible files (-want +got):\n%s", d)
	}
	var rows int
	for _, p := range second {
		rows += len(readParquet(t, p, columnar.TableOf[schemas.PacketMeta]()).rows)
	}
	if rows != 15 {
		t.Errorf("%d rows visible after replacing the set, want 15", rows)
	}
}

func TestInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"detector config not JSON", Config{DetectorConfig: "{rst"}},
		{"name with slash", Config{Name: "a/b"}},
		{"hidden name", Config{Name: ".x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(t.TempDir(), tt.cfg); err == nil {
				t.Error("Open succeeded")
			}
		})
	}
	d, err := Open(t.TempDir(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, set := range []string{"", "../x", "a b", ".hidden"} {
		if _, err := d.Commit(set); err == nil {
			t.Errorf("Commit(%q) succeeded", set)
		}
	}
}

// TestWriteErrorIsSticky: a failed write poisons the Dataset, and Close
// leaves no file behind, committed or temporary.
func TestWriteErrorIsSticky(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WritePackets(randomRecords(10, 1, setPacketTime)); err != nil {
		t.Fatal(err)
	}
	// A file where the flows directory should be makes the next write fail.
	if err := os.WriteFile(filepath.Join(root, columnar.Flows), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFlow(&schemas.FlowRecord{StartNs: base}); err == nil {
		t.Fatal("WriteFlow succeeded with the flows directory blocked")
	}
	if err := d.WritePackets(randomRecords(1, 2, setPacketTime)); err == nil {
		t.Error("WritePackets succeeded after a write error")
	}
	if err := d.Close(); err == nil {
		t.Error("Close succeeded after a write error")
	}
	var left []string
	filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && e.Name() != columnar.Flows {
			left = append(left, path)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("files left after a failed write: %v", left)
	}
}

func TestAbortDropsPending(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, Config{FileRows: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WritePackets(randomRecords(12, 1, setPacketTime)); err != nil {
		t.Fatal(err)
	}
	if err := d.Abort(); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("files left after Abort: %v", left)
	}
	if err := d.WriteFlow(&schemas.FlowRecord{}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteFlow after Abort = %v, want ErrClosed", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, Config{BatchRows: 50})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			flows := randomRecords(300, uint64(g), setFlowTime)
			for i := range flows {
				if err := d.WriteFlow(&flows[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := d.Stats().Flows.Rows; got != 1200 {
		t.Errorf("%d flow rows committed, want 1200", got)
	}
}

// TestCloseFlowFiles: CloseFlowFiles finishes the open flows file, whose
// rows are still published by the next commit; flows written after it go
// to a new file, and an open findings file stays open for more rows.
func TestCloseFlowFiles(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, Config{})
	if err != nil {
		t.Fatal(err)
	}
	flows := randomRecords(20, 1, setFlowTime)
	findings := randomRecords(4, 2, setFindingTime)
	for i := range flows {
		flows[i].StartNs = 1_700_000_000e9 // one hour directory
	}
	for i := range findings {
		findings[i].WindowStartNs = 1_700_000_000e9
	}
	if err := d.WriteFlows(flows[:15]); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFinding(&findings[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.CloseFlowFiles(); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFlows(flows[15:]); err != nil {
		t.Fatal(err)
	}
	for i := range findings[1:] {
		if err := d.WriteFinding(&findings[1+i]); err != nil {
			t.Fatal(err)
		}
	}
	paths, err := d.Commit("s")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]int{}
	for _, p := range paths {
		ds := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(p))))
		tab := columnar.TableOf[schemas.FlowRecord]()
		if ds == "findings" {
			tab = columnar.TableOf[schemas.Finding]()
		}
		rows[ds] = append(rows[ds], len(readParquet(t, p, tab).rows))
	}
	if d := cmp.Diff(map[string][]int{"flows": {15, 5}, "findings": {4}}, rows); d != "" {
		t.Errorf("rows per published file (-want +got):\n%s", d)
	}
}
