package sink

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/parquet"

	"github.com/tamperscope/tamperscope/schemas/columnar"
)

// committer is a dataset, whatever its record type.
type committer interface {
	publish(d *Dataset, set string) ([]string, error)
	removePending() error
}

// kind is one dataset (flows, findings, packets or digests) of a Dataset.
type kind[T columnar.Record] struct {
	table  *columnar.Table
	props  *parquet.WriterProperties
	timeOf func(*T) int64
	// batchRows is Config.BatchRows.
	batchRows int
	parts     map[int64]*partition[T] // by hour number
	// spare is the builder of a published partition, for the next
	// partition: its column memory has grown to a batch already.
	spare *columnar.Builder[T]

	// last caches the partition of the previous record: records mostly
	// arrive in time order.
	last     *partition[T]
	lastHour int64

	st DatasetStats
}

func newKind[T columnar.Record](cfg Config, timeOf func(*T) int64) *kind[T] {
	t := columnar.TableOf[T]()
	return &kind[T]{table: t, props: writerProps(cfg, t), timeOf: timeOf, batchRows: cfg.BatchRows, parts: map[int64]*partition[T]{}}
}

// partition is one partition directory of one dataset: at most one open
// file, and the files closed since the last commit.
type partition[T columnar.Record] struct {
	k    *kind[T]
	dir  string // below the root
	b    *columnar.Builder[T]
	f    *file
	done []*file
	used uint64
}

func (k *kind[T]) partition(hour int64) *partition[T] {
	if k.last != nil && k.lastHour == hour {
		return k.last
	}
	p := k.parts[hour]
	if p == nil {
		p = &partition[T]{k: k, dir: partitionDir(k.table.Name, hour)}
		k.parts[hour] = p
	}
	k.last, k.lastHour = p, hour
	return p
}

func (k *kind[T]) write(d *Dataset, r *T) error {
	if r == nil {
		return errors.New("write nil record")
	}
	return k.partition(hourOf(k.timeOf(r))).append(d, unsafe.Slice(r, 1))
}

func (k *kind[T]) writeSlice(d *Dataset, rs []T) error {
	for len(rs) > 0 {
		h := hourOf(k.timeOf(&rs[0]))
		n := 1
		for n < len(rs) && hourOf(k.timeOf(&rs[n])) == h {
			n++
		}
		if err := k.partition(h).append(d, rs[:n]); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

func (k *kind[T]) stats() DatasetStats {
	s := k.st
	for _, p := range k.parts {
		if p.b != nil {
			s.PendingRows += int64(p.b.Len())
			s.Repaired += int64(p.b.Repaired())
		}
		if p.f != nil {
			s.PendingRows += p.f.rows
		}
		for _, f := range p.done {
			s.PendingRows += f.rows
		}
	}
	return s
}

// append writes rs, all of this partition's hour, cutting them into batches
// of Config.BatchRows and files of at most Config.FileRows rows.
func (p *partition[T]) append(d *Dataset, rs []T) error {
	for len(rs) > 0 {
		if p.f == nil {
			if err := p.openFile(d); err != nil {
				return err
			}
		}
		d.clock++
		p.used = d.clock
		room := min(int64(d.cfg.BatchRows-p.b.Len()), d.cfg.FileRows-p.f.rows-int64(p.b.Len()))
		n := int(min(int64(len(rs)), room))
		if n == 1 {
			p.b.Append(&rs[0])
		} else {
			p.b.AppendSlice(rs[:n])
		}
		rs = rs[n:]
		if p.b.Len() >= d.cfg.BatchRows || p.f.rows+int64(p.b.Len()) >= d.cfg.FileRows {
			if err := p.writeBatch(p.f); err != nil {
				return err
			}
			if p.f.rows >= d.cfg.FileRows || p.f.fw.TotalCompressedBytes() >= d.cfg.FileBytes {
				if err := p.closeFile(d); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (p *partition[T]) writeBatch(f *file) error {
	rec := p.b.NewRecordBatch()
	defer rec.Release()
	if err := f.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write %s batch to %s: %w", p.k.table.Name, f.tmp, err)
	}
	f.rows += rec.NumRows()
	return nil
}

func (p *partition[T]) openFile(d *Dataset) error {
	if len(d.open) >= d.cfg.MaxOpenFiles {
		lru := slices.MinFunc(d.open, func(a, b opener) int { return cmp.Compare(a.lastWrite(), b.lastWrite()) })
		if err := lru.closeFile(d); err != nil {
			return err
		}
	}
	dir, err := d.mkdirs(p.dir)
	if err != nil {
		return err
	}
	if p.f, err = d.createFile(dir, p.k.table, p.k.props); err != nil {
		return err
	}
	if p.b == nil {
		p.b, p.k.spare = p.k.spare, nil
		if p.b == nil {
			p.b = columnar.NewBuilder[T]()
		}
	}
	d.open = append(d.open, p)
	return nil
}

func (p *partition[T]) lastWrite() uint64 { return p.used }

// closeFiles finishes the dataset's open files, keeping them for the next
// commit.
func (k *kind[T]) closeFiles(d *Dataset) error {
	for _, hour := range slices.Sorted(maps.Keys(k.parts)) {
		if p := k.parts[hour]; p.f != nil {
			if err := p.closeFile(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// closeFile writes the pending batch, finishes the open file and keeps it
// for the next commit.
func (p *partition[T]) closeFile(d *Dataset) error {
	d.open = slices.DeleteFunc(d.open, func(o opener) bool { return o == opener(p) })
	f := p.f
	p.f = nil
	if p.b.Len() > 0 {
		if err := p.writeBatch(f); err != nil {
			f.discard()
			return err
		}
	}
	p.done = append(p.done, f)
	return f.finish()
}

func (p *partition[T]) discard() {
	if p.f != nil {
		p.f.discard()
		p.f = nil
	}
}

// publish renames the partition's closed files to part-<set>-<k>.parquet and
// removes higher-numbered files of the same set left by an earlier commit.
func (k *kind[T]) publish(d *Dataset, set string) ([]string, error) {
	hours := slices.Sorted(maps.Keys(k.parts))
	var published []string
	for _, h := range hours {
		p := k.parts[h]
		dir := filepath.Join(d.root, p.dir)
		for i, f := range p.done {
			final := filepath.Join(dir, fmt.Sprintf("part-%s-%d.parquet", set, i))
			if err := os.Rename(f.tmp, final); err != nil {
				return published, fmt.Errorf("publish %s: %w", final, err)
			}
			published = append(published, final)
			k.st.Files++
			k.st.Rows += f.rows
			k.st.Bytes += f.size
		}
		for i := len(p.done); ; i++ {
			if err := os.Remove(filepath.Join(dir, fmt.Sprintf("part-%s-%d.parquet", set, i))); err != nil {
				break
			}
		}
		if len(p.done) > 0 {
			if err := syncDir(dir); err != nil {
				return published, err
			}
		}
		if p.b != nil {
			k.st.Repaired += int64(p.b.Repaired())
			p.b.Reset()
			k.spare = p.b
		}
		delete(k.parts, h)
	}
	k.last = nil
	return published, nil
}

func (k *kind[T]) removePending() error {
	var errs []error
	for h, p := range k.parts {
		p.discard()
		for _, f := range p.done {
			if err := os.Remove(f.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		delete(k.parts, h)
	}
	k.last = nil
	return errors.Join(errs...)
}
