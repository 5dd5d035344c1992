package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security configures TLS and SASL for every connection a Publisher,
// Subscriber or CreateTopic makes. The zero value is plaintext without
// authentication. Secrets come from files or the environment, never from
// the command line, where other users of the host can read them.
type Security struct {
	// TLS enables TLS. CAFile (PEM) replaces the system roots; CertFile and
	// KeyFile (PEM) present a client certificate; ServerName overrides the
	// name checked against the broker's certificate.
	TLS        bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string

	// SASL is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASL     string
	Username string
	// PasswordFile names a file holding the password (one trailing newline
	// is dropped); PasswordEnv names an environment variable holding it.
	// Exactly one is needed when SASL is set.
	PasswordFile string
	PasswordEnv  string
}

func (s Security) tlsConfig() (*tls.Config, error) {
	if !s.TLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA file %s: no PEM certificate", s.CAFile)
		}
	}
	if s.CertFile != "" || s.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s and key %s: %w", s.CertFile, s.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (s Security) password() (string, error) {
	switch {
	case s.PasswordFile != "" && s.PasswordEnv != "":
		return "", errors.New("both PasswordFile and PasswordEnv set")
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	case s.PasswordEnv != "":
		p, ok := os.LookupEnv(s.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("password variable %s is not set", s.PasswordEnv)
		}
		return p, nil
	}
	return "", errors.New("SASL needs PasswordFile or PasswordEnv")
}

func (s Security) mechanism() (sasl.Mechanism, error) {
	if s.SASL == "" {
		return nil, nil
	}
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	switch strings.ToUpper(s.SASL) {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.Username, pw)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.Username, pw)
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q", s.SASL)
}

// conn holds what every kafka-go connection needs, built once from a
// Security.
type conn struct {
	dialer    *kafkago.Dialer
	transport *kafkago.Transport
}

func (s Security) conn(clientID string) (conn, error) {
	t, err := s.tlsConfig()
	if err != nil {
		return conn{}, fmt.Errorf("configure TLS: %w", err)
	}
	m, err := s.mechanism()
	if err != nil {
		return conn{}, fmt.Errorf("configure SASL: %w", err)
	}
	return conn{
		dialer: &kafkago.Dialer{
			ClientID: clientID, Timeout: 10 * time.Second, DualStack: true,
			TLS: t, SASLMechanism: m,
		},
		transport: &kafkago.Transport{
			ClientID: clientID, DialTimeout: 10 * time.Second, TLS: t, SASL: m,
		},
	}, nil
}
