package httpreq

import (
	"bytes"
	"errors"
	"strconv"
)

var (
	// ErrIncomplete means the bytes end before the request line, the Host
	// header or the end of the headers; more bytes may complete them.
	ErrIncomplete = errors.New("incomplete HTTP message")
	// ErrNotHTTP means the bytes do not start like an HTTP/1.x message.
	ErrNotHTTP = errors.New("not HTTP")
	// ErrMalformed is wrapped by errors for bytes that start like HTTP but
	// break its syntax or its size limits.
	ErrMalformed = errors.New("malformed HTTP message")
)

// Limits past which a message is not worth waiting for: real request lines
// stay far below 8 KiB and servers refuse header blocks above 8-64 KiB.
const (
	MaxLineLen   = 8 << 10
	MaxHeaderLen = 64 << 10
)

// methods are the request methods recognised, with the space that follows
// them: RFC 9110, WebDAV's common ones, and the SSDP (UPnP over UDP) ones.
var methods = []string{
	"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH ",
	"PROPFIND ", "PROPPATCH ", "MKCOL ", "COPY ", "MOVE ", "LOCK ", "UNLOCK ",
	"M-SEARCH ", "NOTIFY ", "SUBSCRIBE ", "UNSUBSCRIBE ",
}

// Request is the part of an HTTP/1.x request that identifies what was
// asked for.
type Request struct {
	Method  string // one of the recognised methods
	Target  string // request-target as sent: origin form, absolute URI, authority (CONNECT) or "*"
	Version string // "HTTP/1.1", "HTTP/1.0", or "HTTP/0.9" for a version-less GET
	// Host is the value of the first Host header, spaces trimmed; empty
	// when the headers end without one.
	Host string
	// Len is how many bytes were read: through the Host header line, or
	// through the blank line that ends the headers.
	Len int
}

// method returns the recognised method b starts with (without its
// space), "" when none, and whether b is a strict prefix of one.
func method(b []byte) (m string, prefix bool) {
	if len(b) == 0 {
		return "", true
	}
	if b[0] < 'C' || b[0] > 'U' {
		return "", false
	}
	for _, mm := range methods {
		if len(b) >= len(mm) {
			if string(b[:len(mm)]) == mm {
				return mm[:len(mm)-1], false
			}
		} else if string(b) == mm[:len(b)] {
			prefix = true
		}
	}
	return "", prefix
}

// LooksLikeRequest reports whether b starts with a recognised request
// method followed by a space.
func LooksLikeRequest(b []byte) bool {
	m, _ := method(b)
	return m != ""
}

// line returns the line at the start of b without its LF or CRLF and the
// offset after it; ok is false when b holds no line end.
func line(b []byte) (l []byte, next int, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, 0, false
	}
	l = b[:i]
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	return l, i + 1, true
}

// Parse reads the request at the start of b. It returns ErrNotHTTP (without
// allocating) when b does not start with a recognised method, ErrIncomplete
// when b ends before the Host header or the end of the headers, and an
// error matching ErrMalformed for a broken request line or a message over
// the size limits.
func Parse(b []byte) (Request, error) {
	m, prefix := method(b)
	if m == "" {
		if prefix {
			return Request{}, ErrIncomplete
		}
		return Request{}, ErrNotHTTP
	}
	reqLine, off, ok := line(b)
	if !ok {
		if len(b) > MaxLineLen {
			return Request{}, malformed("request line longer than " + strconv.Itoa(MaxLineLen))
		}
		return Request{}, ErrIncomplete
	}
	rest := reqLine[len(m)+1:]
	sp := bytes.LastIndexByte(rest, ' ')
	if sp < 0 && m == "GET" && len(rest) > 0 {
		// HTTP/0.9 simple request: no version, no headers. Old clients,
		// scanners and censorship probes still send it.
		return Request{Method: m, Target: string(rest), Version: "HTTP/0.9", Len: off}, nil
	}
	if sp <= 0 {
		return Request{}, malformed("request line without version")
	}
	target, version := rest[:sp], rest[sp+1:]
	if !bytes.HasPrefix(version, []byte("HTTP/1.")) || len(version) != 8 || bytes.IndexByte(target, ' ') >= 0 {
		return Request{}, malformed("bad request line")
	}
	req := Request{Method: m, Target: string(target), Version: versionString(version)}

	for {
		h, next, ok := line(b[off:])
		if !ok {
			if len(b) > MaxHeaderLen {
				return Request{}, malformed("headers longer than " + strconv.Itoa(MaxHeaderLen))
			}
			return Request{}, ErrIncomplete
		}
		off += next
		if len(h) == 0 {
			req.Len = off
			return req, nil
		}
		if len(h) >= 5 && h[4] == ':' && asciiEqualFold(h[:4], "host") {
			req.Host = string(bytes.Trim(h[5:], " \t"))
			req.Len = off
			return req, nil
		}
	}
}

func versionString(v []byte) string {
	switch string(v) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/1.0":
		return "HTTP/1.0"
	}
	return string(v)
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := range b {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// Response is the status line of an HTTP/1.x response.
type Response struct {
	Version    string
	StatusCode int
	Len        int // bytes of the status line, line end included
}

// ParseResponse reads the status line at the start of b ("HTTP/1.1 403
// Forbidden"): enough for blockpage detectors to tell a redirect or a 403
// from a real page. Errors are those of Parse.
func ParseResponse(b []byte) (Response, error) {
	const prefix = "HTTP/1."
	n := min(len(b), len(prefix))
	if string(b[:n]) != prefix[:n] {
		return Response{}, ErrNotHTTP
	}
	l, next, ok := line(b)
	if !ok {
		if len(b) > MaxLineLen {
			return Response{}, malformed("status line longer than " + strconv.Itoa(MaxLineLen))
		}
		return Response{}, ErrIncomplete
	}
	// "HTTP/1.x SP 3DIGIT" then optional SP reason.
	if len(l) < 12 || l[8] != ' ' || (len(l) > 12 && l[12] != ' ') {
		return Response{}, malformed("bad status line")
	}
	code := 0
	for _, c := range l[9:12] {
		if c < '0' || c > '9' {
			return Response{}, malformed("bad status code")
		}
		code = code*10 + int(c-'0')
	}
	return Response{Version: versionString(l[:8]), StatusCode: code, Len: next}, nil
}

type malformedError struct{ what string }

func (e *malformedError) Error() string { return "parse HTTP: " + e.what }
func (e *malformedError) Unwrap() error { return ErrMalformed }

func malformed(what string) error { return &malformedError{what: what} }
