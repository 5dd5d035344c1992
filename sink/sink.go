package sink

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
)

// Key-value metadata keys present in every file.
const (
	MetaVersion        = "tamperscope.version"         // tamperscope version that wrote the file
	MetaSchemaVersion  = "tamperscope.schema_version"  // schemas.*Version of the record, decimal
	MetaRecord         = "tamperscope.record"          // dataset: flows, findings, packets or digests
	MetaDetectorConfig = "tamperscope.detector_config" // detector configuration, JSON
)

// Config configures a Dataset. The zero value works.
type Config struct {
	// Version is the tamperscope version recorded in every file. The
	// default is the main module's version from the build information.
	Version string
	// DetectorConfig is the detector configuration, JSON, recorded in every
	// file. The default is "{}".
	DetectorConfig string
	// Name prefixes the set names that Flush commits: part-<Name>-<n>-<k>,
	// n counting commits. The default is a random id chosen by Open, so
	// writers sharing a root never collide.
	Name string
	// RowGroupRows is the maximum number of rows in a row group. The default
	// is 1 Mi rows.
	RowGroupRows int64
	// FileRows rotates a file once it holds this many rows. The default is
	// 16 Mi rows.
	FileRows int64
	// FileBytes rotates a file once its compressed size reaches this many
	// bytes (checked after each batch). The default is 512 MiB.
	FileBytes int64
	// BatchRows is the number of rows collected in Arrow before they are
	// handed to the Parquet writer, which encodes and compresses them into
	// the open row group right away. The default is 8 Ki rows: small
	// batches spread that work over the run instead of leaving it all to
	// Close, and row groups stay as large as RowGroupRows.
	BatchRows int
	// MaxOpenFiles bounds the files open at once over all datasets; past it
	// the least recently written file is closed (its rows stay pending until
	// the next commit). Each open file buffers up to one row group. The
	// default is 16.
	MaxOpenFiles int
	// ZstdLevel is the zstd compression level. The default is 1, the
	// fastest: zstd's higher levels cost more CPU than they save bytes on
	// these columns.
	ZstdLevel int
}

func (c *Config) setDefaults() {
	if c.Version == "" {
		c.Version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			c.Version = bi.Main.Version
		}
	}
	if c.DetectorConfig == "" {
		c.DetectorConfig = "{}"
	}
	if c.RowGroupRows <= 0 {
		c.RowGroupRows = 1 << 20
	}
	if c.FileRows <= 0 {
		c.FileRows = 16 << 20
	}
	if c.FileBytes <= 0 {
		c.FileBytes = 512 << 20
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 8 << 10
	}
	if c.MaxOpenFiles <= 0 {
		c.MaxOpenFiles = 16
	}
	if c.ZstdLevel <= 0 {
		c.ZstdLevel = 1
	}
}

// DatasetStats counts what one dataset has written.
type DatasetStats struct {
	Files       int64 // files committed
	Rows        int64 // rows in committed files
	Bytes       int64 // bytes of committed files
	PendingRows int64 // rows written but not yet committed
	Repaired    int64 // strings whose invalid UTF-8 was replaced by U+FFFD
}

// Stats counts what a Dataset has written, per dataset.
type Stats struct {
	Flows, Findings, Packets, Digests DatasetStats
}

// ErrClosed is returned by calls on a closed or aborted Dataset.
var ErrClosed = errors.New("dataset closed")

// Dataset writes the flows, findings, packets and digests datasets under one root.
// It is safe for concurrent use.
type Dataset struct {
	mu       sync.Mutex
	root     string
	cfg      Config
	runID    string
	arrProps pqarrow.ArrowWriterProperties

	flows    *kind[schemas.FlowRecord]
	findings *kind[schemas.Finding]
	packets  *kind[schemas.PacketMeta]
	digests  *kind[schemas.WindowDigest]

	open     []opener        // partitions with an open file, for eviction
	clock    uint64          // orders writes for eviction
	serial   int             // distinguishes temporary files
	commits  int             // commits so far, for Flush's set names
	dirs     map[string]bool // directories known to exist
	syncDirs map[string]bool // directories with new entries to fsync at commit
	err      error           // sticky: the Dataset is unusable after a write error
}

// opener is a partition with an open file, whatever its record type.
type opener interface {
	lastWrite() uint64
	closeFile(d *Dataset) error
}

// Open returns a Dataset writing under root, creating root if needed.
func Open(root string, cfg Config) (*Dataset, error) {
	cfg.setDefaults()
	if !json.Valid([]byte(cfg.DetectorConfig)) {
		return nil, fmt.Errorf("open dataset %s: detector configuration is not valid JSON", root)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", root, err)
	}
	runID := hex.EncodeToString(id[:])
	if cfg.Name == "" {
		cfg.Name = runID
	}
	if err := validSetName(cfg.Name); err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", root, err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	d := &Dataset{
		root:     root,
		cfg:      cfg,
		runID:    runID,
		arrProps: pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(memory.DefaultAllocator)),
		dirs:     map[string]bool{root: true},
		syncDirs: map[string]bool{},
	}
	d.flows = newKind(cfg, func(r *schemas.FlowRecord) int64 { return r.StartNs })
	d.findings = newKind(cfg, func(r *schemas.Finding) int64 { return r.WindowStartNs })
	d.packets = newKind(cfg, func(r *schemas.PacketMeta) int64 { return r.TimestampNs })
	d.digests = newKind(cfg, func(r *schemas.WindowDigest) int64 { return r.WindowStartNs })
	return d, nil
}

// writerProps sets the Parquet encodings of one dataset. Nothing is
// dictionary-encoded: on high-cardinality columns (seq, ack, IP ID) the hash
// lookups cost more CPU than the rest of the write, arrow-go's string
// dictionary encoder allocates once per value (24 allocations per flow
// row), and zstd gets the size back on repetitive plain columns.
func writerProps(cfg Config, t *columnar.Table) *parquet.WriterProperties {
	opts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(cfg.ZstdLevel),
		parquet.WithMaxRowGroupLength(cfg.RowGroupRows),
		parquet.WithCreatedBy("tamperscope " + cfg.Version),
		parquet.WithDictionaryDefault(false),
		// 1 MiB pages cost ~150 MiB per open packets file (pageSize);
		// readers still scan pages of tens of KiB fast.
		parquet.WithDataPageSize(pageSize(t)),
		// Snapshots are large and unordered: min/max on them costs
		// time and prunes nothing.
		parquet.WithStatsFor("payload", false),
	}
	if t.Name == columnar.Packets {
		// Every row group of a busy capture spans the whole address
		// range: address min/max prunes nothing and costs 3% of a write.
		for _, c := range []string{"src", "dst", "quoted_src", "quoted_dst"} {
			opts = append(opts, parquet.WithStatsFor(c, false))
		}
	}
	return parquet.NewWriterProperties(opts...)
}

// pageSize is the Parquet data page size of t's files. Each column of an
// open file holds a page and its compression scratch until the page is
// full, so the page size is most of a writer's memory. Packets files take
// 32 KiB pages: on the bench capture, replay --packets then peaks at
// 257-270 MiB instead of 312-345, for files 3.6 % larger and the same
// CPU. Flows files take 64 KiB: against 256 KiB, replay peaks 20 MiB
// lower (158 MiB) for files 0.9 % larger and no more CPU; 32 KiB cost
// flow rows a third more CPU (their 65 columns each flush more pages).
func pageSize(t *columnar.Table) int64 {
	if t.Name == columnar.Packets {
		return 32 << 10
	}
	return 64 << 10
}

// validSetName keeps set names to characters that are safe in file names and
// Hive paths and that Kafka topic names use.
func validSetName(s string) error {
	if s == "" || len(s) > 200 || s[0] == '.' {
		return fmt.Errorf("invalid file set name %q", s)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+' || c == '=') {
			return fmt.Errorf("invalid file set name %q: character %q", s, c)
		}
	}
	return nil
}

// write runs one append under the lock, on a usable Dataset, and makes
// its error sticky.
func (d *Dataset) write(add func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	return d.fail(add())
}

// WriteFlow appends one flow record; r may be reused after the call.
func (d *Dataset) WriteFlow(r *schemas.FlowRecord) error {
	return d.write(func() error { return d.flows.write(d, r) })
}

// WriteFlows appends flow records, column by column, which is several
// times faster than one WriteFlow each; rs may be reused after the call.
func (d *Dataset) WriteFlows(rs []schemas.FlowRecord) error {
	return d.write(func() error { return d.flows.writeSlice(d, rs) })
}

// WriteFinding appends one finding; f may be reused after the call.
func (d *Dataset) WriteFinding(f *schemas.Finding) error {
	return d.write(func() error { return d.findings.write(d, f) })
}

// WriteDigest appends one window digest; r may be reused after the call.
func (d *Dataset) WriteDigest(r *schemas.WindowDigest) error {
	return d.write(func() error { return d.digests.write(d, r) })
}

// WritePackets appends packet metadata rows; the slice and the payloads it
// points to may be reused after the call.
func (d *Dataset) WritePackets(pkts []schemas.PacketMeta) error {
	return d.write(func() error { return d.packets.writeSlice(d, pkts) })
}

// Flush commits everything written so far as the set <Config.Name>-<n>, n
// the number of earlier commits, and returns the paths of the files it
// published.
func (d *Dataset) Flush() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commit(d.cfg.Name + "-" + strconv.Itoa(d.commits))
}

// Commit closes every open file and publishes all files written since the
// last commit as part-<set>-<k>.parquet in their partition directories,
// replacing files of the same name. It returns the paths it published. Set
// names use the characters [A-Za-z0-9._+=-] and must not start with a dot.
func (d *Dataset) Commit(set string) ([]string, error) {
	if err := validSetName(set); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commit(set)
}

// Close commits what is pending, as Flush does, and closes the Dataset.
// After a write error it removes the uncommitted files instead and returns
// that error.
func (d *Dataset) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if errors.Is(d.err, ErrClosed) {
		return nil
	}
	if d.err != nil {
		err := d.err
		d.abort()
		return err
	}
	_, err := d.commit(d.cfg.Name + "-" + strconv.Itoa(d.commits))
	if err != nil {
		d.abort()
		return err
	}
	d.err = ErrClosed
	return nil
}

// CloseFlowFiles finishes the open flows files now, encoding what they
// buffer, instead of at the next commit, which still publishes them; flow
// rows written later open new files. A writer with no more flows calls it
// while the analyzer still judges its last windows.
func (d *Dataset) CloseFlowFiles() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	return d.fail(d.flows.closeFiles(d))
}

// Abort closes the Dataset and removes every uncommitted file: what was
// written since the last commit is dropped.
func (d *Dataset) Abort() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if errors.Is(d.err, ErrClosed) {
		return nil
	}
	return d.abort()
}

// Stats returns what has been written so far.
func (d *Dataset) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Flows: d.flows.stats(), Findings: d.findings.stats(), Packets: d.packets.stats(), Digests: d.digests.stats()}
}

func (d *Dataset) usable() error {
	if d.err != nil {
		return fmt.Errorf("write dataset %s: %w", d.root, d.err)
	}
	return nil
}

// fail makes a write error sticky: a file that failed mid-write cannot be
// trusted, so nothing more is committed until the caller closes or aborts.
func (d *Dataset) fail(err error) error {
	if err != nil && d.err == nil {
		d.err = err
	}
	return err
}

func (d *Dataset) commit(set string) ([]string, error) {
	if err := d.usable(); err != nil {
		return nil, err
	}
	// Close every file before the first rename, so a commit never
	// publishes some files while others of the set can still fail.
	for len(d.open) > 0 {
		if err := d.fail(d.open[0].closeFile(d)); err != nil {
			return nil, err
		}
	}
	var published []string
	for _, c := range []committer{d.flows, d.findings, d.packets, d.digests} {
		paths, err := c.publish(d, set)
		published = append(published, paths...)
		if err := d.fail(err); err != nil {
			return published, err
		}
	}
	// Directories created since the last commit: their entries in their
	// parents must be durable too.
	for _, dir := range slices.Sorted(maps.Keys(d.syncDirs)) {
		if err := d.fail(syncDir(dir)); err != nil {
			return published, err
		}
	}
	clear(d.syncDirs)
	d.commits++
	return published, nil
}

func (d *Dataset) abort() error {
	d.open = nil
	errs := []error{d.flows.removePending(), d.findings.removePending(), d.packets.removePending(), d.digests.removePending()}
	d.err = ErrClosed
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// mkdirs creates rel (a path below root) level by level, remembering which
// parents gained an entry.
func (d *Dataset) mkdirs(rel string) (string, error) {
	abs := filepath.Join(d.root, rel)
	if d.dirs[abs] {
		return abs, nil
	}
	parent := d.root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		dir := filepath.Join(parent, part)
		if !d.dirs[dir] {
			switch err := os.Mkdir(dir, 0o755); {
			case err == nil:
				d.syncDirs[parent] = true
			case !errors.Is(err, os.ErrExist):
				return "", fmt.Errorf("create partition directory: %w", err)
			}
			d.dirs[dir] = true
		}
		parent = dir
	}
	return abs, nil
}

// partitionDir returns the Hive partition directory of an hour number
// (hours since the Unix epoch).
func partitionDir(dataset string, hour int64) string {
	t := time.Unix(hour*3600, 0).UTC()
	return filepath.Join(dataset, t.Format("date=2006-01-02"), t.Format("hour=15"))
}

const hourNs = int64(time.Hour)

// hourOf returns the hour number of a time in ns since the Unix epoch,
// rounding down for times before 1970.
func hourOf(ns int64) int64 {
	h := ns / hourNs
	if ns%hourNs < 0 {
		h--
	}
	return h
}

// file is one Parquet file being written under its temporary name, or
// closed and waiting for a commit.
type file struct {
	tmp  string
	osf  *os.File
	bw   *bufio.Writer
	fw   *pqarrow.FileWriter
	rows int64
	size int64
}

func (d *Dataset) createFile(dir string, t *columnar.Table, props *parquet.WriterProperties) (*file, error) {
	d.serial++
	tmp := filepath.Join(dir, fmt.Sprintf(".part-%s-%d.parquet.tmp", d.runID, d.serial))
	osf, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create parquet file: %w", err)
	}
	d.syncDirs[dir] = true
	// bufio.Writer has no Close method, so pqarrow's Close cannot close
	// the file before it is flushed and fsynced.
	bw := bufio.NewWriterSize(osf, 256<<10)
	fw, err := pqarrow.NewFileWriter(t.Schema, bw, props, d.arrProps)
	if err == nil {
		for _, kv := range [][2]string{
			{MetaVersion, d.cfg.Version},
			{MetaSchemaVersion, strconv.Itoa(t.Version)},
			{MetaRecord, t.Name},
			{MetaDetectorConfig, d.cfg.DetectorConfig},
		} {
			if err = fw.AppendKeyValueMetadata(kv[0], kv[1]); err != nil {
				break
			}
		}
	}
	if err != nil {
		osf.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create parquet writer %s: %w", tmp, err)
	}
	return &file{tmp: tmp, osf: osf, bw: bw, fw: fw}, nil
}

// finish closes the Parquet writer and makes the file durable under its
// temporary name.
func (f *file) finish() error {
	err := f.fw.Close()
	if err == nil {
		err = f.bw.Flush()
	}
	if err == nil {
		f.size, err = f.osf.Seek(0, io.SeekCurrent)
	}
	if err == nil {
		err = f.osf.Sync()
	}
	if cerr := f.osf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close parquet file %s: %w", f.tmp, err)
	}
	return nil
}

// discard abandons an open file and removes it.
func (f *file) discard() {
	f.osf.Close()
	os.Remove(f.tmp)
}
