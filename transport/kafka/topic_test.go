package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// testCA returns a CA certificate in a PEM file and a server certificate
// it signs for 127.0.0.1 and localhost.
func testCA(t *testing.T) (caFile string, server tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestCreateTopicRefused: a broker certificate that does not verify ends
// CreateTopic at once, with the error that says why. kfake closes the
// connection on a wrong SCRAM password, where Kafka answers
// SASL_AUTHENTICATION_FAILED; that case, and the plaintext client, are in
// TestAskAgain and, against a real broker, in cmd/tamperscope's
// TestKafkaTLSSCRAM.
func TestCreateTopicRefused(t *testing.T) {
	caFile, cert := testCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "alice", "right"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	right := filepath.Join(t.TempDir(), "right")
	if err := os.WriteFile(right, []byte("right\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := Security{TLS: true, CAFile: caFile, SASL: "SCRAM-SHA-512", Username: "alice", PasswordFile: right}
	with := func(f func(*Security)) Security { s := good; f(&s); return s }
	tests := []struct {
		name string
		sec  Security
		is   func(error) bool
	}{
		{"right settings", good, func(err error) bool { return err == nil }},
		{"unknown CA", with(func(s *Security) { s.CAFile = "" }), func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{"wrong server name", with(func(s *Security) { s.ServerName = "broker.invalid" }), func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := CreateTopic(ctx, c.ListenAddrs(), tt.sec, uniqueName("sec"), 1)
			if !tt.is(err) {
				t.Fatalf("CreateTopic: %v (%T)", err, errors.Unwrap(err))
			}
			if ctx.Err() != nil {
				t.Errorf("CreateTopic asked until its deadline: %v", err)
			}
		})
	}
}

// TestCreateTopicWaitsForBroker: a broker that starts after CreateTopic
// was called gets the topic.
func TestCreateTopicWaitsForBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { done <- CreateTopic(ctx, []string{l.Addr().String()}, Security{}, "late", 1) }()
	select {
	case err := <-done:
		t.Fatalf("CreateTopic returned before the broker started: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := <-done; err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
}

// TestCreateTopicPlaintextToTLS: a plaintext client of a TLS listener
// gets a TLS alert where it expects a Kafka response; CreateTopic says so
// at once.
func TestCreateTopicPlaintextToTLS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// What a JVM's TLS engine sends on a record that is not TLS:
			// a fatal unexpected_message alert.
			c.Read(make([]byte, 512))
			c.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a})
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = CreateTopic(ctx, []string{l.Addr().String()}, Security{}, "t", 1)
	if err == nil || !strings.Contains(err.Error(), "expecting TLS") {
		t.Fatalf("CreateTopic: %v, want the broker expecting TLS", err)
	}
	if ctx.Err() != nil {
		t.Errorf("CreateTopic asked until its deadline: %v", err)
	}
}

func TestAskAgain(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"created", nil, false},
		{"connection refused", fmt.Errorf("kafka.(*Client).Metadata: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"connection closed", fmt.Errorf("kafka.(*Client).Metadata: %w", io.EOF), true},
		{"fenced broker", fmt.Errorf("create topic t: %w", kafkago.InvalidReplicationFactor), true},
		{"temporary", fmt.Errorf("create topic t: %w", kafkago.LeaderNotAvailable), true},
		{"wrong password", fmt.Errorf("kafka.(*Client).Metadata: %w", fmt.Errorf("SASL Authentication failed: %w", kafkago.SASLAuthenticationFailed)), false},
		{"other Kafka error", fmt.Errorf("create topic t: %w", kafkago.InvalidTopic), false},
		{"certificate", fmt.Errorf("kafka.(*Client).Metadata: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false},
		{"TLS listener", fmt.Errorf("kafka.(*Client).Metadata: %w", fmt.Errorf("%w: broker appears to be expecting TLS", io.ErrUnexpectedEOF)), false},
		{"truncated response", fmt.Errorf("kafka.(*Client).Metadata: %w", io.ErrUnexpectedEOF), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := askAgain(tt.err); got != tt.want {
				t.Errorf("askAgain(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
