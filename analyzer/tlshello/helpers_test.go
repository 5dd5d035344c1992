package tlshello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// ext is one extension for buildHello.
type ext struct {
	typ  uint16
	body []byte
}

func u16(v int) []byte { return []byte{byte(v >> 8), byte(v)} }
func u24(v int) []byte { return []byte{byte(v >> 16), byte(v >> 8), byte(v)} }

func vec16(parts ...[]byte) []byte {
	b := bytes.Join(parts, nil)
	return append(u16(len(b)), b...)
}

func vec8(parts ...[]byte) []byte {
	b := bytes.Join(parts, nil)
	return append([]byte{byte(len(b))}, b...)
}

func u16s(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, byte(v>>8), byte(v))
	}
	return b
}

func sniExt(name string) ext {
	return ext{extServerName, vec16([]byte{0}, vec16([]byte(name)))}
}

func alpnExt(protos ...string) ext {
	var parts [][]byte
	for _, p := range protos {
		parts = append(parts, vec8([]byte(p)))
	}
	return ext{extALPN, vec16(parts...)}
}

// buildHandshake returns a ClientHello handshake message (no record).
func buildHandshake(version uint16, suites []uint16, exts []ext) []byte {
	body := append(u16(int(version)), make([]byte, 32)...)
	body = append(body, 0) // session id
	body = append(body, vec16(u16s(suites...))...)
	body = append(body, 1, 0) // null compression
	var eb []byte
	for _, e := range exts {
		eb = append(eb, u16(int(e.typ))...)
		eb = append(eb, vec16(e.body)...)
	}
	body = append(body, vec16(eb)...)
	return append(append([]byte{typeClientHello}, u24(len(body))...), body...)
}

// records wraps a handshake byte stream into TLS records of at most size
// bytes of payload each.
func records(hs []byte, size int) []byte {
	var out []byte
	for len(hs) > 0 {
		n := min(size, len(hs))
		out = append(out, recordTypeHS, 3, 1)
		out = append(out, u16(n)...)
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	return out
}

// writeRecorder is a net.Conn that records what is written to it.
type writeRecorder struct {
	net.Conn
	buf bytes.Buffer
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.Conn.Write(p)
}

// goClientHello returns the first flight crypto/tls sends as a client:
// a real ClientHello, with the post-quantum key share of current Go.
func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c, s := net.Pipe()
	w := &writeRecorder{Conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(w, cfg).Handshake()
	}()
	// Read the whole first flight, then hang up so the handshake fails.
	var got []byte
	buf := make([]byte, 1<<16)
	for {
		_ = s.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := s.Read(buf)
		got = append(got, buf[:n]...)
		if _, perr := ParseClientHello(got); perr == nil || !errors.Is(perr, ErrIncomplete) {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read ClientHello: %v", err)
		}
	}
	s.Close()
	<-done
	return got
}
