package certs

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"testing"
)

// TestIssue: what a CA issues verifies against its pool for the names and
// usage asked, and not for others; the PEM forms load back as a key pair.
func TestIssue(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server("a.test")
	if err != nil {
		t.Fatal(err)
	}
	opts := x509.VerifyOptions{Roots: ca.Pool, DNSName: "a.test", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := srv.Leaf.Verify(opts); err != nil {
		t.Fatalf("server certificate does not verify: %v", err)
	}
	opts.DNSName = "b.test"
	if _, err := srv.Leaf.Verify(opts); err == nil {
		t.Fatal("server certificate verifies for a name it does not carry")
	}
	cl, err := ca.Issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "client"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Leaf.SerialNumber.Cmp(srv.Leaf.SerialNumber) == 0 {
		t.Error("two certificates of one CA share a serial number")
	}
	if _, err := cl.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify: %v", err)
	}
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Leaf.Verify(x509.VerifyOptions{Roots: other.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a certificate verifies against another CA")
	}
	key, err := KeyPEM(cl.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(ChainPEM(cl), key)
	if err != nil {
		t.Fatalf("PEM chain and key do not load back: %v", err)
	}
	if len(pair.Certificate) != 2 {
		t.Errorf("chain of %d certificates, want leaf and CA", len(pair.Certificate))
	}
	if b, _ := pem.Decode(ca.CertPEM()); b == nil || string(b.Bytes) != string(ca.Cert.Raw) {
		t.Error("CertPEM is not the CA certificate")
	}
}
