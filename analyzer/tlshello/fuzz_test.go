package tlshello

import (
	"crypto/tls"
	"errors"
	"testing"
)

// checkErr asserts the error contract every parser result must keep.
func checkErr(t *testing.T, err error) {
	t.Helper()
	var ie *IncompleteError
	switch {
	case err == nil, errors.Is(err, ErrNotHandshake), errors.Is(err, ErrMalformed):
	case errors.As(err, &ie):
		if ie.Need < 1 {
			t.Fatalf("Need = %d", ie.Need)
		}
	default:
		t.Fatalf("unexpected error %v", err)
	}
}

// Seeds beyond the generated ones are real hellos from the corpus in
// testdata/fuzz/<target>.
func FuzzParseClientHello(f *testing.F) {
	f.Add(specHello([]uint16{0x0403, 0x0804}))
	f.Add(goClientHello(f, &tls.Config{ServerName: "fuzz.example", NextProtos: []string{"h2"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseClientHello(b)
		checkErr(t, err)
		if err == nil {
			if h.Len > len(b) || len(h.JA4) != 36 {
				t.Fatalf("Len %d of %d, JA4 %q", h.Len, len(b), h.JA4)
			}
			if !LooksLikeClientHello(b) {
				t.Fatal("parsed a hello LooksLikeClientHello rejects")
			}
		}
		q, err := ParseClientHelloHandshake(b)
		checkErr(t, err)
		if err == nil && q.Len > len(b) {
			t.Fatalf("handshake Len %d of %d", q.Len, len(b))
		}
	})
}

func FuzzParseServerHello(f *testing.F) {
	cert, _ := interceptionChain(f, "fuzz.example")
	f.Add(goServerFlight(f, cert, tls.VersionTLS12))
	f.Add(goServerFlight(f, cert, tls.VersionTLS13))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseServerHello(b)
		checkErr(t, err)
		if err == nil && s.HasCertificate && s.Version() > 0x0303 {
			t.Fatalf("certificate reported for version %#x", s.Version())
		}
	})
}

func FuzzCertNames(f *testing.F) {
	_, leaf := interceptionChain(f, "fuzz.example")
	f.Add(leaf.Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		certNames(der)
	})
}
