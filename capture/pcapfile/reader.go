package pcapfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/tamperscope/tamperscope/capture"
)

// DefaultMaxRecordLen is the captured length above which a record is taken
// as corruption: four times libpcap's 262144, so GSO/BIG TCP super-packets
// still read while a garbage length cannot make the reader allocate
// gigabytes.
const DefaultMaxRecordLen = 262144 * 4

// bufferSize is the read buffer; frames alias it.
const bufferSize = 1 << 20

// blockSlack is room for pcapng block headers and options around a record of
// MaxRecordLen bytes.
const blockSlack = 1 << 16

// Options tunes a Reader. The zero value reads any capture.
type Options struct {
	// MaxRecordLen is the largest captured length accepted; a longer record
	// ends the stream with ErrCorrupt. Zero means DefaultMaxRecordLen.
	MaxRecordLen int
	// LinkTypes, when not empty, lists the link types the caller can
	// decode. A pcap file of another type fails to open with
	// capture.ErrUnsupportedLinkType; pcapng packets on an interface of
	// another type are skipped and counted in Stats.Skips.
	LinkTypes []uint16
}

// Reader reads frames from a pcap or pcapng stream. It implements
// capture.Source; Frame.Data aliases the reader's buffer until the next call
// to Next.
type Reader struct {
	name    string
	maxRec  int
	links   []uint16
	in      input
	raw     *countingReader // the input as given, before decompression
	zipped  bool
	closers []func() error
	err     error  // sticky: io.EOF or the error that ended the stream
	index   uint64 // records (pcap) or blocks (pcapng) fully read
	stats   capture.Stats
	ng      bool
	swap    bool // multi-byte fields are big-endian

	// pcap
	fracNs   int64 // nanoseconds per unit of the sub-second field
	swapLens bool  // pre-2.3 file: caplen and len may be swapped
	link     uint16

	// pcapng
	sec ngSection
}

type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

const (
	magicGzip = 0x1f8b
	magicZstd = 0x28b52ffd
)

// Open opens a capture file. The format (pcap, pcapng) and compression
// (gzip, zstd) are detected from the content, never the name.
func Open(path string, opts Options) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	in, unmap, mapped := mapInput(f)
	if !mapped {
		in = newInput(nil, bufferSize)
	}
	r, err := newReader(f, in, path, opts)
	if mapped {
		r.closers = append(r.closers, unmap)
	}
	r.closers = append(r.closers, f.Close)
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// NewReader reads a capture from rd; name labels errors. It reads the file
// header before returning, so an input that is no capture fails here.
// Closing the Reader does not close rd.
func NewReader(rd io.Reader, name string, opts Options) (*Reader, error) {
	r, err := newReader(rd, newInput(nil, bufferSize), name, opts)
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// newReader reads the file header from in, which reads from rd unless it
// is a mapping. It returns the Reader also on error, for its closers.
func newReader(rd io.Reader, in input, name string, opts Options) (*Reader, error) {
	r := &Reader{
		name:   name,
		maxRec: opts.MaxRecordLen,
		links:  slices.Clone(opts.LinkTypes),
		raw:    &countingReader{r: rd},
		in:     in,
	}
	if r.maxRec <= 0 {
		r.maxRec = DefaultMaxRecordLen
	}
	if r.in.mapped == nil {
		r.in.r = r.raw
	}
	if err := r.open(); err != nil {
		if _, ok := err.(*RecordError); ok {
			return r, err // already names the file and the place
		}
		return r, fmt.Errorf("open capture %s: %w", name, err)
	}
	return r, nil
}

func (r *Reader) open() error {
	if err := r.decompress(); err != nil {
		return err
	}
	m, err := r.in.peek(4)
	switch {
	case err == io.EOF:
		return fmt.Errorf("empty file: %w", ErrNotCapture)
	case err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%d-byte file: %w", r.in.buffered(), ErrNotCapture)
	case err != nil:
		return fmt.Errorf("read magic: %w", err)
	}
	switch binary.LittleEndian.Uint32(m) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		return r.openPcap()
	case blockSHB:
		r.ng = true
		return r.readSHB()
	}
	return fmt.Errorf("magic %x: %w", m, ErrNotCapture)
}

// decompress puts a gzip or zstd decoder between the file and the parser
// when the content starts with their magic.
func (r *Reader) decompress() error {
	m, err := r.in.peek(4)
	if err != nil {
		return nil // too short for any magic: open reports it
	}
	gz, zs := compressed(m)
	if !gz && !zs {
		return nil
	}
	// The decoder must see the bytes already buffered, then the rest.
	head := bytes.Clone(r.in.rest)
	src := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(head), r.raw), 256<<10)
	var dec io.Reader
	if gz {
		zr, err := gzip.NewReader(src)
		if err != nil {
			return fmt.Errorf("read gzip header: %w", err)
		}
		dec = zr
		r.closers = append(r.closers, zr.Close)
	} else {
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("start zstd decoder: %w", err)
		}
		dec = zr
		r.closers = append(r.closers, func() error { zr.Close(); return nil })
	}
	r.zipped = true
	r.in = input{r: dec, buf: r.in.buf}
	return nil
}

// compressed tells whether a stream starting with m is gzip or zstd.
func compressed(m []byte) (gz, zs bool) {
	return binary.BigEndian.Uint16(m) == magicGzip, binary.BigEndian.Uint32(m) == magicZstd
}

// Name returns the name the reader was opened with.
func (r *Reader) Name() string { return r.name }

// Next reads the next frame into f. It returns io.EOF at the end of the
// input and a *RecordError when the input stops being readable; after
// either, it keeps returning the same error.
func (r *Reader) Next(f *capture.Frame) error {
	if r.err != nil {
		return r.err
	}
	if r.ng {
		return r.nextNg(f)
	}
	return r.nextPcap(f)
}

// Stats reports frames delivered, records skipped, and input bytes
// consumed: parsed bytes for a plain file, compressed bytes read for a
// compressed one.
func (r *Reader) Stats() capture.Stats {
	s := r.stats
	s.Bytes = uint64(r.in.off)
	if r.zipped {
		s.Bytes = r.raw.n
	}
	return s
}

// Close releases the decoder and, for Open, the file.
func (r *Reader) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c())
	}
	r.closers = nil
	if r.err == nil {
		r.err = errors.New("read capture " + r.name + ": reader closed")
	}
	return errors.Join(errs...)
}

func (r *Reader) u16(b []byte) uint16 {
	v := binary.LittleEndian.Uint16(b)
	if r.swap {
		v = bits.ReverseBytes16(v)
	}
	return v
}

func (r *Reader) u32(b []byte) uint32 {
	v := binary.LittleEndian.Uint32(b)
	if r.swap {
		v = bits.ReverseBytes32(v)
	}
	return v
}

func (r *Reader) accepts(link uint16) bool {
	return len(r.links) == 0 || slices.Contains(r.links, link)
}

func (r *Reader) kind() string {
	if r.ng {
		return "block"
	}
	return "record"
}

// stop ends the stream with err located at the record being read.
func (r *Reader) stop(err error, detail string, args ...any) error {
	r.err = &RecordError{
		Name:   r.name,
		Kind:   r.kind(),
		Index:  r.index + 1,
		Offset: r.in.off,
		Err:    err,
		Detail: fmt.Sprintf(detail, args...),
	}
	return r.err
}

// readFailed turns a failed peek of want bytes into the stream's end.
func (r *Reader) readFailed(err error, want int) error {
	switch err {
	case io.EOF:
		r.err = io.EOF
		return io.EOF
	case io.ErrUnexpectedEOF:
		return r.stop(ErrTruncated, "input ends %d bytes into a %d-byte %s", r.in.buffered(), want, r.kind())
	}
	return r.stop(err, "read %d bytes", want)
}

// headerFailed describes a failed peek of a file header during Open.
func (r *Reader) headerFailed(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("read %s: input ends after %d bytes: %w", what, r.in.buffered(), ErrTruncated)
	}
	return fmt.Errorf("read %s: %w", what, err)
}
