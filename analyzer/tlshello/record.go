package tlshello

import (
	"errors"
	"strconv"
)

const (
	recordHeaderLen    = 5
	recordTypeHS       = 0x16
	handshakeHeaderLen = 4

	// maxRecordLen is the largest TLSCiphertext fragment RFC 8446 allows
	// (2^14 + 256 for TLS 1.3, 2^14 + 2048 for older versions); anything
	// longer is not TLS.
	maxRecordLen = 1<<14 + 2048

	// maxHelloLen bounds the handshake messages the parsers will wait for.
	// The largest ClientHellos seen in the wild are about 11 KB and
	// certificate chains stay well under 64 KB; a bigger claimed length
	// is garbage, and waiting for it would pin flow memory.
	maxHelloLen = 1 << 17
)

// Handshake message types (RFC 8446 section 4).
const (
	typeClientHello     = 1
	typeServerHello     = 2
	typeCertificate     = 11
	typeServerKeyExch   = 12
	typeCertRequest     = 13
	typeServerHelloDone = 14
	typeCertStatus      = 22
)

var (
	// ErrIncomplete is matched (errors.Is) by the error returned when the
	// bytes end inside the messages being parsed. The error is an
	// *IncompleteError that says how many more bytes are needed.
	ErrIncomplete = errors.New("incomplete TLS handshake")

	// ErrNotHandshake is returned when the bytes do not start with the
	// expected TLS handshake record and message: the flow is not TLS, or
	// the capture started in the middle of it.
	ErrNotHandshake = errors.New("not a TLS handshake")

	// errInterrupted says that the handshake stream ends at a record of
	// another content type (ChangeCipherSpec of an abbreviated handshake,
	// an alert) before the wanted bytes.
	errInterrupted = errors.New("handshake stream interrupted")

	// ErrMalformed is wrapped by errors for bytes that start like the
	// expected message but break its structure.
	ErrMalformed = errors.New("malformed TLS handshake")
)

// IncompleteError reports a prefix that ends too early.
type IncompleteError struct {
	// Need is a lower bound of the bytes that must follow the prefix
	// before parsing can progress; always at least 1. A caller that
	// buffers segments can wait for Need more bytes before trying again.
	Need int
}

func (e *IncompleteError) Error() string {
	return "incomplete TLS handshake: need at least " + strconv.Itoa(e.Need) + " more bytes"
}

// Is makes errors.Is(err, ErrIncomplete) true.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

func incomplete(need int) error {
	if need < 1 {
		need = 1
	}
	return &IncompleteError{Need: need}
}

func malformed(what string) error {
	return &malformedError{what: what}
}

type malformedError struct{ what string }

func (e *malformedError) Error() string        { return "parse TLS handshake: " + e.what }
func (e *malformedError) Unwrap() error        { return ErrMalformed }
func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

// LooksLikeClientHello reports whether b starts like a TLS record carrying
// a ClientHello: content type handshake, record version 3.x with x <= 4,
// a plausible record length and handshake type client_hello. It needs the
// first 6 bytes and is meant to recognise TLS on any port.
func LooksLikeClientHello(b []byte) bool {
	return len(b) >= 6 && plausibleRecord(b) && b[5] == typeClientHello
}

func plausibleRecord(b []byte) bool {
	if b[0] != recordTypeHS || b[1] != 3 || b[2] > 4 {
		return false
	}
	n := int(b[3])<<8 | int(b[4])
	return n > 0 && n <= maxRecordLen
}

// handshakePrefix returns the first want bytes of the handshake-protocol
// byte stream carried by the TLS records at the start of b. When those
// bytes sit in the first record it returns a subslice of b; otherwise it
// joins the record payloads into buf (grown as needed) and returns that.
// It fails with an *IncompleteError when b ends first, and with
// errInterrupted when a record of another content type comes first.
func handshakePrefix(b []byte, want int, buf []byte) ([]byte, []byte, error) {
	if len(b) < recordHeaderLen {
		return nil, buf, incomplete(recordHeaderLen - len(b) + want)
	}
	if !plausibleRecord(b) {
		return nil, buf, ErrNotHandshake
	}
	n := int(b[3])<<8 | int(b[4])
	if len(b)-recordHeaderLen >= n && n >= want {
		return b[recordHeaderLen : recordHeaderLen+want], buf, nil
	}
	if n >= want {
		return nil, buf, incomplete(recordHeaderLen + want - len(b))
	}
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	out := buf[:0]
	off := 0
	for len(out) < want {
		if len(b)-off < recordHeaderLen {
			return nil, out, incomplete(recordHeaderLen - (len(b) - off) + want - len(out))
		}
		h := b[off : off+recordHeaderLen]
		if h[0] != recordTypeHS {
			return nil, out, errInterrupted
		}
		if !plausibleRecord(h) {
			return nil, out, malformed("bad record header")
		}
		n := int(h[3])<<8 | int(h[4])
		off += recordHeaderLen
		take := min(n, want-len(out))
		if len(b)-off < take {
			return nil, out, incomplete(take - (len(b) - off))
		}
		out = append(out, b[off:off+take]...)
		off += n
	}
	return out, out, nil
}

// messagePrefix is handshakePrefix for bytes inside one handshake message,
// where a record of another type is a broken stream, not the end of it.
func messagePrefix(b []byte, want int, buf []byte) ([]byte, []byte, error) {
	hs, buf, err := handshakePrefix(b, want, buf)
	if err == errInterrupted {
		err = malformed("record of another type inside a handshake message")
	}
	return hs, buf, err
}
