package sink

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/parquet-go/parquet-go"

	"github.com/tamperscope/tamperscope/schemas/columnar"
)

// parquetFile is a file read back with parquet-go, an implementation
// independent of the writer: rows in the canonical form of
// columnartest.Values, and the key-value metadata.
type parquetFile struct {
	rows []map[string]any
	meta map[string]string
	file *parquet.File
}

func readParquet(t *testing.T, path string, table *columnar.Table) parquetFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("open %s with parquet-go: %v", path, err)
	}
	out := parquetFile{meta: map[string]string{}, file: pf}
	for _, kv := range pf.Metadata().KeyValueMetadata {
		out.meta[kv.Key] = kv.Value
	}
	types := map[string]arrow.DataType{}
	for _, c := range table.Columns {
		types[c.Name] = c.Type
	}
	leaves := pf.Schema().Columns()
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 256)
		for {
			n, err := rows.ReadRows(buf)
			for _, row := range buf[:n] {
				out.rows = append(out.rows, decodeRow(t, row, leaves, types))
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read %s: %v", path, err)
			}
		}
		rows.Close()
	}
	if int64(len(out.rows)) != pf.NumRows() {
		t.Fatalf("%s: read %d rows, footer says %d", path, len(out.rows), pf.NumRows())
	}
	return out
}

func decodeRow(t *testing.T, row parquet.Row, leaves [][]string, types map[string]arrow.DataType) map[string]any {
	m := map[string]any{}
	for _, v := range row {
		name := leaves[v.Column()][0]
		typ, ok := types[name]
		if !ok {
			t.Fatalf("unexpected column %q", name)
		}
		if typ.ID() == arrow.LIST {
			list, _ := m[name].([]string)
			if list == nil {
				list = []string{}
			}
			if !v.IsNull() {
				list = append(list, string(v.ByteArray()))
			}
			m[name] = list
			continue
		}
		if v.IsNull() {
			m[name] = nil
			continue
		}
		switch typ.ID() {
		case arrow.INT8, arrow.INT16, arrow.INT32:
			m[name] = int64(v.Int32())
		case arrow.INT64, arrow.TIMESTAMP:
			m[name] = v.Int64()
		case arrow.UINT8, arrow.UINT16, arrow.UINT32:
			m[name] = uint64(v.Uint32())
		case arrow.UINT64:
			m[name] = v.Uint64()
		case arrow.FLOAT64:
			m[name] = v.Double()
		case arrow.BOOL:
			m[name] = v.Boolean()
		case arrow.STRING:
			m[name] = string(v.ByteArray())
		case arrow.BINARY:
			m[name] = bytes.Clone(v.ByteArray())
		default:
			t.Fatalf("column %q: unexpected type %s", name, typ)
		}
	}
	return m
}

// visible lists the files under root that a reader globbing *.parquet takes
// for data, sorted.
func visible(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".parquet") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
