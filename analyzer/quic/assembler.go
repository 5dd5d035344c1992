package quic

import (
	"errors"
	"fmt"
)

// ErrCryptoLimit: a connection's CRYPTO stream grew past Assembler.Limit,
// or one of its handshake messages says it is longer than that.
var ErrCryptoLimit = errors.New("QUIC CRYPTO stream over limit")

// DefaultLimit is the CRYPTO stream bytes an Assembler keeps when its Limit
// is zero. A ClientHello with post-quantum key shares takes about 1.8 KiB;
// 64 KiB leaves room for a large one with padding and session tickets.
const DefaultLimit = 64 << 10

// maxSpans bounds the gaps tracked in one stream, so that many tiny
// disjoint frames cannot make Add quadratic.
const maxSpans = 64

// TLS handshake message types the Assembler can report.
const (
	handshakeClientHello = 1
	handshakeServerHello = 2
)

// Assembler rebuilds one side's Initial-level CRYPTO stream of one
// connection from frames that may come out of order, with gaps, or more
// than once. Where a frame overlaps data already held, the first copy wins
// and a difference is counted as a conflict. The zero value is ready.
type Assembler struct {
	// Limit is the largest stream offset accepted; 0 means DefaultLimit.
	Limit int

	buf       []byte
	spans     []span // sorted, disjoint, not touching
	conflicts int
}

type span struct{ start, end int }

// Reset empties the assembler for another connection, keeping its memory.
func (a *Assembler) Reset() {
	a.buf = a.buf[:0]
	a.spans = a.spans[:0]
	a.conflicts = 0
}

// AddInitial adds every CRYPTO frame of in.
func (a *Assembler) AddInitial(in *Initial) error {
	for _, f := range in.Crypto {
		if err := a.Add(f.Offset, f.Data); err != nil {
			return err
		}
	}
	return nil
}

// Add puts data at offset in the stream; data is copied.
func (a *Assembler) Add(offset uint64, data []byte) error {
	limit := a.limit()
	if offset > uint64(limit) || uint64(len(data)) > uint64(limit)-offset {
		return fmt.Errorf("frame at %d of %d bytes, limit %d: %w", offset, len(data), limit, ErrCryptoLimit)
	}
	if len(data) == 0 {
		return nil
	}
	start, end := int(offset), int(offset)+len(data)
	// Spans first..last-1 overlap or touch [start, end).
	first := 0
	for first < len(a.spans) && a.spans[first].end < start {
		first++
	}
	last := first
	for last < len(a.spans) && a.spans[last].start <= end {
		last++
	}
	if first == last && len(a.spans) >= maxSpans {
		return fmt.Errorf("more than %d gaps: %w", maxSpans, ErrCryptoLimit)
	}
	if end > len(a.buf) {
		if end > cap(a.buf) {
			grown := make([]byte, end, max(end, min(2*cap(a.buf), limit)))
			copy(grown, a.buf)
			a.buf = grown
		}
		a.buf = a.buf[:end]
	}

	// Copy the parts no span covers; compare the parts one does.
	conflict := false
	pos := start
	for _, s := range a.spans[first:last] {
		if s.start > pos {
			copy(a.buf[pos:s.start], data[pos-start:])
		}
		lo, hi := max(s.start, start), min(s.end, end)
		if lo < hi && string(a.buf[lo:hi]) != string(data[lo-start:hi-start]) {
			conflict = true
		}
		pos = max(pos, s.end)
	}
	if pos < end {
		copy(a.buf[pos:end], data[pos-start:])
	}
	if conflict {
		a.conflicts++
	}

	merged := span{start, end}
	if first < last {
		merged.start = min(merged.start, a.spans[first].start)
		merged.end = max(merged.end, a.spans[last-1].end)
		a.spans[first] = merged
		a.spans = append(a.spans[:first+1], a.spans[last:]...)
	} else {
		a.spans = append(a.spans, span{})
		copy(a.spans[first+1:], a.spans[first:])
		a.spans[first] = merged
	}

	if _, _, tooLong := a.lastMessage(0, limit); tooLong {
		return fmt.Errorf("handshake message over %d bytes: %w", limit, ErrCryptoLimit)
	}
	return nil
}

// Contiguous returns the stream bytes known from offset 0 on.
func (a *Assembler) Contiguous() []byte {
	if len(a.spans) == 0 || a.spans[0].start != 0 {
		return nil
	}
	return a.buf[:a.spans[0].end]
}

// Conflicts counts the frames that disagreed with bytes already held:
// retransmissions must repeat the same bytes, so conflicts point at
// forged or mixed-up packets.
func (a *Assembler) Conflicts() int { return a.conflicts }

// lastMessage walks the complete handshake messages at the start of the
// stream and returns the offset and bytes of the last one of type typ. A
// stream holds two ClientHellos when the server asked for another key share
// (HelloRetryRequest, RFC 8446 section 4.1.4). tooLong reports a message
// header announcing more than limit bytes.
func (a *Assembler) lastMessage(typ byte, limit int) (off int, msg []byte, tooLong bool) {
	b := a.Contiguous()
	off = -1
	for pos := 0; len(b)-pos >= 4; {
		n := 4 + (int(b[pos+1])<<16 | int(b[pos+2])<<8 | int(b[pos+3]))
		if n > limit {
			return off, msg, true
		}
		if len(b)-pos < n {
			break
		}
		if b[pos] == typ {
			off, msg = pos, b[pos:pos+n:pos+n]
		}
		pos += n
	}
	return off, msg, false
}

// ClientHello returns the stream's latest complete ClientHello, 4-byte
// handshake header included: the second one after a HelloRetryRequest.
// The bytes belong to the Assembler and change with Reset.
func (a *Assembler) ClientHello() ([]byte, bool) {
	_, msg, _ := a.lastMessage(handshakeClientHello, a.limit())
	return msg, msg != nil
}

// ServerHello is ClientHello for the server's stream.
func (a *Assembler) ServerHello() ([]byte, bool) {
	_, msg, _ := a.lastMessage(handshakeServerHello, a.limit())
	return msg, msg != nil
}

func (a *Assembler) limit() int {
	if a.Limit <= 0 {
		return DefaultLimit
	}
	return a.Limit
}
