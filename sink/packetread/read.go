package packetread

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport"
)

// ErrNoDataset is returned when a directory holds no packets/ dataset.
var ErrNoDataset = errors.New("no packets/ dataset")

// Config configures Run. The zero value works.
type Config struct {
	// Vantage, when set, keeps only packets recorded with this vantage id.
	// The default keeps every packet.
	Vantage string
	// BatchSize is the number of packets per published batch. The default
	// is 4096.
	BatchSize int
	// OnError, when set, is told of each file that is skipped or cut short,
	// as it happens.
	OnError func(error)
}

// Stats is what Run did.
type Stats struct {
	Files     int    // committed files found
	BadFiles  int    // files skipped or cut short by an error
	Rows      uint64 // rows read
	BadRows   uint64 // rows that did not decode, skipped
	Filtered  uint64 // rows of another vantage than Config.Vantage
	Published uint64 // packets published
	Snapshots uint64 // packets published with a payload snapshot
	Batches   uint64
	// Vantages counts the rows read per vantage id.
	Vantages map[string]uint64
}

// Files lists the committed files of the packets dataset under root,
// sorted, skipping hidden names (a writer's unpublished .part-*.tmp files).
func Files(root string) ([]string, error) {
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("read dataset: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("read dataset %s: not a directory", root)
	}
	dir := filepath.Join(root, columnar.Packets)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read dataset %s: %w (write one with replay --packets --out)", root, ErrNoDataset)
	}
	return sink.CommittedFiles(root, columnar.Packets)
}

// Run publishes the packets of the dataset under root to pub in batches,
// in the order the package documentation describes. It returns nil at the
// end of the input, an error when root holds no packets dataset, when
// publishing fails or when ctx ends; bad files and rows are counted in
// Stats and skipped. It does not close pub.
func Run(ctx context.Context, root string, pub transport.Publisher, cfg Config) (Stats, error) {
	st := Stats{Vantages: map[string]uint64{}}
	files, err := Files(root)
	if err != nil {
		return st, err
	}
	st.Files = len(files)
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 4096
	}
	r := &runner{ctx: ctx, pub: pub, cfg: cfg, st: &st}
	r.getter, _ = pub.(interface{ Get() *schemas.PacketBatch })
	r.b = r.get()
	for len(files) > 0 {
		// One partition directory at a time bounds the files open at once.
		dir := filepath.Dir(files[0])
		n := 1
		for n < len(files) && filepath.Dir(files[n]) == dir {
			n++
		}
		if err := r.partition(files[:n]); err != nil {
			return st, err
		}
		files = files[n:]
	}
	return st, r.flush()
}

type runner struct {
	ctx    context.Context
	pub    transport.Publisher
	cfg    Config
	st     *Stats
	getter interface{ Get() *schemas.PacketBatch }
	b      *schemas.PacketBatch
	refs   []snapRef
}

// snapRef locates a payload copied into the batch arena.
type snapRef struct{ idx, off, n int }

func (r *runner) get() *schemas.PacketBatch {
	if r.getter != nil {
		return r.getter.Get()
	}
	return &schemas.PacketBatch{}
}

func (r *runner) fail(err error) {
	r.st.BadFiles++
	if r.cfg.OnError != nil {
		r.cfg.OnError(err)
	}
}

// partition merges the files of one partition by timestamp.
func (r *runner) partition(paths []string) error {
	var h cursorHeap
	defer func() {
		for _, c := range h {
			c.close()
		}
	}()
	for i, path := range paths {
		c, err := r.open(path, i)
		if err != nil {
			r.fail(err)
			continue
		}
		if ok, err := c.advance(); err != nil {
			r.fail(err)
			c.close()
		} else if ok {
			h = append(h, c)
		} else {
			c.close()
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		if err := r.add(&c.cur); err != nil {
			return err
		}
		ok, err := c.advance()
		if err != nil {
			r.fail(err)
		}
		if ok {
			heap.Fix(&h, 0)
			continue
		}
		heap.Pop(&h)
		c.close()
	}
	return nil
}

// add appends p to the batch, copying its payload into the arena.
func (r *runner) add(p *schemas.PacketMeta) error {
	if len(r.b.Packets) >= r.cfg.BatchSize {
		if err := r.flush(); err != nil {
			return err
		}
	}
	r.b.Packets = append(r.b.Packets, *p)
	q := &r.b.Packets[len(r.b.Packets)-1]
	if len(p.Payload) > 0 {
		r.st.Snapshots++
		r.refs = append(r.refs, snapRef{len(r.b.Packets) - 1, len(r.b.Arena), len(p.Payload)})
		r.b.Arena = append(r.b.Arena, p.Payload...)
	}
	q.Payload = nil
	return nil
}

func (r *runner) flush() error {
	if len(r.b.Packets) == 0 {
		return nil
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	// Point payloads into the arena now that it no longer grows.
	for _, s := range r.refs {
		r.b.Packets[s.idx].Payload = r.b.Arena[s.off : s.off+s.n : s.off+s.n]
	}
	r.refs = r.refs[:0]
	r.st.Published += uint64(len(r.b.Packets))
	r.st.Batches++
	if err := r.pub.Publish(r.ctx, r.b); err != nil {
		return fmt.Errorf("publish batch: %w", err)
	}
	r.b = r.get()
	return nil
}

// cursor walks the rows of one file; cur is the current row, its payload
// aliasing rec.
type cursor struct {
	r    *runner
	path string
	ord  int // position in the partition, to break timestamp ties
	f    *sink.File
	rr   pqarrow.RecordReader
	dec  *columnar.Decoder[schemas.PacketMeta]
	rec  arrow.RecordBatch
	row  int
	cur  schemas.PacketMeta
}

func (r *runner) open(path string, ord int) (*cursor, error) {
	f, err := sink.OpenFile(path, int64(r.cfg.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("open packets file: %w", err)
	}
	c := &cursor{r: r, path: path, ord: ord, f: f, dec: columnar.NewDecoder[schemas.PacketMeta]()}
	if v := f.Meta(sink.MetaRecord); v != "" && v != columnar.Packets {
		c.close()
		return nil, fmt.Errorf("open %s: a %s file, not packets", path, v)
	}
	if c.rr, err = f.Records(r.ctx, nil); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// advance moves to the next row that decodes and passes the vantage
// filter; false at the end of the file or on an error, after which the
// cursor is done.
func (c *cursor) advance() (ok bool, err error) {
	defer c.f.RecoverInto(&err)
	st := c.r.st
	for {
		for c.rec != nil && c.row < int(c.rec.NumRows()) {
			i := c.row
			c.row++
			st.Rows++
			if err := c.dec.Decode(i, &c.cur); err != nil {
				st.BadRows++
				continue
			}
			st.Vantages[c.cur.Vantage]++
			if c.r.cfg.Vantage != "" && c.cur.Vantage != c.r.cfg.Vantage {
				st.Filtered++
				continue
			}
			return true, nil
		}
		if !c.rr.Next() {
			if err := c.rr.Err(); err != nil {
				return false, fmt.Errorf("read %s: %w", c.path, err)
			}
			return false, nil
		}
		c.rec = c.rr.RecordBatch()
		c.row = 0
		if err := c.dec.Reset(c.rec); err != nil {
			return false, fmt.Errorf("read %s: %w", c.path, err)
		}
	}
}

func (c *cursor) close() {
	if c.rr != nil {
		c.rr.Release()
	}
	c.f.Close()
}

// cursorHeap orders cursors by their current timestamp, then by file.
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.cur.TimestampNs != b.cur.TimestampNs {
		return a.cur.TimestampNs < b.cur.TimestampNs
	}
	return a.ord < b.ord
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
