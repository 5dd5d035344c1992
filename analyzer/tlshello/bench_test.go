package tlshello

import (
	"crypto/tls"
	"testing"
)

// BenchmarkParseClientHello parses a current Go ClientHello (~1.5 KB with
// the X25519MLKEM768 key share), the common post-quantum case.
func BenchmarkParseClientHello(b *testing.B) {
	hello := goClientHello(b, &tls.Config{ServerName: "bench.example", NextProtos: []string{"h2", "http/1.1"}})
	b.SetBytes(int64(len(hello)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClientHello(hello); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRejectNonTLS is the cost paid on the first bytes of every
// flow that is not TLS.
func BenchmarkRejectNonTLS(b *testing.B) {
	payload := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClientHello(payload); err == nil {
			b.Fatal("parsed HTTP as TLS")
		}
	}
}

func BenchmarkParseServerHelloCertificate(b *testing.B) {
	cert, _ := interceptionChain(b, "bench.example")
	flight := goServerFlight(b, cert, tls.VersionTLS12)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseServerHello(flight); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseClientHelloAllocs pins the per-flow cost: the integer lists
// share one allocation, the SNI and the ALPN slice take one each; the ALPN
// names are interned and a repeated fingerprint comes from the JA4 memo.
func TestParseClientHelloAllocs(t *testing.T) {
	hello := goClientHello(t, &tls.Config{ServerName: "allocs.example", NextProtos: []string{"h2"}})
	n := testing.AllocsPerRun(100, func() { _, _ = ParseClientHello(hello) })
	if n > 3 {
		t.Errorf("ParseClientHello allocates %v times per hello, want <= 3", n)
	}
}
