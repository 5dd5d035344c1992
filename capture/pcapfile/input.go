package pcapfile

import (
	"errors"
	"io"
	"unsafe"

	"github.com/tamperscope/tamperscope/internal/prefetch"
)

// window is how many mapped bytes the reader passes before it hands the
// pages behind it back, which bounds its resident memory.
const window = 8 << 20

// input is the reader's buffer over the (decompressed) stream. Frames alias
// buf, so refilling it — which moves unread bytes to the front — is what
// ends the validity of the previous frame.
//
// A plain regular file is memory-mapped instead (mapInput): rest then runs
// to the end of the file, frames alias the mapping, nothing is copied, and
// the pages already passed are released as the reader moves on.
type input struct {
	r    io.Reader
	buf  []byte
	rest []byte // the buffered, unread part of buf (or of mapped)
	off  int64  // stream offset of rest[0]
	err  error  // first error from r, io.EOF at the end of the stream

	mapped   []byte // the whole file, when mapped
	pf       int64  // stream bytes before this offset have been prefetched
	released int64  // mapped bytes before this offset are released
}

func newInput(r io.Reader, size int) input {
	return input{r: r, buf: make([]byte, size)}
}

// peek returns the next n bytes without consuming them. At the end of the
// stream it returns io.EOF if no byte is left and io.ErrUnexpectedEOF if
// fewer than n are; any other read error is returned as is.
func (in *input) peek(n int) ([]byte, error) {
	if len(in.rest) < n {
		if err := in.fill(n); err != nil {
			return nil, err
		}
	}
	return in.rest[:n], nil
}

func (in *input) fill(n int) error {
	if in.mapped != nil { // rest already runs to the end of the file
		if len(in.rest) == 0 {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	if n > len(in.buf) {
		in.buf = make([]byte, n)
	}
	have := copy(in.buf, in.rest)
	for empty := 0; have < n && in.err == nil; {
		var k int
		k, in.err = in.r.Read(in.buf[have:])
		have += k
		if k > 0 {
			empty = 0
		} else if empty++; empty == 100 {
			in.err = io.ErrNoProgress
		}
	}
	in.rest = in.buf[:have]
	switch {
	case have >= n:
		return nil
	case !errors.Is(in.err, io.EOF):
		return in.err
	case have == 0:
		return io.EOF
	default:
		return io.ErrUnexpectedEOF
	}
}

// prefetch starts loading the buffered bytes from n on, where the next
// records are, into the CPU cache while the caller works on the current
// record: in a mapping larger than the cache every record would otherwise
// begin with a wait on memory. It keeps prefetchAhead bytes in flight, all
// of them: where the next records start is only known by reading them.
func (in *input) prefetch(n int) {
	next := in.off + int64(n)
	lo := max(in.pf, next)
	hi := min(next+prefetchAhead, in.off+int64(len(in.rest)))
	if k := (hi - lo + 63) / 64; k > 0 {
		prefetch.Lines(unsafe.Pointer(&in.rest[lo-in.off]), int(k))
		in.pf = lo + k*64
	}
}

// prefetchAhead is how far prefetch reaches: a few records, enough to
// cover a miss to memory; further, the lines crowd out the analyzer's.
// Measured on the bench capture, 2 to 16 KiB all take ~6 % off replay.
const prefetchAhead = 4 << 10

// buffered reports how many unread bytes are buffered, which at the end of
// the stream is how far a truncated record reaches.
func (in *input) buffered() int { return len(in.rest) }

// discard consumes n bytes. The caller's frame may alias them until its
// next call, so only what lies before them is released.
func (in *input) discard(n int) {
	if in.mapped != nil && in.off-in.released >= window {
		in.advance(in.off)
	}
	in.rest = in.rest[n:]
	in.off += int64(n)
}
