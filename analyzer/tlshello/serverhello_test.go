package tlshello

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"maps"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// interceptionChain returns a leaf certificate for name issued by a CA
// named like Kazakhstan's interception root.
func interceptionChain(t testing.TB, name string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Qaznet Trust Network", Country: []string{"KZ"}},
		NotBefore:             time.Unix(1e9, 0),
		NotAfter:              time.Unix(3e9, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Example, Inc."}},
		DNSNames:     []string{name},
		NotBefore:    time.Unix(1e9, 0),
		NotAfter:     time.Unix(3e9, 0),
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(leafDER)
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}, leaf
}

// goServerFlight runs a crypto/tls handshake and returns every byte the
// server sent.
func goServerFlight(t testing.TB, cert tls.Certificate, maxVersion uint16) []byte {
	t.Helper()
	c, s := net.Pipe()
	w := &writeRecorder{Conn: s}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The server's error is irrelevant: the recorded bytes are the
		// test input, and closing the pipe below may cut session tickets.
		_ = tls.Server(w, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: maxVersion}).Handshake()
	}()
	cl := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion})
	err := cl.Handshake()
	// Closing the raw pipe, not the tls.Conn, avoids waiting for a
	// close_notify nobody reads.
	c.Close()
	<-done
	s.Close()
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return w.buf.Bytes()
}

func TestParseServerHelloGo(t *testing.T) {
	cert, leaf := interceptionChain(t, "www.example.kz")
	t.Run("tls12 certificate", func(t *testing.T) {
		b := goServerFlight(t, cert, tls.VersionTLS12)
		s, err := ParseServerHello(b)
		if err != nil {
			t.Fatal(err)
		}
		if s.Version() != tls.VersionTLS12 || s.CipherSuite == 0 || !s.HasCertificate || !s.LeafParsed {
			t.Errorf("got %+v", s)
		}
		if s.LeafIssuer != leaf.Issuer.String() || s.LeafSubject != leaf.Subject.String() {
			t.Errorf("issuer %q subject %q, want %q %q", s.LeafIssuer, s.LeafSubject, leaf.Issuer, leaf.Subject)
		}
		if !strings.Contains(s.LeafIssuer, "CN=Qaznet Trust Network") {
			t.Errorf("issuer %q does not name the interception root", s.LeafIssuer)
		}

		// Every prefix that ends before the leaf certificate does must
		// ask for more bytes, never more than are really missing.
		end := len(b)
		for p := range end {
			if _, err := ParseServerHello(b[:p]); err == nil {
				end = p
				break
			}
		}
		for p := range end {
			_, err := ParseServerHello(b[:p])
			var ie *IncompleteError
			if !errors.As(err, &ie) || ie.Need > end-p {
				t.Fatalf("prefix %d/%d: err = %v", p, end, err)
			}
		}

		// The same flight cut into small records reads the same.
		r, err := ParseServerHello(rerecord(t, b, 200))
		if err != nil || r != s {
			t.Errorf("re-recorded flight: %+v, %v", r, err)
		}
	})
	t.Run("tls13 encrypted certificate", func(t *testing.T) {
		s, err := ParseServerHello(goServerFlight(t, cert, tls.VersionTLS13))
		if err != nil {
			t.Fatal(err)
		}
		if s.Version() != tls.VersionTLS13 || s.LegacyVersion != tls.VersionTLS12 || s.HasCertificate {
			t.Errorf("got %+v", s)
		}
	})
}

// rerecord rewrites the leading handshake records of a server flight into
// records of at most size payload bytes and keeps the rest as it is.
func rerecord(t *testing.T, b []byte, size int) []byte {
	t.Helper()
	var hs []byte
	off := 0
	for off+5 <= len(b) && b[off] == recordTypeHS {
		n := int(b[off+3])<<8 | int(b[off+4])
		hs = append(hs, b[off+5:off+5+n]...)
		off += 5 + n
	}
	return append(records(hs, size), b[off:]...)
}

// TestCertNamesFallback breaks a certificate so that crypto/x509 refuses
// it; the names must still come out of the DER walk.
func TestCertNamesFallback(t *testing.T) {
	_, leaf := interceptionChain(t, "fallback.example")
	der := append([]byte(nil), leaf.Raw...)
	// The outer signatureAlgorithm follows the TBSCertificate; making it
	// differ from the inner one is a hard error for crypto/x509.
	hdr := 2
	if der[1]&0x80 != 0 {
		hdr += int(der[1] & 0x7f)
	}
	algOID := hdr + len(leaf.RawTBSCertificate) + 4 // SEQUENCE and OID headers
	der[algOID+2] ^= 0x01
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("the corruption no longer breaks crypto/x509 parsing: the test cannot reach the fallback")
	}
	subject, issuer, parsed, ok := certNames(der)
	if !ok || parsed || subject != leaf.Subject.String() || issuer != leaf.Issuer.String() {
		t.Errorf("got %q %q parsed=%v ok=%v", subject, issuer, parsed, ok)
	}
}

func TestRejectNonServerHello(t *testing.T) {
	for _, b := range [][]byte{
		[]byte("HTTP/1.1 200 OK\r\n"),
		{0x15, 3, 3, 0, 2, 2, 40},
		{0x16, 3, 3, 0, 0x40, 1, 0, 0, 0x3c},
	} {
		if _, err := ParseServerHello(b); !errors.Is(err, ErrNotHandshake) {
			t.Errorf("%q: err = %v, want ErrNotHandshake", b, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseServerHello(b) }); n != 0 {
			t.Errorf("%q: rejecting allocates %v times", b, n)
		}
	}
}

var ndpiCN = regexp.MustCompile(`(?:^|, )CN=(.*?)(?:, [A-Za-z]+=|$)`)

// TestNDPICertificates compares the leaf certificate names of every TLS
// 1.2 flow that nDPI describes with the common names nDPI printed.
func TestNDPICertificates(t *testing.T) {
	corpustest.Require(t)
	cache := corpustest.SegmentCache{}
	compared := 0
	flows := readNDPI(t)
	// The server's stream starts with its first TLS record, which may be
	// a warning alert.
	isServerHello := func(b []byte) bool {
		return len(b) >= 6 && (b[0] == recordTypeAlert || plausibleRecord(b) && b[5] == typeServerHello)
	}
	for _, file := range slices.Sorted(maps.Keys(flows)) {
		for _, fl := range flows[file] {
			if !fl.tls12 || fl.issuer == "" {
				continue
			}
			t.Run(file+"/"+fl.a.String(), func(t *testing.T) {
				segs := cache.Get(t, file)
				stream := corpustest.StreamAt(segs, fl.b, fl.a, 0, isServerHello)
				if stream == nil {
					stream = corpustest.StreamAt(segs, fl.a, fl.b, 0, isServerHello)
				}
				s, err := ParseServerHello(stream)
				if err != nil {
					t.Fatalf("parse %d-byte server stream: %v", len(stream), err)
				}
				compared++
				for _, c := range []struct{ ours, theirs string }{{s.LeafIssuer, fl.issuer}, {s.LeafSubject, fl.subject}} {
					m := ndpiCN.FindStringSubmatch(c.theirs)
					if m == nil {
						continue
					}
					cn := strings.NewReplacer(",", `\,`, "+", `\+`, `"`, `\"`).Replace(m[1])
					if !strings.Contains(c.ours, "CN="+cn) {
						t.Errorf("name %q lacks CN %q (nDPI: %q)", c.ours, m[1], c.theirs)
					}
				}
			})
		}
	}
	if compared == 0 {
		t.Error("no certificate compared")
	}
}
