package sink

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tamperscope/tamperscope/schemas/columnar"
)

// arrowSchemaKey is the key-value metadata entry holding the Arrow schema
// the writer stored beside the Parquet one.
const arrowSchemaKey = "ARROW:schema"

// File is a dataset file opened for reading. Its methods turn a panic of
// the Parquet decoder on a damaged file into an error of that file.
type File struct {
	path string
	f    *os.File
	pr   *pqfile.Reader
	fr   *pqarrow.FileReader
}

// OpenFile opens a dataset file for reading in record batches of
// batchRows rows. Column types come from the Parquet schema, not from the
// Arrow schema stored beside it: a corrupt stored schema makes arrow-go's
// IPC decoder allocate without bound, which no recover can catch, and the
// Parquet logical types give the same Arrow types for every column.
func OpenFile(path string, batchRows int64) (f *File, err error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	f = &File{path: path, f: osf}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	defer f.recoverInto(&err)
	if f.pr, err = pqfile.NewParquetReader(osf); err != nil {
		return f, fmt.Errorf("open parquet %s: %w", path, err)
	}
	for _, kv := range f.pr.MetaData().KeyValueMetadata() {
		if kv.Key == arrowSchemaKey {
			kv.Key += ".ignored"
		}
	}
	if f.fr, err = pqarrow.NewFileReader(f.pr, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator); err != nil {
		return f, fmt.Errorf("read schema of %s: %w", path, err)
	}
	return f, nil
}

// Meta returns a key-value metadata entry of the file (MetaVersion,
// MetaRecord...), "" when absent.
func (f *File) Meta(key string) string {
	if v := f.pr.MetaData().KeyValueMetadata().FindValue(key); v != nil {
		return *v
	}
	return ""
}

// NumRows is the file's row count.
func (f *File) NumRows() int64 { return f.pr.NumRows() }

// Columns returns the leaf column indices of the named top-level columns
// the file has, for Records; columns an older file lacks are left out.
func (f *File) Columns(names []string) []int {
	var leaves []int
	var add func(sf pqarrow.SchemaField)
	add = func(sf pqarrow.SchemaField) {
		if sf.IsLeaf() {
			leaves = append(leaves, sf.ColIndex)
		}
		for _, c := range sf.Children {
			add(c)
		}
	}
	for _, sf := range f.fr.Manifest.Fields {
		if slices.Contains(names, sf.Field.Name) {
			add(sf)
		}
	}
	return leaves
}

// Records reads the given leaf columns (nil: all) in record batches. A
// panic of the reader's Next must be recovered by the caller, with
// RecoverInto.
func (f *File) Records(ctx context.Context, cols []int) (rr pqarrow.RecordReader, err error) {
	defer f.recoverInto(&err)
	if rr, err = f.fr.GetRecordReader(ctx, cols, nil); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.path, err)
	}
	return rr, nil
}

// RecoverInto turns a panic of the Parquet decoder while reading the file
// into *err: a damaged file must not stop a run. Use it deferred.
func (f *File) RecoverInto(err *error) { f.recover(err, recover()) }

func (f *File) recoverInto(err *error) { f.recover(err, recover()) }

func (f *File) recover(err *error, v any) {
	if v != nil {
		*err = fmt.Errorf("read %s: malformed file: %v", f.path, v)
	}
}

// Close releases the file.
func (f *File) Close() error {
	if f.pr != nil {
		return f.pr.Close() // closes the os.File too
	}
	return f.f.Close()
}

// ReadRecords calls fn with every row of the committed files of one
// dataset (flows, findings, packets or digests) under root whose path pick
// accepts (nil: every file), decoded into T. Columns a file lacks (an older
// schema) read as zero values; a missing dataset has no rows.
func ReadRecords[T columnar.Record](root, dataset string, pick func(path string) bool, fn func(*T) error) error {
	paths, err := CommittedFiles(root, dataset)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if pick != nil && !pick(p) {
			continue
		}
		if err := ReadFile(p, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadFile calls fn with every row of one dataset file, decoded into T.
func ReadFile[T columnar.Record](path string, fn func(*T) error) (err error) {
	f, err := OpenFile(path, 16<<10)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.NumRows() == 0 {
		return nil
	}
	rr, err := f.Records(context.Background(), nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	defer f.RecoverInto(&err)
	dec := columnar.NewDecoder[T]()
	var r T
	for rr.Next() {
		rec := rr.RecordBatch()
		if err := dec.Reset(rec); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		for i := range int(rec.NumRows()) {
			var zero T
			r = zero
			if err := dec.Decode(i, &r); err != nil {
				return fmt.Errorf("read %s row %d: %w", path, i, err)
			}
			if err := fn(&r); err != nil {
				return err
			}
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
