package pcapfile

import (
	"errors"
	"io"
)

// input is the reader's buffer over the (decompressed) stream. Frames alias
// buf, so refilling it — which moves unread bytes to the front — is what
// ends the validity of the previous frame.
type input struct {
	r   io.Reader
	buf []byte
	pos int   // first unread byte
	end int   // one past the last buffered byte
	off int64 // stream offset of buf[pos]
	err error // first error from r, io.EOF at the end of the stream
}

func newInput(r io.Reader, size int) input {
	return input{r: r, buf: make([]byte, size)}
}

// peek returns the next n bytes without consuming them. At the end of the
// stream it returns io.EOF if no byte is left and io.ErrUnexpectedEOF if
// fewer than n are; any other read error is returned as is.
func (in *input) peek(n int) ([]byte, error) {
	if in.end-in.pos >= n {
		return in.buf[in.pos : in.pos+n], nil
	}
	return in.fill(n)
}

func (in *input) fill(n int) ([]byte, error) {
	if n > len(in.buf) {
		grown := make([]byte, n)
		in.end = copy(grown, in.buf[in.pos:in.end])
		in.buf = grown
		in.pos = 0
	} else if in.pos > 0 {
		in.end = copy(in.buf, in.buf[in.pos:in.end])
		in.pos = 0
	}
	for empty := 0; in.end < n && in.err == nil; {
		var k int
		k, in.err = in.r.Read(in.buf[in.end:])
		in.end += k
		if k > 0 {
			empty = 0
		} else if empty++; empty == 100 {
			in.err = io.ErrNoProgress
		}
	}
	if in.end >= n {
		return in.buf[:n], nil
	}
	switch {
	case !errors.Is(in.err, io.EOF):
		return nil, in.err
	case in.end == 0:
		return nil, io.EOF
	default:
		return nil, io.ErrUnexpectedEOF
	}
}

// buffered reports how many bytes are left in the stream's buffered part,
// which is how far a truncated record reaches.
func (in *input) buffered() int { return in.end - in.pos }

func (in *input) discard(n int) {
	in.pos += n
	in.off += int64(n)
}
