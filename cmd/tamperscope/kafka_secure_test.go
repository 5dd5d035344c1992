package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/internal/certs"
	"github.com/tamperscope/tamperscope/internal/testenv"
)

// scramUser is the client user of the secure broker.
const scramUser = "tamperscope-test"

// secureFiles is a directory laid out for scripts/kafka.sh's secure mode.
type secureFiles struct {
	dir, ca, passwordFile, password string
}

// newTestCA makes a certificate authority for one test.
func newTestCA(t *testing.T, name string) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issuePEM has ca sign a certificate as tmpl says and returns its chain
// and its key in PEM.
func issuePEM(t *testing.T, ca *certs.CA, tmpl *x509.Certificate) (chain, key []byte) {
	t.Helper()
	c, err := ca.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	key, err = certs.KeyPEM(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return certs.ChainPEM(c), key
}

// writeSecureFiles makes a CA and a broker certificate it signs (for
// 127.0.0.1 and localhost), and a SCRAM user with a random password.
func writeSecureFiles(t *testing.T) secureFiles {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, "tamperscope test CA")
	chain, key := issuePEM(t, ca, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		// The broker is also a client of its own listener.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	broker := append(key, chain...) // Kafka's PEM keystore: the key, then the chain
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		t.Fatal(err)
	}
	f := secureFiles{dir: dir, ca: filepath.Join(dir, "ca.pem"), passwordFile: filepath.Join(dir, "scram-password"), password: hex.EncodeToString(pw)}
	for name, data := range map[string][]byte{
		"ca.pem":         ca.CertPEM(),
		"broker.pem":     broker,
		"scram-user":     []byte(scramUser + "\n"),
		"scram-password": []byte(f.password + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// runLimited runs the binary with extra environment variables and a time
// limit, and returns its output and exit error.
func runLimited(t *testing.T, limit time.Duration, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tamperscope"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("tamperscope %s still running after %v:\n%s", strings.Join(args, " "), limit, out)
	}
	return string(out), err
}

// TestKafkaTLSSCRAM runs the distributed mode through a broker that
// serves clients only over TLS with SASL/SCRAM: the flows equal the
// in-process run's, with either SCRAM mechanism and either password
// source. A wrong password, a plaintext client, an unknown CA and a wrong
// server name each fail at once, saying which.
func TestKafkaTLSSCRAM(t *testing.T) {
	kafkaAddr(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Need(t, "openssl not found: scripts/kafka.sh checks the secure broker's TLS listener with it")
	}
	sf := writeSecureFiles(t)
	b := startPrivateBroker(t, "TAMPERSCOPE_KAFKA_SECURE="+sf.dir)
	tlsFlags := []string{"--kafka-tls", "--kafka-ca", sf.ca}
	scram512 := append(append([]string(nil), tlsFlags...), "--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", sf.passwordFile)

	t.Run("scram-sha-512", func(t *testing.T) {
		files := labCaptures(t)
		want := inProcess(t, files)
		topic := uniqueTopic("secure")
		runBin(t, append(append([]string{"replay", "--quiet", "--kafka", b.addr, "--topic", topic, "--partitions", "2"}, scram512...), files...)...)
		out := t.TempDir()
		wait(t, startAnalyzer(t, b.addr, topic, uniqueTopic("g"), out, append([]string{"--idle-exit", "6s", "--findings-topic", "-"}, scram512...)...))
		got := readDataset(t, out)
		if len(got.flows) == 0 {
			t.Fatal("no flows came through the secure broker")
		}
		compareFlows(t, want, got)
	})

	t.Run("scram-sha-256 password from env", func(t *testing.T) {
		files := labCaptures(t)[:1]
		want := inProcess(t, files)
		topic := uniqueTopic("secure256")
		scram256 := append(append([]string(nil), tlsFlags...), "--kafka-sasl", "scram-sha-256", "--kafka-user", scramUser)
		env := []string{passwordEnv + "=" + sf.password}
		if out, err := runLimited(t, 2*time.Minute, env, append(append([]string{"replay", "--quiet", "--kafka", b.addr, "--topic", topic}, scram256...), files...)...); err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		dir := t.TempDir()
		if out, err := runLimited(t, 2*time.Minute, env, append([]string{"analyze", "--quiet", "--kafka", b.addr, "--topic", topic, "--group", uniqueTopic("g"),
			"--out", dir, "--idle-exit", "4s", "--findings-topic", "-"}, scram256...)...); err != nil {
			t.Fatalf("analyze: %v\n%s", err, out)
		}
		compareFlows(t, want, readDataset(t, dir))
	})

	wrongPW := filepath.Join(t.TempDir(), "wrong-password")
	if err := os.WriteFile(wrongPW, []byte("not-"+sf.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, b.addr, 15*time.Second, []refusal{
		{"wrong password", append(append([]string(nil), tlsFlags...), "--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", wrongPW),
			[]string{"authentication failed"}},
		{"plaintext client", []string{"--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", sf.passwordFile},
			[]string{"expecting tls"}},
		{"no CA", []string{"--kafka-tls", "--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", sf.passwordFile},
			[]string{"certificate", "unknown authority"}},
		{"wrong server name", append(append([]string(nil), scram512...), "--kafka-server-name", "broker.invalid"),
			[]string{"certificate", "broker.invalid"}},
	})
}

// refusal is a setting that a broker can never accept.
type refusal struct {
	name  string
	flags []string
	want  []string // in the message, lower case
}

// checkRefused runs replay and analyze with each setting: both must exit
// non-zero within limit, with a message that says each of want.
func checkRefused(t *testing.T, addr string, limit time.Duration, refusals []refusal) {
	t.Helper()
	pcap := labCaptures(t)[0]
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"replay", "analyze"} {
				args := []string{cmd, "--quiet", "--kafka", addr, "--topic", uniqueTopic("denied")}
				if cmd == "analyze" {
					args = append(args, "--group", uniqueTopic("g"), "--out", t.TempDir(), "--idle-exit", "2s", "--findings-topic", "-")
				}
				args = append(args, tc.flags...)
				if cmd == "replay" {
					args = append(args, pcap)
				}
				start := time.Now()
				out, err := runLimited(t, time.Minute, nil, args...)
				took := time.Since(start)
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					t.Fatalf("%s: exit %v, want a failure:\n%s", cmd, err, out)
				}
				t.Logf("%s: %v after %v: %s", cmd, err, took.Round(time.Millisecond), strings.TrimSpace(out))
				for _, w := range tc.want {
					if !strings.Contains(strings.ToLower(out), w) {
						t.Errorf("%s: the message does not say %q:\n%s", cmd, w, out)
					}
				}
				if took > limit {
					t.Errorf("%s: failed after %v: a setting that can never work must fail at once", cmd, took)
				}
			}
		})
	}
}

// clientFiles are a client certificate and its key in PEM files.
type clientFiles struct{ cert, key string }

// writeClientCert makes a client certificate that ca signs.
func writeClientCert(t *testing.T, ca *certs.CA, name string) clientFiles {
	t.Helper()
	chain, key := issuePEM(t, ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	dir := t.TempDir()
	f := clientFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(f.cert, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.key, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestKafkaMutualTLS runs the distributed mode through a secure broker
// that also requires a client certificate signed by its client CA: with a
// certificate and SCRAM, the flows equal the in-process run's. No client
// certificate, one from another CA, a key that is not the certificate's,
// and a trusted certificate with a wrong password each fail at once,
// saying which.
func TestKafkaMutualTLS(t *testing.T) {
	kafkaAddr(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Need(t, "openssl not found: scripts/kafka.sh checks the secure broker's TLS listener with it")
	}
	sf := writeSecureFiles(t)
	clientCA := newTestCA(t, "tamperscope test client CA")
	if err := os.WriteFile(filepath.Join(sf.dir, "client-ca.pem"), clientCA.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	client := writeClientCert(t, clientCA, scramUser)
	stranger := writeClientCert(t, newTestCA(t, "another CA"), scramUser)
	b := startPrivateBroker(t, "TAMPERSCOPE_KAFKA_SECURE="+sf.dir)
	scram := func(passwordFile string) []string {
		return []string{"--kafka-tls", "--kafka-ca", sf.ca, "--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", passwordFile}
	}
	withCert := func(c clientFiles, passwordFile string) []string {
		return append(scram(passwordFile), "--kafka-cert", c.cert, "--kafka-key", c.key)
	}

	t.Run("client certificate and SCRAM", func(t *testing.T) {
		files := labCaptures(t)[:1]
		want := inProcess(t, files)
		if len(want.flows) == 0 {
			t.Fatal("the in-process run found no flows")
		}
		topic := uniqueTopic("mtls")
		if out, err := runLimited(t, 2*time.Minute, nil, append(append([]string{"replay", "--quiet", "--kafka", b.addr, "--topic", topic}, withCert(client, sf.passwordFile)...), files...)...); err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		dir := t.TempDir()
		if out, err := runLimited(t, 2*time.Minute, nil, append([]string{"analyze", "--quiet", "--kafka", b.addr, "--topic", topic, "--group", uniqueTopic("g"),
			"--out", dir, "--idle-exit", "4s", "--findings-topic", "-"}, withCert(client, sf.passwordFile)...)...); err != nil {
			t.Fatalf("analyze: %v\n%s", err, out)
		}
		compareFlows(t, want, readDataset(t, dir))
	})

	wrongPW := filepath.Join(t.TempDir(), "wrong-password")
	if err := os.WriteFile(wrongPW, []byte("not-"+sf.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, b.addr, 5*time.Second, []refusal{
		{"no client certificate", scram(sf.passwordFile), []string{"tls handshake refused", "no client certificate given"}},
		{"certificate from another CA", withCert(stranger, sf.passwordFile), []string{"tls handshake refused", "client certificate " + strings.ToLower(stranger.cert)}},
		{"key of another certificate", withCert(clientFiles{cert: client.cert, key: stranger.key}, sf.passwordFile), []string{"private key does not match"}},
		// SCRAM stays on beside the certificate.
		{"certificate and wrong password", withCert(client, wrongPW), []string{"authentication failed"}},
	})
}
