package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tamperscope/tamperscope/internal/certs"
	"github.com/tamperscope/tamperscope/internal/loopback"
)

// testAuthority is a CA made for one test, with its certificate in a PEM
// file.
type testAuthority struct {
	*certs.CA
	file string
}

func newCA(t *testing.T, name string) testAuthority {
	t.Helper()
	ca, err := certs.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return testAuthority{CA: ca, file: file}
}

// server issues a server certificate for 127.0.0.1 and localhost.
func (ca testAuthority) server(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(&x509.Certificate{
		Subject:  pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientFiles issues a client certificate and writes it and its key to
// PEM files.
func (ca testAuthority) clientFiles(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	c, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.KeyPEM(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certs.ChainPEM(c), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// testCA returns a CA certificate in a PEM file and a server certificate
// it signs for 127.0.0.1 and localhost.
func testCA(t *testing.T) (caFile string, server tls.Certificate) {
	t.Helper()
	ca := newCA(t, "test CA")
	return ca.file, ca.server(t)
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
	addr := loopback.Serve(t, func(c net.Conn) {
		// What a JVM's TLS engine sends on a record that is not TLS: a
		// fatal unexpected_message alert.
		c.Read(make([]byte, 512))
		c.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a})
		c.Close()
	}).String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := CreateTopic(ctx, []string{addr}, Security{}, "t", 1)
	if err == nil || !strings.Contains(err.Error(), "expecting TLS") {
		t.Fatalf("CreateTopic: %v, want the broker expecting TLS", err)
	}
	if ctx.Err() != nil {
		t.Errorf("CreateTopic asked until its deadline: %v", err)
	}
}

// TestCreateTopicClientCertificate: a broker that requires client
// certificates takes one that its client CA signed. A client without one,
// or with one from another CA, gets a TLS alert — in the handshake under
// TLS 1.2, at its first read under TLS 1.3 — and CreateTopic gives up at
// once, naming the certificate.
func TestCreateTopicClientCertificate(t *testing.T) {
	ca, clientCA := newCA(t, "test CA"), newCA(t, "client CA")
	certFile, keyFile := clientCA.clientFiles(t)
	otherCert, otherKey := newCA(t, "another CA").clientFiles(t)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{
				Certificates: []tls.Certificate{ca.server(t)}, MinVersion: version, MaxVersion: version,
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool,
			}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			tests := []struct {
				name string
				sec  Security
				want string // in the error; "" for none
			}{
				{"trusted certificate", Security{TLS: true, CAFile: ca.file, CertFile: certFile, KeyFile: keyFile}, ""},
				{"no certificate", Security{TLS: true, CAFile: ca.file}, "no client certificate given"},
				{"certificate from another CA", Security{TLS: true, CAFile: ca.file, CertFile: otherCert, KeyFile: otherKey}, "client certificate " + otherCert},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					err := CreateTopic(ctx, c.ListenAddrs(), tt.sec, uniqueName("mtls"), 1)
					switch {
					case tt.want == "" && err != nil:
						t.Fatalf("CreateTopic: %v", err)
					case tt.want != "" && (!remoteAlert(err) || !strings.Contains(err.Error(), tt.want)):
						t.Fatalf("CreateTopic: %v, want the broker's TLS alert and %q", err, tt.want)
					}
					if ctx.Err() != nil {
						t.Errorf("CreateTopic asked until its deadline: %v", err)
					}
				})
			}
		})
	}
}

// refusedHandshake returns what a TLS 1.3 client without a certificate
// reads from a server that requires one: the server's alert.
func refusedHandshake(t *testing.T) error {
	t.Helper()
	ca := newCA(t, "test CA")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ca.server(t)}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("a server that requires a client certificate answered a client without one")
	}
	return err
}

func TestAskAgain(t *testing.T) {
	alert := refusedHandshake(t)
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
		{"client certificate refused", fmt.Errorf("kafka.(*Client).Metadata: %w", alert), false},
		{"alert in a read error", fmt.Errorf("kafka.(*Client).Metadata: %w", &net.OpError{Op: "read", Net: "tcp", Err: alert}), false},
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

// TestCreateTopicClosedConnections: against a listener that closes every
// connection, CreateTopic keeps trying until the deadline (a restarting
// broker looks the same), and its error then says what to check.
func TestCreateTopicClosedConnections(t *testing.T) {
	addr := loopback.Serve(t, func(c net.Conn) { c.Close() }).String()
	const deadline = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := CreateTopic(ctx, []string{addr}, Security{}, "t", 1)
	if err == nil || !strings.Contains(err.Error(), "check that the TLS and SASL settings match") {
		t.Fatalf("CreateTopic = %v, want the hint about TLS and SASL settings", err)
	}
	if took := time.Since(start); took < deadline {
		t.Errorf("gave up after %v, before the %v deadline", took, deadline)
	}
}
