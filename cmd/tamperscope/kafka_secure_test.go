package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/internal/testenv"
)

// scramUser is the client user of the secure broker.
const scramUser = "tamperscope-test"

// secureFiles is a directory laid out for scripts/kafka.sh's secure mode.
type secureFiles struct {
	dir, ca, passwordFile, password string
}

// writeSecureFiles makes a CA and a broker certificate it signs (for
// 127.0.0.1 and localhost), and a SCRAM user with a random password.
func writeSecureFiles(t *testing.T) secureFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tamperscope test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature,
		// The broker is also a client of its own listener.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var broker bytes.Buffer
	for _, b := range []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8}, {Type: "CERTIFICATE", Bytes: der}, {Type: "CERTIFICATE", Bytes: caDER}} {
		if err := pem.Encode(&broker, b); err != nil {
			t.Fatal(err)
		}
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		t.Fatal(err)
	}
	f := secureFiles{dir: dir, ca: filepath.Join(dir, "ca.pem"), passwordFile: filepath.Join(dir, "scram-password"), password: hex.EncodeToString(pw)}
	for name, data := range map[string][]byte{
		"ca.pem":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"broker.pem":     broker.Bytes(),
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
	pcap := labCaptures(t)[0]
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string // in the message, lower case
	}{
		{"wrong password", append(append([]string(nil), tlsFlags...), "--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", wrongPW),
			[]string{"authentication failed"}},
		{"plaintext client", []string{"--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", sf.passwordFile},
			[]string{"expecting tls"}},
		{"no CA", []string{"--kafka-tls", "--kafka-sasl", "scram-sha-512", "--kafka-user", scramUser, "--kafka-password-file", sf.passwordFile},
			[]string{"certificate", "unknown authority"}},
		{"wrong server name", append(append([]string(nil), scram512...), "--kafka-server-name", "broker.invalid"),
			[]string{"certificate", "broker.invalid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"replay", "analyze"} {
				args := []string{cmd, "--quiet", "--kafka", b.addr, "--topic", uniqueTopic("denied")}
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
				if took > 15*time.Second {
					t.Errorf("%s: failed after %v: a setting that can never work must fail at once", cmd, took)
				}
			}
		})
	}
}
